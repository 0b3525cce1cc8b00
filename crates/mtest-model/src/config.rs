//! `[tool.mtest]` in the project's `pyproject.toml`.
//!
//! Precedence is command line > this table > built-in defaults; the merging happens where
//! each value is used. Unknown keys are an error naming the key, the file and the line,
//! because a misspelt key silently ignored is a setting silently lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Every key of `[tool.mtest]`; documented in the README's configuration reference.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Parallel pytest processes (`-j`).
    pub jobs: Option<u32>,
    /// Per-test timeout in seconds (`--timeout`); default: pytest's `timeout`, else 30.
    pub timeout: Option<f64>,
    /// Re-runs of a failed test (`--retries`), default 0.
    pub retries: Option<u32>,
    /// Re-run a crashed test alone, unbuffered, for its bundle's last output (default true).
    pub rerun_crashed: Option<bool>,
    /// Early flake detection: a test with no history (a new test) runs this many times,
    /// each in a fresh worker; a new test that is already flaky fails the run (default 0:
    /// off).
    pub new_test_repeats: Option<u32>,
    /// The Python interpreter that runs pytest (`--python`).
    pub python: Option<String>,
    /// Selection plugin: a built-in name, a plugin name in `.mtest/plugins/`, or a path.
    pub selector: Option<String>,
    /// Quarantine policy plugin, same forms as `selector`.
    pub quarantine_policy: Option<String>,
    /// Reporter plugins; each a name/path, or `{ plugin = "...", output = "dir" }`.
    pub reporters: Option<Vec<ReporterSpec>>,
    /// Extra plugin `.wasm` files to list and make resolvable by name.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Wall-clock and CPU limit of one plugin call, in seconds (default 10).
    pub plugin_timeout: Option<f64>,
    /// Memory limit of one plugin instance, in MiB (default 512).
    pub plugin_memory_mb: Option<u64>,
    /// Daemon-state probes, by name.
    #[serde(default)]
    pub probes: BTreeMap<String, ProbeSpec>,
    /// Extra arguments for every pytest invocation (after the command line's `-- ARGS`).
    #[serde(default)]
    pub pytest_args: Vec<String>,
    /// `fork` (collect once, fork workers) or `process` (a pytest process per chunk).
    pub isolation: Option<Isolation>,
    /// Seconds collection may go without progress before the module in flight is taken
    /// for hung (default 120).
    pub collect_timeout: Option<f64>,
    /// Seconds pytest's session end (its `pytest_sessionfinish` hooks, exit handlers) may
    /// take once the tests are done before it is killed (default 60).
    pub session_end_timeout: Option<f64>,
    /// Fork mode: objects built while collecting stay frozen (`gc.freeze()`) in the
    /// workers, as Python's docs advise for a process that forks: a worker's garbage
    /// collections do not touch, and so copy, the collected heap (default true). false:
    /// each worker unfreezes them, so `gc.get_objects()` in a test lists them too.
    pub gc_freeze: Option<bool>,
    /// Record what each test depends on (the project's code it ran, the files it read),
    /// for `--changed` (default true).
    pub impact: Option<bool>,
}

/// How tests are isolated from each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// One pytest process collects once; each chunk runs in a fork of it.
    Fork,
    /// Each chunk is a pytest process of its own, collecting its own files.
    Process,
}

impl Default for Isolation {
    fn default() -> Self {
        Isolation::default_for_platform()
    }
}

/// `--isolation`'s value, as the configuration spells it.
impl std::str::FromStr for Isolation {
    type Err = crate::BadValue;

    fn from_str(s: &str) -> Result<Isolation, crate::BadValue> {
        match s {
            "fork" if cfg!(target_os = "linux") => Ok(Isolation::Fork),
            "fork" => Err(crate::BadValue(
                "`fork` is Linux's only: this system runs each chunk as a pytest process of its own (`process`)".into(),
            )),
            "process" => Ok(Isolation::Process),
            _ => Err(crate::BadValue("expected `fork` or `process`".into())),
        }
    }
}

