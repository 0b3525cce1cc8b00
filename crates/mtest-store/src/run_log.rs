//! `last-run/run.jsonl`: one record a line, the lines of a chunk one `write` on an
//! `O_APPEND` file, so a SIGKILL of mtest leaves at most one torn last line, which `read`
//! sets aside.
//!
//! Beside it, `details.jsonl`: a line for each record with text (a failure's traceback,
//! output and log, a crash's last output; a pass or a skip has none), keyed by test and
//! attempt, so what a resumed or merged run replays is whole.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::record::{Details, TestRecord};
use crate::FastMap;

pub struct RunLog {
    file: File,
    path: PathBuf,
    /// `details.jsonl`, opened with the first record that has details.
    details: Option<File>,
    /// The file written: if the path stops naming it, the store was deleted or replaced
    /// during the run.
    identity: same_file::Handle,
    /// The lines of a chunk, reused: a fresh buffer for each chunk is fresh pages (a
    /// zeroed huge page, often) from the kernel each time.
    lines: Vec<u8>,
}

/// A line of `details.jsonl`.
#[derive(Serialize, Deserialize)]
struct DetailsLine<'a> {
    test_id: std::borrow::Cow<'a, str>,
    attempt: u32,
    details: std::borrow::Cow<'a, Details>,
}

/// `details.jsonl` beside `run.jsonl` at `log`.
fn details_path(log: &Path) -> PathBuf {
    log.with_file_name("details.jsonl")
}

fn open_append(path: &Path) -> Result<File, StoreError> {
    // Readable too: if the store is deleted during the run, this handle still holds
    // every line written, and `recreate` copies them back.
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(StoreError::io("open", path))
}

/// Writes `path` anew with what `file` holds.
fn copy_back(mut file: &File, path: &Path) -> Result<(), StoreError> {
    let fail = StoreError::io("re-create", path);
    let tmp = path.with_extension("jsonl.tmp");
    file.seek(SeekFrom::Start(0)).map_err(&fail)?;
    File::create(&tmp)
        .and_then(|mut out| std::io::copy(&mut file, &mut out))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(fail)
}

impl RunLog {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let file = open_append(path)?;
        let identity = file
            .try_clone()
            .and_then(same_file::Handle::from_file)
            .map_err(StoreError::io("stat", path))?;
        Ok(RunLog {
            identity,
            lines: Vec::new(),
            file,
            path: path.to_path_buf(),
            details: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path still names the file this log writes.
    pub fn intact(&self) -> bool {
        same_file::Handle::from_path(&self.path).is_ok_and(|h| h == self.identity)
    }

    /// Writes the log anew, with its directory, holding every line written so far (read
    /// back through the open handle): after the store was deleted during the run, nothing
    /// recorded is lost.
    pub fn recreate(&mut self) -> Result<(), StoreError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(StoreError::io("re-create", dir))?;
        }
        copy_back(&self.file, &self.path)?;
        let details = self.details.take();
        if let Some(file) = &details {
            copy_back(file, &details_path(&self.path))?;
        }
        *self = RunLog::open(&self.path)?;
        if details.is_some() {
            self.details = Some(open_append(&details_path(&self.path))?);
        }
        Ok(())
    }

    /// Appends the details of the records that have some, in one `write`; then the
    /// records, a line each, in another. In that order: a record read back after a kill
    /// has its details (a kill between the two leaves details without a record, which a
    /// later attempt's replace: see [`attach_details`]).
    pub fn append(&mut self, records: &[TestRecord]) -> Result<(), StoreError> {
        self.append_details(records)?;
        let lines = &mut self.lines;
        lines.clear();
        for record in records {
            record
                .write_line(lines)
                .map_err(|source| StoreError::Encode {
                    what: "a record",
                    source,
                })?;
        }
        self.file
            .write_all(lines)
            .map_err(StoreError::io("append to", &self.path))
    }

    fn append_details(&mut self, records: &[TestRecord]) -> Result<(), StoreError> {
        let lines = &mut self.lines;
        lines.clear();
        for r in records.iter().filter(|r| !r.details.is_empty()) {
            let line = DetailsLine {
                test_id: r.test_id.as_str().into(),
                attempt: r.attempt,
                details: std::borrow::Cow::Borrowed(&r.details),
            };
            serde_json::to_writer(&mut *lines, &line).map_err(|source| StoreError::Encode {
                what: "a record's details",
                source,
            })?;
            lines.push(b'\n');
        }
        if lines.is_empty() {
            return Ok(());
        }
        let path = details_path(&self.path);
        let file = match &mut self.details {
            Some(file) => file,
            None => self.details.insert(open_append(&path)?),
        };
        file.write_all(lines)
            .map_err(StoreError::io("append to", &path))
    }
}

/// What an earlier run recorded.
pub struct Recorded {
    pub records: Vec<TestRecord>,
    /// Lines that did not parse (a torn last line after a kill, or damage), moved out of
    /// the log into `run.jsonl.rejected` so the log stays one valid record a line.
    pub rejected: usize,
}

