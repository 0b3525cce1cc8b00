//! The events `mtest_events.py` writes, and reading them from a growing file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::collect::Item;

#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Event {
    SessionStart {
        pid: i32,
        pytest: String,
        python: String,
    },
    Item(Item),
    CollectError {
        id: String,
        text: String,
    },
    /// A file or directory collector started (collection progress).
    CollectStart {
        id: String,
        path: String,
        t: f64,
    },
    /// A collector finished (its report).
    CollectDone {
        id: String,
        t: f64,
    },
    /// Collection is over: every `item` was written before this.
    Collected {
        count: usize,
        #[serde(default)]
        threads: Vec<String>,
    },
    /// Something mtest changed in pytest's options, said once.
    Notice {
        text: String,
    },
    /// An option that does not run tests (`--setup-plan`…): nothing can be recorded.
    Refused {
        text: String,
    },
    /// The zygote is ready to fork.
    Ready {
        pid: i32,
    },
    /// The zygote cannot fork safely (threads running): process mode instead.
    NoFork {
        why: String,
    },
    /// The zygote forked worker `w`.
    Forked {
        w: u32,
        pid: i32,
    },
    /// Worker `w` exited; `status` is the raw wait status.
    Exited {
        w: u32,
        pid: i32,
        status: i32,
    },
    Start {
        id: String,
        t: f64,
    },
    Report(Report),
    Finish(Finish),
    /// The test ended pytest's run loop (KeyboardInterrupt, `pytest.exit()`, a hook that
    /// raised): it has its outcome; the tests after it run in a new worker.
    Aborted {
        id: String,
        kind: String,
        message: String,
        text: String,
        t: f64,
        n: Option<u32>,
    },
    /// pytest's session asked to stop (`-x`/`--maxfail`, the budget).
    Stopped {
        why: String,
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

/// A test's end: `finish`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Finish {
    pub id: String,
    pub t: f64,
    /// How many `report` events the test wrote (absent from older plugins).
    pub n: Option<u32>,
    #[serde(default)]
    pub leaked: Vec<Leaked>,
    /// Non-daemon threads that appeared during the test.
    #[serde(default)]
    pub threads: Vec<String>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Leaked {
    pub pid: i32,
    pub cmd: String,
    /// A wider-scoped fixture that started it and left it behind at its teardown.
    pub owner: Option<String>,
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

    /// A tail on a new, empty event file, created (replacing any old one) and opened now,
    /// before the writer opens it by its path: if a test deletes the directory, both keep
    /// the same file and no event is lost.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let _ = std::fs::remove_file(path);
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        let mut tail = EventTail::new(path);
        tail.file = Some(File::open(path)?);
        Ok(tail)
    }

    /// New complete events; lines that are not valid events are returned as `Err(line)`.
    /// Text that is not UTF-8 (a lone surrogate a test put into its report) is decoded
    /// lossily: the event and its outcome survive.
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
        let events = self.partial[..last_newline]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(parse_line)
            .collect();
        // Only the line in the making is moved.
        self.partial.drain(..=last_newline);
        events
    }
}

/// `start` and `finish` (two lines per test) and `item` (one per collected test, all at
/// once when collection ends), parsed as plain structs: an internally tagged enum buffers
/// every field first, which costs twice as much.
fn parse_hot(line: &[u8]) -> Option<Event> {
    #[derive(Deserialize)]
    struct Start {
        id: String,
        t: f64,
    }
    if line.starts_with(br#"{"e":"start","#) {
        let s: Start = serde_json::from_slice(line).ok()?;
        Some(Event::Start { id: s.id, t: s.t })
    } else if line.starts_with(br#"{"e":"finish","#) {
        serde_json::from_slice(line).ok().map(Event::Finish)
    } else if line.starts_with(br#"{"e":"item","#) {
        serde_json::from_slice(line).ok().map(Event::Item)
    } else {
        None
    }
}

/// One event line: UTF-8 JSON, else the same decoded lossily, else `Err(line)`.
pub fn parse_line(line: &[u8]) -> Result<Event, String> {
    if let Some(event) = parse_hot(line) {
        return Ok(event);
    }
    serde_json::from_slice::<Event>(line).or_else(|_| {
        let text = String::from_utf8_lossy(line);
        serde_json::from_str::<Event>(&text).map_err(|_| text.into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_surrogate_in_a_report_keeps_the_event() {
        // What Python writes for 'bad \udcff name' with surrogatepass.
        let mut line = br#"{"e":"report","id":"t.py::test_s","when":"call","outcome":"failed","message":"bad "#.to_vec();
        line.extend_from_slice(&[0xed, 0xb3, 0xbf]);
        line.extend_from_slice(br#" name"}"#);
        match parse_line(&line) {
            Ok(Event::Report(r)) => {
                assert_eq!(r.outcome, "failed");
                assert!(r.message.unwrap_or_default().starts_with("bad "));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hot_lines_parse_like_the_enum() {
        for line in [
            &br#"{"e":"start","id":"t.py::a[x]","t":1.5}"#[..],
            br#"{"e":"finish","id":"t.py::a","t":2.5,"n":1}"#,
            br#"{"e":"finish","id":"t.py::a","t":2.5,"n":0,"leaked":[{"pid":7,"cmd":"sleep 1","owner":null}],"threads":["x"]}"#,
            br#"{"e":"item","id":"t.py::a[1]","file":"t.py","line":3,"markers":["parametrize"],"timeout":null}"#,
            br#"{"e":"item","id":"t.py::b","file":"t.py","line":null,"markers":[],"timeout":2.5}"#,
        ] {
            assert_eq!(parse_hot(line), serde_json::from_slice::<Event>(line).ok());
            assert!(parse_hot(line).is_some());
        }
    }

    #[test]
    fn a_torn_line_is_an_error_not_an_event() {
        assert!(parse_line(br#"{"e":"report","id":"t.py::x","when":"ca"#).is_err());
    }
}
