//! The one record type that flows from the pytest events to the store and the reporters:
//! one line of `.gates/last-run/run.jsonl` per test.

use serde::{Deserialize, Serialize};

/// Bumped when a field changes meaning or disappears; readers accept older versions.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed,
    Error,
    Skipped,
    Xfailed,
    Xpassed,
    Hung,
    Crashed,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::Error,
        Outcome::Skipped,
        Outcome::Xfailed,
        Outcome::Xpassed,
        Outcome::Hung,
        Outcome::Crashed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
            Outcome::Xfailed => "xfailed",
            Outcome::Xpassed => "xpassed",
            Outcome::Hung => "hung",
            Outcome::Crashed => "crashed",
        }
    }

    /// One letter, as pytest's progress line prints outcomes (`.` passed, `F` failed,
    /// `E` error, `s` skipped, `x` xfailed, `X` xpassed), and `H` hung, `C` crashed.
    pub fn letter(self) -> char {
        match self {
            Outcome::Passed => '.',
            Outcome::Failed => 'F',
            Outcome::Error => 'E',
            Outcome::Skipped => 's',
            Outcome::Xfailed => 'x',
            Outcome::Xpassed => 'X',
            Outcome::Hung => 'H',
            Outcome::Crashed => 'C',
        }
    }

    pub fn from_letter(c: char) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.letter() == c)
    }

    /// Outcomes that fail a run (unless the test is quarantined) and get a bundle.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Failed | Outcome::Error | Outcome::Hung | Outcome::Crashed
        )
    }
}

/// One test's result. The fields up to `bundle` are the documented contract of `run.jsonl`;
/// the rest are extras (absent when empty).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TestRecord {
    pub schema_version: u32,
    pub run_id: String,
    pub test_id: String,
    pub outcome: Outcome,
    pub duration_s: f64,
    pub tier: u8,
    pub markers: Vec<String>,
    pub file: String,
    pub line: Option<u32>,
    pub chunk: u32,
    pub attempt: u32,
    pub quarantined: bool,
    pub started_at: crate::clock::Stamp,
    pub finished_at: crate::clock::Stamp,
    pub message: Option<String>,
    pub bundle: Option<String>,
    /// Processes the test left running, which mtest killed (`pid cmdline`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaked: Vec<String>,
    /// pytest 9 subtests rolled into this record: (passed, failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtests: Option<SubtestCounts>,
    /// Passed on a retry after failing (`--retries`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flaky: bool,
    /// `--shard K/N`: the shard that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// The text a bundle needs; not part of `run.jsonl`.
    #[serde(skip)]
    pub details: Details,
    /// The test's place in this run's plan, where the supervisor made the record (so the
    /// loop need not look its id up again); not part of `run.jsonl`.
    #[serde(skip)]
    pub test: Option<usize>,
}

