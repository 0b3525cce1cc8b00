//! `mtest [OPTIONS]`: a whole run, top to bottom: options → collect → select (plugin) →
//! chunk → supervise → records → store + reporters → quarantine → summary.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::RunArgs;
use crate::clock;
use crate::config::{Isolation, ProjectConfig, ReporterSpec, MAX_JOBS};
use crate::plugin_host::session::ExclusionReason;
use crate::plugin_host::session::RunStart;
use crate::plugin_host::{builtins, discovery, PluginHost, Source};
use crate::pytest::collect::{self, CollectFailure, CollectLimits, Collected, Collection, Item};
use crate::pytest::{find_python, Pytest};
use crate::record::{one_line, Attempt, Details, Outcome, TestRecord, SCHEMA_VERSION};
use crate::report::enrich::Enricher;
use crate::report::junit::Junit;
use crate::report::progress::{self, Plan, Progress};
use crate::report::reporters::{self, Reporters};
use crate::report::stats::RunStats;
use crate::report::Recorder;
use crate::selection::{self, PlannedTest};
use crate::store::durations::Durations;
use crate::store::quarantine::Quarantine;
use crate::store::state::{self, RunOptions, RunState, Status, STATE_SCHEMA};
use crate::store::{self, lock, run_log, Gates, Loaded};
use crate::supervise::chunk_run::{self, Job, Launcher, RunContext};
use crate::supervise::zygote::Mode;
use crate::supervise::{self, chunks, platform, Finish, RunEvent, Work};
use crate::{quarantine, Exit, FastMap, FastSet};

/// What every step of a run reads: where, with which arguments, configuration and host,
/// and the history the selection is based on.
struct Env<'a> {
    gates: &'a Gates,
    root: &'a Path,
    args: &'a RunArgs,
    project: &'a ProjectConfig,
    host: &'a PluginHost,
    durations: &'a Durations,
    quarantine: &'a Quarantine,
    /// When the run started (before collection), as the summary says it: its duration
    /// counts from the same moment, and so does the budget.
    started_at: String,
    started: Instant,
    /// What the last run's end took (pytest's session end, the store): a `--budget` keeps
    /// as much for this run's end.
    ending: Duration,
}

/// A run that cannot go on: the exit code and one line for the user.
pub struct Stop(pub Exit, pub String);

type Result<T> = std::result::Result<T, Stop>;

pub fn run(args: &RunArgs, root: &Path, project: &ProjectConfig, host: &PluginHost) -> Exit {
    match execute(args, root, project, host) {
        Ok(exit) => exit,
        Err(Stop(exit, message)) => {
            eprintln!("error: {message}");
            exit
        }
    }
}

fn usage(message: String) -> Stop {
    Stop(Exit::Usage, message)
}

/// Options from the command line, else `[tool.mtest]`, else pytest's config, else defaults.
fn options(args: &RunArgs, root: &Path, project: &ProjectConfig) -> Result<RunOptions> {
    let c = &project.mtest;
    let tiers = match &args.tier {
        Some(spec) => crate::tiers::parse_tiers(spec).map_err(usage)?,
        None => 0b1111,
    };
    let budget_s = match &args.budget {
        Some(spec) => Some(
            clock::parse_duration(spec)
                .map_err(|e| usage(format!("--budget {e}")))?
                .as_secs_f64(),
        ),
        None => None,
    };
    let jobs = args.jobs.or(c.jobs).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    });
    if jobs == 0 || jobs > MAX_JOBS {
        return Err(usage(format!(
            "-j must be between 1 and {MAX_JOBS}, not {jobs}"
        )));
    }
    let timeout_s = args
        .timeout
        .or(c.timeout)
        .or(project.pytest_timeout)
        .unwrap_or(30.0);
    clock::checked_secs(timeout_s).map_err(|e| usage(format!("--timeout: {e}")))?;
    let python = find_python(args.python.as_deref(), c.python.as_deref(), root);
    let mut pytest_args = c.pytest_args.clone();
    pytest_args.extend(args.pytest_args.iter().cloned());
    refuse_meta_options(&pytest_args)?;
    let debugger = take_debugger(&mut pytest_args)?;
    let paths = args
        .paths
        .iter()
        .map(|p| test_path(p, root))
        .collect::<Result<Vec<_>>>()?;
    Ok(RunOptions {
        paths,
        tiers,
        budget_s,
        keyword: args.keyword.clone(),
        markexpr: args.markexpr.clone(),
        timeout_s,
        jobs,
        fail_fast: args.fail_fast,
        last_failed: args.last_failed,
        failed_first: args.failed_first,
        max_fail: match args.max_fail {
            Some(0) => return Err(usage("--max-fail must be at least 1".into())),
            n => n,
        },
        python: python.display().to_string(),
        pytest_args,
        // A failing test is debugged at once, not retried first.
        retries: match debugger.is_empty() {
            true => args.retries.or(c.retries).unwrap_or(0),
            false => 0,
        },
        flaky_fails: args.flaky_fails,
        rerun_crashed: c.rerun_crashed.unwrap_or(true),
        reporters: args.reporters.clone(),
        isolation: args
            .isolation
            .or(c.isolation)
            .unwrap_or_else(Isolation::default_for_platform),
        collect_timeout_s: c
            .collect_timeout
            .unwrap_or_else(crate::store::state::collect_timeout),
        gc_freeze: c.gc_freeze.unwrap_or(true),
        session_end_timeout_s: c
            .session_end_timeout
            .unwrap_or_else(crate::store::state::session_end_timeout),
        shard: args.shard,
        repeat: match args.repeat {
            Some(0) => return Err(usage("--repeat must be at least 1".into())),
            n => n.unwrap_or(1),
        },
        new_test_repeats: c.new_test_repeats.unwrap_or(0),
        debugger,
    })
}

/// pytest's debugger flags (`--pdb`, `--trace`), taken out of the arguments every pytest
/// process gets: only the one test re-run in the foreground gets them. They need a
/// terminal: the debugger reads from it.
fn take_debugger(pytest_args: &mut Vec<String>) -> Result<Vec<String>> {
    let is_debugger = |a: &String| a == "--pdb" || a == "--trace";
    let debugger: Vec<String> = pytest_args
        .iter()
        .filter(|a| is_debugger(a))
        .cloned()
        .collect();
    if let Some(flag) = debugger.first() {
        on_a_terminal(flag)?;
        pytest_args.retain(|a| !is_debugger(a));
    }
    Ok(debugger)
}

/// A debugger flag needs mtest's stdin and stdout on a terminal; else one line saying so.
fn on_a_terminal(flag: &str) -> Result<()> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        return Ok(());
    }
    Err(usage(format!(
        "pytest's {flag} needs a terminal (mtest runs the test again alone under the debugger, in the foreground); off a terminal, run `pytest {flag}` on the test itself"
    )))
}

/// A test path or node id of the command line (relative to where mtest was started) as
/// pytest in the project root takes it; one that does not exist is a usage error.
fn test_path(word: &str, root: &Path) -> Result<String> {
    let (path, rest) = match word.split_once("::") {
        Some((path, rest)) => (path, Some(rest)),
        None => (word, None),
    };
    let absolute =
        std::path::absolute(path).map_err(|e| usage(format!("test path {word}: {e}")))?;
    if !absolute.exists() {
        return Err(usage(format!(
            "test path {path} does not exist (from {word}); give a file, a directory or a node id (path::name)"
        )));
    }
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let relative = absolute.strip_prefix(&root).unwrap_or(&absolute);
    let mut out = if relative.as_os_str().is_empty() {
        ".".to_string()
    } else {
        relative.display().to_string()
    };
    if let Some(rest) = rest {
        out.push_str("::");
        out.push_str(rest);
    }
    Ok(out)
}

/// pytest options that do not run tests, or only print something: turning their output
/// into records would report tests that never ran.
const META_OPTIONS: &[&str] = &[
    "--setup-plan",
    "--setup-only",
    "--collect-only",
    "--co",
    "--fixtures",
    "--funcargs",
    "--fixtures-per-test",
    "--markers",
    "--version",
    "-V",
    "-h",
    "--help",
];

