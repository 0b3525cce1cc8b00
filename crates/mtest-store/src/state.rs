//! `state.json`: the resume checkpoint. Written when a run starts (with which options) and
//! when it ends or is interrupted; what was selected is in `plan.json`, written once, when
//! the run starts (100k selected tests are megabytes: the end of a run does not write them
//! again). Progress itself is `run.jsonl`: `--resume` runs exactly the selected tests that
//! have no record there yet.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Loaded, StoreError};
use crate::config::Isolation;
use crate::record::PlannedTest;

/// 2: the selected tests and collected files are in `plan.json` (1: in `state.json`).
pub const STATE_SCHEMA: u32 = 2;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Interrupted,
    Complete,
}

/// The options a run was started with; `--resume` reuses them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RunOptions {
    pub tiers: u8,
    pub budget_s: Option<f64>,
    pub keyword: Option<String>,
    pub markexpr: Option<String>,
    pub timeout_s: f64,
    pub jobs: u32,
    /// `-x`: stop after the first failing test (older states; see `max_fail`).
    pub fail_fast: bool,
    /// `--lf`: only the tests that failed last time.
    #[serde(default)]
    pub last_failed: bool,
    /// `--ff`: the tests that failed last time first.
    #[serde(default)]
    pub failed_first: bool,
    /// Stop after this many failing tests.
    #[serde(default)]
    pub max_fail: Option<u32>,
    pub python: String,
    pub pytest_args: Vec<String>,
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub flaky_fails: bool,
    #[serde(default = "yes")]
    pub rerun_crashed: bool,
    /// `--reporter` plugins of the command line (a resume uses them again).
    #[serde(default)]
    pub reporters: Vec<String>,
    /// Fork or process isolation (absent in older states: process).
    #[serde(default = "process")]
    pub isolation: Isolation,
    /// Seconds collection may go without progress.
    #[serde(default = "collect_timeout")]
    pub collect_timeout_s: f64,
    /// Test paths and node ids of the command line, relative to the project root: only
    /// their tests are collected.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Fork mode: workers keep the collected heap frozen (`gc-freeze`).
    #[serde(default = "yes")]
    pub gc_freeze: bool,
    /// Seconds pytest's session end may take (`session-end-timeout`).
    #[serde(default = "session_end_timeout")]
    pub session_end_timeout_s: f64,
    /// `--shard K/N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// `--repeat N` (1: once).
    #[serde(default = "one")]
    pub repeat: u32,
    /// `new-test-repeats` (0: off).
    #[serde(default)]
    pub new_test_repeats: u32,
    /// pytest's `--pdb` and `--trace` of the command line (a run on a terminal): the first
    /// failing test (`--pdb`), or the first selected test (`--trace`), runs again alone in
    /// the foreground under pytest's debugger, and the run stops there, resumable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub debugger: Vec<String>,
    /// Each test's dependencies are recorded (`impact`).
    #[serde(default)]
    pub impact: bool,
    /// `--changed`: only the tests a change can reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Changed>,
}

/// `--changed` and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// `--changed-since REF`.
    pub since: Option<String>,
    /// `--verify`: everything runs; the tests `--changed` would have left out are named.
    pub verify: bool,
}

impl RunOptions {
    /// `--max-fail N`, else 1 for `-x`/`--fail-fast`: the one place the two meet.
    pub fn stop_after_failures(&self) -> Option<u32> {
        if !self.debugger.is_empty() {
            return Some(1); // --pdb: the first failing test is the one to debug
        }
        self.max_fail.or(self.fail_fast.then_some(1))
    }

    /// `--trace`: the first selected test runs under the debugger from its start.
    pub fn traces(&self) -> bool {
        self.debugger.iter().any(|a| a == "--trace")
    }
}

fn process() -> Isolation {
    Isolation::Process
}

/// Default of `session-end-timeout`.
pub fn session_end_timeout() -> f64 {
    60.0
}