/// Reads the records of `run.jsonl`; rewrites the file without lines that do not parse.
pub fn read(path: &Path) -> Result<Recorded, StoreError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Recorded {
                records: Vec::new(),
                rejected: 0,
            })
        }
        Err(e) => return Err(StoreError::io("read", path)(e)),
    };
    let mut records = Vec::new();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<TestRecord>(line) {
            Ok(r) => {
                records.push(r);
                good.extend_from_slice(line);
                good.push(b'\n');
            }
            Err(_) => {
                bad.extend_from_slice(line);
                bad.push(b'\n');
            }
        }
    }
    let rejected = bad.iter().filter(|b| **b == b'\n').count();
    if rejected > 0 {
        let mut aside = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.with_extension("jsonl.rejected"))
            .map_err(StoreError::io("set aside bad lines of", path))?;
        aside
            .write_all(&bad)
            .map_err(StoreError::io("set aside bad lines of", path))?;
        super::atomic_write(path, &good)?;
    }
    attach_details(&details_path(path), &mut records)?;
    Ok(Recorded { records, rejected })
}

/// Gives each record its details from `details.jsonl` (a log without one, from an mtest
/// before it, has records without). A line that does not parse (a torn last line after a
/// kill) is left out: the text of a failure is lost, never its outcome. Of two lines for
/// the same attempt the last is the record's (the first was written by a run killed
/// before its record).
fn attach_details(path: &Path, records: &mut [TestRecord]) -> Result<(), StoreError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("read", path)(e)),
    };
    let mut by_test: FastMap<String, Vec<(u32, Details)>> = FastMap::default();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if let Ok(line) = serde_json::from_slice::<DetailsLine>(line) {
            by_test
                .entry(line.test_id.into_owned())
                .or_default()
                .push((line.attempt, line.details.into_owned()));
        }
    }
    if by_test.is_empty() {
        return Ok(());
    }
    for r in records.iter_mut() {
        let Some(attempts) = by_test.get_mut(r.test_id.as_str()) else {
            continue;
        };
        if let Some(i) = attempts.iter().rposition(|(a, _)| *a == r.attempt) {
            r.details = attempts.remove(i).1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, attempt: u32, failure: &str) -> TestRecord {
        let mut r: TestRecord = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "run_id": "r", "test_id": id, "outcome": "failed",
            "duration_s": 0.0, "tier": 1, "markers": [], "file": "t.py", "line": null,
            "chunk": 1, "attempt": attempt, "quarantined": false, "started_at": "",
            "finished_at": "", "message": null, "bundle": null
        }))
        .unwrap();
        r.details.failure = failure.into();
        r
    }

    #[test]
    fn a_records_details_come_back_with_it_and_a_torn_line_loses_only_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut log = RunLog::open(&path).unwrap();
        let mut quiet = record("t.py::c", 1, "");
        quiet.outcome = crate::record::Outcome::Passed;
        log.append(&[record("t.py::a", 1, "first"), quiet]).unwrap();
        log.append(&[record("t.py::a", 2, "second"), record("t.py::b", 1, "b's")])
            .unwrap();
        // A kill mid-line: the last details line is torn.
        let details = dir.path().join("details.jsonl");
        let text = std::fs::read_to_string(&details).unwrap();
        assert_eq!(
            text.lines().count(),
            3,
            "a record without text has no line: {text}"
        );
        std::fs::write(&details, &text[..text.len() - 5]).unwrap();
        let read = read(&path).unwrap();
        let failures: Vec<(&str, u32, &str)> = read
            .records
            .iter()
            .map(|r| (r.test_id.as_str(), r.attempt, r.details.failure.as_str()))
            .collect();
        assert_eq!(
            failures,
            [
                ("t.py::a", 1, "first"),
                ("t.py::c", 1, ""),
                ("t.py::a", 2, "second"),
                ("t.py::b", 1, "")
            ]
        );
    }

    /// A run killed between a record's details and the record: the record is not there,
    /// and the next attempt's details (same test, same attempt number) are the ones its
    /// record gets; a record seen is never without its details.
    #[test]
    fn details_come_first_and_a_later_line_of_the_same_attempt_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut log = RunLog::open(&path).unwrap();
        log.append(&[record("t.py::a", 1, "first")]).unwrap();
        let details = std::fs::read_to_string(dir.path().join("details.jsonl")).unwrap();
        let records = std::fs::read_to_string(&path).unwrap();
        // As if killed between the two writes of a second run of t.py::a's attempt 1.
        std::fs::write(&path, "").unwrap();
        let mut log = RunLog::open(&path).unwrap();
        log.append(&[record("t.py::a", 1, "again")]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), records);
        let both = std::fs::read_to_string(dir.path().join("details.jsonl")).unwrap();
        assert!(
            both.starts_with(&details) && both.len() > details.len(),
            "{both}"
        );
        let read = read(&path).unwrap();
        assert_eq!(read.records.len(), 1);
        assert_eq!(read.records[0].details.failure, "again");
    }
}
