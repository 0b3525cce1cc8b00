//! The command line. `mtest [OPTIONS] [-- PYTEST_ARGS]` runs the tests; subcommands manage
//! plugins and quarantine; any other word runs `mtest-<word>` from `PATH`, cargo-style.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mtest",
    version,
    about = "Supervise pytest from the outside: crashes, hangs, budgets, quarantine, plugins",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// The project directory (default: the nearest ancestor with a pyproject.toml or pytest.ini).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Exit codes and the keys and signals a run answers (those of this system).
const AFTER_HELP: &str = if cfg!(windows) {
    "`mtest` is the short name of `mgf-test-supervisor`. Exit codes: 0 all selected tests passed, \
1 failures, 2 usage or configuration error, 3 internal error, 4 pytest could not run, 5 nothing \
selected, 130 interrupted. While tests run, Ctrl-C or Ctrl-Break stops the run gracefully \
(resume with --resume); Windows has no Ctrl-Z pause and no SIGUSR1 status."
} else {
    "`mtest` is the short name of `mgf-test-supervisor`. Exit codes: 0 all selected tests passed, \
1 failures, 2 usage or configuration error, 3 internal error, 4 pytest could not run, 5 nothing \
selected, 130 interrupted. While tests run, Ctrl-C stops the run gracefully (resume with \
--resume), Ctrl-Z pauses the workers, SIGUSR1 (Ctrl-T on macOS) prints the full status."
};

/// Subcommands built into mtest; any other first word is an external subcommand.
pub const BUILTIN_COMMANDS: &[&str] = &["plugins", "quarantine", "merge", "help"];

/// `mtest <word> …` where `<word>` is not built in, not an option and not a test path or
/// node id: `mtest-<word>` from PATH, cargo-style. Decided before clap parses, so run
/// options never shadow it.
pub fn external_subcommand(args: &[String]) -> Option<&[String]> {
    let word = args.get(1)?;
    let external =
        !word.starts_with('-') && !BUILTIN_COMMANDS.contains(&word.as_str()) && !is_test_path(word);
    external.then(|| &args[1..])
}

