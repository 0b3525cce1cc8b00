//! `mtest [OPTIONS]`: a whole run, top to bottom: options → collect → select (plugin) →
//! chunk → supervise → records → store + reporters → quarantine → summary.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Stop;
use crate::cli::RunArgs;
use crate::clock;
use crate::config::{Isolation, ProjectConfig, ReporterSpec, MAX_JOBS};
use crate::platform;
use crate::plugin_host::session::ExclusionReason;
use crate::plugin_host::session::RunStart;
use crate::plugin_host::{builtins, discovery, PluginHost, Source};
use crate::pytest::collect::{self, CollectFailure, CollectLimits, Collected, Collection};
use crate::pytest::events::Item;
use crate::pytest::zygote::Mode;
use crate::pytest::{find_python, Pytest};
use crate::record::PlannedTest;
use crate::record::{one_line, Attempt, Details, Outcome, TestRecord, SCHEMA_VERSION};
use crate::report::enrich::Enricher;
use crate::report::junit::Junit;
use crate::report::progress::{self, Plan, Progress};
use crate::report::reporters::Reporters;
use crate::report::stats::{RunEnd, RunStats};
use crate::report::Recorder;
use crate::run_event::RunEvent;
use crate::selection;
use crate::store::durations::Durations;
use crate::store::impact::Impact;
use crate::store::quarantine::Quarantine;
use crate::store::state::{self, RunOptions, RunState, Status, STATE_SCHEMA};
use crate::store::{self, load_or_default, lock, new_run_id, run_log, Gates, Loaded};
use crate::supervise::chunk_run::{self, Chunk, Launcher, RunContext};
use crate::supervise::{self, chunks, Finish, Queue};
use crate::{quarantine, Exit, FastMap, FastSet};

mod changed;
mod ending;
mod executor;
mod history;
mod options;
mod plan;
mod resume;

use ending::*;
use executor::*;
use history::*;
use options::*;
use plan::*;
use resume::*;

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
    /// What each test depended on when it last ran (`--changed`).
    impact: &'a Impact,
    /// `--changed`: what a change reaches, checked before collection (none: not yet).
    checked: Option<&'a changed::Checked>,
    /// When the run started (before collection), as the summary says it: its duration
    /// counts from the same moment, and so does the budget.
    started_at: String,
    started: Instant,
    /// What the last run's end took (pytest's session end, the store): a `--budget` keeps
    /// as much for this run's end.
    ending: Duration,
}

type Result<T> = std::result::Result<T, Stop>;

pub fn run(args: &RunArgs, root: &Path, project: &ProjectConfig, host: &PluginHost) -> Exit {
    execute(args, root, project, host).unwrap_or_else(Stop::report)
}

fn usage(message: String) -> Stop {
    Stop::usage(message)
}

/// Where a run begins: `--explain-selection`, an interrupted run resumed, or a fresh run
/// (its collection started; fork mode collects again on a resume).
enum Begin {
    Explain,
    Resume(Box<RunState>, Vec<TestRecord>, Option<Collection>),
    Fresh(Box<RunOptions>, Collection),
}

fn begin(args: &RunArgs, root: &Path, project: &ProjectConfig, gates: &Gates) -> Result<Begin> {
    if args.explain_selection {
        return Ok(Begin::Explain);
    }
    if !args.resume {
        let opts = options(args, root, project)?;
        let collection = start_collection(gates, root, &opts, &[], None)?;
        return Ok(Begin::Fresh(Box::new(opts), collection));
    }
    let (state, earlier) = resume_state(gates)?;
    if let Some(flag) = state.options.debugger.first() {
        on_a_terminal(flag)?;
    }
    // Fork mode forks from a collection: collect again (process mode needs none).
    let collection = match state.options.isolation {
        Isolation::Fork => Some(start_collection(gates, root, &state.options, &[], None)?),
        Isolation::Process => None,
    };
    Ok(Begin::Resume(Box::new(state), earlier, collection))
}

/// The history, read on a thread while pytest starts and collects (durations.json is
/// 22 MB at 64k tests: a tenth of a second, which the collection need not wait for).
type History = std::thread::JoinHandle<(Durations, Quarantine, Impact, Vec<String>)>;

