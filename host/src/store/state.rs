//! `state.json`: the resume checkpoint. Written when a run starts (what was selected, with
//! which options) and when it ends or is interrupted. Progress itself is `run.jsonl`:
//! `--resume` runs exactly the selected tests that have no record there yet.

use serde::{Deserialize, Serialize};

use crate::config::Isolation;
use crate::selection::PlannedTest;

pub const STATE_SCHEMA: u32 = 1;

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
    /// `--shard K/N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// `--repeat N` (1: once).
    #[serde(default = "one")]
    pub repeat: u32,
    /// `new-test-repeats` (0: off).
    #[serde(default)]
    pub new_test_repeats: u32,
}

impl RunOptions {
    /// `--max-fail N`, else 1 for `-x`/`--fail-fast`: the one place the two meet.
    pub fn stop_after_failures(&self) -> Option<u32> {
        self.max_fail.or(self.fail_fast.then_some(1))
    }
}

fn process() -> Isolation {
    Isolation::Process
}

/// Default of `collect-timeout`.
pub fn collect_timeout() -> f64 {
    120.0
}

impl Default for Isolation {
    fn default() -> Self {
        Isolation::default_for_platform()
    }
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
    /// The selected tests, in run order.
    pub tests: Vec<PlannedTest>,
    /// Every file the collection found tests in, selected or not.
    #[serde(default)]
    pub collected_files: Vec<String>,
    /// With `--shard`: the partition, for `mtest merge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_plan: Option<crate::shard::ShardPlan>,
    /// The exit code, once the run has ended (`mtest merge` combines the shards').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
}
