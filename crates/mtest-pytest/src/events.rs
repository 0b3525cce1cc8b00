//! The events the `mtest_events` plugin writes, and reading them from a growing file.

use std::fs::File;

use crate::platform;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A collected test, as the `item` event reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    pub id: String,
    pub file: String,
    pub line: Option<u32>,
    #[serde(default)]
    pub markers: Vec<String>,
    /// From a `@pytest.mark.timeout(N)` marker.
    pub timeout: Option<f64>,
    /// From `@pytest.mark.xdist_group("name")`: the group's tests run on one worker, in
    /// order, as pytest-xdist's `--dist loadgroup` keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

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
    /// A collector skipped itself (a module-level `pytest.importorskip`): pytest's reason.
    CollectSkip {
        id: String,
        #[serde(default)]
        message: Option<String>,
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
        /// pytest's initial paths (the arguments it collected), absolute; null where
        /// this pytest has none to report.
        #[serde(default)]
        initpaths: Option<Vec<String>>,
        /// pytest's cache directory (null without the cacheprovider plugin).
        #[serde(default)]
        cache_dir: Option<String>,
        /// pytest's own `-x` / `--maxfail N`, which mtest takes over.
        #[serde(default)]
        maxfail: Option<u32>,
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
    /// Worker `pid` is about to run the last test of its chunk and asks for more:
    /// mtest answers with a next chunk or with its end ([`crate::zygote`]).
    Want {
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
    Aborted(Aborted),
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
    /// A process-mode chunk's run loop is over: what is left is pytest's session end.
    TestsDone,
    /// A project file a test depends on, numbered in this event file: its path and its
    /// checksum when the worker first saw it (`mtest_impact`), and (Python 3.12+) the
    /// lines of it that ran before the tests.
    Source {
        n: u32,
        path: String,
        sum: String,
        #[serde(default)]
        early: Vec<u32>,
    },
    /// A block of a declared source: a code object's own source, by qualified name.
    Block {
        n: u32,
        source: u32,
        name: String,
    },
    /// A set of declared blocks and (non-Python) sources, which a `finish` names;
    /// `before`: what ran before the tests.
    Deps {
        n: u32,
        blocks: Vec<u32>,
        files: Vec<u32>,
        #[serde(default)]
        before: bool,
    },
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Report {
    pub id: String,
    pub(crate) when: String,
    pub(crate) outcome: String,
    #[serde(default)]
    pub(crate) duration: f64,
    #[serde(default)]
    pub(crate) wasxfail: bool,
    /// Set for a pytest 9 `SubtestReport`: the subtest's description.
    pub(crate) subtest: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) longrepr: Option<String>,
    pub(crate) stdout: Option<String>,
    pub(crate) stderr: Option<String>,
    pub(crate) log: Option<String>,
}

/// A test that ended pytest's run loop: `aborted`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Aborted {
    pub id: String,
    /// `internal` for a hook that raised (INTERNALERROR); otherwise how the loop ended.
    pub kind: String,
    pub message: String,
    pub text: String,
    pub t: f64,
    /// How many `report` events the test wrote.
    pub n: Option<u32>,
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
    /// The numbers of the dependency sets (`deps` events) of the test: absent when its
    /// worker recorded nothing for it.
    #[serde(default)]
    pub deps: Option<Vec<u32>>,
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
    /// What one read takes in (allocated once: most polls read a few lines, or nothing).
    scratch: Vec<u8>,
}