fn read_history(gates: &Gates) -> History {
    let (d, q, i) = (
        gates.durations(),
        gates.quarantine(),
        Impact::path(&gates.dir),
    );
    std::thread::spawn(move || {
        // The records of what each test depends on, as large as the durations: read beside.
        let impact = std::thread::spawn(move || {
            let mut warnings = Vec::new();
            (Impact::load(&i, &mut warnings), warnings)
        });
        let mut warnings = Vec::new();
        let durations: Durations = load_or_default(&d, &mut warnings);
        let quarantine: Quarantine = load_or_default(&q, &mut warnings);
        let (impact, more) = impact
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        warnings.extend(more);
        (durations, quarantine, impact, warnings)
    })
}

fn history_read(history: History) -> Result<(Durations, Quarantine, Impact)> {
    let (durations, quarantine, impact, warnings) = history.join().map_err(|_| {
        Stop(
            Exit::Internal,
            "reading .gates/durations.json, quarantine.json and impact.json failed".into(),
        )
    })?;
    for w in warnings {
        eprintln!("{w}");
    }
    Ok((durations, quarantine, impact))
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
    let _lock = lock::acquire(&gates.dir)?;
    let ending = state::last_ending(&gates.state()).unwrap_or_default();
    let history = read_history(&gates);
    let (begun, (durations, mut quarantine, mut impact), checked) = if changed::collects_less(args)
    {
        // The records and a check first: collection leaves out what no change reaches.
        let loaded = history_read(history)?;
        let opts = options(args, root, project)?;
        let stores = changed::Stores {
            impact: &loaded.2,
            durations: &loaded.0,
        };
        let (collection, checked) = changed::start(&gates, root, &opts, stores)?;
        (Begin::Fresh(Box::new(opts), collection), loaded, checked)
    } else {
        let begun = begin(args, root, project, &gates)?;
        (begun, history_read(history)?, None)
    };
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
        impact: &impact,
        checked: checked.as_ref(),
        started_at,
        started,
        ending,
    };
    let (state, begun) = match begun {
        Begin::Explain => return explain(&env),
        Begin::Resume(state, earlier, collection) => (*state, (earlier, Vec::new(), collection)),
        Begin::Fresh(opts, collection) => {
            let (state, errors, collection) = fresh_state(&env, *opts, collection)?;
            (state, (Vec::new(), errors, Some(collection)))
        }
    };
    let opts = state.options.clone();
    let mut pytest = Pytest::new(
        opts.python.clone().into(),
        root.to_path_buf(),
        opts.pytest_args.clone(),
    )?;
    pytest.impact = opts.impact;
    let fingerprint =
        (opts.impact && checked.is_none()).then(|| changed::fingerprint(&opts, &pytest));
    let (mut state, mut plan, mut launcher, rec) = prepare(&env, host, &durations, state, begun)?;
    // What only the chunks need moves into their context (100k item indices: no copy).
    let for_chunks = (
        std::mem::take(&mut plan.universe),
        std::mem::take(&mut plan.item_index),
    );
    let mut ctx = context(&env, &pytest, &state, &plan, for_chunks)?;
    let mut ran = supervise_run(&env, &opts, &mut ctx, rec, &mut launcher, &plan)?;
    drop(ctx);
    let repeated: FastSet<&str> = plan.repeated.iter().map(String::as_str).collect();
    let places = Places {
        gates: &gates,
        root,
        project,
        host,
    };
    // The impact store learns this run's records while the rest of the run is stored
    // (other files, each as large at 64k tests).
    let deps = std::mem::take(&mut ran.supervised.rec.deps);
    let asked = fingerprint.and_then(|f| f.join().ok().flatten());
    let known = (
        checked
            .as_ref()
            .map(|c| c.env.as_str())
            .or(asked.as_deref()),
        checked.as_ref().map(|c| &c.blocks),
    );
    let (mut stored, learned) = std::thread::scope(|scope| {
        let (impact, deps) = (&mut impact, &deps);
        let learning = opts.impact.then(|| {
            let places = (&gates, &opts, &pytest);
            scope.spawn(move || changed::learn(places, impact, deps, known))
        });
        let stored = store_run(
            &places,
            &state,
            &repeated,
            &mut ran,
            &mut durations,
            &mut quarantine,
        );
        (stored, learning.map(|l| l.join()))
    });
    match learned {
        Some(Ok(Err(e))) => eprintln!("warning: .gates/impact.json was not updated: {e}"),
        Some(Err(_)) => eprintln!("warning: .gates/impact.json was not updated: learning failed"),
        Some(Ok(Ok(()))) | None => {}
    }
    let this_run = &ran.supervised.rec.records[ran.first_new..];
    if !state.changed_left_out.is_empty() {
        let left_out: FastSet<String> = state.changed_left_out.iter().cloned().collect();
        let missed = changed::missed(&left_out, this_run);
        if !missed.is_empty() {
            eprintln!(
                "--verify: {} failing test(s) that --changed would have left out:",
                missed.len()
            );
            for id in &missed {
                eprintln!("  {id}");
            }
        }
        stored.notes.push(format!(
            "--verify: {} failing test(s) that --changed would have left out{}",
            missed.len(),
            if missed.is_empty() {
                String::new()
            } else {
                format!(": {}", missed.join(", "))
            }
        ));
    }
    end_executor(
        &mut launcher,
        &pytest,
        &gates,
        &mut ran.supervised.rec,
        opts.session_end_timeout_s,
    );
    if plan.moved {
        // The plan as it was selected (a fresh run collected it: no test was dropped).
        state.tests = plan.tests;
    }
    Ok(end_run(&places, state, &repeated, ran, stored))
}

