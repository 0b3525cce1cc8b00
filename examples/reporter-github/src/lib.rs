//! `reporter-github`: turns failures into GitHub Actions annotations
//! (`::error file=…,line=…,title=…::…`, printed by mtest, so the Actions log shows them on
//! the diff) and writes `annotations.txt` and a JSON digest, `digest.json`, into its output
//! directory (`.gates/last-run/github/` by default).

wit_bindgen::generate!({ world: "reporter-plugin", path: "../../wit" });

use std::cell::RefCell;

use exports::mtest::plugin::identity::Guest as Identity;
use exports::mtest::plugin::reporter::{
    Guest as Reporter, RunStart, RunSummary, TestRecord, Wanted,
};
use mtest::plugin::types::{Outcome, PluginInfo, PluginKind};
use serde_json::{json, Value};

#[derive(Default)]
struct State {
    run_id: String,
    annotations: Vec<String>,
    failures: Vec<Value>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct Github;

fn outcome(o: Outcome) -> &'static str {
    match o {
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

/// GitHub's workflow-command escaping: data escapes `%`, CR, LF; properties also `:` and `,`.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn annotation(r: &TestRecord) -> String {
    let level = if r.quarantined { "warning" } else { "error" };
    let mut props = format!("file={}", escape_property(&r.file));
    if let Some(line) = r.line {
        props.push_str(&format!(",line={line}"));
    }
    props.push_str(&format!(
        ",title={}",
        escape_property(&format!("{} {}", r.test_id, outcome(r.outcome)))
    ));
    let message = match &r.report {
        Some(report) if !report.message.is_empty() => &report.message,
        _ => outcome(r.outcome),
    };
    format!("::{level} {props}::{}", escape_data(message))
}

impl Identity for Github {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "github".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Reporter,
            description: "GitHub Actions annotations for failures, and a JSON digest".into(),
        }
    }
}

impl Reporter for Github {
    /// Annotations and the digest are about failures, which every reporter is sent (with
    /// the retries of failed tests): it asks for nothing more, so passing records are not
    /// sent.
    fn wants() -> Wanted {
        Wanted {
            every: false,
            slowest: 0,
            min_share: None,
        }
    }

    fn on_run_start(start: RunStart) -> Result<Vec<String>, String> {
        STATE.with(|s| {
            *s.borrow_mut() = State {
                run_id: start.run_id,
                ..State::default()
            }
        });
        Ok(vec![])
    }

    fn on_tests(tests: Vec<TestRecord>) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        for test in tests {
            lines.extend(on_test(test)?);
        }
        Ok(lines)
    }

    fn on_run_end(summary: RunSummary) -> Result<Vec<String>, String> {
        STATE.with(|s| {
            let s = s.borrow();
            let counts: serde_json::Map<String, Value> = summary
                .counts
                .iter()
                .map(|(o, n)| (outcome(*o).to_string(), json!(n)))
                .collect();
            let digest = json!({
                "run_id": s.run_id,
                "finished_at": summary.finished_at,
                "duration_s": summary.duration_s,
                "exit_code": summary.exit_code,
                "counts": counts,
                "failures": s.failures,
            });
            let text = serde_json::to_string_pretty(&digest).map_err(|e| e.to_string())?;
            std::fs::write("/out/digest.json", text)
                .map_err(|e| format!("writing digest.json: {e}"))?;
            let mut annotations = s.annotations.join("\n");
            annotations.push('\n');
            std::fs::write("/out/annotations.txt", annotations)
                .map_err(|e| format!("writing annotations.txt: {e}"))?;
            Ok(vec![])
        })
    }
}

/// One record, as `on-tests` gets them.
fn on_test(r: TestRecord) -> Result<Vec<String>, String> {
    if !matches!(
        r.outcome,
        Outcome::Failed | Outcome::Error | Outcome::Hung | Outcome::Crashed
    ) {
        return Ok(vec![]);
    }
    let line = annotation(&r);
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.annotations.push(line.clone());
        s.failures.push(json!({
            "test_id": r.test_id,
            "outcome": outcome(r.outcome),
            "message": r.report.as_ref().map(|x| &x.message),
            "file": r.file,
            "line": r.line,
            "quarantined": r.quarantined,
            "bundle": r.report.as_ref().and_then(|x| x.bundle.as_ref()),
        }));
    });
    // A replayed record was annotated by the invocation that ran it.
    Ok(if r.replayed { vec![] } else { vec![line] })
}

export!(Github);