/// Whether `word` is what pytest takes positionally: an existing path, or a node id
/// (`path::name…`) whose path exists.
pub fn is_test_path(word: &str) -> bool {
    let path = word.split("::").next().unwrap_or(word);
    word.contains("::") || std::path::Path::new(path).exists()
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the plugins mtest can see, or check one.
    Plugins {
        #[command(subcommand)]
        action: PluginsCommand,
    },
    /// Join the .gates/ of the shards of one run (`--shard K/N` on N machines) into one
    /// run in this project's .gates/: records, junit.xml, bundles, reports, history and
    /// quarantine. Exit code as a run's.
    Merge {
        /// Each shard's `.gates/` directory (or a directory holding one, or a .tar,
        /// .tar.gz or .tgz archive of it).
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Merge even if shards are missing or unfinished (the exit code then fails).
        #[arg(long)]
        partial: bool,
    },
    /// Release a test from quarantine or add one (`mtest --quarantine` shows them).
    Quarantine {
        #[command(subcommand)]
        action: QuarantineCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Take a test out of quarantine now.
    Release {
        /// The pytest node id, as in run.jsonl.
        test_id: String,
    },
    /// Put a test in quarantine by hand (it still runs; its failures do not fail runs).
    Add {
        /// The pytest node id, as in run.jsonl.
        test_id: String,
        /// Why, kept in .gates/quarantine.json.
        #[arg(long, default_value = "added by hand")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Built-ins, `.mtest/plugins/*.wasm`, configured paths and `mtest-*` on PATH, with status.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Load one component and say which world it implements and whether mtest accepts it.
    Check {
        /// Path to a `.wasm` component.
        path: PathBuf,
    },
}

/// Options of a test run.
#[derive(Debug, Args, Default, Clone)]
pub struct RunArgs {
    /// Tiers to run: `0`, `0-2`, `1,3` (default: 0-3).
    #[arg(long, value_name = "TIERS")]
    pub tier: Option<String>,
    /// Wall-clock budget: `90s`, `5m`, `1h30m`.
    #[arg(long, value_name = "DURATION")]
    pub budget: Option<String>,
    /// Run the tests of the last run that have no record yet.
    #[arg(long)]
    pub resume: bool,
    /// Print the last run's summary.md.
    #[arg(long)]
    pub report: bool,
    /// With --report: the last run's records and counts as one JSON document.
    #[arg(long, requires = "report")]
    pub json: bool,
    /// With --report: write the last run's timeline to FILE as Chrome trace-event JSON
    /// (open it in Perfetto or chrome://tracing).
    #[arg(
        long,
        value_name = "FILE",
        requires = "report",
        conflicts_with = "json"
    )]
    pub trace: Option<PathBuf>,
    /// Print the quarantined tests.
    #[arg(long)]
    pub quarantine: bool,
    /// Supervise canned scenarios in a throw-away project and check every outcome.
    #[arg(long)]
    pub self_check: bool,
    /// Stop after the first failing test: `--max-fail 1`.
    #[arg(short = 'x', long)]
    pub fail_fast: bool,
    /// Stop after N failing tests: running tests finish, nothing new starts.
    #[arg(long, visible_alias = "maxfail", value_name = "N")]
    pub max_fail: Option<u32>,
    /// Only the tests whose last run failed, errored, hung or crashed (all when none did).
    #[arg(long = "lf", visible_alias = "last-failed")]
    pub last_failed: bool,
    /// The tests whose last run failed first, then the rest.
    #[arg(long = "ff", visible_alias = "failed-first")]
    pub failed_first: bool,
    /// Only the tests a change can reach: those whose recorded dependencies (the project's
    /// code they ran, the files they read) changed since they last ran, new tests, and
    /// those that failed last time. Everything when the environment or configuration
    /// changed or nothing is recorded yet.
    #[arg(long)]
    pub changed: bool,
    /// With `--changed`: also the tests that depend on a file `git diff REF` names.
    #[arg(long, value_name = "REF", requires = "changed")]
    pub changed_since: Option<String>,
    /// With `--changed`: run every test, and report each failing test that `--changed`
    /// would have left out (a check of the selection before relying on it).
    #[arg(long, requires = "changed")]
    pub verify: bool,
    /// Parallel pytest processes (default: number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<u32>,
    /// Per-test timeout in seconds (default: pytest's `timeout` setting, else 30).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Python interpreter with pytest (default: the project's .venv/venv, else $VIRTUAL_ENV, else the venv mtest is installed in, else python3).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// pytest `-k` expression, applied when collecting.
    #[arg(short = 'k', value_name = "EXPR")]
    pub keyword: Option<String>,
    /// pytest `-m` marker expression, applied when collecting.
    #[arg(short = 'm', value_name = "EXPR")]
    pub markexpr: Option<String>,
    /// Re-run a failed test up to N times, each time in a fresh pytest process.
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Run every selected test N times, each time in a fresh worker, and report each
    /// test's pass rate: a test that fails in some runs and passes in others is flaky and
    /// fails the run (flake hunting; nextest calls it stress).
    #[arg(long, value_name = "N", conflicts_with = "retries")]
    pub repeat: Option<u32>,
    /// A test that failed and then passed on a retry (flaky) fails the run.
    #[arg(long)]
    pub flaky_fails: bool,
    /// Run shard K of N (`2/4`): the selected tests split into N parts of about equal
    /// estimated time, the same on every machine; `mtest merge` joins the shards' .gates/.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::shard::Shard>,
    /// Print what would run, in which order, and why the rest would not; run nothing.
    #[arg(long, visible_alias = "dry-run")]
    pub explain_selection: bool,
    /// Selection plugin for this run: a built-in name, a plugin name, or a .wasm path.
    #[arg(long, value_name = "PLUGIN")]
    pub selector: Option<String>,
    /// Reporter plugin for this run, instead of the configured ones (repeatable).
    #[arg(long = "reporter", value_name = "PLUGIN")]
    pub reporters: Vec<String>,
    /// How tests are isolated: `fork` (collect once, fork workers that take chunk after
    /// chunk; the default on Linux) or `process` (a pytest process per chunk).
    #[arg(long, value_name = "MODE")]
    pub isolation: Option<crate::config::Isolation>,
    /// Colour on stderr: `auto` (a terminal, unless NO_COLOR is set; FORCE_COLOR forces
    /// it), `always` or `never`.
    #[arg(long, value_name = "WHEN")]
    pub color: Option<ColorChoice>,
    /// Test paths and node ids, as pytest takes them (`tests/unit`, `tests/test_x.py`,
    /// `tests/test_x.py::TestA::test_b[1-2]`): only their tests are collected.
    #[arg(value_name = "PATHS")]
    pub paths: Vec<String>,
    /// Arguments passed to every pytest invocation.
    #[arg(last = true, value_name = "PYTEST_ARGS")]
    pub pytest_args: Vec<String>,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// `always` and `never` force the answer; `auto` leaves it to the environment.
    pub fn forced(self) -> Option<bool> {
        match self {
            ColorChoice::Always => Some(true),
            ColorChoice::Never => Some(false),
            ColorChoice::Auto => None,
        }
    }
}