/// Default of `collect-timeout`.
pub fn collect_timeout() -> f64 {
    120.0
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RunState {
    pub schema_version: u32,
    pub run_id: String,
    pub status: Status,
    pub started_at: String,
    pub updated_at: String,
    pub command: String,
    pub options: RunOptions,
    /// Lines from the selection plugin, shown again in the summary.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The selected tests, in run order (in `plan.json`; in this file before schema 2).
    #[serde(default, skip_serializing)]
    pub tests: Vec<PlannedTest>,
    /// Every file the collection found tests in, selected or not (the same).
    #[serde(default, skip_serializing)]
    pub collected_files: Vec<String>,
    /// pytest's initial paths in the collection (the same; none from an older plan).
    #[serde(default, skip_serializing)]
    pub initial_paths: Option<Vec<String>>,
    /// With `--shard`: the partition, for `mtest merge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_plan: Option<crate::shard::ShardPlan>,
    /// pytest's cache directory, where the run's end writes `lastfailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pytest_cache: Option<String>,
    /// The exit code, once the run has ended (`mtest merge` combines the shards').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
    /// Seconds from the end of the run's tests to its own end (pytest's session end, the
    /// store): the next run's `--budget` keeps as much for its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending_s: Option<f64>,
    /// `--changed --verify`: the tests `--changed` would have left out (they all run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_left_out: Vec<String>,
}

/// `plan.json` as written: the selected tests of run `run_id`.
#[derive(Serialize)]
struct PlanOut<'a> {
    run_id: &'a str,
    tests: &'a [PlannedTest],
    collected_files: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_paths: &'a Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Plan {
    run_id: String,
    tests: Vec<PlannedTest>,
    #[serde(default)]
    collected_files: Vec<String>,
    #[serde(default)]
    initial_paths: Option<Vec<String>>,
}

/// `plan.json`, beside `state.json`.
pub(crate) fn plan_path(state: &Path) -> PathBuf {
    state.with_file_name("plan.json")
}

/// A run's start: `plan.json`, then `state.json` (a kill between the two leaves a plan
/// of another run beside the old state, which [`read`] refuses by its run id).
pub fn write_start(path: &Path, state: &RunState) -> Result<(), StoreError> {
    let plan = PlanOut {
        run_id: &state.run_id,
        tests: &state.tests,
        collected_files: &state.collected_files,
        initial_paths: &state.initial_paths,
    };
    super::atomic_write_json(&plan_path(path), &plan)?;
    super::atomic_write_json(path, state)
}

/// `state.json` alone: the plan is the one written when the run started, unless it is
/// gone (the store was deleted during the run), and then it is written again.
pub fn write(path: &Path, state: &RunState) -> Result<(), StoreError> {
    if !plan_path(path).is_file() {
        return write_start(path, state);
    }
    super::atomic_write_json(path, state)
}

/// `state.json` with its plan. A state whose plan is missing, does not parse or is of
/// another run is corrupt: moved aside (with its plan), never half-read.
/// How long the last run took to end once its tests were over ([`RunState::ending_s`]);
/// None when unknown. Only read: the new run replaces the file (a corrupt one too).
pub fn last_ending(path: &Path) -> Option<std::time::Duration> {
    #[derive(Deserialize)]
    struct Ending {
        ending_s: Option<f64>,
    }
    let text = std::fs::read(path).ok()?;
    let secs = serde_json::from_slice::<Ending>(&text).ok()?.ending_s?;
    crate::clock::checked_secs(secs).ok()
}

