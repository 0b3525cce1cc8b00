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

/// Failure details, handed to reporters as bundle sections.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Details {
    pub failure: String,
    pub stdout: String,
    pub stderr: String,
    pub log: String,
    /// All threads' stacks, dumped when the watchdog stopped a hung test.
    pub stacks: String,
    /// The end of the pytest process's output, for a crash or a hang.
    pub last_output: String,
    /// The pytest command line that ran the test.
    pub command: String,
    /// What re-running a crashed test alone showed.
    pub rerun: String,
    /// Sections mtest adds when it bundles the failure (history, environment, probes).
    pub extra: Vec<(String, String)>,
}

impl Details {
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