fn refuse_meta_options(pytest_args: &[String]) -> Result<()> {
    match pytest_args.iter().find(|a| META_OPTIONS.contains(&a.as_str())) {
        Some(option) => Err(usage(format!(
            "pytest's {option} does not run tests, so mtest has nothing to record: run `pytest {option}` itself"
        ))),
        None => Ok(()),
    }
}

/// Reads a store file; a corrupt one is reported, set aside, and replaced by the default.
pub(crate) fn load_or_default<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    warnings: &mut Vec<String>,
) -> T {
    match store::read_json::<T>(path) {
        Ok(Loaded::Ok(v)) => v,
        Ok(Loaded::Missing) => T::default(),
        Ok(Loaded::Corrupt { why, aside }) => {
            warnings.push(format!(
                "warning: {} is corrupt ({why}); moved to {} and started afresh",
                path.display(),
                aside.display()
            ));
            T::default()
        }
        Err(e) => {
            warnings.push(format!("warning: {e}; using no history"));
            T::default()
        }
    }
}

pub(crate) fn new_run_id() -> String {
    let now = clock::now();
    let compact: String = now
        .chars()
        .filter(|c| c.is_ascii_digit())
        .take(14)
        .collect();
    let salt = blake3::hash(format!("{now}{}", std::process::id()).as_bytes()).to_hex();
    format!("{}T{}Z-{}", &compact[..8], &compact[8..], &salt[..6])
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// The record of a module that skipped itself at collection (`pytest.importorskip` at
/// module level): one skipped outcome under the module's id, as pytest counts it.
fn collection_skip_record(run_id: &str, id: &str, reason: Option<&str>) -> TestRecord {
    collector_record(
        run_id,
        id,
        Outcome::Skipped,
        reason.map(one_line),
        Details::default(),
    )
}

fn collection_error_record(
    run_id: &str,
    collected: &Collected,
    id: &str,
    text: &str,
) -> TestRecord {
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("collection error");
    let details = Details {
        failure: text.to_string(),
        command: collected.command.clone(),
        ..Details::default()
    };
    let message = Some(format!("collection error: {}", one_line(last)));
    collector_record(run_id, id, Outcome::Error, message, details)
}

/// The record of a collector (a module, usually) that is not a test but has an outcome.
fn collector_record(
    run_id: &str,
    id: &str,
    outcome: Outcome,
    message: Option<String>,
    details: Details,
) -> TestRecord {
    let now = clock::Stamp::now();
    TestRecord {
        schema_version: SCHEMA_VERSION,
        run_id: run_id.to_string(),
        test_id: id.to_string(),
        outcome,
        duration_s: 0.0,
        tier: crate::tiers::tier_of::<&str>(&[]),
        markers: Vec::new(),
        file: id.split("::").next().unwrap_or(id).to_string(),
        line: None,
        chunk: 0,
        attempt: 1,
        quarantined: false,
        started_at: now,
        finished_at: now,
        message,
        bundle: None,
        leaked: Vec::new(),
        subtests: None,
        flaky: false,
        shard: None,
        details,
        test: None,
    }
}

fn execute(
    args: &RunArgs,
    root: &Path,
    project: &ProjectConfig,
    host: &PluginHost,
) -> Result<Exit> {
    let started = Instant::now();
    let started_at = clock::now();
    platform::prepare_supervisor();
    let gates = Gates::new(root);
    let _lock = lock::acquire(&gates.dir).map_err(|e| Stop(e.exit(), e.to_string()))?;
    let ending = state::last_ending(&gates.state()).unwrap_or_default();
    // The history is read while pytest starts and collects (durations.json is 22 MB at
    // 64k tests: a tenth of a second, which the collection need not wait for).
    let history = {
        let (d, q) = (gates.durations(), gates.quarantine());
        std::thread::spawn(move || {
            let mut warnings = Vec::new();
            let durations: Durations = load_or_default(&d, &mut warnings);
            let quarantine: Quarantine = load_or_default(&q, &mut warnings);
            (durations, quarantine, warnings)
        })
    };
    // Fresh run: collect, then select. Resume: the saved selection minus what is recorded.
    enum Begin {
        Explain,
        Resume(Box<RunState>, Vec<TestRecord>, Option<Collection>),
        Fresh(Box<RunOptions>, Collection),
    }
    let begin = if args.explain_selection {
        Begin::Explain
    } else if args.resume {
        let (state, earlier) = resume_state(&gates)?;
        if let Some(flag) = state.options.debugger.first() {
            on_a_terminal(flag)?;
        }
        // Fork mode forks from a collection: collect again (process mode needs none).
        let collection = match state.options.isolation {
            Isolation::Fork => Some(start_collection(&gates, root, &state.options)?),
            Isolation::Process => None,
        };
        Begin::Resume(Box::new(state), earlier, collection)
    } else {
        let opts = options(args, root, project)?;
        let collection = start_collection(&gates, root, &opts)?;
        Begin::Fresh(Box::new(opts), collection)
    };
    let (durations, mut quarantine, warnings) = history.join().map_err(|_| {
        Stop(
            Exit::Internal,
            "reading .gates/durations.json and quarantine.json failed".into(),
        )
    })?;
    for w in warnings {
        eprintln!("{w}");
    }
    // Shared with the failure bundles' enricher while the run goes on (one copy: it is
    // ~25 MB at 100k tests).
    let mut durations = Arc::new(durations);
    let env = Env {
        gates: &gates,
        root,
        args,
        project,
        host,
        durations: &durations,
        quarantine: &quarantine,
        started_at,
        started,
        ending,
    };
    let (mut state, earlier, mut fresh_records, collection) = match begin {
        Begin::Explain => return explain(&env),
        Begin::Resume(state, earlier, collection) => (*state, earlier, Vec::new(), collection),
        Begin::Fresh(opts, collection) => {
            let (state, errors, collection) = fresh_state(&env, *opts, collection)?;
            (state, Vec::new(), errors, Some(collection))
        }
    };
    let opts = state.options.clone();
    let pytest = Pytest::new(
        opts.python.clone().into(),
        root.to_path_buf(),
        opts.pytest_args.clone(),
    )
    .map_err(|e| Stop(Exit::Internal, e))?;

    let selected = state.tests.len();
    let repeated: FastSet<String> = state
        .tests
        .iter()
        .filter(|t| t.runs > 1)
        .map(|t| t.id.clone())
        .collect();
    let universe = file_universe(&state);
    let Todo {
        tests: mut todo,
        first_runs,
        owed,
        moved,
    } = todo_for(&mut state, &earlier, opts.retries, args.resume);
    let collect_ms: FastMap<String, u64> = collection
        .as_ref()
        .map(|c| {
            c.collect_s
                .iter()
                .map(|(f, s)| (f.clone(), clock::secs(*s).as_millis() as u64))
                .collect()
        })
        .unwrap_or_default();
    let (mut launcher, item_index) = launcher_for(
        &opts,
        collection,
        &mut todo,
        &state.run_id,
        &mut fresh_records,
    );
    if args.resume {
        let again = if owed.is_empty() {
            String::new()
        } else {
            format!(", and {} run(s) of recorded tests still owed", owed.len())
        };
        eprintln!(
            "mtest: resuming run {}: {} of {} test(s) already recorded, {} to run{again}",
            state.run_id,
            selected - first_runs,
            selected,
            first_runs,
        );
    }

    let mut rec = start_recorder(
        host,
        &env,
        &durations,
        &state,
        &todo,
        Counts {
            selected,
            total: selected + fresh_records.len(),
            recorded: earlier.len(),
        },
        started,
    )?;
    rec.flush_lines();
    // A resumed `--pdb` run stops at its next failure: the earlier ones do not count (and
    // are not run again: it has no retries).
    let failed_earlier: Vec<String> = earlier
        .iter()
        .filter(|r| r.outcome.is_failure() && opts.debugger.is_empty())
        .map(|r| r.test_id.clone())
        .collect();
    rec.replay(earlier);
    rec.shard = opts.shard;
    rec.record(fresh_records);

    // Supervise.
    let mut ctx = RunContext::new(
        &pytest,
        &todo,
        universe,
        state.run_id.clone(),
        &gates.last_run(),
        opts.timeout_s,
    );
    ctx.item_index = item_index;
    ctx.gc_freeze = opts.gc_freeze;
    ctx.jobs = opts.jobs;
    ctx.session_end = clock::secs(opts.session_end_timeout_s);
    if let Some(paths) = &state.initial_paths {
        ctx.initial_paths = Some(write_initial_paths(&gates.chunks(), paths)?);
    }
    // The tests stop in time for the run's end to fit in the budget too.
    let deadline = opts
        .budget_s
        .and_then(|b| started.checked_add(budget_left(b, ending)));
    let max_fail = opts.stop_after_failures();
    // The budget, --max-fail and Ctrl-C speak to the workers through it.
    let stop = gates.chunks().join("stop");
    let _ = std::fs::remove_file(&stop);
    ctx.stop_file = Some(stop);
    if let Some(n) = max_fail {
        ctx.max_fail = Some(failure_limit(&gates.chunks(), n, &todo, &failed_earlier)?);
    }
    let costs = chunks::Costs {
        startup_ms: durations.startup_ms(),
        collect_ms: &collect_ms,
        cold: todo.iter().all(|t| !durations.tests.contains_key(&t.id)),
    };
    let fork = matches!(launcher, Launcher::Fork(_));
    let mut work = if opts.traces() {
        Work::default() // --trace: the first selected test runs on the terminal, below
    } else {
        work_for(&ctx, fork, opts.jobs, &costs, &owed)
    };
    work.failed_before = failed_earlier
        .iter()
        .filter_map(|id| ctx.index.get(id.as_str()).copied())
        .collect();
    let first_new = rec.records.len();
    let supervise_options = supervise::Options {
        jobs: opts.jobs,
        max_fail,
        first_chunk: next_chunk_id(&gates.chunks()),
        retries: opts.retries,
        rerun_crashed: opts.rerun_crashed,
        deadline,
    };
    let supervised_from = Instant::now();
    let Supervised {
        finish,
        rec,
        mut startups,
        mut versions,
    } = supervise_and_record(rec, &ctx, work, &mut launcher, &supervise_options)?;
    let (finish, mut rec) = match debug_target(&opts, &finish, &rec.records[first_new..], &ctx) {
        Some(target) => {
            let debugged = in_the_debugger(rec, &mut ctx, target, &opts.debugger, &gates)?;
            startups.extend(debugged.startups);
            versions = versions.or(debugged.versions);
            let finish = match debugged.finish {
                Finish::Broken(text) => Finish::Broken(text),
                _ => Finish::Debugged(todo[target.test].id.clone()),
            };
            (finish, debugged.rec)
        }
        None => (finish, rec),
    };
    let tests_wall = supervised_from.elapsed();
    // The run's end: from its last test, or from the deadline of a budget that ran out
    // (the tests running then finish first).
    let tests_ended = Instant::now();
    let end_from = deadline.filter(|d| *d < tests_ended).unwrap_or(tests_ended);
    rec.progress.clear();
    for chunk in rec.junit.pending() {
        if let Err(e) = rec.junit.finish(chunk) {
            rec.progress.line(&format!("warning: {e}"));
        }
    }
    if let Err(e) = rec.junit.end() {
        rec.progress.line(&format!("warning: {e}"));
    }

    // Store: history, quarantine, state.
    rec.enricher.release_history();
    let repeated: FastSet<&str> = repeated.iter().map(String::as_str).collect();
    learn(
        Arc::make_mut(&mut durations),
        &rec.records[first_new..],
        &repeated,
        &startups,
    );
    if finish == Finish::Completed {
        Arc::make_mut(&mut durations).note_throughput(
            &rec.records[first_new..],
            tests_wall,
            opts.jobs,
        );
    }
    let mut notes = state.notes.clone();
    // Writes of the store that failed (a full disk, permissions): the run ends with exit 3
    // and one line saying so, never quietly.
    let mut store_errors: Vec<String> = rec.write_error.iter().cloned().collect();
    let status = match finish {
        Finish::Interrupted | Finish::Debugged(_) => Status::Interrupted,
        _ => Status::Complete,
    };
    if let Finish::OutOfBudget { not_run } = finish {
        notes.push(format!(
            "the --budget ran out: {not_run} selected test(s) did not run"
        ));
    }
    // The quarantine policy learns from a whole, complete run only.
    let consult = if let Some(shard) = opts.shard {
        notes.push(format!(
            "shard {shard}: quarantine is decided for the whole run by `mtest merge`"
        ));
        false
    } else if status != Status::Complete {
        false
    } else if let Some(why) = broken_run(&finish, &rec.progress.stats) {
        notes.push(why);
        false
    } else {
        true
    };
    let policy = consult.then_some(PolicyInput {
        host,
        root,
        project,
        records: &rec.records,
    });
    let (failed_writes, decided) = write_history(&gates, &durations, policy, &mut quarantine);
    store_errors.extend(failed_writes);
    match decided {
        Some(Ok(changes)) => notes.extend(changes),
        Some(Err(e)) => rec.progress.line(&format!("warning: {e}")),
        None => {}
    }

    end_executor(
        &mut launcher,
        &pytest,
        &gates,
        &mut rec,
        opts.session_end_timeout_s,
    );
    // After the zygote's session end: pytest's own `lastfailed`, as plain pytest leaves it.
    if let Some(dir) = &state.pytest_cache {
        if let Err(e) = crate::pytest::lastfailed::write(Path::new(dir), &rec.records) {
            rec.progress.line(&format!("warning: pytest's cache: {e}"));
        }
    }
    // One set of counts (RunStats): each test once, by its last attempt; a flaky pass
    // counts as a failure with --flaky-fails, or when the test was repeated.
    let stats = &rec.progress.stats;
    let failures = stats.run_failures(opts.flaky_fails, &repeated);
    notes.extend(flakiness_notes(stats, &repeated, opts.flaky_fails));
    let exit_for = |store_errors: &[String]| match &finish {
        Finish::Interrupted => Exit::Interrupted,
        Finish::Broken(_) => Exit::PytestBroken,
        _ if !store_errors.is_empty() => Exit::Internal,
        _ if failures > 0 => Exit::Failures,
        _ => Exit::Ok,
    };
    if moved {
        // The plan as it was selected (a fresh run collected it: no test was dropped).
        drop(ctx);
        state.tests = todo;
    }
    let final_state = RunState {
        status,
        updated_at: clock::now(),
        exit_code: Some(exit_for(&store_errors).code()),
        ending_s: Some(end_from.elapsed().as_secs_f64()),
        ..state
    };
    if let Err(e) = state::write(&gates.state(), &final_state) {
        store_errors.push(e);
    }
    let exit = exit_for(&store_errors);
    let summary = reporters::run_summary(
        final_state.run_id.clone(),
        rec.progress.elapsed().as_secs_f64(),
        &rec.progress.stats,
        exit.code(),
        notes.clone(),
    );
    rec.reporters.end(summary);
    rec.flush_lines();

    print_summary(&Ending {
        finish: &finish,
        store_errors: &store_errors,
        progress: &rec.progress,
        state: &final_state,
        notes: &notes,
        versions,
        root,
        gates: &gates,
        max_fail,
    });
    Ok(exit)
}

/// What the run says of flaky tests: a repeated test's pass rate, and how many others
/// failed, then passed on a retry.
fn flakiness_notes(stats: &RunStats, repeated: &FastSet<&str>, flaky_fails: bool) -> Vec<String> {
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

/// The files a run's chunks may name: every collected file, and every selected test's.
fn file_universe(state: &RunState) -> BTreeSet<String> {
    let mut universe: BTreeSet<String> = state.collected_files.iter().cloned().collect();
    // Tests come file by file: a file is copied once, not once a test.
    universe.extend(
        state
            .tests
            .chunk_by(|a, b| a.file == b.file)
            .map(|run| run[0].file.clone()),
    );
    universe
}

/// What this invocation runs.
struct Todo {
    /// First runs, then the attempts owed (a resumed run's).
    tests: Vec<PlannedTest>,
    first_runs: usize,
    /// An owed test's id → the attempt it runs as.
    owed: FastMap<String, u32>,
    /// The plan moved out of the state into `tests` (a fresh run): it goes back at the end.
    moved: bool,
}

/// A fresh run's work is its whole plan: the tests move into it, and back into the state
/// at the end (100k of them are ~20 MB, not to be held twice). A resumed run works on
/// those not yet recorded (and may drop some its collection no longer has), then on the
/// attempts its recorded tests are still owed (a failure's retry, the next run of a
/// repeated test).
fn todo_for(state: &mut RunState, earlier: &[TestRecord], retries: u32, resume: bool) -> Todo {
    let owed = owed_attempts(&state.tests, earlier, retries);
    let moved = !resume;
    let mut tests: Vec<PlannedTest> = if moved {
        std::mem::take(&mut state.tests)
    } else {
        let recorded: FastSet<&str> = earlier.iter().map(|r| r.test_id.as_str()).collect();
        state
            .tests
            .iter()
            .filter(|t| !recorded.contains(t.id.as_str()))
            .cloned()
            .collect()
    };
    let first_runs = tests.len();
    tests.extend(owed.iter().map(|(t, _)| t.clone()));
    Todo {
        tests,
        first_runs,
        owed: owed.into_iter().map(|(t, a)| (t.id, a)).collect(),
        moved,
    }
}

/// What the console counts toward.
struct Counts {
    /// The run's selected tests.
    selected: usize,
    /// Records the run will have: the selected tests and the modules that failed to collect.
    total: usize,
    /// Of those, the ones an earlier invocation made (`--resume`).
    recorded: usize,
}

/// Opens `run.jsonl` and starts the reporters, the failure bundles' enricher and the
/// console for a run. `host` comes apart from `env`: the recorder outlives `env`'s borrow
/// of the history, which the run's end updates.
fn start_recorder<'h>(
    host: &'h PluginHost,
    env: &Env,
    durations: &Arc<Durations>,
    state: &RunState,
    todo: &[PlannedTest],
    counts: Counts,
    started: Instant,
) -> Result<Recorder<'h>> {
    let (gates, opts) = (env.gates, &state.options);
    let log = run_log::RunLog::open(&gates.run_log()).map_err(|e| Stop(Exit::Internal, e))?;
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
    let enricher = Enricher::new(
        host,
        Path::new(&opts.python),
        env.root,
        Arc::clone(durations),
        &env.project.mtest.probes,
    );
    let plan = Plan {
        estimate_ms: todo.iter().map(|t| u64::from(t.estimate_ms)).sum(),
        with_history: durations
            .histories(todo.iter().map(|t| t.id.as_str()))
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
            progress::use_color(env.args.color),
        ),
        enricher,
        Junit::new(&gates.last_run(), opts.retries),
    ))
}

