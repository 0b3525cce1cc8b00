//! JUnit XML, written by mtest from its records: `last-run/junit-NNNN.xml` for each chunk
//! as it ends, and `last-run/junit.xml` for the whole run at its end.
//!
//! pytest's own `--junitxml` costs ~0.1 ms a test and is written only when the session
//! ends, so a crashed chunk has none; these cost nothing in pytest and exist for every
//! chunk, crashed or not.
//!
//! The run's file has every test once. A test that failed and was run again (`--retries`)
//! is one `testcase`: passed in the end, its failed attempts are `<flakyFailure>`s; failed
//! in the end, the earlier ones are `<rerunFailure>`s (as Maven Surefire and cargo-nextest
//! write them, so CI systems that read those show flaky tests). A quarantined failure is
//! `<skipped>` with a `quarantined` property, so a CI system does not fail on it. Test
//! cases go to a part file as their chunk ends (only failures that may yet be retried wait
//! in memory), so a 100k-test run does not hold 100k cases. Records that say their shard
//! (`--shard K/N`, and `mtest merge` of the shards) go to a `testsuite` per shard.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use crate::record::{Outcome, TestRecord};
use crate::shard::Shard;
use crate::store::StoreError;

/// One attempt, as the files need it.
struct Case {
    test_id: String,
    outcome: Outcome,
    attempt: u32,
    quarantined: bool,
    time: f64,
    /// The shard that ran it: its suite in the run's file.
    shard: Option<Shard>,
    /// Its `testcase` element alone: rendered once, for its chunk's file and the run's.
    xml: Xml,
    /// Its text, kept where the run's file may render it with other attempts: a failure
    /// (an earlier attempt of a test run again) and a later attempt (which may have some).
    text: Option<Box<Text<'static>>>,
}

/// Where a case's element is: in its chunk's buffer (every case, while its chunk runs: one
/// buffer, not an allocation a test), or its own bytes (a case held for its retry).
enum Xml {
    In(std::ops::Range<usize>),
    Own(Vec<u8>),
}

impl Xml {
    fn bytes<'b>(&'b self, buffer: &'b [u8]) -> &'b [u8] {
        match self {
            Xml::In(range) => buffer.get(range.clone()).unwrap_or_default(),
            Xml::Own(bytes) => bytes,
        }
    }
}

/// A running chunk's cases, their elements one after another in `xml`.
#[derive(Default)]
struct ChunkCases {
    xml: Vec<u8>,
    cases: Vec<Case>,
}

impl Case {
    /// Renders the case into `buffer`.
    fn new(r: &TestRecord, buffer: &mut Vec<u8>) -> Case {
        let from = buffer.len();
        let keep = r.outcome.is_failure() || r.attempt > 1;
        let mut text = None;
        if matches!(r.outcome, Outcome::Passed | Outcome::Xpassed)
            && r.details.stdout.is_empty()
            && r.details.stderr.is_empty()
            && !keep
        {
            // Most cases of a big run: one empty element, written directly from the record.
            write_plain_case(buffer, r);
        } else {
            let t = Text::new(r);
            let mut w = Writer::new_with_indent(std::mem::take(buffer), b' ', 2);
            // Into a Vec, writing cannot fail.
            let _ = write_case(&mut w, &t, &[]);
            *buffer = w.into_inner();
            text = keep.then(|| Box::new(t.into_owned()));
        }
        buffer.push(b'\n');
        Case {
            test_id: r.test_id.clone(),
            outcome: r.outcome,
            attempt: r.attempt,
            quarantined: r.quarantined,
            time: r.duration_s,
            shard: r.shard,
            xml: Xml::In(from..buffer.len()),
            text,
        }
    }
}

/// The test's name in its file: its id without the file (`TestK::test_c[x]`).
fn case_name(r: &TestRecord) -> &str {
    r.test_id
        .strip_prefix(r.file.as_str())
        .and_then(|rest| rest.strip_prefix("::"))
        .unwrap_or(&r.test_id)
}

/// JUnit's class name of a file: `tests/test_x.py` is `tests.test_x`.
fn classname(file: &str) -> String {
    file.trim_end_matches(".py").replace('/', ".")
}