pub fn read(path: &Path) -> Result<Loaded<RunState>, StoreError> {
    let mut state = match super::read_json::<RunState>(path)? {
        Loaded::Ok(state) => state,
        other => return Ok(other),
    };
    if state.schema_version < 2 {
        return Ok(Loaded::Ok(state));
    }
    let plan_file = plan_path(path);
    let why = match super::read_json::<Plan>(&plan_file)? {
        Loaded::Ok(plan) if plan.run_id == state.run_id => {
            state.tests = plan.tests;
            state.collected_files = plan.collected_files;
            state.initial_paths = plan.initial_paths;
            return Ok(Loaded::Ok(state));
        }
        Loaded::Ok(plan) => format!(
            "{} is of run {}, not of run {}",
            plan_file.display(),
            plan.run_id,
            state.run_id
        ),
        Loaded::Missing => format!("{} is missing", plan_file.display()),
        Loaded::Corrupt { why, aside } => {
            format!(
                "{} is corrupt ({why}; moved to {})",
                plan_file.display(),
                aside.display()
            )
        }
    };
    let aside = super::set_aside(path)?;
    Ok(Loaded::Corrupt { why, aside })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(run_id: &str) -> RunState {
        RunState {
            schema_version: STATE_SCHEMA,
            run_id: run_id.into(),
            status: Status::Running,
            started_at: "t0".into(),
            updated_at: "t0".into(),
            command: "mtest".into(),
            options: RunOptions::default(),
            notes: Vec::new(),
            tests: vec![PlannedTest {
                id: "t.py::a".into(),
                file: "t.py".into(),
                line: Some(1),
                markers: Vec::new(),
                tier: 1,
                estimate_ms: 5,
                timeout_s: None,
                quarantined: false,
                isolate: false,
                runs: 1,
                group: None,
            }],
            changed_left_out: Vec::new(),
            collected_files: vec!["t.py".into()],
            initial_paths: Some(vec!["/p/t.py".into()]),
            pytest_cache: Some("/p/.pytest_cache".into()),
            shard_plan: None,
            exit_code: None,
            ending_s: None,
        }
    }

    #[test]
    fn the_last_runs_ending_is_read_from_its_state_and_is_none_when_unknown() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.json");
        assert_eq!(last_ending(&path), None, "no file");
        let mut s = state("r1");
        write_start(&path, &s).expect("write");
        assert_eq!(last_ending(&path), None, "a run not ended");
        s.ending_s = Some(1.5);
        write_start(&path, &s).expect("write");
        assert_eq!(
            last_ending(&path),
            Some(std::time::Duration::from_millis(1500))
        );
        std::fs::write(&path, "{not json").expect("write");
        assert_eq!(last_ending(&path), None, "a corrupt file");
        assert!(path.exists(), "only read: the new run replaces it");
    }

    fn loaded(path: &Path) -> Result<RunState, String> {
        match read(path).map_err(|e| e.to_string())? {
            Loaded::Ok(s) => Ok(s),
            Loaded::Missing => Err("missing".into()),
            Loaded::Corrupt { why, .. } => Err(why),
        }
    }

    #[test]
    fn the_plan_is_written_once_and_read_with_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut s = state("run-1");
        write_start(&path, &s).unwrap();
        s.status = Status::Complete;
        let tests = std::mem::take(&mut s.tests);
        write(&path, &s).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("t.py::a"), "{text}");
        let back = loaded(&path).unwrap();
        assert_eq!(back.status, Status::Complete);
        assert_eq!(back.tests.len(), 1);
        assert_eq!(back.tests[0].id, "t.py::a");
        assert_eq!(back.collected_files, vec!["t.py".to_string()]);
        assert_eq!(back.initial_paths, Some(vec!["/p/t.py".to_string()]));
        // The store deleted during the run: the end writes the plan again.
        std::fs::remove_file(plan_path(&path)).unwrap();
        s.tests = tests;
        write(&path, &s).unwrap();
        assert_eq!(loaded(&path).unwrap().tests.len(), 1);
    }

    #[test]
    fn a_state_with_another_runs_plan_or_none_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_start(&path, &state("run-2")).unwrap();
        // A kill between the two writes of the next run's start.
        super::super::atomic_write_json(&path, &state("run-1")).unwrap();
        let why = loaded(&path).unwrap_err();
        assert!(why.contains("is of run run-2, not of run run-1"), "{why}");
        assert!(!path.exists());
        write_start(&path, &state("run-3")).unwrap();
        std::fs::remove_file(plan_path(&path)).unwrap();
        let why = loaded(&path).unwrap_err();
        assert!(why.ends_with("plan.json is missing"), "{why}");
    }

    #[test]
    fn a_schema_1_state_holds_its_own_tests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut v = serde_json::to_value(state("old")).unwrap();
        v["schema_version"] = 1.into();
        v["tests"] = serde_json::to_value(&state("old").tests).unwrap();
        v["collected_files"] = serde_json::json!(["t.py"]);
        std::fs::write(&path, v.to_string()).unwrap();
        let back = loaded(&path).unwrap();
        assert_eq!(back.tests.len(), 1);
        assert_eq!(back.collected_files.len(), 1);
    }
}