/// What the supervision loop and the recorder leave when the run is over.
struct Supervised<'h> {
    finish: Finish,
    rec: Recorder<'h>,
    /// Each worker's start-up (spawn to first test), for the history.
    startups: Vec<Duration>,
    /// (Python, pytest) versions, as the first worker reported them.
    versions: Option<(String, String)>,
}

/// Runs the supervision loop; records go to the store, the reporters (and the probes of
/// failure bundles) and the console on a thread of their own: a slow reporter or probe
/// never delays a watchdog or the budget check.
fn supervise_and_record<'h>(
    mut rec: Recorder<'h>,
    ctx: &RunContext,
    work: Work,
    launcher: &mut Launcher,
    options: &supervise::Options,
) -> Result<Supervised<'h>> {
    let (finish, recorded) = std::thread::scope(|scope| {
        // One message a loop turn (the events up to its `Tick`): a wake-up of this thread
        // per record cost more than recording it.
        let (tx, rx) = std::sync::mpsc::channel::<Vec<RunEvent>>();
        let recorder = scope.spawn(move || {
            let mut startups = Vec::new();
            let mut versions = None;
            let mut records = Vec::new();
            for message in rx.into_iter().flatten() {
                if let RunEvent::Record(r) = message {
                    records.push(*r);
                    continue;
                }
                // What a turn recorded is stored in one write, before what follows it.
                if !records.is_empty() {
                    rec.record(std::mem::take(&mut records));
                }
                match message {
                    RunEvent::Record(_) => {}
                    RunEvent::Warning(w) => rec.progress.line(&format!("warning: {w}")),
                    RunEvent::ChunkEnded {
                        chunk,
                        startup,
                        versions: v,
                    } => {
                        if let Err(e) = rec.junit.finish(chunk) {
                            rec.progress.line(&format!("warning: {e}"));
                            rec.write_error.get_or_insert(e);
                        }
                        startups.extend(startup);
                        if versions.is_none() {
                            versions = v;
                        }
                    }
                    RunEvent::Tick {
                        running,
                        done_estimate_ms,
                        ..
                    } => {
                        rec.reporters.flush_if_due();
                        rec.flush_lines();
                        rec.progress.tick(running, done_estimate_ms)
                    }
                }
            }
            if !records.is_empty() {
                rec.record(records);
            }
            (rec, startups, versions)
        });
        let mut turn = Vec::new();
        let finish = supervise::run(ctx, work, launcher, options, &mut |event| {
            let turn_ends = matches!(event, RunEvent::Tick { .. });
            turn.push(event);
            if turn_ends {
                // The recorder ends only when this sender is dropped: a send cannot
                // fail before then. The next turn is likely as big as this one.
                let next = Vec::with_capacity(turn.len());
                let _ = tx.send(std::mem::replace(&mut turn, next));
            }
        });
        let _ = tx.send(turn);
        // No more forks: the zygote ends its session while the recorder catches up.
        if let Launcher::Fork(zygote) = launcher {
            zygote.ask_quit();
        }
        drop(tx);
        (finish, recorder.join())
    });
    match recorded {
        Ok((rec, startups, versions)) => Ok(Supervised {
            finish,
            rec,
            startups,
            versions,
        }),
        Err(_) => Err(Stop(
            Exit::Internal,
            "the recorder thread panicked; .gates/last-run/run.jsonl holds what was recorded"
                .into(),
        )),
    }
}