/// What a `testcase` element says, borrowed from its record while it is rendered alone.
struct Text<'a> {
    classname: String,
    name: Cow<'a, str>,
    file: Cow<'a, str>,
    line: Option<u32>,
    time: f64,
    outcome: Outcome,
    quarantined: bool,
    message: Cow<'a, str>,
    text: Cow<'a, str>,
    stdout: Cow<'a, str>,
    stderr: Cow<'a, str>,
}

impl<'a> Text<'a> {
    fn new(r: &'a TestRecord) -> Text<'a> {
        let name = case_name(r);
        let text = if r.details.failure.is_empty() {
            &r.details.last_output
        } else {
            &r.details.failure
        };
        Text {
            classname: classname(&r.file),
            name: Cow::Borrowed(name),
            file: Cow::Borrowed(&r.file),
            line: r.line,
            time: r.duration_s,
            outcome: r.outcome,
            quarantined: r.quarantined,
            message: Cow::Borrowed(r.message.as_deref().unwrap_or_default()),
            text: Cow::Borrowed(text),
            stdout: Cow::Borrowed(&r.details.stdout),
            stderr: Cow::Borrowed(&r.details.stderr),
        }
    }

    fn into_owned(self) -> Text<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        Text {
            classname: self.classname,
            name: own(self.name),
            file: own(self.file),
            line: self.line,
            time: self.time,
            outcome: self.outcome,
            quarantined: self.quarantined,
            message: own(self.message),
            text: own(self.text),
            stdout: own(self.stdout),
            stderr: own(self.stderr),
        }
    }

    /// `hung: …` and `crashed: …` say what happened; a failure's message is pytest's.
    fn full_message(&self) -> String {
        match self.outcome {
            Outcome::Hung | Outcome::Crashed => {
                format!("{}: {}", self.outcome.as_str(), self.message)
            }
            _ => self.message.to_string(),
        }
    }
}

/// Suite totals, as the `testsuite` element counts them.
#[derive(Default)]
struct Totals {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    time: f64,
}

impl Totals {
    fn sum(&mut self, other: &Totals) {
        self.tests += other.tests;
        self.failures += other.failures;
        self.errors += other.errors;
        self.skipped += other.skipped;
        self.time += other.time;
    }

    /// `<tag tests=".." failures=".." errors=".." skipped=".." time=".." name="..">`.
    fn element<'n>(&self, tag: &'n str, name: &str) -> BytesStart<'n> {
        let mut e = BytesStart::new(tag);
        for (key, value) in [
            ("tests", self.tests.to_string()),
            ("failures", self.failures.to_string()),
            ("errors", self.errors.to_string()),
            ("skipped", self.skipped.to_string()),
            ("time", format!("{:.3}", self.time)),
        ] {
            e.push_attribute((key, value.as_str()));
        }
        e.push_attribute(("name", name));
        e
    }

    fn add(&mut self, c: &Case) {
        self.tests += 1;
        self.time += c.time;
        if c.quarantined && c.outcome.is_failure() {
            self.skipped += 1;
            return;
        }
        match c.outcome {
            Outcome::Failed | Outcome::Hung | Outcome::Crashed => self.failures += 1,
            Outcome::Error => self.errors += 1,
            Outcome::Skipped | Outcome::Xfailed => self.skipped += 1,
            Outcome::Passed | Outcome::Xpassed => {}
        }
    }
}

/// A `testsuite` of the run's file in the making: its cases in a part file.
struct Suite {
    shard: Option<Shard>,
    part: PathBuf,
    body: BufWriter<File>,
    totals: Totals,
}

impl Suite {
    fn name(&self) -> String {
        match self.shard {
            Some(shard) => format!("mtest shard {shard}"),
            None => "mtest".into(),
        }
    }
}

/// The run's `junit.xml` in the making.
struct Merged {
    /// Where its part files go (`junit.xml.part`, `junit.xml.part-K`).
    part: PathBuf,
    /// In order of their shards (a run that is not a shard has one, `None`).
    suites: Vec<Suite>,
    /// Failed attempts that may be run again, by test id: written with the last attempt.
    held: HashMap<String, Vec<Case>>,
    retries: u32,
}

/// Test cases by chunk, until their chunk ends; then the run's file.
pub struct Junit {
    dir: PathBuf,
    chunks: BTreeMap<u32, ChunkCases>,
    merged: Merged,
    /// The first failure to write the run's file (it is then left out).
    merged_error: Option<StoreError>,
}