/// Where a run's store and plugins are, for the steps after supervision.
struct Places<'a> {
    gates: &'a Gates,
    root: &'a Path,
    project: &'a ProjectConfig,
    host: &'a PluginHost,
}

/// What the run's plan leaves to do: the tests to run (their order), the attempts owed
/// by an earlier invocation, whether the plan was reordered (`moved`), and what the
/// executor and the --max-fail count need.
struct ToRun {
    tests: Vec<PlannedTest>,
    owed: FastMap<String, u32>,
    moved: bool,
    /// Fork mode: each test's index among the zygote's items (moved into the context).
    item_index: Vec<u32>,
    collect_ms: FastMap<String, u64>,
    /// Every file the collection found tests in (moved into the context).
    universe: BTreeSet<String>,
    /// Tests that failed in an earlier invocation of this run (`--resume`).
    failed_earlier: Vec<String>,
    /// Tests the run repeats (`--repeat`, `new-test-repeats`).
    repeated: FastSet<String>,
}

/// A run's plan made ready: what is left to run, the launcher (fork or process), and the
/// recorder started, with what an earlier invocation recorded and the modules that did not
/// collect already in it.
fn prepare<'h>(
    env: &Env,
    host: &'h PluginHost,
    durations: &Arc<Durations>,
    mut state: RunState,
    (earlier, mut fresh_records, collection): (
        Vec<TestRecord>,
        Vec<TestRecord>,
        Option<Collection>,
    ),
) -> Result<(RunState, ToRun, Launcher, Recorder<'h>)> {
    let (retries, debugging) = (state.options.retries, !state.options.debugger.is_empty());
    let selected = state.tests.len();
    let universe = file_universe(&state);
    let repeated = state
        .tests
        .iter()
        .filter(|t| t.runs > 1)
        .map(|t| t.id.clone())
        .collect();
    let LeftToRun {
        mut tests,
        first_runs,
        owed,
        moved,
    } = left_to_run(&mut state, &earlier, retries, env.args.resume);
    let collect_ms: FastMap<String, u64> = collection
        .as_ref()
        .map(|c| {
            c.collect_s
                .iter()
                .map(|(f, s)| (f.clone(), clock::secs(*s).as_millis() as u64))
                .collect()
        })
        .unwrap_or_default();
    let (launcher, item_index) = launcher_for(
        &state.options,
        collection,
        &mut tests,
        &state.run_id,
        &mut fresh_records,
    );
    if env.args.resume {
        say_resumed(&state, selected, first_runs, owed.len());
    }
    let counts = Counts {
        selected,
        total: selected + fresh_records.len(),
        recorded: earlier.len(),
    };
    let mut rec = start_recorder(host, env, durations, &state, &tests, counts, env.started)?;
    rec.flush_lines();
    // A resumed `--pdb` run stops at its next failure: the earlier ones do not count (and
    // are not run again: it has no retries).
    let failed_earlier: Vec<String> = earlier
        .iter()
        .filter(|r| r.outcome.is_failure() && !debugging)
        .map(|r| r.test_id.clone())
        .collect();
    rec.replay(earlier);
    rec.shard = state.options.shard;
    rec.record(fresh_records);
    let plan = ToRun {
        tests,
        owed,
        moved,
        item_index,
        collect_ms,
        universe,
        failed_earlier,
        repeated,
    };
    Ok((state, plan, launcher, rec))
}

