//! `summary-md`: writes `summary.md` at the end of a run: counts per outcome and per tier,
//! the slowest tests, and every failure with a link to its bundle.
//!
//! It asks for the failures and the slowest few, and takes the counts per tier from the run
//! summary: a 100k-test run that passes hands it about a hundred records.

wit_bindgen::generate!({
    world: "reporter-plugin",
    path: "../../wit",
    with: { "mtest:plugin/types@0.6.0": shared::types },
});

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::BuildHasherDefault;

use exports::mtest::plugin::identity::Guest as Identity;
use exports::mtest::plugin::reporter::{
    Guest as Reporter, RunStart, RunSummary, TestRecord, Wanted,
};
use rustc_hash::FxHasher;
use shared::types::{Outcome, PluginInfo, PluginKind};
use shared::{cell, is_failure, name, Slowest, OUTCOMES};

const SLOWEST: usize = 10;

struct Failure {
    test_id: String,
    outcome: Outcome,
    message: String,
    bundle: Option<String>,
    quarantined: bool,
}

#[derive(Default)]
struct State {
    start: Option<RunStart>,
    /// The last outcome of each test that failed at least once (flaky: it passed later).
    last: HashMap<String, Outcome, BuildHasherDefault<FxHasher>>,
    /// The slowest tests (test ids).
    slowest: Slowest<String, SLOWEST>,
    failures: Vec<Failure>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct SummaryMd;

impl Identity for SummaryMd {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "summary-md".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Reporter,
            description: "summary.md: counts per outcome and tier, slowest tests, failures".into(),
        }
    }
}

fn render(state: &State, summary: &RunSummary) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# mtest run {}\n", summary.run_id);
    if let Some(start) = &state.start {
        let _ = writeln!(md, "- started: {}", start.started_at);
        let _ = writeln!(md, "- command: `{}`", start.command);
        let _ = writeln!(md, "- selected: {} test(s)", start.selected);
    }
    let _ = writeln!(md, "- finished: {}", summary.finished_at);
    let _ = writeln!(md, "- duration: {:.1}s", summary.duration_s);
    let _ = writeln!(md, "- exit code: {}", summary.exit_code);
    for note in &summary.notes {
        let _ = writeln!(md, "- {note}");
    }

    let _ = writeln!(md, "\n## Outcomes\n\n| outcome | count |\n|---|---:|");
    for (outcome, count) in &summary.counts {
        let _ = writeln!(md, "| {} | {count} |", name(*outcome));
    }

    let _ = writeln!(md, "\n## Per tier\n");
    let _ = write!(md, "| tier |");
    for o in OUTCOMES {
        let _ = write!(md, " {} |", name(o));
    }
    let _ = write!(md, "\n|---|");
    for _ in OUTCOMES {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md);
    for tier in &summary.tiers {
        let _ = write!(md, "| {} |", tier.tier);
        for o in OUTCOMES {
            let c = tier
                .counts
                .iter()
                .find(|(x, _)| *x == o)
                .map_or(0, |(_, c)| *c);
            let _ = write!(md, " {c} |");
        }
        let _ = writeln!(md);
    }

    md.push_str(&state.slowest.markdown("## Slowest tests"));

    let _ = writeln!(md, "\n## Failures\n");
    if state.failures.is_empty() {
        let _ = writeln!(md, "None.");
    } else {
        let _ = writeln!(
            md,
            "| test | outcome | message | bundle |\n|---|---|---|---|"
        );
        for f in &state.failures {
            let mut outcome = if f.quarantined {
                format!("{} (quarantined)", name(f.outcome))
            } else {
                name(f.outcome).to_string()
            };
            // A later attempt passed: this failure made the test flaky, not failing.
            if state
                .last
                .get(&f.test_id)
                .is_some_and(|last| !is_failure(*last))
            {
                outcome.push_str(", then passed on a retry (flaky)");
            }
            let bundle = match &f.bundle {
                Some(b) => format!("[bundle]({})", b.replace(' ', "%20")),
                None => String::new(),
            };
            let _ = writeln!(
                md,
                "| `{}` | {outcome} | {} | {bundle} |",
                cell(&f.test_id),
                cell(&f.message)
            );
        }
    }
    md
}

impl Reporter for SummaryMd {
    fn wants() -> Wanted {
        // Failures and retries come anyway; the counts per tier come with the summary.
        Wanted {
            every: false,
            slowest: SLOWEST as u32,
            min_share: None,
        }
    }

    fn on_run_start(start: RunStart) -> Result<Vec<String>, String> {
        STATE.with(|s| {
            *s.borrow_mut() = State {
                start: Some(start),
                ..State::default()
            };
        });
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
        let md = STATE.with(|s| render(&s.borrow(), &summary));
        std::fs::write("/out/summary.md", md).map_err(|e| format!("writing summary.md: {e}"))?;
        Ok(Vec::new())
    }
}

/// One record, as `on-tests` gets them.
fn on_test(r: TestRecord) -> Result<Vec<String>, String> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.slowest.offer(r.duration_s, || r.test_id.clone());
        if is_failure(r.outcome) {
            let (message, bundle) = r.report.map(|x| (x.message, x.bundle)).unwrap_or_default();
            s.failures.push(Failure {
                test_id: r.test_id.clone(),
                outcome: r.outcome,
                message,
                bundle,
                quarantined: r.quarantined,
            });
        }
        if is_failure(r.outcome) || s.last.contains_key(&r.test_id) {
            s.last.insert(r.test_id, r.outcome);
        }
    });
    Ok(Vec::new())
}

export!(SummaryMd);
