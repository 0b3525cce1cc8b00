//! `last-run/junit-NNNN.xml`, one per chunk, written by mtest from its records.
//!
//! pytest's own `--junitxml` costs ~0.1 ms a test and is written only when the session
//! ends, so a crashed chunk has none; this one costs nothing in pytest and exists for
//! every chunk, crashed or not.

use std::collections::BTreeMap;
use std::path::Path;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use crate::record::{Outcome, TestRecord};

struct Case {
    classname: String,
    name: String,
    file: String,
    line: Option<u32>,
    time: f64,
    outcome: Outcome,
    message: String,
    text: String,
    stdout: String,
    stderr: String,
}

/// Test cases by chunk, until their chunk ends.
#[derive(Default)]
pub struct Junit {
    chunks: BTreeMap<u32, Vec<Case>>,
}

impl Junit {
    pub fn add(&mut self, r: &TestRecord) {
        let name = r
            .test_id
            .strip_prefix(&format!("{}::", r.file))
            .unwrap_or(&r.test_id)
            .to_string();
        let classname = r.file.trim_end_matches(".py").replace('/', ".");
        let text = if r.details.failure.is_empty() {
            r.details.last_output.clone()
        } else {
            r.details.failure.clone()
        };
        self.chunks.entry(r.chunk).or_default().push(Case {
            classname,
            name,
            file: r.file.clone(),
            line: r.line,
            time: r.duration_s,
            outcome: r.outcome,
            message: r.message.clone().unwrap_or_default(),
            text,
            stdout: r.details.stdout.clone(),
            stderr: r.details.stderr.clone(),
        });
    }

    /// Writes `junit-NNNN.xml` for `chunk` into `dir` and forgets its cases.
    pub fn finish(&mut self, chunk: u32, dir: &Path) -> Result<(), String> {
        let Some(cases) = self.chunks.remove(&chunk) else {
            return Ok(()); // a chunk that recorded nothing (a crashed test's re-run alone)
        };
        let path = dir.join(format!("junit-{chunk:04}.xml"));
        let xml =
            render(chunk, &cases).map_err(|e| format!("cannot render {}: {e}", path.display()))?;
        std::fs::write(&path, xml).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Chunks that still have cases (e.g. chunk 0: collection errors).
    pub fn pending(&self) -> Vec<u32> {
        self.chunks.keys().copied().collect()
    }
}

fn render(chunk: u32, cases: &[Case]) -> Result<Vec<u8>, quick_xml::Error> {
    let count = |f: fn(Outcome) -> bool| cases.iter().filter(|c| f(c.outcome)).count().to_string();
    let time: f64 = cases.iter().map(|c| c.time).sum();
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    w.write_event(Event::Start(BytesStart::new("testsuites")))?;
    let mut suite = BytesStart::new("testsuite");
    suite.push_attribute(("name", format!("mtest chunk {chunk}").as_str()));
    suite.push_attribute(("tests", cases.len().to_string().as_str()));
    suite.push_attribute((
        "failures",
        count(|o| matches!(o, Outcome::Failed | Outcome::Hung | Outcome::Crashed)).as_str(),
    ));
    suite.push_attribute(("errors", count(|o| o == Outcome::Error).as_str()));
    suite.push_attribute((
        "skipped",
        count(|o| matches!(o, Outcome::Skipped | Outcome::Xfailed)).as_str(),
    ));
    suite.push_attribute(("time", format!("{time:.3}").as_str()));
    w.write_event(Event::Start(suite))?;
    for c in cases {
        let mut case = BytesStart::new("testcase");
        case.push_attribute(("classname", c.classname.as_str()));
        case.push_attribute(("name", c.name.as_str()));
        case.push_attribute(("file", c.file.as_str()));
        if let Some(line) = c.line {
            case.push_attribute(("line", line.to_string().as_str()));
        }
        case.push_attribute(("time", format!("{:.3}", c.time).as_str()));
        let element = match c.outcome {
            Outcome::Failed | Outcome::Hung | Outcome::Crashed => Some("failure"),
            Outcome::Error => Some("error"),
            Outcome::Skipped | Outcome::Xfailed => Some("skipped"),
            Outcome::Passed | Outcome::Xpassed => None,
        };
        let has_output = !c.stdout.is_empty() || !c.stderr.is_empty();
        if element.is_none() && !has_output {
            w.write_event(Event::Empty(case))?;
            continue;
        }
        w.write_event(Event::Start(case))?;
        if let Some(element) = element {
            let mut e = BytesStart::new(element);
            let message = match c.outcome {
                Outcome::Hung | Outcome::Crashed => {
                    format!("{}: {}", c.outcome.as_str(), c.message)
                }
                _ => c.message.clone(),
            };
            e.push_attribute(("message", message.as_str()));
            w.write_event(Event::Start(e))?;
            w.write_event(Event::Text(BytesText::new(&c.text)))?;
            w.write_event(Event::End(BytesEnd::new(element)))?;
        }
        for (tag, text) in [("system-out", &c.stdout), ("system-err", &c.stderr)] {
            if !text.is_empty() {
                w.write_event(Event::Start(BytesStart::new(tag)))?;
                w.write_event(Event::Text(BytesText::new(text)))?;
                w.write_event(Event::End(BytesEnd::new(tag)))?;
            }
        }
        w.write_event(Event::End(BytesEnd::new("testcase")))?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuite")))?;
    w.write_event(Event::End(BytesEnd::new("testsuites")))?;
    let mut out = w.into_inner();
    out.push(b'\n');
    Ok(out)
}