/// The test to run again under pytest's debugger, and as which attempt.
#[derive(Clone, Copy)]
struct DebugTarget {
    test: usize,
    attempt: u32,
    /// It failed in this run already (`--pdb`): a pass now is flaky.
    failed: bool,
}

/// `--pdb`: the run's first failing test (quarantined ones aside); `--trace`: the first
/// selected test. None without a debugger flag, or when the run was interrupted or broken.
fn debug_target(
    opts: &RunOptions,
    finish: &Finish,
    new: &[Attempt],
    ctx: &RunContext,
) -> Option<DebugTarget> {
    if opts.debugger.is_empty() || matches!(finish, Finish::Interrupted | Finish::Broken(_)) {
        return None;
    }
    if opts.traces() {
        return (!ctx.tests.is_empty()).then_some(DebugTarget {
            test: 0,
            attempt: 1,
            failed: false,
        });
    }
    let failing = new
        .iter()
        .filter(|a| a.outcome.is_failure())
        .filter_map(|a| ctx.index.get(a.test_id.as_str()).copied())
        .find(|&t| !ctx.tests[t].quarantined)?;
    let id = ctx.tests[failing].id.as_str();
    Some(DebugTarget {
        test: failing,
        attempt: new.iter().filter(|a| a.test_id == id).count() as u32 + 1,
        failed: true,
    })
}

/// Runs a test again alone on the terminal, in the foreground, with pytest's debugger
/// flags, and records it like any other attempt; the run stops there.
fn in_the_debugger<'h>(
    mut rec: Recorder<'h>,
    ctx: &mut RunContext,
    target: DebugTarget,
    debugger: &[String],
    gates: &Gates,
) -> Result<Supervised<'h>> {
    let id = &ctx.tests[target.test].id;
    let why = if target.failed {
        "failed"
    } else {
        "is the first selected test"
    };
    rec.progress.line(&format!(
        "mtest: {id} {why}: running it again alone on this terminal, under pytest's {}",
        debugger.join(" ")
    ));
    rec.flush_lines();
    rec.progress.hold();
    if let Some(stop) = ctx.stop_file.take() {
        let _ = std::fs::remove_file(stop);
    }
    ctx.max_fail = None;
    ctx.foreground = Some(debugger.to_vec());
    let mut job = Job::first(ctx, vec![target.test]);
    job.attempt = target.attempt;
    let work = Work {
        jobs: vec![job],
        pool: Vec::new(),
        failed_before: if target.failed {
            vec![target.test]
        } else {
            Vec::new()
        },
    };
    let options = supervise::Options {
        jobs: 1,
        max_fail: None,
        first_chunk: next_chunk_id(&gates.chunks()),
        retries: 0,
        rerun_crashed: false,
        deadline: None,
    };
    supervise_and_record(rec, ctx, work, &mut Launcher::Process, &options)
}

