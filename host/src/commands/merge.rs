//! `mtest merge DIR...`: the `.gates/` directories of the shards of one run (`--shard K/N`
//! on N machines) become one run in this project's `.gates/`: `last-run/run.jsonl` with
//! every record once (each says its shard), one `junit.xml`, the failure bundles, the
//! reporters' files (summary.md, report.html, …), `durations.json` with every shard's
//! history, and `quarantine.json` decided once for the whole run.
//!
//! Everything is read and checked before anything is written: shards planned from other
//! inputs, a shard given twice, a test in two shards, a shard whose records do not cover
//! its tests are errors that name what is wrong, and nothing is merged. A missing or
//! unfinished shard is an error too, or with `--partial` a warning and a failing exit.
//! A shard may also be given as a `.tar`, `.tar.gz` or `.tgz` archive of its `.gates/`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::clock;
use crate::config::ProjectConfig;
use crate::plugin_host::session::RunStart;
use crate::plugin_host::PluginHost;
use crate::record::TestRecord;
use crate::report::junit::Junit;
use crate::report::progress::Progress;
use crate::report::reporters::Reporters;
use crate::report::stats::RunEnd;
use crate::report::Recorder;
use crate::shard::{Shard, ShardPlan};
use crate::store::durations::Durations;
use crate::store::impact::Impact;
use crate::store::quarantine::Quarantine;
use crate::store::state::{self, RunState, Status, STATE_SCHEMA};
use crate::store::{self, lock, run_log, Gates, Loaded};
use crate::Exit;

/// One shard's `.gates/`, read whole.
struct ShardDir {
    dir: PathBuf,
    state: RunState,
    plan: ShardPlan,
    records: Vec<TestRecord>,
    durations: Durations,
    quarantine: Quarantine,
    impact: Impact,
}

impl ShardDir {
    fn shard(&self) -> Shard {
        self.plan.shard
    }

    fn label(&self) -> String {
        format!("shard {} ({})", self.shard(), self.dir.display())
    }

    /// Seconds from the shard's start to its end, from its state.
    fn wall_s(&self) -> Option<f64> {
        let start = humantime::parse_rfc3339_weak(&self.state.started_at).ok()?;
        let end = humantime::parse_rfc3339_weak(&self.state.updated_at).ok()?;
        end.duration_since(start).ok().map(|d| d.as_secs_f64())
    }
}

use super::{summary, Stop};

fn usage(message: String) -> Stop {
    Stop::usage(message)
}

pub fn merge(
    dirs: &[PathBuf],
    partial: bool,
    root: &Path,
    project: &ProjectConfig,
    host: &PluginHost,
) -> Exit {
    execute(dirs, partial, root, project, host).unwrap_or_else(Stop::report)
}

/// `DIR` is a `.gates/` directory, or a directory holding one (or, for an unpacked
/// archive, a directory holding a single directory that is or holds one).
fn gates_dir(dir: &Path) -> Result<PathBuf, Stop> {
    let mut candidates = vec![dir.to_path_buf(), dir.join(".gates")];
    let subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    if let [only] = subdirs.as_slice() {
        candidates.extend([only.clone(), only.join(".gates")]);
    }
    for candidate in candidates {
        if candidate.join("state.json").is_file() {
            return Ok(candidate);
        }
    }
    Err(usage(format!(
        "{}: not the .gates/ of a shard (no state.json in it or in {}/.gates/)",
        dir.display(),
        dir.display()
    )))
}

/// A shard's `.gates/` packed as `.tar`, `.tar.gz` or `.tgz` (as CI systems keep
/// artifacts) is unpacked into `into` first.
fn unpack(archive: &Path, into: &Path) -> Result<PathBuf, Stop> {
    let name = archive.to_string_lossy();
    let fail = |e: std::io::Error| usage(format!("{}: cannot unpack it: {e}", archive.display()));
    let file = std::fs::File::open(archive).map_err(fail)?;
    std::fs::create_dir_all(into).map_err(fail)?;
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(into)
            .map_err(fail)?;
    } else if name.ends_with(".tar") {
        tar::Archive::new(file).unpack(into).map_err(fail)?;
    } else {
        return Err(usage(format!(
            "{}: not a directory, nor a .tar, .tar.gz or .tgz archive (unzip a .zip first)",
            archive.display()
        )));
    }
    Ok(into.to_path_buf())
}

