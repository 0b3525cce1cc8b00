//! `last-run/run.jsonl`: one record a line, the lines of a batch one `write` on an
//! `O_APPEND` file, so a SIGKILL of mtest leaves at most one torn last line, which `read`
//! sets aside.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::record::TestRecord;

pub struct RunLog {
    file: File,
    path: PathBuf,
    /// (device, inode) of the file written: if the path stops naming it, the store was
    /// deleted or replaced during the run.
    identity: (u64, u64),
    /// The lines of a batch, reused: a fresh buffer for each batch is fresh pages (a
    /// zeroed huge page, often) from the kernel each time.
    lines: Vec<u8>,
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

impl RunLog {
    pub fn open(path: &Path) -> Result<Self, String> {
        // Readable too: if the store is deleted during the run, this handle still holds
        // every line written, and `recreate` copies them back.
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
        Ok(RunLog {
            identity: identity(&meta),
            lines: Vec::new(),
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path still names the file this log writes (one `stat`).
    pub fn intact(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| identity(&m) == self.identity)
    }

    /// Writes the log anew, with its directory, holding every line written so far (read
    /// back through the open handle): after the store was deleted during the run, nothing
    /// recorded is lost.
    pub fn recreate(&mut self) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot re-create {}: {e}", self.path.display());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut old = &self.file;
        old.seek(SeekFrom::Start(0)).map_err(fail)?;
        File::create(&tmp)
            .and_then(|mut out| std::io::copy(&mut old, &mut out))
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .map_err(fail)?;
        *self = RunLog::open(&self.path)?;
        Ok(())
    }

    /// Appends records, a line each, in one `write`.
    pub fn append(&mut self, records: &[TestRecord]) -> Result<(), String> {
        let lines = &mut self.lines;
        lines.clear();
        for record in records {
            record
                .write_line(lines)
                .map_err(|e| format!("cannot encode a record: {e}"))?;
        }
        self.file
            .write_all(lines)
            .map_err(|e| format!("cannot append to {}: {e}", self.path.display()))
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
pub fn read(path: &Path) -> Result<Recorded, String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Recorded {
                records: Vec::new(),
                rejected: 0,
            })
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
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
            .map_err(|e| format!("cannot set aside bad lines of {}: {e}", path.display()))?;
        aside.write_all(&bad).map_err(|e| e.to_string())?;
        super::atomic_write(path, &good)?;
    }
    Ok(Recorded { records, rejected })
}
