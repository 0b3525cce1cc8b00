//! The run's recorder and its last lines: the reporters, bundles and console started,
//! and the summary printed.

use super::*;
use crate::cli::ColorChoice;
use crate::commands::summary;

/// What the run says of flaky tests: a repeated test's pass rate, and how many others
/// failed, then passed on a retry.
pub(super) fn flakiness_notes(
    stats: &RunStats,
    repeated: &FastSet<&str>,
    flaky_fails: bool,
) -> Vec<String> {
    let mut notes = stats.pass_rate_notes();
    // Flaky tests that were repeated are called out by their pass rates.
    let flaky_repeated = stats
        .flaky_tests()
        .filter(|id| repeated.contains(id))
        .count();
    let flaky = stats.flaky() - flaky_repeated;
    if flaky > 0 {
        notes.push(format!(
            "{flaky} flaky test(s) failed, then passed on a retry{}",
            if flaky_fails {
                " (--flaky-fails: they fail the run)"
            } else {
                ""
            }
        ));
    }
    notes
}

/// What the console counts toward.
pub(super) struct Counts {
    /// The run's selected tests.
    pub(super) selected: usize,
    /// Records the run will have: the selected tests and the modules that failed to collect.
    pub(super) total: usize,
    /// Of those, the ones an earlier invocation made (`--resume`).
    pub(super) recorded: usize,
}

/// Opens `run.jsonl` and starts the reporters, the failure bundles' enricher and the
/// console for a run. `host` comes apart from `env`: the recorder outlives `env`'s borrow
/// of the history, which the run's end updates.
pub(super) fn start_recorder<'h>(
    host: &'h PluginHost,
    env: &Env,
    durations: &Arc<Durations>,
    state: &RunState,
    tests: &[PlannedTest],
    counts: Counts,
    started: Instant,
) -> Result<Recorder<'h>> {
    let (gates, opts) = (env.gates, &state.options);
    let log = run_log::RunLog::open(&gates.run_log())?;
    let start = RunStart {
        run_id: state.run_id.clone(),
        started_at: state.started_at.clone(),
        selected: counts.selected as u32,
        command: state.command.clone(),
    };
    // `--reporter` of this invocation, else of the run being resumed, else the configured.
    let reporters_given = if env.args.reporters.is_empty() {
        &opts.reporters
    } else {
        &env.args.reporters
    };
    let reporter_specs: Option<Vec<ReporterSpec>> = if reporters_given.is_empty() {
        env.project.mtest.reporters.clone()
    } else {
        Some(
            reporters_given
                .iter()
                .cloned()
                .map(ReporterSpec::Name)
                .collect(),
        )
    };
    let reporters = Reporters::start(
        host,
        env.root,
        reporter_specs.as_deref(),
        &gates.last_run(),
        &start,
    );
    let enricher = Some(Enricher::new(
        host,
        Path::new(&opts.python),
        env.root,
        Arc::clone(durations),
        &env.project.mtest.probes,
    ));
    let plan = Plan {
        estimate_ms: tests.iter().map(|t| u64::from(t.estimate_ms)).sum(),
        with_history: durations
            .histories(tests.iter().map(|t| t.id.as_str()))
            .iter()
            .filter(|h| h.is_some())
            .count()
            + counts.recorded,
        jobs: opts.jobs,
    };
    Ok(Recorder::new(
        log,
        reporters,
        Progress::new(
            counts.total,
            started,
            plan,
            progress::use_color(env.args.color.and_then(ColorChoice::forced)),
        ),
        enricher,
        Junit::new(&gates.last_run(), opts.retries),
    ))
}

/// How the run ended, for the console.
pub(super) struct Ending<'a> {
    pub(super) finish: &'a Finish,
    pub(super) store_errors: &'a [String],
    pub(super) rec: &'a Recorder<'a>,
    pub(super) state: &'a RunState,
    pub(super) notes: &'a [String],
    pub(super) versions: Option<(String, String)>,
    pub(super) root: &'a Path,
    pub(super) gates: &'a Gates,
    pub(super) max_fail: Option<u32>,
}

/// The run's last lines on the console: errors, the counts, notes, where things are.
pub(super) fn print_summary(e: &Ending) {
    let stats = &e.rec.stats;
    let headline = format!(
        "mtest: {} in {} (run {}{})",
        stats.counts_text(),
        clock::human(e.rec.progress.elapsed()),
        e.state.run_id,
        e.state
            .options
            .shard
            .map(|s| format!(", shard {s}"))
            .unwrap_or_default()
    );
    let not_recorded = e.state.tests.len().saturating_sub(stats.tests());
    let left = match e.finish {
        Finish::Interrupted => Some(format!(
            "interrupted: run `mtest --resume` to run the {not_recorded} test(s) not yet recorded"
        )),
        Finish::Debugged(test) if not_recorded == 0 => {
            Some(format!("stopped at {test} for pytest's debugger"))
        }
        Finish::Debugged(test) => Some(format!(
            "stopped at {test} for pytest's debugger: run `mtest --resume` to run the {not_recorded} test(s) not yet recorded"
        )),
        Finish::FailedFast { not_run } => Some(format!(
            "stopped early (--max-fail {}) after {} failing test(s): {not_run} selected test(s) did not run",
            e.max_fail.unwrap_or(1),
            stats.failing(),
        )),
        _ => None,
    };
    summary::print(&summary::LastLines {
        headline,
        broken: match e.finish {
            Finish::Broken(text) => Some(text),
            _ => None,
        },
        store_errors: e.store_errors,
        stats,
        notes: e.notes,
        versions: e.versions.as_ref().map(|(python, pytest)| {
            format!(
                "Python {python}, pytest {pytest}, -j {}",
                e.state.options.jobs
            )
        }),
        root: e.root,
        gates: e.gates,
        left,
    });
}

/// Why the quarantine policy must not learn from this run, if it must not: pytest could
/// not run, or most of its tests failed.
pub(super) fn broken_run(finish: &Finish, stats: &RunStats) -> Option<String> {
    if matches!(finish, Finish::Broken(_)) {
        return Some("quarantine not consulted: pytest could not run".into());
    }
    stats.mostly_failing()
}