fn read_shard(dir: &Path, warnings: &mut Vec<String>) -> Result<ShardDir, Stop> {
    let dir = gates_dir(dir)?;
    let state_path = dir.join("state.json");
    let state: RunState = match state::read(&state_path) {
        Ok(Loaded::Ok(s)) => s,
        Ok(Loaded::Missing) => {
            return Err(usage(format!("{}: missing", state_path.display())));
        }
        Ok(Loaded::Corrupt { why, aside }) => {
            return Err(usage(format!(
                "{} does not parse ({why}); moved to {}: this shard cannot be merged, run it again",
                state_path.display(),
                aside.display()
            )))
        }
        Err(e) => return Err(usage(e.to_string())),
    };
    let Some(plan) = state.shard_plan.clone() else {
        return Err(usage(format!(
            "{}: its last run was not a shard (run with --shard K/N)",
            dir.display()
        )));
    };
    let log = dir.join("last-run").join("run.jsonl");
    let recorded = run_log::read(&log).map_err(|e| usage(e.to_string()))?;
    if recorded.rejected > 0 {
        return Err(usage(format!(
            "shard {} ({}): {} line(s) of {} do not parse (moved to run.jsonl.rejected): records are lost, run the shard again",
            plan.shard,
            dir.display(),
            recorded.rejected,
            log.display()
        )));
    }
    let json = |name: &str| -> Option<PathBuf> {
        let path = dir.join(name);
        path.exists().then_some(path)
    };
    let durations = match json("durations.json") {
        Some(path) => crate::store::load_or_default(&path, warnings),
        None => Durations::default(),
    };
    let quarantine = match json("quarantine.json") {
        Some(path) => crate::store::load_or_default(&path, warnings),
        None => Quarantine::default(),
    };
    let impact = Impact::load(&Impact::path(&dir), warnings);
    Ok(ShardDir {
        dir,
        state,
        plan,
        records: recorded.records,
        durations,
        quarantine,
        impact,
    })
}

/// The checks that make the shards one run. Returns notes and whether the merge is
/// partial (missing or unfinished shards).
fn check(shards: &[ShardDir], partial: bool) -> Result<(Vec<String>, bool), Stop> {
    let mut notes = Vec::new();
    let mut incomplete = false;
    let first = &shards[0];
    planned_alike(shards)?;
    let count = first.plan.shard.count;
    let missing: Vec<String> = (1..=count)
        .filter(|k| !shards.iter().any(|s| s.shard().index == *k))
        .map(|k| format!("{k}/{count}"))
        .collect();
    if !missing.is_empty() {
        let text = format!("missing shard(s) {}", missing.join(", "));
        let advice = "give every shard's .gates/ (or --partial to merge what there is)";
        only_if_partial(partial, &text, advice)?;
        notes.push(format!("--partial: {text}: their tests did not run"));
        incomplete = true;
    }
    for s in shards {
        if s.state.status != Status::Complete {
            let text = format!(
                "{} did not finish (its state is {:?})",
                s.label(),
                s.state.status
            );
            let advice = "finish it with `mtest --resume` there, or merge with --partial";
            only_if_partial(partial, &text, advice)?;
            notes.push(format!("--partial: {text}"));
            incomplete = true;
        }
    }
    one_shard_each(shards)?;
    if missing.is_empty() {
        let own: usize = shards.iter().map(|s| s.plan.own).sum();
        if own != first.plan.eligible {
            return Err(usage(format!(
                "the shards hold {own} test(s) together, the run {}: the shards were not planned alike",
                first.plan.eligible
            )));
        }
    }
    Ok((notes, incomplete))
}

