//! The events `mtest_events.py` writes, and reading them from a growing file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Event {
    SessionStart {
        pid: i32,
        pytest: String,
        python: String,
    },
    Item {
        id: String,
        file: String,
        line: Option<u32>,
        #[serde(default)]
        markers: Vec<String>,
        timeout: Option<f64>,
    },
    CollectError {
        id: String,
        text: String,
    },
    Start {
        id: String,
        t: f64,
    },
    Report(Report),
    Finish {
        id: String,
        t: f64,
        #[serde(default)]
        leaked: Vec<Leaked>,
    },
    InternalError {
        text: String,
    },
    SessionFinish {
        exitstatus: i32,
    },
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Report {
    pub id: String,
    pub when: String,
    pub outcome: String,
    #[serde(default)]
    pub duration: f64,
    #[serde(default)]
    pub wasxfail: bool,
    /// Set for a pytest 9 `SubtestReport`: the subtest's description.
    pub subtest: Option<String>,
    pub message: Option<String>,
    pub longrepr: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub log: Option<String>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Leaked {
    pub pid: i32,
    pub cmd: String,
}

/// Reads whole lines appended to an event file since the last call.
pub struct EventTail {
    path: PathBuf,
    file: Option<File>,
    offset: u64,
    partial: Vec<u8>,
}

impl EventTail {
    pub fn new(path: &Path) -> Self {
        EventTail {
            path: path.to_path_buf(),
            file: None,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// New complete events; lines that are not valid events are returned as `Err(line)`.
    pub fn read(&mut self) -> Vec<Result<Event, String>> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(_) => return Vec::new(), // not created yet
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Vec::new();
        };
        // Append straight to what is left of the last read (a line in the making).
        let before = self.partial.len();
        if file.seek(SeekFrom::Start(self.offset)).is_err()
            || file.read_to_end(&mut self.partial).is_err()
        {
            self.partial.truncate(before);
            return Vec::new();
        }
        self.offset += (self.partial.len() - before) as u64;
        let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        complete
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|line| {
                serde_json::from_slice::<Event>(line)
                    .map_err(|_| String::from_utf8_lossy(line).into_owned())
            })
            .collect()
    }
}