impl Junit {
    /// Files go to `dir` (`.gates/last-run`); `retries` is the run's `--retries`.
    pub fn new(dir: &Path, retries: u32) -> Junit {
        Junit {
            dir: dir.to_path_buf(),
            chunks: BTreeMap::new(),
            merged: Merged {
                part: dir.join("junit.xml.part"),
                suites: Vec::new(),
                held: HashMap::new(),
                retries,
            },
            merged_error: None,
        }
    }

    pub(crate) fn add(&mut self, r: &TestRecord) {
        let chunk = self.chunks.entry(r.chunk).or_default();
        let case = Case::new(r, &mut chunk.xml);
        chunk.cases.push(case);
    }

    /// A record of an earlier invocation of this run (`--resume`): its chunk's file was
    /// written then; the run's file has it too (its message, not its text, which is in
    /// its bundle).
    pub(crate) fn replay(&mut self, r: &TestRecord) {
        let mut alone = ChunkCases::default();
        let case = Case::new(r, &mut alone.xml);
        alone.cases.push(case);
        self.merge(alone);
    }

    /// Writes `junit-NNNN.xml` for `chunk`; its cases go on to the run's file.
    pub fn finish(&mut self, chunk: u32) -> Result<(), StoreError> {
        let Some(cases) = self.chunks.remove(&chunk) else {
            return Ok(()); // a chunk that recorded nothing (a crashed test's re-run alone)
        };
        let path = self.dir.join(format!("junit-{chunk:04}.xml"));
        let written = render_chunk(chunk, &cases)
            .and_then(|xml| std::fs::write(&path, xml))
            .map_err(StoreError::io("write", &path));
        self.merge(cases);
        written
    }

    /// Chunks that still have cases (e.g. chunk 0: collection errors).
    pub(crate) fn pending(&self) -> Vec<u32> {
        self.chunks.keys().copied().collect()
    }

    /// Writes `junit.xml` (every chunk finished first): attempts still held (a retry that
    /// never ran) are written as they are.
    pub(crate) fn end(&mut self) -> Result<(), StoreError> {
        let mut held: Vec<Vec<Case>> = self.merged.held.drain().map(|(_, v)| v).collect();
        held.sort_by(|a, b| a[0].test_id.cmp(&b[0].test_id));
        for mut attempts in held {
            if let Some(last) = attempts.pop() {
                // Held cases have their own bytes.
                self.write_merged(last, attempts, &[]);
            }
        }
        let parts: Vec<PathBuf> = self.merged.suites.iter().map(|s| s.part.clone()).collect();
        let result = match self.merged_error.take() {
            Some(e) => Err(e),
            None => self.assemble(),
        };
        for part in parts {
            let _ = std::fs::remove_file(part);
        }
        result
    }

    fn merge(&mut self, chunk: ChunkCases) {
        for mut case in chunk.cases {
            let may_run_again = case.outcome.is_failure() && case.attempt <= self.merged.retries;
            if may_run_again {
                // It outlives its chunk's buffer.
                case.xml = Xml::Own(case.xml.bytes(&chunk.xml).to_vec());
                self.merged
                    .held
                    .entry(case.test_id.clone())
                    .or_default()
                    .push(case);
                continue;
            }
            let earlier = if self.merged.held.is_empty() {
                Vec::new()
            } else {
                self.merged.held.remove(&case.test_id).unwrap_or_default()
            };
            self.write_merged(case, earlier, &chunk.xml);
        }
    }

    /// `buffer`: the chunk's, where `last`'s element may be.
    fn write_merged(&mut self, last: Case, earlier: Vec<Case>, buffer: &[u8]) {
        if self.merged_error.is_some() {
            return;
        }
        let suite = match self.merged.suite(last.shard) {
            Ok(suite) => suite,
            Err(e) => {
                self.merged_error = Some(e);
                return;
            }
        };
        suite.totals.add(&last);
        let w = &mut suite.body;
        let written = match (&last.text, earlier.is_empty()) {
            (Some(text), false) => {
                let earlier: Vec<&Text> =
                    earlier.iter().filter_map(|c| c.text.as_deref()).collect();
                let mut xml = Writer::new_with_indent(Vec::new(), b' ', 2);
                write_case(&mut xml, text, &earlier)
                    .and_then(|()| w.write_all(&xml.into_inner()))
                    .and_then(|()| w.write_all(b"\n"))
            }
            // Alone (or, never by construction, without its text: as it was).
            _ => w.write_all(last.xml.bytes(buffer)),
        };
        if let Err(e) = written {
            self.merged_error = Some(StoreError::io("write", &suite.part)(e));
        }
    }