fn say_resumed(state: &RunState, selected: usize, first_runs: usize, owed: usize) {
    let again = if owed == 0 {
        String::new()
    } else {
        format!(", and {owed} run(s) of recorded tests still owed")
    };
    eprintln!(
        "mtest: resuming run {}: {} of {} test(s) already recorded, {} to run{again}",
        state.run_id,
        selected - first_runs,
        selected,
        first_runs,
    );
}

/// What every chunk of the run shares: the tests, the stop file (the budget, --max-fail
/// and Ctrl-C speak to the workers through it), --max-fail's files.
fn context<'a>(
    env: &Env,
    pytest: &'a Pytest,
    state: &RunState,
    plan: &'a ToRun,
    (universe, item_index): (BTreeSet<String>, Vec<u32>),
) -> Result<RunContext<'a>> {
    let (gates, opts) = (env.gates, &state.options);
    let mut ctx = RunContext::new(
        pytest,
        &plan.tests,
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
    let stop = gates.chunks().join("stop");
    let _ = std::fs::remove_file(&stop);
    ctx.stop_file = Some(stop);
    if let Some(n) = opts.stop_after_failures() {
        let limit = failure_limit(&gates.chunks(), n, &plan.tests, &plan.failed_earlier)?;
        ctx.max_fail = Some(limit);
    }
    Ok(ctx)
}

/// What the supervision leaves: how it finished, the recorder, the workers' start-ups and
/// versions; this invocation's first record, the tests' wall time, and when the run's
/// end began.
struct Ran<'h> {
    supervised: Supervised<'h>,
    first_new: usize,
    tests_wall: Duration,
    end_from: Instant,
}

/// Supervises the work (and, with `--pdb`/`--trace`, the test on the terminal), then
/// ends the JUnit files.
fn supervise_run<'h>(
    env: &Env,
    opts: &RunOptions,
    ctx: &mut RunContext,
    rec: Recorder<'h>,
    launcher: &mut Launcher,
    plan: &ToRun,
) -> Result<Ran<'h>> {
    // The tests stop in time for the run's end to fit in the budget too.
    let deadline = opts
        .budget_s
        .and_then(|b| env.started.checked_add(budget_left(b, env.ending)));
    let costs = chunks::Costs {
        startup_ms: env.durations.startup_ms(),
        collect_ms: &plan.collect_ms,
        cold: ctx
            .tests
            .iter()
            .all(|t| !env.durations.tests.contains_key(&t.id)),
    };
    let fork = matches!(launcher, Launcher::Fork(_));
    let mut queue = if opts.traces() {
        Queue::default() // --trace: the first selected test runs on the terminal, below
    } else {
        queue_for(ctx, fork, opts.jobs, &costs, &plan.owed)
    };
    queue.failed_before = plan
        .failed_earlier
        .iter()
        .filter_map(|id| ctx.index.get(id.as_str()).copied())
        .collect();
    let first_new = rec.records.len();
    let supervise_options = supervise::Options {
        jobs: opts.jobs,
        max_fail: opts.stop_after_failures(),
        first_chunk: next_chunk_id(&env.gates.chunks()),
        retries: opts.retries,
        rerun_crashed: opts.rerun_crashed,
        deadline,
    };
    let supervised_from = Instant::now();
    let mut supervised = supervise_and_record(rec, ctx, queue, launcher, &supervise_options)?;
    let new = &supervised.rec.records[first_new..];
    if let Some(target) = debug_target(opts, &supervised.finish, new, ctx) {
        let debugged = in_the_debugger(supervised.rec, ctx, target, &opts.debugger, env.gates)?;
        let id = ctx.tests[target.test].id.clone();
        supervised = Supervised {
            finish: match debugged.finish {
                Finish::Broken(text) => Finish::Broken(text),
                _ => Finish::Debugged(id),
            },
            rec: debugged.rec,
            startups: [supervised.startups, debugged.startups].concat(),
            versions: supervised.versions.or(debugged.versions),
        };
    }
    let tests_wall = supervised_from.elapsed();
    // The run's end: from its last test, or from the deadline of a budget that ran out
    // (the tests running then finish first).
    let tests_ended = Instant::now();
    let end_from = deadline.filter(|d| *d < tests_ended).unwrap_or(tests_ended);
    supervised.rec.end_junit();
    Ok(Ran {
        supervised,
        first_new,
        tests_wall,
        end_from,
    })
}