impl TestRecord {
    /// The record as one `run.jsonl` line (newline included), exactly as serde writes it.
    /// Most records of a big run (no message, no bundle, nothing extra) are written by
    /// hand: serde's map serialiser cost more than everything else a record costs to write.
    pub fn write_line(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let plain = self.message.is_none()
            && self.bundle.is_none()
            && self.leaked.is_empty()
            && self.subtests.is_none()
            && !self.flaky;
        if !plain {
            serde_json::to_writer(&mut *out, self)?;
            out.push(b'\n');
            return Ok(());
        }
        out.extend_from_slice(b"{\"schema_version\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.schema_version).as_bytes());
        out.extend_from_slice(b",\"run_id\":");
        json_str(out, &self.run_id)?;
        out.extend_from_slice(b",\"test_id\":");
        json_str(out, &self.test_id)?;
        out.extend_from_slice(b",\"outcome\":\"");
        out.extend_from_slice(self.outcome.as_str().as_bytes());
        out.extend_from_slice(b"\",\"duration_s\":");
        if self.duration_s.is_finite() {
            out.extend_from_slice(
                zmij::Buffer::new()
                    .format_finite(self.duration_s)
                    .as_bytes(),
            );
        } else {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b",\"tier\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.tier).as_bytes());
        out.extend_from_slice(b",\"markers\":[");
        for (i, marker) in self.markers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(out, marker)?;
        }
        out.extend_from_slice(b"],\"file\":");
        json_str(out, &self.file)?;
        out.extend_from_slice(b",\"line\":");
        match self.line {
            Some(line) => out.extend_from_slice(itoa::Buffer::new().format(line).as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"chunk\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.chunk).as_bytes());
        out.extend_from_slice(b",\"attempt\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.attempt).as_bytes());
        out.extend_from_slice(if self.quarantined {
            b",\"quarantined\":true,\"started_at\":\""
        } else {
            b",\"quarantined\":false,\"started_at\":\""
        });
        self.started_at.write(out);
        out.extend_from_slice(b"\",\"finished_at\":\"");
        self.finished_at.write(out);
        out.extend_from_slice(b"\",\"message\":null,\"bundle\":null");
        if let Some(shard) = self.shard {
            out.extend_from_slice(b",\"shard\":\"");
            out.extend_from_slice(shard.to_string().as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

/// A JSON string as serde_json writes it: copied as it is when nothing needs escaping.
fn json_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return serde_json::to_writer(&mut *out, s);
    }
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

/// What the end of a run needs of each record (the history and the quarantine policy),
/// kept for every attempt: a few words, where a whole record is ~0.5 KB.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub test_id: String,
    pub outcome: Outcome,
    pub duration_s: f64,
    pub tier: u8,
}

impl From<TestRecord> for Attempt {
    fn from(r: TestRecord) -> Self {
        Attempt {
            test_id: r.test_id,
            outcome: r.outcome,
            duration_s: r.duration_s,
            tier: r.tier,
        }
    }
}

impl From<&TestRecord> for Attempt {
    fn from(r: &TestRecord) -> Self {
        Attempt {
            test_id: r.test_id.clone(),
            outcome: r.outcome,
            duration_s: r.duration_s,
            tier: r.tier,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubtestCounts {
    pub passed: u32,
    pub failed: u32,
}

/// Failure details, handed to reporters as bundle sections. Kept beside `run.jsonl` in
/// `details.jsonl` (all but `extra`, which is in the bundle), so a resumed or merged run's
/// JUnit file has the text of every record it replays.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub failure: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stderr: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub log: String,
    /// All threads' stacks, dumped when the watchdog stopped a hung test.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stacks: String,
    /// The end of the pytest process's output, for a crash or a hang.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_output: String,
    /// The pytest command line that ran the test.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub command: String,
    /// What re-running a crashed test alone showed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rerun: String,
    /// Sections mtest adds when it bundles the failure (history, environment, probes).
    #[serde(skip)]
    pub extra: Vec<(String, String)>,
    /// What the test depended on, as its worker recorded it (`mtest --changed`); `None`
    /// when nothing was recorded. Kept in `.gates/impact.json`, not with the record.
    #[serde(skip)]
    pub deps: Option<crate::deps::Deps>,
}

impl Details {
    /// Nothing to keep beside the record (most records: a pass says nothing more).
    pub fn is_empty(&self) -> bool {
        [
            &self.failure,
            &self.stdout,
            &self.stderr,
            &self.log,
            &self.stacks,
            &self.last_output,
            &self.command,
            &self.rerun,
        ]
        .iter()
        .all(|t| t.is_empty())
    }

    /// (heading, text) sections in bundle order; empty ones are left out except the
    /// failure text, which a reader always looks for.
    pub fn sections(&self, message: Option<&str>) -> Vec<(String, String)> {
        // A crash or hang has no pytest failure text: its message is the failure.
        let failure = if self.failure.trim().is_empty() {
            message.unwrap_or_default()
        } else {
            &self.failure
        };
        let mut out = vec![("Failure".to_string(), failure.to_string())];
        for (heading, text) in [
            ("Captured stdout", &self.stdout),
            ("Captured stderr", &self.stderr),
            ("Captured log", &self.log),
            ("Stacks at the hang", &self.stacks),
            ("Last output of the pytest process", &self.last_output),
            ("Re-run alone", &self.rerun),
            ("pytest command", &self.command),
        ] {
            if !text.trim().is_empty() {
                out.push((heading.to_string(), text.clone()));
            }
        }
        out.extend(self.extra.iter().cloned());
        out
    }
}

/// Cuts a message to one line of reasonable length.
pub fn one_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if line.chars().count() > 300 {
        let cut: String = line.chars().take(297).collect();
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

/// A selected test, with everything the supervisor needs to run and record it. In
/// `plan.json` (100k of them for a big suite) fields at their defaults are left out.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PlannedTest {
    pub id: String,
    pub file: String,
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub markers: Vec<String>,
    pub tier: u8,
    pub estimate_ms: u32,
    /// Per-test timeout from a `timeout` marker, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quarantined: bool,
    /// It crashed in its previous run: it runs alone, in its own pytest process, so a
    /// repeat crash costs one start-up and takes no other test's chunk down with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolate: bool,
    /// How many times it runs, each in a fresh worker (`--repeat`, `new-test-repeats`).
    #[serde(default = "once", skip_serializing_if = "is_once")]
    pub runs: u32,
    /// Its `xdist_group`: the group's tests run on one worker, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

fn once() -> u32 {
    1
}

fn is_once(runs: &u32) -> bool {
    *runs == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TestRecord {
        serde_json::from_str(
            r#"{"schema_version":1,"run_id":"20261127T000000Z-abc","test_id":"tests/test_x.py::test_a",
                "outcome":"passed","duration_s":0.0023812,"tier":1,"markers":[],"file":"tests/test_x.py",
                "line":7,"chunk":3,"attempt":1,"quarantined":false,
                "started_at":"2026-11-27T04:30:54.123Z","finished_at":"2026-11-27T04:30:54.125Z",
                "message":null,"bundle":null}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_line_is_written_as_serde_writes_it() {
        let mut cases = Vec::new();
        cases.push(record());
        let mut r = record();
        r.test_id = "tests/test_x.py::test_b[\"q\" \\ \n \t \u{1} é \u{2028} </a>]".into();
        r.markers = vec!["slow".into(), "odd \"one\"".into()];
        r.line = None;
        r.quarantined = true;
        r.outcome = Outcome::Xfailed;
        r.duration_s = 1e-9;
        r.attempt = 2;
        cases.push(r);
        for (duration, tier) in [
            (f64::NAN, 0),
            (f64::INFINITY, 3),
            (0.0, 2),
            (12345.5, 1),
            (1e-7, 1),
            (1e16, 1),
            (0.1 + 0.2, 1),
            (5e-324, 1),
            (123_456_789.123, 1),
        ] {
            let mut r = record();
            r.duration_s = duration;
            r.tier = tier;
            cases.push(r);
        }
        let mut r = record();
        r.started_at = crate::clock::Stamp::default();
        r.shard = Some("2/4".parse().unwrap());
        cases.push(r);
        // Not plain: serde writes them.
        let mut r = record();
        r.outcome = Outcome::Failed;
        r.message = Some("assert 1 == 2".into());
        r.bundle = Some("failures/x.txt".into());
        r.leaked = vec!["123 sleep 30".into()];
        r.flaky = true;
        cases.push(r);
        for r in cases {
            let mut ours = Vec::new();
            r.write_line(&mut ours).unwrap();
            let mut theirs = serde_json::to_vec(&r).unwrap();
            theirs.push(b'\n');
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }
}