    /// `junit.xml` = the suites' elements with their totals, each with its part file,
    /// under one `testsuites` with the run's totals; written to a temp file and renamed
    /// into place.
    fn assemble(&mut self) -> Result<(), StoreError> {
        let path = self.dir.join("junit.xml");
        let fail = StoreError::io("write", &path);
        let mut suites = std::mem::take(&mut self.merged.suites);
        suites.sort_by_key(|s| s.shard);
        let mut all = Totals::default();
        for suite in &mut suites {
            suite.body.flush().map_err(&fail)?;
            all.sum(&suite.totals);
        }
        let mut head = Writer::new(Vec::new());
        head.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))
            .map_err(&fail)?;
        head.get_mut().push(b'\n');
        head.write_event(Event::Start(all.element("testsuites", "mtest")))
            .map_err(&fail)?;
        let tmp = path.with_extension("xml.tmp");
        let write = || -> std::io::Result<()> {
            let mut out = BufWriter::new(File::create(&tmp)?);
            out.write_all(&head.into_inner())?;
            if suites.is_empty() {
                let mut empty = Writer::new(Vec::new());
                empty.write_event(Event::Start(
                    Totals::default().element("testsuite", "mtest"),
                ))?;
                out.write_all(b"\n  ")?;
                out.write_all(&empty.into_inner())?;
                out.write_all(b"\n  </testsuite>")?;
            }
            for suite in &suites {
                let mut start = Writer::new(Vec::new());
                start.write_event(Event::Start(
                    suite.totals.element("testsuite", &suite.name()),
                ))?;
                out.write_all(b"\n  ")?;
                out.write_all(&start.into_inner())?;
                out.write_all(b"\n")?;
                std::io::copy(&mut File::open(&suite.part)?, &mut out)?;
                out.write_all(b"  </testsuite>")?;
            }
            out.write_all(b"\n</testsuites>\n")?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(&fail)
    }
}

impl Merged {
    /// The suite of `shard`'s cases, its part file created with its first case.
    fn suite(&mut self, shard: Option<Shard>) -> Result<&mut Suite, StoreError> {
        if let Some(i) = self.suites.iter().position(|s| s.shard == shard) {
            return Ok(&mut self.suites[i]);
        }
        let part = match shard {
            Some(s) => self.part.with_extension(format!("part-{}", s.index)),
            None => self.part.clone(),
        };
        let file = File::create(&part).map_err(StoreError::io("write", &part))?;
        self.suites.push(Suite {
            shard,
            part,
            body: BufWriter::new(file),
            totals: Totals::default(),
        });
        let last = self.suites.len() - 1;
        Ok(&mut self.suites[last])
    }
}

fn render_chunk(chunk: u32, cases: &ChunkCases) -> std::io::Result<Vec<u8>> {
    let mut totals = Totals::default();
    cases.cases.iter().for_each(|c| totals.add(c));
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    w.write_event(Event::Start(BytesStart::new("testsuites")))?;
    let mut suite = BytesStart::new("testsuite");
    suite.push_attribute(("name", format!("mtest chunk {chunk}").as_str()));
    suite.push_attribute(("tests", totals.tests.to_string().as_str()));
    suite.push_attribute(("failures", totals.failures.to_string().as_str()));
    suite.push_attribute(("errors", totals.errors.to_string().as_str()));
    suite.push_attribute(("skipped", totals.skipped.to_string().as_str()));
    suite.push_attribute(("time", format!("{:.3}", totals.time).as_str()));
    w.write_event(Event::Start(suite))?;
    let mut out = w.into_inner();
    out.push(b'\n');
    out.extend_from_slice(&cases.xml);
    out.extend_from_slice(b"  </testsuite>\n</testsuites>\n");
    Ok(out)
}