impl Isolation {
    /// Fork on Linux; process elsewhere: macOS's system frameworks are not fork-safe, and
    /// Windows has no fork.
    pub fn default_for_platform() -> Isolation {
        if cfg!(target_os = "linux") {
            Isolation::Fork
        } else {
            Isolation::Process
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ReporterSpec {
    Name(String),
    Table(ReporterTable),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReporterTable {
    pub plugin: String,
    /// Output directory, relative to `.gates/last-run/`; default: the plugin's name.
    pub output: Option<String>,
}

/// Every key besides `plugin` and `timeout` is a setting for the probe (serde cannot deny
/// unknown keys and collect them at once; here collecting them is the point).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProbeSpec {
    /// The probe plugin (built-in name or path).
    pub plugin: Option<String>,
    /// A trusted native probe instead: a shared library with mtest's probe C ABI
    /// (relative to the project root); needs `trusted = true`.
    pub native: Option<String>,
    /// Consent to load `native` code, which runs with mtest's rights (in a helper process).
    #[serde(default)]
    pub(crate) trusted: bool,
    /// Time limit of one probe call, in seconds (default 5).
    pub timeout: Option<f64>,
    /// Settings handed to the plugin; `address` (host:port) is also what it may connect to.
    #[serde(flatten)]
    pub settings: BTreeMap<String, toml::Value>,
}

/// What mtest reads from `pyproject.toml`: its own table, and pytest's `timeout`.
#[derive(Debug, Default)]
pub struct ProjectConfig {
    pub mtest: Config,
    pub pytest_timeout: Option<f64>,
}

#[derive(Deserialize)]
struct Pyproject {
    #[serde(default)]
    tool: Tool,
}

#[derive(Deserialize, Default)]
struct Tool {
    mtest: Option<Config>,
    pytest: Option<PytestTool>,
}

#[derive(Deserialize)]
struct PytestTool {
    #[serde(rename = "ini_options")]
    ini_options: Option<toml::Table>,
}

/// What is wrong with the project's configuration or where it is (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--root {}: {source}", root.display())]
    Root {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the working directory: {0}")]
    Cwd(#[source] std::io::Error),
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `pyproject.toml:12: invalid type …`
    #[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}: [tool.mtest] {problem}", file.display())]
    Invalid { file: PathBuf, problem: Problem },
}

/// One line naming a `[tool.mtest]` key and what is wrong with its value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Problem(String);

/// The project root: `--root` if given, else the nearest ancestor of the working directory
/// holding a `pyproject.toml` or `pytest.ini`, else the working directory.
pub fn find_root(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(root) = explicit {
        return std::fs::canonicalize(root).map_err(|source| ConfigError::Root {
            root: root.to_path_buf(),
            source,
        });
    }
    let cwd = std::env::current_dir().map_err(ConfigError::Cwd)?;
    Ok(cwd
        .ancestors()
        .find(|d| d.join("pyproject.toml").is_file() || d.join("pytest.ini").is_file())
        .unwrap_or(&cwd)
        .to_path_buf())
}

/// Reads `root/pyproject.toml` (absent is fine: all defaults).
pub fn load(root: &Path) -> Result<ProjectConfig, ConfigError> {
    let file = root.join("pyproject.toml");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProjectConfig::default()),
        Err(source) => return Err(ConfigError::Read { file, source }),
    };
    let parsed: Pyproject = toml::from_str(&text).map_err(|e| {
        let message = e.message().trim().replace('\n', " ");
        let line = error_line(&text, e.span(), &message);
        ConfigError::Parse {
            file: file.clone(),
            line,
            message,
        }
    })?;
    let pytest_timeout = parsed
        .tool
        .pytest
        .and_then(|p| p.ini_options)
        .and_then(|o| o.get("timeout").cloned())
        .and_then(|v| match v {
            toml::Value::Integer(i) => Some(i as f64),
            toml::Value::Float(f) => Some(f),
            toml::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
    let mtest = parsed.tool.mtest.unwrap_or_default();
    validate(&mtest).map_err(|problem| ConfigError::Invalid { file, problem })?;
    Ok(ProjectConfig {
        mtest,
        pytest_timeout,
    })
}

/// The 1-based line of a TOML error. toml points an unknown field at its table; the line
/// of the key itself is what a person needs, so look for it below the table header.
fn error_line(text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> Option<usize> {
    let start = span?.start.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    let key = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next());
    let Some(key) = key else { return Some(line) };
    let found = text.lines().enumerate().skip(line - 1).find(|(_, l)| {
        let l = l.trim_start().trim_start_matches('"');
        l.strip_prefix(key).is_some_and(|rest| {
            let rest = rest.trim_start_matches('"').trim_start();
            rest.starts_with('=') || rest.starts_with('.')
        })
    });
    Some(found.map(|(i, _)| i + 1).unwrap_or(line))
}

/// The most parallel workers mtest starts.
pub const MAX_JOBS: u32 = 1024;

/// What is wrong with `[tool.mtest]`, if anything: one line naming the key.
fn validate(c: &Config) -> Result<(), Problem> {
    if c.jobs == Some(0) {
        return Err(Problem("jobs: must be at least 1".into()));
    }
    if let Some(jobs) = c.jobs.filter(|&j| j > MAX_JOBS) {
        return Err(Problem(format!("jobs: {jobs} is more than {MAX_JOBS}")));
    }
    let probe_timeouts = c
        .probes
        .iter()
        .map(|(name, p)| (format!("probes.{name}.timeout"), p.timeout));
    for (key, v) in [
        ("timeout".to_string(), c.timeout),
        ("plugin-timeout".to_string(), c.plugin_timeout),
        ("collect-timeout".to_string(), c.collect_timeout),
        ("session-end-timeout".to_string(), c.session_end_timeout),
    ]
    .into_iter()
    .chain(probe_timeouts)
    {
        if let Some(v) = v {
            crate::clock::checked_secs(v).map_err(|e| Problem(format!("{key}: {e}")))?;
        }
    }
    for (name, p) in &c.probes {
        match (&p.plugin, &p.native) {
            (Some(_), Some(_)) => {
                return Err(Problem(format!(
                    "probes.{name}: give either `plugin` (WebAssembly) or `native` (a shared library), not both"
                )))
            }
            (None, None) => {
                return Err(Problem(format!(
                    "probes.{name}: needs `plugin` (e.g. \"tcp\") or `native = \"path.so\"`"
                )))
            }
            (None, Some(lib)) if !p.trusted => {
                return Err(Problem(format!(
                    "probes.{name}: native = {lib:?} runs native code with mtest's rights: add `trusted = true` to allow it"
                )))
            }
            _ => {}
        }
    }
    if c.plugin_memory_mb == Some(0) {
        return Err(Problem("plugin-memory-mb: must be at least 1".into()));
    }
    Ok(())
}