/// --max-fail for the workers: every worker appends each of its failing tests to one file
/// and stops once it holds `n` tests; the failures of quarantined tests (forgiven) do not
/// count. Tests that failed in an earlier invocation of a resumed run count already.
fn failure_limit(
    chunks: &Path,
    n: u32,
    todo: &[PlannedTest],
    failed_earlier: &[String],
) -> Result<chunk_run::FailureLimit> {
    let io = |p: &Path, e: std::io::Error| {
        Stop(Exit::Internal, format!("cannot write {}: {e}", p.display()))
    };
    std::fs::create_dir_all(chunks).map_err(|e| io(chunks, e))?;
    // A line each, each ended: the workers append theirs after these.
    let lines =
        |ids: &mut dyn Iterator<Item = &str>| ids.map(|id| format!("{id}\n")).collect::<String>();
    let failing = chunks.join("failing");
    std::fs::write(
        &failing,
        lines(&mut failed_earlier.iter().map(String::as_str)),
    )
    .map_err(|e| io(&failing, e))?;
    let forgiven = chunks.join("forgiven");
    let quarantined = todo.iter().filter(|t| t.quarantined);
    std::fs::write(&forgiven, lines(&mut quarantined.map(|t| t.id.as_str())))
        .map_err(|e| io(&forgiven, e))?;
    Ok(chunk_run::FailureLimit {
        tests: n,
        failing,
        forgiven,
    })
}

/// The collection's initial paths, one a line, for process-mode chunks (any chunk may be
/// one: fork mode falls back to process mode when its zygote dies).
fn write_initial_paths(chunks: &Path, paths: &[String]) -> Result<std::path::PathBuf> {
    let file = chunks.join("initpaths");
    let mut text = paths.join("\n");
    text.push('\n');
    std::fs::create_dir_all(chunks)
        .and_then(|()| std::fs::write(&file, text))
        .map_err(|e| {
            Stop(
                Exit::Internal,
                format!("cannot write {}: {e}", file.display()),
            )
        })?;
    Ok(file)
}

/// Adds this invocation's attempts to the history: one entry per test (a flaky test
/// counts as failing), every run of a repeated test (so its flakiness reaches the
/// quarantine policy); and the workers' start-ups.
fn learn(
    history: &mut Durations,
    this_run: &[Attempt],
    repeated: &FastSet<&str>,
    startups: &[Duration],
) {
    let mut folded: Vec<&Attempt> = per_test(this_run, true)
        .into_iter()
        .filter(|a| !repeated.contains(a.test_id.as_str()))
        .collect();
    folded.extend(
        this_run
            .iter()
            .filter(|a| repeated.contains(a.test_id.as_str())),
    );
    history.update(folded);
    history.note_startup(startups);
}

/// What the quarantine policy decides from.
struct PolicyInput<'a> {
    host: &'a PluginHost,
    root: &'a Path,
    project: &'a ProjectConfig,
    /// Every attempt of the run.
    records: &'a [Attempt],
}

/// Writes `durations.json` while the quarantine policy, when there is one to ask, decides
/// (both only read the history: ~0.1 s each at 64k tests), then `quarantine.json`.
/// Returns the writes that failed and what the policy changed, or why it could not say.
fn write_history(
    gates: &Gates,
    durations: &Durations,
    policy: Option<PolicyInput>,
    quarantine: &mut Quarantine,
) -> (
    Vec<String>,
    Option<std::result::Result<Vec<String>, String>>,
) {
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| store::atomic_write_json(&gates.durations(), durations));
        let mut quarantine_written = Ok(());
        let decided = policy.map(|p| {
            let decided =
                quarantine::apply(p.host, p.root, p.project, p.records, durations, quarantine);
            quarantine_written = store::atomic_write_json(&gates.quarantine(), &*quarantine);
            decided
        });
        let durations_written = writer.join().unwrap_or_else(|_| {
            Err(format!(
                "cannot write {}: the writer failed",
                gates.durations().display()
            ))
        });
        let failed = [durations_written, quarantine_written]
            .into_iter()
            .filter_map(std::result::Result::err)
            .collect();
        (failed, decided)
    })
}

/// The run's work. Fork mode: tests that crashed last time first, each alone; the rest
/// a pool handed out in batches, files kept together in the order of their first
/// selected test. Process mode: every planned chunk. Then the attempts a resumed run
/// owes (told apart by id: `launcher_for` may have dropped tests not collected any more).
fn work_for(
    ctx: &RunContext,
    fork: bool,
    jobs: u32,
    costs: &chunks::Costs,
    owed: &FastMap<String, u32>,
) -> Work {
    let todo = ctx.tests;
    let (owed_tests, order): (Vec<usize>, Vec<usize>) =
        (0..todo.len()).partition(|&i| owed.contains_key(&todo[i].id));
    let mut work = if fork {
        let (alone, rest): (Vec<usize>, Vec<usize>) = order.iter().partition(|&&i| todo[i].isolate);
        Work {
            jobs: alone
                .into_iter()
                .map(|i| Job::first(ctx, vec![i]))
                .collect(),
            pool: chunks::by_file(todo, &rest),
            failed_before: Vec::new(),
        }
    } else {
        Work {
            jobs: chunks::plan(todo, &order, jobs, costs)
                .into_iter()
                .map(|tests| Job::first(ctx, tests))
                .collect(),
            pool: Vec::new(),
            failed_before: Vec::new(),
        }
    };
    for i in owed_tests {
        let mut job = Job::first(ctx, vec![i]);
        job.attempt = owed[&todo[i].id];
        work.jobs.push(job);
    }
    work
}

/// pytest's own session end in the zygote, asked for when the last worker ended: plugins
/// finish (pytest-cov combines the workers' coverage data there, as under xdist); in
/// process mode, the chunks' coverage data combined.
fn end_executor(
    launcher: &mut Launcher,
    pytest: &Pytest,
    gates: &Gates,
    rec: &mut Recorder,
    limit_s: f64,
) {
    if let Launcher::Fork(zygote) = launcher {
        let limit = clock::secs(limit_s);
        let how = zygote.quit(limit, || {
            rec.progress.line(&format!(
                "waiting for pytest's session end (its sessionfinish hooks and exit handlers; killed after {}, session-end-timeout)",
                clock::human(limit)
            ))
        });
        for notice in zygote.notices.drain(..) {
            rec.progress.line(&format!("warning: {notice}"));
        }
        if how.starts_with("killed") {
            rec.progress
                .line(&format!("warning: the zygote's session end was {how}"));
        }
        if let Some(report) = coverage_report(&zygote.log) {
            eprintln!("{report}");
        }
    }
    if matches!(launcher, Launcher::Process) && pytest.coverage {
        match crate::pytest::combine_coverage(pytest, &gates.chunks()) {
            Ok(report) => eprintln!("{report}"),
            Err(e) => rec.progress.line(&format!("warning: coverage: {e}")),
        }
    }
}

/// How the run ended, for the console.
struct Ending<'a> {
    finish: &'a Finish,
    store_errors: &'a [String],
    progress: &'a Progress,
    state: &'a RunState,
    notes: &'a [String],
    versions: Option<(String, String)>,
    root: &'a Path,
    gates: &'a Gates,
    max_fail: Option<u32>,
}