/// A shortfall (a missing or unfinished shard) ends the merge unless it is `--partial`.
fn only_if_partial(partial: bool, text: &str, advice: &str) -> Result<(), Stop> {
    if !partial {
        return Err(usage(format!("{text}: {advice}")));
    }
    Ok(())
}

/// The shards are of one split, planned from the same inputs, each given once.
fn planned_alike(shards: &[ShardDir]) -> Result<(), Stop> {
    let first = &shards[0];
    for s in &shards[1..] {
        if s.plan.shard.count != first.plan.shard.count {
            return Err(usage(format!(
                "{} and {} are shards of different splits ({} and {} shards)",
                first.label(),
                s.label(),
                first.plan.shard.count,
                s.plan.shard.count
            )));
        }
        if s.plan.plan != first.plan.plan {
            return Err(usage(format!(
                "{} was planned from other inputs than {} (another run: different tests, durations.json, tiers or selector); the shards of one run start from the same commit and the same .gates/durations.json",
                s.label(),
                first.label()
            )));
        }
    }
    let mut seen: BTreeMap<u32, &ShardDir> = BTreeMap::new();
    for s in shards {
        if let Some(other) = seen.insert(s.shard().index, s) {
            return Err(usage(format!(
                "shard {} given twice: {} and {}",
                s.shard(),
                other.dir.display(),
                s.dir.display()
            )));
        }
    }
    Ok(())
}

