//! `github`: GitHub Actions output. At the end of a run, one workflow-command annotation
//! per failing test (`::error file=…,line=…,title=…::message`; quarantined failures and
//! tests that passed on a retry as `::warning`), and `step-summary.md` in its output
//! directory: counts, failures with their messages, the slowest tests. mtest appends that
//! file to `$GITHUB_STEP_SUMMARY` (the plugin sees only its own directory).
//!
//! On by default when `GITHUB_ACTIONS=true`. Keeps only what it reports per test.

wit_bindgen::generate!({
    world: "reporter-plugin",
    path: "../../wit",
    with: { "mtest:plugin/types@0.6.0": shared::types },
});

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;

use exports::mtest::plugin::identity::Guest as Identity;
use exports::mtest::plugin::reporter::{
    Guest as Reporter, RunStart, RunSummary, TestRecord, Wanted,
};
use shared::types::{Outcome, PluginInfo, PluginKind};
use shared::{cell, is_failure, name, Slowest};

const SLOWEST: usize = 10;
/// GitHub shows at most 10 error and 10 warning annotations per step; more are noise.
const ANNOTATIONS: usize = 50;

struct Failure {
    outcome: Outcome,
    file: String,
    line: Option<u32>,
    message: String,
    quarantined: bool,
    bundle: Option<String>,
}

#[derive(Default)]
struct State {
    /// Failed attempts by test id, in the order first seen (the last one counts).
    failures: Vec<(String, Failure)>,
    /// The last attempt's outcome per test that failed at least once.
    last: HashMap<String, Outcome>,
    /// The slowest tests (test ids).
    slowest: Slowest<String, SLOWEST>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// A workflow command's message: `%`, CR and LF escaped.
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: also `:` and `,`.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

struct Github;

impl Identity for Github {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "github".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Reporter,
            description: "GitHub Actions: annotations for failures, a job summary".into(),
        }
    }
}

/// (test id, failure, flaky): the failures to report, each test once by its last failed
/// attempt; `flaky` when a later attempt passed.
fn reported(state: &State) -> Vec<(&str, &Failure, bool)> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<(&str, &Failure, bool)> = Vec::new();
    for (id, f) in &state.failures {
        let flaky = state.last.get(id).is_some_and(|o| !is_failure(*o));
        match seen.get(id.as_str()) {
            Some(&i) => out[i] = (id, f, flaky),
            None => {
                seen.insert(id, out.len());
                out.push((id, f, flaky));
            }
        }
    }
    out
}

fn annotations(failures: &[(&str, &Failure, bool)]) -> Vec<String> {
    let mut lines = Vec::new();
    for (id, f, flaky) in failures.iter().take(ANNOTATIONS) {
        let (level, what) = if *flaky {
            (
                "warning",
                format!("flaky: {} then passed on a retry", name(f.outcome)),
            )
        } else if f.quarantined {
            ("warning", format!("{} (quarantined)", name(f.outcome)))
        } else {
            ("error", name(f.outcome).to_string())
        };
        let mut props = format!("file={}", property(&f.file));
        if let Some(line) = f.line {
            let _ = write!(props, ",line={line}");
        }
        let _ = write!(props, ",title={}", property(&format!("{id}: {what}")));
        let mut message = f.message.clone();
        if let Some(bundle) = &f.bundle {
            let _ = write!(message, "\n(bundle: .gates/last-run/{bundle})");
        }
        lines.push(format!("::{level} {props}::{}", data(&message)));
    }
    if failures.len() > ANNOTATIONS {
        lines.push(format!(
            "::warning title=mtest::{} more failing test(s) without an annotation: see the job summary",
            failures.len() - ANNOTATIONS
        ));
    }
    lines
}

/// Whether a failure belongs in a section of the job summary, given whether it was flaky.
type Keep = fn(&Failure, bool) -> bool;

fn step_summary(
    state: &State,
    failures: &[(&str, &Failure, bool)],
    summary: &RunSummary,
) -> String {
    let mut md = String::new();
    let verdict = if summary.exit_code == 0 {
        "passed"
    } else {
        "failed"
    };
    let _ = writeln!(md, "## mtest: {verdict} in {:.1}s\n", summary.duration_s);
    let counts: Vec<String> = summary
        .counts
        .iter()
        .map(|(o, n)| format!("{n} {}", name(*o)))
        .collect();
    let _ = writeln!(md, "{}\n", counts.join(" · "));
    for note in &summary.notes {
        let _ = writeln!(md, "- {}", cell(note));
    }
    let sections: [(&str, Keep); 3] = [
        ("Failures", |f, flaky| !flaky && !f.quarantined),
        ("Flaky (failed, then passed on a retry)", |_, flaky| flaky),
        ("Quarantined failures (do not fail the run)", |f, flaky| {
            !flaky && f.quarantined
        }),
    ];
    for (heading, keep) in sections {
        let rows: Vec<_> = failures
            .iter()
            .filter(|(_, f, flaky)| keep(f, *flaky))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "\n### {heading}\n\n| test | outcome | message |\n|---|---|---|"
        );
        for (id, f, _) in rows {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} |",
                cell(id),
                name(f.outcome),
                cell(&f.message)
            );
        }
    }
    md.push_str(&state.slowest.markdown("### Slowest tests"));
    md
}

impl Reporter for Github {
    fn wants() -> Wanted {
        // Failures and retries come anyway.
        Wanted {
            every: false,
            slowest: SLOWEST as u32,
            min_share: None,
        }
    }

    fn on_run_start(_start: RunStart) -> Result<Vec<String>, String> {
        STATE.with(|s| *s.borrow_mut() = State::default());
        Ok(Vec::new())
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
            let failures = reported(&s);
            let md = step_summary(&s, &failures, &summary);
            std::fs::write("/out/step-summary.md", md)
                .map_err(|e| format!("writing step-summary.md: {e}"))?;
            Ok(annotations(&failures))
        })
    }
}

/// One record, as `on-tests` gets them.
fn on_test(r: TestRecord) -> Result<Vec<String>, String> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.slowest.offer(r.duration_s, || r.test_id.clone());
        if is_failure(r.outcome) || s.last.contains_key(&r.test_id) {
            s.last.insert(r.test_id.clone(), r.outcome);
        }
        if is_failure(r.outcome) {
            let (message, bundle) = r.report.map(|x| (x.message, x.bundle)).unwrap_or_default();
            s.failures.push((
                r.test_id,
                Failure {
                    outcome: r.outcome,
                    file: r.file,
                    line: r.line,
                    message,
                    quarantined: r.quarantined,
                    bundle,
                },
            ));
        }
    });
    Ok(Vec::new())
}

export!(Github);