/// The run's last lines on the console: errors, the counts, notes, where things are.
fn print_summary(e: &Ending) {
    if let Finish::Broken(text) = e.finish {
        eprintln!("error: {text}");
    }
    if let Some(first) = e.store_errors.first() {
        eprintln!(
            "error: the store could not be written ({} write(s) failed; first: {first}); the outcomes above stand, but .gates/ is incomplete: free space or fix permissions and run again",
            e.store_errors.len()
        );
    }
    let stats = &e.progress.stats;
    let quarantined_failures = stats.quarantined_failing();
    eprintln!(
        "mtest: {} (run {}{})",
        e.progress.counts_line(),
        e.state.run_id,
        e.state
            .options
            .shard
            .map(|s| format!(", shard {s}"))
            .unwrap_or_default()
    );
    for note in e.notes {
        eprintln!("  {note}");
    }
    if quarantined_failures > 0 {
        eprintln!("  {quarantined_failures} failure(s) of quarantined tests do not fail the run");
    }
    if let Some((python, pytest)) = &e.versions {
        eprintln!(
            "  Python {python}, pytest {pytest}, -j {}",
            e.state.options.jobs
        );
    }
    let rel = |p: &Path| p.strip_prefix(e.root).unwrap_or(p).display().to_string();
    eprintln!(
        "  records: {}   summary: {}",
        rel(&e.gates.run_log()),
        rel(&e.gates.last_run().join("summary.md"))
    );
    if stats.failing() + quarantined_failures > 0 {
        eprintln!(
            "  failure bundles: {}/",
            rel(&e.gates.last_run().join("failures"))
        );
    }
    match e.finish {
        Finish::Interrupted => eprintln!(
            "  interrupted: run `mtest --resume` to run the {} test(s) not yet recorded",
            e.state.tests.len().saturating_sub(stats.tests())
        ),
        Finish::Debugged(test) => match e.state.tests.len().saturating_sub(stats.tests()) {
            0 => eprintln!("  stopped at {test} for pytest's debugger"),
            left => eprintln!(
                "  stopped at {test} for pytest's debugger: run `mtest --resume` to run the {left} test(s) not yet recorded"
            ),
        },
        Finish::FailedFast { not_run } => eprintln!(
            "  stopped early (--max-fail {}) after {} failing test(s): {not_run} selected test(s) did not run",
            e.max_fail.unwrap_or(1),
            stats.failing(),
        ),
        _ => {}
    }
}

/// Why the quarantine policy must not learn from this run, if it must not: pytest could
/// not run, or most of its tests failed.
fn broken_run(finish: &Finish, stats: &RunStats) -> Option<String> {
    if matches!(finish, Finish::Broken(_)) {
        return Some("quarantine not consulted: pytest could not run".into());
    }
    stats.mostly_failing()
}

/// One record per test: with `first_failure`, the first failing attempt if any (for the
/// history: a flaky test failed this run), else the last attempt (what the run ends with).
fn per_test(records: &[Attempt], first_failure: bool) -> Vec<&Attempt> {
    let mut order: Vec<&str> = Vec::new();
    let mut chosen: FastMap<&str, &Attempt> = FastMap::default();
    for r in records {
        match chosen.get(r.test_id.as_str()) {
            None => {
                order.push(&r.test_id);
                chosen.insert(&r.test_id, r);
            }
            Some(prev) if first_failure && prev.outcome.is_failure() => {}
            Some(_) => {
                chosen.insert(&r.test_id, r);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| chosen.get(id).copied())
        .collect()
}

/// What collection and selection decided, before anything is written.
struct Planned {
    collection: Collection,
    selected: selection::Selected,
    notes: Vec<String>,
}

/// Collects with the zygote (into `.gates/collect/`); in fork mode the zygote stays, ready
/// to fork.
fn start_collection(gates: &Gates, root: &Path, opts: &RunOptions) -> Result<Collection> {
    let pytest = Pytest::new(
        opts.python.clone().into(),
        root.to_path_buf(),
        opts.pytest_args.clone(),
    )
    .map_err(|e| Stop(Exit::Internal, e))?;
    let mut selection_args = vec![format!("--timeout={}", opts.timeout_s)];
    if let Some(k) = &opts.keyword {
        selection_args.extend(["-k".to_string(), k.clone()]);
    }
    if let Some(m) = &opts.markexpr {
        selection_args.extend(["-m".to_string(), m.clone()]);
    }
    selection_args.extend(opts.paths.iter().cloned());
    let work = gates.dir.join("collect");
    std::fs::create_dir_all(&work).map_err(|e| {
        Stop(
            Exit::Internal,
            format!("cannot create {}: {e}", work.display()),
        )
    })?;
    let mode = match opts.isolation {
        Isolation::Fork => Mode::Fork,
        Isolation::Process => Mode::Collect,
    };
    let limits = CollectLimits {
        quiet: clock::secs(opts.collect_timeout_s),
        session_end: clock::secs(opts.session_end_timeout_s),
    };
    // The zygote must outlive this function in fork mode: it is the run's pytest. It is
    // spawned on this thread, which lives as long as the run (PDEATHSIG).
    match collect::collect(&pytest, &selection_args, &work, mode, &limits) {
        Ok(c) => Ok(c),
        Err(CollectFailure::Broken(text)) => Err(Stop(Exit::PytestBroken, text)),
        Err(CollectFailure::Io(text)) => Err(usage(text)),
        Err(CollectFailure::Refused(text)) => Err(usage(text)),
        Err(CollectFailure::Interrupted) => Err(Stop(
            Exit::Interrupted,
            "interrupted while collecting; nothing ran".into(),
        )),
    }
}

/// Fork mode's launcher, with each test's index among the zygote's items; a selected
/// test the zygote did not collect (it changed since the run began) gets an `error`
/// record. Without a zygote: process mode.
fn launcher_for(
    opts: &RunOptions,
    collection: Option<Collection>,
    todo: &mut Vec<PlannedTest>,
    run_id: &str,
    records: &mut Vec<TestRecord>,
) -> (Launcher, Vec<u32>) {
    let Some(mut collection) = collection else {
        return (Launcher::Process, Vec::new());
    };
    for warning in collection.warnings.drain(..) {
        eprintln!("warning: {warning}");
    }
    if let Some(why) = &collection.no_fork {
        eprintln!(
            "mtest: process mode: the zygote cannot fork safely ({why}); pass --isolation process to say so"
        );
    }
    let Some(zygote) = collection.zygote.take() else {
        return (Launcher::Process, Vec::new());
    };
    debug_assert_eq!(opts.isolation, Isolation::Fork);
    let index: FastMap<&str, u32> = collection
        .collected
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.id.as_str(), i as u32))
        .collect();
    let mut kept = Vec::with_capacity(todo.len());
    let mut item_index = Vec::with_capacity(todo.len());
    for t in todo.drain(..) {
        match index.get(t.id.as_str()) {
            Some(&i) => {
                item_index.push(i);
                kept.push(t);
            }
            None => {
                let mut r = collection_error_record(
                    run_id,
                    &collection.collected,
                    &t.id,
                    "this test was selected when the run began but is not collected any more",
                );
                r.message = Some("selected but not collected any more (did it change?)".into());
                r.file = t.file.clone();
                records.push(r);
            }
        }
    }
    *todo = kept;
    (Launcher::Fork(Box::new(zygote)), item_index)
}

/// pytest-cov's report from the zygote's output (its session end prints it there).
fn coverage_report(log: &Path) -> Option<String> {
    let text = collect::tail_of(log, 400);
    let start = text
        .lines()
        .position(|l| l.contains("coverage:") && l.starts_with(['-', '=', '_']))?;
    let lines: Vec<&str> = text
        .lines()
        .skip(start)
        .take_while(|l| !(l.starts_with('=') && (l.contains(" in ") || l.contains("no tests ran"))))
        .collect();
    Some(lines.join("\n").trim_end().to_string())
}

/// What is left of a `--budget` of `budget_s` once `spent` is: collection is serial, and
/// already spent when the selection plans.
fn budget_left(budget_s: f64, spent: Duration) -> Duration {
    clock::secs((budget_s - spent.as_secs_f64()).max(0.0))
}

/// What the selection may plan with of the budget `left`: less a twentieth for what
/// follows the last test (pytest's session end, the store), at least a millisecond.
fn budget_left_ms(left: Duration) -> u64 {
    ((left.as_secs_f64() * 0.95 * 1000.0) as u64).max(1)
}