/// Every test ran in one shard only.
fn one_shard_each(shards: &[ShardDir]) -> Result<(), Stop> {
    let mut owner: HashMap<&str, Shard> = HashMap::new();
    for s in shards {
        for r in &s.records {
            if let Some(other) = owner.insert(&r.test_id, s.shard()) {
                if other != s.shard() {
                    return Err(usage(format!(
                        "{} ran in shard {other} and in shard {}: the shards were not planned alike",
                        r.test_id,
                        s.shard()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Tests a shard selected that have no record. A run that stops by design (a budget, a
/// failure limit) or did not finish leaves some; otherwise records were lost.
fn unrecorded(s: &ShardDir) -> Result<(usize, Option<String>), Stop> {
    let recorded: std::collections::HashSet<&str> =
        s.records.iter().map(|r| r.test_id.as_str()).collect();
    let missing: Vec<&str> = s
        .state
        .tests
        .iter()
        .map(|t| t.id.as_str())
        .filter(|id| !recorded.contains(id))
        .collect();
    if missing.is_empty() {
        return Ok((0, None));
    }
    let o = &s.state.options;
    let by_design = o.budget_s.is_some() || o.stop_after_failures().is_some();
    if by_design || s.state.status != Status::Complete {
        let why = if s.state.status != Status::Complete {
            "it did not finish"
        } else {
            "its --budget or --max-fail stopped it"
        };
        return Ok((
            missing.len(),
            Some(format!(
                "{}: {} selected test(s) did not run ({why})",
                s.label(),
                missing.len()
            )),
        ));
    }
    Err(Stop(
        Exit::Internal,
        format!(
            "{}: {} selected test(s) have no record though the shard finished (first: {}): its run.jsonl is incomplete; run the shard again",
            s.label(),
            missing.len(),
            missing[0]
        ),
    ))
}

/// The shards read and checked: what the merge is made of.
struct Checked {
    shards: Vec<ShardDir>,
    notes: Vec<String>,
    /// Missing or unfinished shards (`--partial`): the merged run fails.
    incomplete: bool,
    /// Selected tests with no record (a budget, --max-fail, a shard that did not finish).
    not_run: usize,
}

/// Reads every shard (unpacking archives into `scratch`) and checks they are one run.
fn read_all(
    dirs: &[PathBuf],
    gates: &Gates,
    partial: bool,
    scratch: &Path,
) -> Result<Checked, Stop> {
    let own = gates.dir.canonicalize().ok();
    let mut warnings = Vec::new();
    let mut shards = Vec::new();
    for (i, given) in dirs.iter().enumerate() {
        let unpacked;
        let dir = if given.is_file() {
            unpacked = unpack(given, &scratch.join(i.to_string()))?;
            &unpacked
        } else {
            given
        };
        let shard = read_shard(dir, &mut warnings)?;
        if own.is_some() && shard.dir.canonicalize().ok() == own {
            return Err(usage(format!(
                "{} is this project's own .gates/, which the merge writes: merge copies of the shards' .gates/",
                given.display()
            )));
        }
        shards.push(shard);
    }
    if shards.is_empty() {
        return Err(usage("give the .gates/ directories of the shards".into()));
    }
    shards.sort_by_key(|s| s.shard().index);
    let (mut notes, mut incomplete) = check(&shards, partial)?;
    let mut not_run = 0;
    for s in &shards {
        let (n, note) = unrecorded(s)?;
        not_run += n;
        notes.extend(note);
        incomplete |= n > 0 && s.state.status != Status::Complete;
    }
    for w in warnings {
        eprintln!("{w}");
    }
    Ok(Checked {
        shards,
        notes,
        incomplete,
        not_run,
    })
}

fn execute(
    dirs: &[PathBuf],
    partial: bool,
    root: &Path,
    project: &ProjectConfig,
    host: &PluginHost,
) -> Result<Exit, Stop> {
    let started = std::time::Instant::now();
    let gates = Gates::new(root);
    let scratch = tempfile::tempdir()
        .map_err(|e| Stop(Exit::Internal, format!("cannot make a temp dir: {e}")))?;
    let Checked {
        shards,
        mut notes,
        incomplete,
        not_run,
    } = read_all(dirs, &gates, partial, scratch.path())?;

    // Write: the lock, a fresh last-run/, then the records through the run's recorder.
    let _lock = lock::acquire(&gates.dir)?;
    gates.rotate_last_run()?;
    let mut state = merged_state(&shards, dirs);
    let mut rec = recorder(&gates, root, project, host, &state, started)?;
    rec.adopt(shard_records(&shards));
    rec.end_junit();
    let mut store_errors: Vec<String> = rec.write_error.iter().cloned().collect();
    store_errors.extend(copy_bundles(&shards, &gates.last_run().join("failures")));
    let places = (root, project, host);
    let learnt = learn(&gates, &shards, (&rec, incomplete), places, &mut notes);
    store_errors.extend(learnt);

    // The exit code, as a run's: a flaky test the shards repeated (`--repeat`,
    // new-test-repeats) fails it too.
    let repeated: crate::FastSet<&str> = state
        .tests
        .iter()
        .filter(|t| t.runs > 1)
        .map(|t| t.id.as_str())
        .collect();
    notes.extend(rec.stats.pass_rate_notes());
    let mut end = merged_end(&shards, incomplete, &mut notes);
    end.store_failed = !store_errors.is_empty();
    let exit = rec.stats.exit(&end, &repeated);
    state.exit_code = Some(exit.code());
    state.notes = notes.clone();
    if let Err(e) = state::write_start(&gates.state(), &state) {
        store_errors.push(e.to_string());
    }
    end.store_failed = !store_errors.is_empty();
    let exit = rec.stats.exit(&end, &repeated);
    let duration_s = shards
        .iter()
        .filter_map(ShardDir::wall_s)
        .fold(0.0, f64::max);
    rec.end(state.run_id.clone(), duration_s, exit, notes.clone());
    summary::print(&summary::LastLines {
        headline: format!(
            "mtest merge: {} from {} of {} shard(s) in {} (run {})",
            rec.stats.counts_text(),
            shards.len(),
            shards[0].plan.shard.count,
            clock::human(started.elapsed()),
            state.run_id
        ),
        broken: None,
        store_errors: &store_errors,
        stats: &rec.stats,
        notes: &notes,
        versions: None,
        root,
        gates: &gates,
        left: (not_run > 0).then(|| format!("{not_run} selected test(s) did not run")),
    });
    Ok(exit)
}

/// Every shard's records, each marked with its shard.
fn shard_records(shards: &[ShardDir]) -> Vec<TestRecord> {
    shards
        .iter()
        .flat_map(|s| {
            s.records.iter().cloned().map(|mut r| {
                r.shard = Some(s.shard());
                r
            })
        })
        .collect()
}

/// The merged durations and quarantine written to `.gates/`; says what could not be.
fn learn(
    gates: &Gates,
    shards: &[ShardDir],
    (rec, incomplete): (&Recorder, bool),
    places: (&Path, &ProjectConfig, &PluginHost),
    notes: &mut Vec<String>,
) -> Vec<String> {
    let mut store_errors = Vec::new();
    let durations = merged_durations(shards);
    if let Err(e) = store::atomic_write_json(&gates.durations(), &durations) {
        store_errors.push(e.to_string());
    }
    let quarantine = merged_quarantine(shards, rec, incomplete, &durations, places, notes);
    if let Err(e) = store::atomic_write_json(&gates.quarantine(), &quarantine) {
        store_errors.push(e.to_string());
    }
    // What each test depended on, from the shard that ran it (`--changed` after a merge).
    let parts: Vec<(&Impact, Vec<&str>)> = shards
        .iter()
        .map(|s| {
            (
                &s.impact,
                s.records.iter().map(|r| r.test_id.as_str()).collect(),
            )
        })
        .collect();
    if let Err(e) = Impact::merged(&parts).save(&Impact::path(&gates.dir)) {
        store_errors.push(e.to_string());
    }
    store_errors
}

/// How the shards ended, as one run's end (the store's part aside); the shards' wall
/// times and a broken shard's exit code go to `notes`.
fn merged_end(shards: &[ShardDir], incomplete: bool, notes: &mut Vec<String>) -> RunEnd {
    let worst_shard = shards
        .iter()
        .filter_map(|s| s.state.exit_code)
        .find(|c| *c == Exit::PytestBroken.code() || *c == Exit::Internal.code());
    if let Some(code) = worst_shard {
        notes.push(format!("a shard ended with exit code {code}"));
    }
    notes.insert(0, shard_walls(shards));
    RunEnd {
        broken: worst_shard.map(Exit::Code),
        incomplete,
        flaky_fails: shards.iter().any(|s| s.state.options.flaky_fails),
        ..RunEnd::default()
    }
}

/// The merged run's state: the shards' tests and options (as one run's), a new run id.
fn merged_state(shards: &[ShardDir], dirs: &[PathBuf]) -> RunState {
    let first = &shards[0];
    RunState {
        schema_version: STATE_SCHEMA,
        run_id: crate::store::new_run_id(),
        status: Status::Complete,
        started_at: shards
            .iter()
            .map(|s| s.state.started_at.clone())
            .min()
            .unwrap_or_else(clock::now),
        updated_at: clock::now(),
        command: format!(
            "mtest merge {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        options: crate::store::state::RunOptions {
            shard: None,
            ..first.state.options.clone()
        },
        notes: Vec::new(),
        changed_left_out: Vec::new(),
        tests: shards
            .iter()
            .flat_map(|s| s.state.tests.iter().cloned())
            .collect(),
        collected_files: first.state.collected_files.clone(),
        initial_paths: first.state.initial_paths.clone(),
        pytest_cache: None,
        shard_plan: None,
        exit_code: None,
        ending_s: None,
    }
}

/// The run's recorder, for the records of the shards: `run.jsonl`, the reporters, one
/// JUnit file (a suite per shard), the counts; no progress bar.
fn recorder<'h>(
    gates: &Gates,
    root: &Path,
    project: &ProjectConfig,
    host: &'h PluginHost,
    state: &RunState,
    started: std::time::Instant,
) -> Result<Recorder<'h>, Stop> {
    let log = run_log::RunLog::open(&gates.run_log())?;
    let last_run = gates.last_run();
    let reporters = Reporters::start(
        host,
        root,
        project.mtest.reporters.as_deref(),
        &last_run,
        &RunStart {
            run_id: state.run_id.clone(),
            started_at: state.started_at.clone(),
            selected: state.tests.len() as u32,
            command: state.command.clone(),
        },
    );
    let mut rec = Recorder::new(
        log,
        reporters,
        Progress::quiet(state.tests.len(), started),
        None,
        Junit::new(&last_run, state.options.retries),
    );
    rec.flush_lines();
    Ok(rec)
}

/// `shard 1/4: 63 test(s) in 12.3s; shard 2/4: …`
fn shard_walls(shards: &[ShardDir]) -> String {
    let walls: Vec<String> = shards
        .iter()
        .map(|s| {
            format!(
                "shard {}: {} test(s) in {}",
                s.shard(),
                s.records.len(),
                s.wall_s()
                    .map(|w| clock::human(clock::secs(w)))
                    .unwrap_or_else(|| "?".into())
            )
        })
        .collect();
    walls.join("; ")
}

/// The history: each test's entry from the shard that ran it (it updated only its own).
fn merged_durations(shards: &[ShardDir]) -> Durations {
    let mut durations = Durations {
        schema_version: 1,
        ..Durations::default()
    };
    let startups: Vec<f64> = shards
        .iter()
        .filter_map(|s| s.durations.startup_s)
        .collect();
    durations.startup_s =
        (!startups.is_empty()).then(|| startups.iter().sum::<f64>() / startups.len() as f64);
    for s in shards {
        for (id, h) in &s.durations.tests {
            durations
                .tests
                .entry(id.clone())
                .or_insert_with(|| h.clone());
        }
    }
    for s in shards {
        for r in &s.records {
            if let Some(h) = s.durations.tests.get(&r.test_id) {
                durations.tests.insert(r.test_id.clone(), h.clone());
            }
        }
    }
    durations
}

/// The quarantine: the shards' entries, and the policy's decision for the whole run when
/// it is complete and not mostly failing.
fn merged_quarantine(
    shards: &[ShardDir],
    rec: &Recorder,
    incomplete: bool,
    durations: &Durations,
    (root, project, host): (&Path, &ProjectConfig, &PluginHost),
    notes: &mut Vec<String>,
) -> Quarantine {
    let mut quarantine = Quarantine {
        schema_version: 1,
        ..Quarantine::default()
    };
    for s in shards {
        for (id, entry) in &s.quarantine.tests {
            quarantine
                .tests
                .entry(id.clone())
                .or_insert_with(|| entry.clone());
        }
    }
    if let Some(why) = rec.stats.mostly_failing() {
        notes.push(why);
    } else if incomplete {
        notes.push("quarantine not updated: the merged run is incomplete".into());
    } else {
        let decided = crate::quarantine::apply(
            host,
            root,
            project,
            &rec.records,
            durations,
            &mut quarantine,
        );
        match decided {
            Ok(changes) => notes.extend(changes),
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    quarantine
}

/// Copies every shard's failure bundles into `to`; returns what could not be copied.
fn copy_bundles(shards: &[ShardDir], to: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    for s in shards {
        let from = s.dir.join("last-run").join("failures");
        let Ok(entries) = std::fs::read_dir(&from) else {
            continue; // no failures
        };
        if let Err(e) = std::fs::create_dir_all(to) {
            errors.push(format!("cannot create {}: {e}", to.display()));
            return errors;
        }
        for entry in entries.flatten() {
            let target = to.join(entry.file_name());
            if let Err(e) = std::fs::copy(entry.path(), &target) {
                errors.push(format!(
                    "cannot copy {} to {}: {e}",
                    entry.path().display(),
                    target.display()
                ));
            }
        }
    }
    errors
}