/// What the store made of the run: its notes, the writes that failed, its status.
struct Stored {
    notes: Vec<String>,
    store_errors: Vec<String>,
    status: Status,
}

/// The history learns this invocation's attempts; the quarantine policy, a whole
/// complete run's; both are written.
fn store_run(
    places: &Places,
    state: &RunState,
    repeated: &FastSet<&str>,
    ran: &mut Ran,
    durations: &mut Arc<Durations>,
    quarantine: &mut Quarantine,
) -> Stored {
    let opts = &state.options;
    if let Some(enricher) = &mut ran.supervised.rec.enricher {
        enricher.release_history();
    }
    let (finish, rec) = (&ran.supervised.finish, &ran.supervised.rec);
    let this_run = &rec.records[ran.first_new..];
    learn(
        Arc::make_mut(durations),
        this_run,
        repeated,
        &ran.supervised.startups,
    );
    if *finish == Finish::Completed {
        Arc::make_mut(durations).note_throughput(this_run, ran.tests_wall, opts.jobs);
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
    } else if let Some(why) = broken_run(finish, &rec.stats) {
        notes.push(why);
        false
    } else {
        true
    };
    let policy = consult.then_some(PolicyInput {
        host: places.host,
        root: places.root,
        project: places.project,
        records: &rec.records,
    });
    let (failed_writes, decided) = write_history(places.gates, durations, policy, quarantine);
    store_errors.extend(failed_writes);
    match decided {
        Some(Ok(changes)) => notes.extend(changes),
        Some(Err(e)) => eprintln!("warning: {e}"),
        None => {}
    }
    Stored {
        notes,
        store_errors,
        status,
    }
}

/// The run's end: pytest's `lastfailed`, the exit code (one set of counts), the final
/// state, the reporters' summary, the console's last lines.
fn end_run(
    places: &Places,
    state: RunState,
    repeated: &FastSet<&str>,
    ran: Ran,
    stored: Stored,
) -> Exit {
    let Stored {
        mut notes,
        mut store_errors,
        status,
    } = stored;
    let Supervised {
        finish,
        mut rec,
        versions,
        ..
    } = ran.supervised;
    // After the zygote's session end: pytest's own `lastfailed`, as plain pytest leaves it.
    if let Some(dir) = &state.pytest_cache {
        if let Err(e) = crate::pytest::lastfailed::write(Path::new(dir), &rec.records) {
            rec.progress.line(&format!("warning: pytest's cache: {e}"));
        }
    }
    let (flaky_fails, max_fail) = (
        state.options.flaky_fails,
        state.options.stop_after_failures(),
    );
    // One set of counts (RunStats): each test once, by its last attempt; a flaky pass
    // counts as a failure with --flaky-fails, or when the test was repeated.
    notes.extend(flakiness_notes(&rec.stats, repeated, flaky_fails));
    let exit_for = |store_errors: &[String]| {
        let end = RunEnd {
            interrupted: finish == Finish::Interrupted,
            broken: matches!(finish, Finish::Broken(_)).then_some(Exit::PytestBroken),
            store_failed: !store_errors.is_empty(),
            incomplete: false,
            flaky_fails,
        };
        rec.stats.exit(&end, repeated)
    };
    let final_state = RunState {
        status,
        updated_at: clock::now(),
        exit_code: Some(exit_for(&store_errors).code()),
        ending_s: Some(ran.end_from.elapsed().as_secs_f64()),
        ..state
    };
    if let Err(e) = state::write(&places.gates.state(), &final_state) {
        store_errors.push(e.to_string());
    }
    let exit = exit_for(&store_errors);
    let duration_s = rec.progress.elapsed().as_secs_f64();
    rec.end(final_state.run_id.clone(), duration_s, exit, notes.clone());
    print_summary(&Ending {
        finish: &finish,
        store_errors: &store_errors,
        rec: &rec,
        state: &final_state,
        notes: &notes,
        versions,
        root: places.root,
        gates: places.gates,
        max_fail,
    });
    exit
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