/// Asks the selection plugin about a collection; writes nothing.
fn plan_selection(env: &Env, opts: &RunOptions, collection: Collection) -> Result<Planned> {
    let collected = &collection.collected;

    let selector_spec = env
        .args
        .selector
        .clone()
        .or_else(|| env.project.mtest.selector.clone())
        .unwrap_or_else(|| builtins::DEFAULT_SELECTOR.to_string());
    let selector =
        discovery::resolve(env.host, env.root, &selector_spec, Source::Config).map_err(usage)?;
    let fallback = match selector.source {
        Source::Builtin => None,
        _ => builtins::load(env.host, builtins::DEFAULT_SELECTOR).and_then(|r| r.ok()),
    };
    // --lf: only the tests whose latest outcome in the history is a failure (all when
    // none is, as pytest does).
    let failed_last = |id: &str| {
        env.durations
            .tests
            .get(id)
            .and_then(|h| h.outcomes.last())
            .is_some_and(|o| o.is_failure())
    };
    let mut notes = Vec::new();
    let last_failed: Vec<Item>;
    // Index among the items the plugin sees → index among the collected items.
    let mut positions: Option<Vec<usize>> = None;
    let items: &[Item] = if opts.last_failed {
        let kept: Vec<usize> = (0..collected.items.len())
            .filter(|&i| failed_last(&collected.items[i].id))
            .collect();
        last_failed = kept.iter().map(|&i| collected.items[i].clone()).collect();
        if last_failed.is_empty() {
            notes.push("--lf: no test failed last time: running all".to_string());
            &collected.items
        } else {
            positions = Some(kept);
            notes.push(format!(
                "--lf: {} test(s) that failed last time",
                last_failed.len()
            ));
            &last_failed
        }
    } else {
        &collected.items
    };
    let budget_ms = opts.budget_s.map(|s| {
        let spent = env.started.elapsed();
        let left = budget_left(s, spent + env.ending);
        let share = env
            .durations
            .throughput
            .map(|t| {
                format!(
                    ", at the last run's pace (its tests filled {:.0}% of the workers' time)",
                    t * 100.0
                )
            })
            .unwrap_or_default();
        notes.push(format!(
            "--budget {}: collection took {}, the run's end is given {} (the last run's), the tests are planned in the {} left{share}",
            clock::human(clock::secs(s)),
            clock::human(spent),
            clock::human(env.ending),
            clock::human(left)
        ));
        env.durations.usable_ms(budget_left_ms(left))
    });
    let inputs = selection::Inputs {
        items,
        durations: env.durations,
        quarantine: env.quarantine,
        tiers: opts.tiers,
        budget_ms,
        workers: opts.jobs,
        startup_ms: env.durations.startup_ms(),
        chunk_size: 300,
        shard: opts.shard,
    };
    let mut selected = selection::select(env.host, &selector, fallback.as_ref(), &inputs)
        .map_err(|e| Stop(Exit::Internal, e))?;
    if let Some(positions) = &positions {
        for (i, _) in selected.excluded.iter_mut() {
            *i = positions.get(*i).copied().unwrap_or(*i);
        }
    }
    if opts.failed_first {
        // Stable: the selection's order within each part.
        let (mut first, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut selected.tests)
            .into_iter()
            .partition(|t| failed_last(&t.id));
        notes.push(format!(
            "--ff: {} test(s) that failed last time first",
            first.len()
        ));
        first.extend(rest);
        selected.tests = first;
    }
    // --repeat and new-test-repeats: how many times each test runs.
    let mut new_repeated = 0;
    for t in &mut selected.tests {
        t.runs = opts.repeat.max(1);
        if opts.new_test_repeats > t.runs && !env.durations.tests.contains_key(&t.id) {
            t.runs = opts.new_test_repeats;
            new_repeated += 1;
        }
    }
    if opts.repeat > 1 {
        notes.push(format!(
            "--repeat {}: every test runs {} times, each time in a fresh worker",
            opts.repeat, opts.repeat
        ));
    }
    if new_repeated > 0 {
        notes.push(format!(
            "new-test-repeats: {new_repeated} new test(s) run {} times",
            opts.new_test_repeats
        ));
    }
    notes.extend(selected.notes.iter().cloned());
    if selector.source != Source::Builtin {
        notes.push(format!("selection by {}", selector.label()));
    }
    if let Some(fb) = &selected.fallback {
        eprintln!("warning: {fb}");
        notes.push(fb.clone());
    }
    if selected.left_out_by_tier > 0 {
        notes.push(format!(
            "{} test(s) not in the selected tiers",
            selected.left_out_by_tier
        ));
    }
    Ok(Planned {
        collection,
        selected,
        notes,
    })
}

fn nothing_selected(collected: &Collected, opts: &RunOptions) -> Stop {
    Stop(
        Exit::NothingSelected,
        format!(
            "nothing selected: {} test(s) collected, none left after tiers{}{}",
            collected.items.len(),
            if opts.budget_s.is_some() {
                " and budget"
            } else {
                ""
            },
            if opts.keyword.is_some() || opts.markexpr.is_some() {
                " (-k/-m applied when collecting)"
            } else {
                ""
            }
        ),
    )
}