impl EventTail {
    pub(crate) fn new(path: &Path) -> Self {
        EventTail {
            path: path.to_path_buf(),
            file: None,
            offset: 0,
            partial: Vec::new(),
            scratch: Vec::new(),
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

    /// New complete events; lines that are not valid events are returned as [`Unreadable`].
    /// Text that is not UTF-8 (a lone surrogate a test put into its report) is decoded
    /// lossily: the event and its outcome survive.
    pub(crate) fn read(&mut self) -> Vec<Result<Event, Unreadable>> {
        let lines = self.read_lines();
        let lines = lines.split(|b| *b == b'\n').filter(|l| !l.is_empty());
        let mut events = Vec::with_capacity(lines.clone().count());
        events.extend(lines.map(parse_line));
        events
    }

    /// The complete lines written since the last call, newline-separated (empty if none),
    /// for a reader that parses them itself ([`Hot`], then [`parse_line`]).
    pub fn read_lines(&mut self) -> Vec<u8> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(_) => return Vec::new(), // not created yet
            }
        }
        let Some(file) = self.file.as_ref() else {
            return Vec::new();
        };
        // Positional reads from where the last one ended, appended to what is left of it
        // (a line in the making): one system call when less than a buffer's worth came,
        // as on almost every poll. What was read before an error is kept.
        if self.scratch.is_empty() {
            self.scratch = vec![0; 64 * 1024];
        }
        loop {
            match platform::read_at(file, &mut self.scratch, self.offset) {
                Ok(n) => {
                    self.partial.extend_from_slice(&self.scratch[..n]);
                    self.offset += n as u64;
                    if n < self.scratch.len() {
                        break;
                    }
                    // A big write (the zygote's items: megabytes at once): room for the
                    // rest of the file, not a buffer doubled and copied a dozen times.
                    if let Ok(meta) = file.metadata() {
                        let rest = meta.len().saturating_sub(self.offset);
                        self.partial.reserve(usize::try_from(rest).unwrap_or(0));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        // The line in the making stays; the complete ones go.
        let rest = self.partial.split_off(last_newline + 1);
        std::mem::replace(&mut self.partial, rest)
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

/// A test's `start` or `finish` (with nothing more to say), its id borrowed from the line:
/// two of these per test, read without allocating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hot<'a> {
    Start {
        id: &'a str,
        t: f64,
    },
    Finish {
        id: &'a str,
        t: f64,
        n: u32,
        deps: HotDeps,
    },
}

/// A plain `finish`'s dependency sets: none, or up to three (its own, its module's
/// collection's, what earlier tests imported: as the plugin writes them).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum HotDeps {
    #[default]
    None,
    One(u32),
    Two(u32, u32),
    Three(u32, u32, u32),
}

impl HotDeps {
    pub fn numbers(self) -> Option<Vec<u32>> {
        match self {
            HotDeps::None => None,
            HotDeps::One(a) => Some(vec![a]),
            HotDeps::Two(a, b) => Some(vec![a, b]),
            HotDeps::Three(a, b, c) => Some(vec![a, b, c]),
        }
    }
}

impl<'a> Hot<'a> {
    /// The line exactly as mtest's plugin writes it, else `None` (see [`parse_plain`]).
    pub fn parse(line: &'a [u8]) -> Option<Hot<'a>> {
        let mut c = Cursor(line);
        if c.tag(br#"{"e":"start","id":"#) {
            let id = c.string()?;
            c.expect(br#","t":"#)?;
            let t = c.number(b'}')?;
            c.end(b"}")?;
            Some(Hot::Start { id, t })
        } else if c.tag(br#"{"e":"finish","id":"#) {
            let id = c.string()?;
            c.expect(br#","t":"#)?;
            let t = c.number(b',')?;
            c.expect(br#","n":"#)?;
            let n = c.count(b'}').or_else(|| c.count(b','))?;
            let deps = if c.tag(br#","deps":["#) {
                let first = c.count(b']').or_else(|| c.count(b','))?;
                if !c.tag(b",") {
                    HotDeps::One(first)
                } else {
                    let second = c.count(b']').or_else(|| c.count(b','))?;
                    if c.tag(b",") {
                        HotDeps::Three(first, second, c.count(b']')?)
                    } else {
                        HotDeps::Two(first, second)
                    }
                }
            } else {
                HotDeps::None
            };
            c.end(if deps == HotDeps::None { b"}" } else { b"]}" })?;
            Some(Hot::Finish { id, t, n, deps })
        } else {
            None
        }
    }

    pub(crate) fn into_event(self) -> Event {
        match self {
            Hot::Start { id, t } => Event::Start { id: id.into(), t },
            Hot::Finish { id, t, n, deps } => Event::Finish(Finish {
                id: id.into(),
                t,
                n: Some(n),
                leaked: Vec::new(),
                threads: Vec::new(),
                deps: deps.numbers(),
            }),
        }
    }
}

/// The hot lines exactly as mtest's plugin writes them, read without a JSON parser (a
/// third of mtest's event decoding on a big suite): `start`, `finish` of a test with
/// nothing more to say, and `item` with plain markers. Anything else — an escape in a
/// string, a field more, a number that is not plain — is `None`, for serde.
fn parse_plain(line: &[u8]) -> Option<Event> {
    if let Some(hot) = Hot::parse(line) {
        return Some(hot.into_event());
    }
    let mut c = Cursor(line);
    if c.tag(br#"{"e":"item","id":"#) {
        let id = c.string()?;
        c.expect(br#","file":"#)?;
        let file = c.string()?;
        c.expect(br#","line":"#)?;
        let line = if c.tag(b"null") {
            None
        } else {
            Some(c.count(b',')?)
        };
        c.expect(br#","markers":["#)?;
        let mut markers = Vec::new();
        if !c.tag(b"]") {
            loop {
                markers.push(c.string()?.to_string());
                if c.tag(b"]") {
                    break;
                }
                c.expect(b",")?;
            }
        }
        c.end(br#","timeout":null}"#)?;
        Some(Event::Item(Item {
            id: id.into(),
            file: file.into(),
            line,
            markers,
            timeout: None,
            group: None,
        }))
    } else {
        None
    }
}

/// A reader of the plain lines above.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    /// Takes `tag` if the line goes on with it.
    fn tag(&mut self, tag: &[u8]) -> bool {
        match self.0.strip_prefix(tag) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, tag: &[u8]) -> Option<()> {
        self.tag(tag).then_some(())
    }

    /// The line ends with exactly `tag`.
    fn end(&mut self, tag: &[u8]) -> Option<()> {
        (self.0 == tag).then_some(())
    }

    /// A string with no escape and no control character in it.
    fn string(&mut self) -> Option<&'a str> {
        let rest = self.0.strip_prefix(b"\"")?;
        let end = rest
            .iter()
            .position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f))?;
        if rest[end] != b'"' {
            return None;
        }
        self.0 = &rest[end + 1..];
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// Decimal digits, up to (not taking) `stop`.
    fn count(&mut self, stop: u8) -> Option<u32> {
        self.token(stop, u8::is_ascii_digit)
    }

    /// A plain decimal number, up to (not taking) `stop`.
    fn number(&mut self, stop: u8) -> Option<f64> {
        self.token(stop, |b| {
            matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
        })
    }

    /// The bytes up to (not taking) `stop`, all of them `allowed`, parsed.
    fn token<T: std::str::FromStr>(&mut self, stop: u8, allowed: fn(&u8) -> bool) -> Option<T> {
        let end = self.0.iter().position(|b| *b == stop)?;
        let token = &self.0[..end];
        if token.is_empty() || !token.iter().all(allowed) {
            return None;
        }
        let value = std::str::from_utf8(token).ok()?.parse().ok()?;
        self.0 = &self.0[end..];
        Some(value)
    }
}

/// A line of the event file that is no event: its text (decoded lossily).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("an event line could not be read: {0}")]
pub struct Unreadable(pub String);

/// One event line: UTF-8 JSON, else the same decoded lossily, else [`Unreadable`].
pub fn parse_line(line: &[u8]) -> Result<Event, Unreadable> {
    if let Some(event) = parse_plain(line).or_else(|| parse_hot(line)) {
        return Ok(event);
    }
    serde_json::from_slice::<Event>(line).or_else(|_| {
        let text = String::from_utf8_lossy(line);
        serde_json::from_str::<Event>(&text).map_err(|_| Unreadable(text.into_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire's golden file: an example of every event as the plugin writes it. The
    /// plugin's own tests (tests/python/test_wire.py) check what it writes against it.
    const GOLDEN: &str = include_str!("wire/events.jsonl");

    /// Each event's tag; a new variant must be named here, and then given an example.
    fn kind(e: &Event) -> &'static str {
        match e {
            Event::SessionStart { .. } => "session_start",
            Event::Item(_) => "item",
            Event::CollectError { .. } => "collect_error",
            Event::CollectSkip { .. } => "collect_skip",
            Event::CollectStart { .. } => "collect_start",
            Event::CollectDone { .. } => "collect_done",
            Event::Collected { .. } => "collected",
            Event::Notice { .. } => "notice",
            Event::Refused { .. } => "refused",
            Event::Ready { .. } => "ready",
            Event::NoFork { .. } => "no_fork",
            Event::Forked { .. } => "forked",
            Event::Want { .. } => "want",
            Event::Exited { .. } => "exited",
            Event::Start { .. } => "start",
            Event::Report(_) => "report",
            Event::Finish(_) => "finish",
            Event::Aborted(_) => "aborted",
            Event::Stopped { .. } => "stopped",
            Event::InternalError { .. } => "internal_error",
            Event::SessionFinish { .. } => "session_finish",
            Event::TestsDone => "tests_done",
            Event::Source { .. } => "source",
            Event::Block { .. } => "block",
            Event::Deps { .. } => "deps",
        }
    }

    const KINDS: [&str; 25] = [
        "session_start",
        "item",
        "collect_error",
        "collect_skip",
        "collect_start",
        "collect_done",
        "collected",
        "notice",
        "refused",
        "ready",
        "no_fork",
        "forked",
        "want",
        "exited",
        "start",
        "report",
        "finish",
        "aborted",
        "stopped",
        "internal_error",
        "session_finish",
        "tests_done",
        "source",
        "block",
        "deps",
    ];

    #[test]
    fn every_golden_event_is_read_the_same_by_every_path_and_every_kind_has_one() {
        let mut seen = std::collections::BTreeSet::new();
        for line in GOLDEN.lines() {
            let event = parse_line(line.as_bytes()).unwrap_or_else(|l| panic!("unread: {l}"));
            let by_serde: Event =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(event, by_serde, "the fast path reads {line} otherwise");
            let tag: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            assert_eq!(tag["e"], kind(&event), "{line}");
            seen.insert(kind(&event));
        }
        let all: std::collections::BTreeSet<&str> = KINDS.into_iter().collect();
        assert_eq!(
            seen, all,
            "every kind of event has an example in wire/events.jsonl"
        );
    }

    #[test]
    fn the_golden_hot_lines_take_the_fast_paths() {
        let hot: Vec<&str> = GOLDEN
            .lines()
            .filter(|l| parse_plain(l.as_bytes()).is_some())
            .collect();
        assert!(
            hot.iter().any(|l| l.starts_with(r#"{"e":"start""#)),
            "{hot:?}"
        );
        assert!(
            hot.iter().any(|l| l.starts_with(r#"{"e":"finish""#)),
            "{hot:?}"
        );
        assert!(
            hot.iter().any(|l| l.starts_with(r#"{"e":"item""#)),
            "{hot:?}"
        );
    }

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
    fn plain_lines_parse_like_serde_and_the_rest_is_left_to_it() {
        for line in [
            &br#"{"e":"start","id":"t.py::a[x-1.5]","t":1795744367.674367}"#[..],
            br#"{"e":"finish","id":"t.py::a","t":1795744367.6768098,"n":0}"#,
            br#"{"e":"finish","id":"t.py::a","t":2.5,"n":0,"deps":[3]}"#,
            br#"{"e":"finish","id":"t.py::a","t":2.5,"n":10,"deps":[12,7]}"#,
            br#"{"e":"finish","id":"t.py::a","t":2.5,"n":10,"deps":[12,7,9]}"#,
            "{\"e\":\"finish\",\"id\":\"t.py::é\",\"t\":2.5e-3,\"n\":12}".as_bytes(),
            br#"{"e":"item","id":"t.py::a[1]","file":"t.py","line":3,"markers":["parametrize"],"timeout":null}"#,
            br#"{"e":"item","id":"t.py::b","file":"t.py","line":null,"markers":[],"timeout":null}"#,
            br#"{"e":"item","id":"t.py::c","file":"t.py","line":0,"markers":["a","b"],"timeout":null}"#,
        ] {
            let plain = parse_plain(line);
            assert!(plain.is_some(), "{}", String::from_utf8_lossy(line));
            assert_eq!(plain, serde_json::from_slice::<Event>(line).ok());
        }
        for line in [
            &br#"{"e":"start","id":"t.py::a[\"q\"]","t":1.5}"#[..],
            br#"{"e":"start","id":"t.py::a\\b","t":1.5}"#,
            br#"{"e":"finish","id":"t.py::a","t":2.5,"n":1,"leaked":[]}"#,
            br#"{"e":"finish","id":"t.py::a","t":NaN,"n":1}"#,
            br#"{"e":"start","id":"t.py::a","t":1.5"#,
            br#"{"e":"start","id":"t.py::a","t":1.5}}"#,
            b"{\"e\":\"start\",\"id\":\"t.py::a\tb\",\"t\":1.5}",
            br#"{"e":"finish","id":"t.py::a","t":2.5,"n":-1}"#,
            br#"{"e":"finish","id":"t.py::a","t":2.5,"n":1,"deps":[]}"#,
            br#"{"e":"finish","id":"t.py::a","t":2.5,"n":1,"deps":[1,2,3,4]}"#,
            br#"{"e":"finish","id":"t.py::a","t":2.5,"n":1,"deps":[1,2,]}"#,
            br#"{"e":"finish","id":"t.py::a","t":2.5,"n":1,"deps":[1]"#,
            br#"{"e":"item","id":"t.py::b","file":"t.py","line":3,"markers":[],"timeout":2.5}"#,
            br#"{"e":"item","id":"t.py::b","file":"t.py","line":-1,"markers":[],"timeout":null}"#,
            br#"{"e":"item","id":"t.py::b","file":"t.py","line":3,"markers":["a",],"timeout":null}"#,
            br#"{"e":"item","id":"t.py::b","file":"t.py","line":3,"markers":[1],"timeout":null}"#,
        ] {
            assert_eq!(parse_plain(line), None, "{}", String::from_utf8_lossy(line));
        }
        // What serde makes of the ones left to it.
        assert_eq!(
            parse_line(br#"{"e":"start","id":"t.py::a[\"q\"]","t":1.5}"#),
            Ok(Event::Start {
                id: r#"t.py::a["q"]"#.into(),
                t: 1.5
            })
        );
    }

    #[test]
    fn a_torn_line_is_an_error_not_an_event() {
        assert!(parse_line(br#"{"e":"report","id":"t.py::x","when":"ca"#).is_err());
    }
}