/// `<testcase classname=".." name=".." file=".." line=".." time=".."/>`, as quick_xml
/// writes it (the same escaping), straight from the record: a passed test without output.
fn write_plain_case(out: &mut Vec<u8>, r: &TestRecord) {
    out.extend_from_slice(b"<testcase classname=\"");
    let from = out.len();
    push_escaped(out, r.file.trim_end_matches(".py"));
    // `/` is not escaped: the class name's dots go in place.
    out[from..]
        .iter_mut()
        .filter(|b| **b == b'/')
        .for_each(|b| *b = b'.');
    out.extend_from_slice(b"\" name=\"");
    push_escaped(out, case_name(r));
    out.extend_from_slice(b"\" file=\"");
    push_escaped(out, &r.file);
    if let Some(line) = r.line {
        out.extend_from_slice(b"\" line=\"");
        out.extend_from_slice(itoa::Buffer::new().format(line).as_bytes());
    }
    out.extend_from_slice(b"\" time=\"");
    push_secs(out, r.duration_s);
    out.extend_from_slice(b"\"/>");
}

/// `text` escaped as quick_xml escapes attribute values; copied as it is when it needs none.
fn push_escaped(out: &mut Vec<u8>, text: &str) {
    if text
        .bytes()
        .any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
    {
        out.extend_from_slice(quick_xml::escape::escape(text).as_bytes());
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// Seconds with three decimals (`0.013`), as `{:.3}` writes them.
fn push_secs(out: &mut Vec<u8>, secs: f64) {
    if !(secs.is_finite() && (0.0..1e12).contains(&secs)) {
        let _ = write!(out, "{secs:.3}");
        return;
    }
    let ms = (secs * 1000.0).round() as u64;
    out.extend_from_slice(itoa::Buffer::new().format(ms / 1000).as_bytes());
    let frac = ms % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// [`push_secs`] as a string.
fn secs3(secs: f64) -> String {
    let mut out = Vec::with_capacity(16);
    push_secs(&mut out, secs);
    String::from_utf8(out).unwrap_or_default()
}

/// One `testcase`: the last attempt `c`, with the failed attempts before it.
fn write_case<W: Write>(w: &mut Writer<W>, c: &Text, earlier: &[&Text]) -> std::io::Result<()> {
    let mut case = BytesStart::new("testcase");
    case.push_attribute(("classname", c.classname.as_str()));
    case.push_attribute(("name", c.name.as_ref()));
    case.push_attribute(("file", c.file.as_ref()));
    if let Some(line) = c.line {
        case.push_attribute(("line", line.to_string().as_str()));
    }
    case.push_attribute(("time", secs3(c.time).as_str()));
    let quarantined = c.quarantined && c.outcome.is_failure();
    let element = if quarantined {
        Some("skipped")
    } else {
        match c.outcome {
            Outcome::Failed | Outcome::Hung | Outcome::Crashed => Some("failure"),
            Outcome::Error => Some("error"),
            Outcome::Skipped | Outcome::Xfailed => Some("skipped"),
            Outcome::Passed | Outcome::Xpassed => None,
        }
    };
    let has_output = !c.stdout.is_empty() || !c.stderr.is_empty();
    if element.is_none() && !has_output && earlier.is_empty() {
        return w.write_event(Event::Empty(case));
    }
    w.write_event(Event::Start(case))?;
    if quarantined {
        w.write_event(Event::Start(BytesStart::new("properties")))?;
        let mut p = BytesStart::new("property");
        p.push_attribute(("name", "quarantined"));
        p.push_attribute(("value", "true"));
        w.write_event(Event::Empty(p))?;
        w.write_event(Event::End(BytesEnd::new("properties")))?;
    }
    if let Some(element) = element {
        let mut e = BytesStart::new(element);
        let message = if quarantined {
            format!("quarantined, {}: {}", c.outcome.as_str(), c.message)
        } else {
            c.full_message()
        };
        e.push_attribute(("message", message.as_str()));
        if element != "skipped" {
            e.push_attribute(("type", c.outcome.as_str()));
        }
        w.write_event(Event::Start(e))?;
        w.write_event(Event::Text(BytesText::new(&c.text)))?;
        w.write_event(Event::End(BytesEnd::new(element)))?;
    }
    // Surefire's names: a pass after failures is flaky; a failure after failures, reruns.
    let again = if c.outcome.is_failure() {
        "rerunFailure"
    } else {
        "flakyFailure"
    };
    for e in earlier {
        let mut start = BytesStart::new(again);
        start.push_attribute(("message", e.full_message().as_str()));
        start.push_attribute(("type", e.outcome.as_str()));
        w.write_event(Event::Start(start))?;
        for (tag, text) in [
            ("stackTrace", &e.text),
            ("system-out", &e.stdout),
            ("system-err", &e.stderr),
        ] {
            if !text.is_empty() {
                w.write_event(Event::Start(BytesStart::new(tag)))?;
                w.write_event(Event::Text(BytesText::new(text)))?;
                w.write_event(Event::End(BytesEnd::new(tag)))?;
            }
        }
        w.write_event(Event::End(BytesEnd::new(again)))?;
    }
    for (tag, text) in [("system-out", &c.stdout), ("system-err", &c.stderr)] {
        if !text.is_empty() {
            w.write_event(Event::Start(BytesStart::new(tag)))?;
            w.write_event(Event::Text(BytesText::new(text)))?;
            w.write_event(Event::End(BytesEnd::new(tag)))?;
        }
    }
    w.write_event(Event::End(BytesEnd::new("testcase")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed(id: &str, line: Option<u32>) -> TestRecord {
        let mut r: TestRecord = serde_json::from_str(
            r#"{"schema_version":1,"run_id":"r","test_id":"","outcome":"passed","duration_s":0.0125,
                "tier":1,"markers":[],"file":"tests/test_x.py","line":null,"chunk":1,"attempt":1,
                "quarantined":false,"started_at":"","finished_at":"","message":null,"bundle":null}"#,
        )
        .unwrap();
        r.test_id = id.to_string();
        r.line = line;
        r
    }

    #[test]
    fn a_plain_case_is_written_as_quick_xml_writes_it() {
        for (id, line) in [
            ("tests/test_x.py::test_a", Some(3)),
            ("tests/test_x.py::test_b[<a & 'b' \"c\">]", None),
            ("tests/test_x.py::TestK::test_c[é]", Some(0)),
        ] {
            let mut r = passed(id, line);
            if id.contains('é') {
                r.file = "a&b/<c>.py.py".into();
                r.test_id = format!("a&b/<c>.py.py::{id}");
            }
            let text = Text::new(&r);
            let mut plain = Vec::new();
            write_plain_case(&mut plain, &r);
            let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
            write_case(&mut w, &text, &[]).unwrap();
            assert_eq!(
                String::from_utf8(plain).unwrap(),
                String::from_utf8(w.into_inner()).unwrap()
            );
        }
    }

    #[test]
    fn seconds_have_three_decimals() {
        for secs in [0.0, 0.0004, 0.0006, 0.0125, 1.0, 2.5, 59.9999, 123_456.789] {
            assert_eq!(
                secs3(secs),
                format!("{:.3}", (secs * 1000.0f64).round() / 1000.0)
            );
        }
        assert_eq!(secs3(0.25), "0.250");
        assert_eq!(secs3(f64::NAN), "NaN");
        assert_eq!(secs3(-1.0), "-1.000");
    }

    #[test]
    fn records_of_shards_are_a_suite_each_with_the_runs_totals_above() {
        let dir = tempfile::tempdir().unwrap();
        let mut junit = Junit::new(dir.path(), 1);
        let shard = |k| Some(Shard { index: k, count: 2 });
        let mut a = passed("tests/test_x.py::test_a", Some(1));
        a.shard = shard(2);
        let mut b = passed("tests/test_x.py::test_b", Some(2));
        b.shard = shard(1);
        b.outcome = Outcome::Failed;
        b.details.failure = "assert 1 == 2".into();
        let mut b2 = b.clone();
        b2.attempt = 2;
        b2.outcome = Outcome::Passed;
        b2.flaky = true;
        for r in [&a, &b, &b2] {
            junit.replay(r);
        }
        junit.end().unwrap();
        let xml = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
        let suites: Vec<&str> = xml.matches("name=\"mtest shard ").collect();
        assert_eq!(suites.len(), 2, "{xml}");
        assert!(
            xml.find("mtest shard 1/2").unwrap() < xml.find("mtest shard 2/2").unwrap(),
            "{xml}"
        );
        assert!(
            xml.contains("<testsuites tests=\"2\" failures=\"0\" errors=\"0\" skipped=\"0\""),
            "{xml}"
        );
        // The retried test is one case with its failed attempt's text, in its shard's suite.
        assert_eq!(xml.matches("<flakyFailure").count(), 1, "{xml}");
        assert!(xml.contains("assert 1 == 2"), "{xml}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "junit.xml")
            .collect();
        assert!(leftovers.is_empty(), "part files left: {leftovers:?}");
    }
}