/// Collects, selects, and writes the new run's state. Returns the state, the records of
/// modules that failed to collect, and the collection (with the zygote in fork mode).
fn fresh_state(
    env: &Env,
    opts: RunOptions,
    collection: Collection,
) -> Result<(RunState, Vec<TestRecord>, Collection)> {
    let Planned {
        collection,
        selected,
        notes,
    } = plan_selection(env, &opts, collection)?;
    let collected = &collection.collected;
    let run_id = new_run_id();
    // Every shard collects every module; a module's collection error (or skip) is
    // recorded by one of them (merged runs have it once).
    let ours = |id: &str| {
        opts.shard
            .is_none_or(|s| crate::shard::key(id) % u64::from(s.count) == u64::from(s.index - 1))
    };
    let mut errors: Vec<TestRecord> = collected
        .errors
        .iter()
        .filter(|e| ours(&e.id))
        .map(|e| {
            let mut r = collection_error_record(&run_id, collected, &e.id, &e.text);
            if let Some(m) = &e.message {
                r.message = Some(m.clone());
            }
            r
        })
        .collect();
    errors.extend(
        collected
            .skipped
            .iter()
            .filter(|(id, _)| ours(id))
            .map(|(id, reason)| collection_skip_record(&run_id, id, reason.as_deref())),
    );
    // A shard may have nothing to do (more shards than tests); it still runs, empty, so
    // that `mtest merge` finds every shard.
    let empty_shard = selected.shard_plan.as_ref().is_some_and(|p| p.eligible > 0);
    if selected.tests.is_empty() && errors.is_empty() && !empty_shard {
        return Err(nothing_selected(collected, &opts));
    }
    env.gates
        .rotate_last_run()
        .map_err(|e| Stop(Exit::Internal, e))?;
    let now = clock::now();
    let mut opts = opts;
    if opts.stop_after_failures().is_none() {
        // pytest's own -x / --maxfail counts failing tests over the whole run, as mtest's.
        opts.max_fail = collected.pytest_maxfail;
    }
    let state = RunState {
        schema_version: STATE_SCHEMA,
        run_id,
        status: Status::Running,
        started_at: env.started_at.clone(),
        updated_at: now,
        command: command_line(),
        options: opts,
        notes,
        tests: selected.tests,
        collected_files: collected
            .items
            .iter()
            .map(|i| i.file.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        initial_paths: collected.initial_paths.clone(),
        pytest_cache: collected.cache_dir.clone(),
        shard_plan: selected.shard_plan,
        exit_code: None,
        ending_s: None,
    };
    state::write_start(&env.gates.state(), &state).map_err(|e| Stop(Exit::Internal, e))?;
    Ok((state, errors, collection))
}

/// How `xdist_group`s are placed, one line each, for `--explain-selection`.
fn group_placement(tests: &[PlannedTest]) -> Vec<String> {
    let mut groups: std::collections::BTreeMap<&str, usize> = Default::default();
    for t in tests {
        if let Some(g) = &t.group {
            *groups.entry(g).or_default() += 1;
        }
    }
    groups
        .into_iter()
        .map(|(g, n)| {
            format!(
                "xdist_group {g}: its {n} test(s) run on one worker, in the order they were collected, one after another (as pytest-xdist's --dist loadgroup)"
            )
        })
        .collect()
}

/// `--explain-selection`: what would run, in order, and why the rest would not.
fn explain(env: &Env) -> Result<Exit> {
    let opts = options(env.args, env.root, env.project)?;
    let collection = start_collection(env.gates, env.root, &opts)?;
    let Planned {
        collection,
        selected,
        notes,
    } = plan_selection(env, &opts, collection)?;
    let collected = &collection.collected;
    let ms = |ms: u32| clock::human(std::time::Duration::from_millis(ms as u64));
    let total: u64 = selected.tests.iter().map(|t| t.estimate_ms as u64).sum();
    println!(
        "would run {} of {} collected test(s), estimated {} of test time, in this order:",
        selected.tests.len(),
        collected.items.len(),
        clock::human(std::time::Duration::from_millis(total))
    );
    for (n, t) in selected.tests.iter().enumerate() {
        let why = if t.tier == 0 {
            "tier 0"
        } else if env
            .durations
            .tests
            .get(&t.id)
            .is_some_and(|h| h.failure_score > 0.05 || h.recent_failures() > 0)
        {
            "recently failing"
        } else {
            ""
        };
        let q = if t.quarantined { " [quarantined]" } else { "" };
        let g = t
            .group
            .as_ref()
            .map(|g| format!(" [xdist_group {g}]"))
            .unwrap_or_default();
        println!(
            "{:>6}. tier {}  ~{:>7}  {}{q}{g}{}",
            n + 1,
            t.tier,
            ms(t.estimate_ms),
            t.id,
            if why.is_empty() {
                String::new()
            } else {
                format!("  ({why})")
            }
        );
    }
    for line in group_placement(&selected.tests) {
        println!("{line}");
    }
    let (other_shards, excluded): (Vec<_>, Vec<_>) = selected
        .excluded
        .iter()
        .partition(|(_, reason)| *reason == ExclusionReason::Shard);
    if !other_shards.is_empty() {
        println!("{} test(s) belong to the other shards", other_shards.len());
    }
    if !excluded.is_empty() {
        println!("would leave out {} test(s):", excluded.len());
        let histories = env
            .durations
            .histories(collected.items.iter().map(|i| i.id.as_str()));
        let q = selection::estimate_quantile(opts.budget_s.is_some());
        let estimates = selection::estimates(&collected.items, &histories, q);
        for &(i, reason) in excluded {
            let item = &collected.items[i];
            let reason = match reason {
                ExclusionReason::Tier => "not in the selected tiers",
                ExclusionReason::Budget => "does not fit the budget",
                ExclusionReason::Policy => "the selection plugin's policy",
                ExclusionReason::Shard => "in another shard",
            };
            println!(
                "        tier {}  ~{:>7}  {}  ({reason})",
                crate::tiers::tier_of(&item.markers),
                ms(estimates[i]),
                item.id
            );
        }
    }
    for e in &collected.errors {
        println!("collection error (would be recorded as `error`): {}", e.id);
    }
    for note in &notes {
        println!("note: {note}");
    }
    if selected.tests.is_empty() && collected.errors.is_empty() {
        return Ok(Exit::NothingSelected);
    }
    Ok(Exit::Ok)
}

/// The attempts a resumed run still owes its recorded tests, by their last record: a
/// failure's retry (`--retries`), the next run of a repeated test.
fn owed_attempts(
    planned: &[PlannedTest],
    earlier: &[TestRecord],
    retries: u32,
) -> Vec<(PlannedTest, u32)> {
    let mut last: FastMap<&str, &TestRecord> = FastMap::default();
    for r in earlier {
        let e = last.entry(r.test_id.as_str()).or_insert(r);
        if r.attempt >= e.attempt {
            *e = r;
        }
    }
    planned
        .iter()
        .filter_map(|t| {
            let r = last.get(t.id.as_str())?;
            let again = if t.runs > 1 {
                r.attempt < t.runs
            } else {
                r.outcome.is_failure() && r.attempt <= retries
            };
            again.then(|| (t.clone(), r.attempt + 1))
        })
        .collect()
}

/// The interrupted run to resume and what it already recorded.
fn resume_state(gates: &Gates) -> Result<(RunState, Vec<TestRecord>)> {
    let state = match state::read(&gates.state()) {
        Ok(Loaded::Ok(s)) => s,
        Ok(Loaded::Missing) => {
            return Err(usage(format!(
                "nothing to resume: {} does not exist",
                gates.state().display()
            )))
        }
        Ok(Loaded::Corrupt { why, aside }) => {
            return Err(usage(format!(
                "cannot resume: {} is corrupt ({why}); moved to {}; start a new run with `mtest`",
                gates.state().display(),
                aside.display()
            )))
        }
        Err(e) => return Err(usage(e)),
    };
    if state.status == Status::Complete {
        return Err(Stop(
            Exit::NothingSelected,
            format!(
                "nothing to resume: run {} completed; start a new run with `mtest`",
                state.run_id
            ),
        ));
    }
    let recorded = run_log::read(&gates.run_log()).map_err(|e| Stop(Exit::Internal, e))?;
    if recorded.rejected > 0 {
        eprintln!(
            "warning: {} line(s) of {} did not parse (a torn write?); moved to run.jsonl.rejected",
            recorded.rejected,
            gates.run_log().display()
        );
    }
    std::fs::create_dir_all(gates.chunks()).map_err(|e| Stop(Exit::Internal, e.to_string()))?;
    let earlier = recorded
        .records
        .into_iter()
        .filter(|r| r.run_id == state.run_id)
        .collect();
    Ok((state, earlier))
}

/// The next free chunk number in `chunks/` (a resumed run keeps the earlier chunks' files).
fn next_chunk_id(chunks_dir: &Path) -> u32 {
    let Ok(entries) = std::fs::read_dir(chunks_dir) else {
        return 1;
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("chunk-")?
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .max()
        .map_or(1, |n| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_plans_with_what_collection_left_of_it() {
        let ms =
            |budget_s, spent_s| budget_left_ms(budget_left(budget_s, Duration::from_secs(spent_s)));
        assert_eq!(ms(40.0, 20), 19_000);
        assert_eq!(ms(10.0, 0), 9_500);
        assert_eq!(ms(5.0, 9), 1, "spent: nothing left");
    }

    fn planned(id: &str, runs: u32) -> PlannedTest {
        PlannedTest {
            id: id.into(),
            file: "t.py".into(),
            line: None,
            markers: Vec::new(),
            tier: 1,
            estimate_ms: 1,
            timeout_s: None,
            quarantined: false,
            isolate: false,
            runs,
            group: None,
        }
    }

    fn record(id: &str, outcome: &str, attempt: u32) -> TestRecord {
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "run_id": "r", "test_id": id, "outcome": outcome,
            "duration_s": 0.0, "tier": 1, "markers": [], "file": "t.py", "line": null,
            "chunk": 1, "attempt": attempt, "quarantined": false,
            "started_at": "2026-11-26T00:00:00Z", "finished_at": "2026-11-26T00:00:00Z",
        }))
        .unwrap()
    }

    #[test]
    fn a_resumed_run_owes_retries_and_repeats_by_the_last_record() {
        let planned = [
            planned("failed_once", 1),
            planned("retried_already", 1),
            planned("passed", 1),
            planned("repeated", 3),
            planned("repeated_done", 2),
            planned("never_ran", 1),
        ];
        let earlier = [
            record("failed_once", "failed", 1),
            record("retried_already", "failed", 1),
            record("retried_already", "crashed", 2),
            record("passed", "passed", 1),
            record("repeated", "passed", 1),
            record("repeated_done", "failed", 1),
            record("repeated_done", "passed", 2),
        ];
        let owed: Vec<(String, u32)> = owed_attempts(&planned, &earlier, 1)
            .into_iter()
            .map(|(t, a)| (t.id, a))
            .collect();
        assert_eq!(
            owed,
            [("failed_once".to_string(), 2), ("repeated".to_string(), 2)]
        );
        assert!(owed_attempts(&planned, &earlier, 0)
            .iter()
            .all(|(t, _)| t.id == "repeated"));
    }
}
