//! Everything about running pytest as a subprocess: which interpreter, the event plugin
//! shipped inside the binary, and the command line every invocation shares.

pub mod collect;
mod error;
pub mod events;
mod install;
pub mod lastfailed;
pub mod outcome;
mod plugin_dir;
pub use error::PytestError;
pub mod zygote;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

pub(crate) use plugin_dir::PluginDir;

// The lower crates' modules, named `crate::…` here as in the host.
use mtest_model::{clock, record, watchdog, FastMap};
use mtest_platform as platform;
use mtest_store as store;

/// The event plugin, a Python package: written into a private temp dir ([`PluginDir`]) on
/// `PYTHONPATH`.
const EVENT_PLUGIN_MODULE: &str = "mtest_events";
const EVENT_PLUGIN: &[(&str, &str)] = &[
    ("__init__.py", include_str!("mtest_events/__init__.py")),
    ("state.py", include_str!("mtest_events/state.py")),
    ("channel.py", include_str!("mtest_events/channel.py")),
    ("options.py", include_str!("mtest_events/options.py")),
    ("collection.py", include_str!("mtest_events/collection.py")),
    ("reporting.py", include_str!("mtest_events/reporting.py")),
    ("leaks.py", include_str!("mtest_events/leaks.py")),
    ("timeouts.py", include_str!("mtest_events/timeouts.py")),
    ("runloop.py", include_str!("mtest_events/runloop.py")),
    ("zygote.py", include_str!("mtest_events/zygote.py")),
    ("system.py", include_str!("mtest_events/system.py")),
    ("coverage.py", include_str!("mtest_events/coverage.py")),
    (
        "dependencies.py",
        include_str!("mtest_events/dependencies.py"),
    ),
];
/// Beside the package, top-level (they must not import pytest): the recorder of each
/// test's dependencies, its Python 3.11 half, and the module that starts pytest with it.
const BOOT_MODULE: &str = "mtest_boot";
const TOP_LEVEL: &[(&str, &str)] = &[
    ("mtest_boot.py", include_str!("mtest_boot.py")),
    ("mtest_impact.py", include_str!("mtest_impact.py")),
    ("mtest_readers.py", include_str!("mtest_readers.py")),
    ("mtest_rewrite.py", include_str!("mtest_rewrite.py")),
];

/// The interpreter and the pieces every pytest invocation needs.
#[derive(Clone)]
pub struct Pytest {
    pub python: PathBuf,
    pub(crate) root: PathBuf,
    /// Holds the `mtest_events` package (and private pytest caches) for as long as this, or a
    /// process started from it that may still write there (the zygote), lives.
    plugin_dir: Arc<PluginDir>,
    /// Appended to every invocation: `[tool.mtest] pytest-args`, then `-- ARGS`.
    pub(crate) extra_args: Vec<String>,
    /// pytest-cov is on (`--cov`): process-mode chunks each keep their own data file.
    pub coverage: bool,
    /// Each test's dependencies are recorded (`impact`, on by default).
    pub impact: bool,
}

/// Whether pytest-cov's `--cov` appears in the configuration or the extra arguments.
fn uses_coverage(root: &Path, extra_args: &[String]) -> bool {
    mentions(root, extra_args, |word| {
        word == "--cov" || word.starts_with("--cov=")
    })
}

/// Whether a word of the project's pytest configuration, `PYTEST_ADDOPTS` or the extra
/// arguments passes `is`.
fn mentions(root: &Path, extra_args: &[String], is: impl Fn(&str) -> bool) -> bool {
    let mut texts: Vec<String> = [
        "pyproject.toml",
        "pytest.ini",
        ".pytest.ini",
        "setup.cfg",
        "tox.ini",
    ]
    .iter()
    .filter_map(|f| std::fs::read_to_string(root.join(f)).ok())
    .collect();
    texts.extend(std::env::var("PYTEST_ADDOPTS").ok());
    texts.extend(extra_args.iter().cloned());
    texts.iter().any(|text| {
        text.split(|c: char| c.is_whitespace() || "\"',[]".contains(c))
            .any(|word| is(word) || is(word.split('=').next().unwrap_or(word)))
    })
}

/// The interpreter: `--python`, else `[tool.mtest] python`, else the project's `.venv` or
/// `venv`, else the activated virtual environment (`$VIRTUAL_ENV`), else the one mtest is
/// installed in (`pip install` into a venv), else `python3` from PATH.
pub fn find_python(explicit: Option<&Path>, configured: Option<&str>, root: &Path) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = configured {
        let p = Path::new(p);
        return if p.components().count() > 1 {
            root.join(p)
        } else {
            p.to_path_buf()
        };
    }
    let activated = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from);
    // `…/venv/bin/mtest` → `…/venv`, if that is a virtual environment.
    let installed_in = std::env::current_exe().ok().and_then(|exe| {
        let venv = exe.parent()?.parent()?;
        venv.join("pyvenv.cfg")
            .is_file()
            .then(|| venv.to_path_buf())
    });
    [root.join(".venv"), root.join("venv")]
        .into_iter()
        .chain(activated)
        .chain(installed_in)
        .map(|venv| platform::venv_python(&venv))
        .find(|python| python.is_file())
        .unwrap_or_else(|| PathBuf::from(platform::PYTHON))
}

impl Pytest {
    pub fn new(
        python: PathBuf,
        root: PathBuf,
        extra_args: Vec<String>,
    ) -> Result<Self, PytestError> {
        let plugin_dir = PluginDir::create()?;
        let package = plugin_dir.path().join(EVENT_PLUGIN_MODULE);
        std::fs::create_dir(&package)
            .and_then(|()| {
                EVENT_PLUGIN
                    .iter()
                    .map(|(name, text)| (package.join(name), text))
                    .chain(
                        TOP_LEVEL
                            .iter()
                            .map(|(name, text)| (plugin_dir.path().join(name), text)),
                    )
                    .try_for_each(|(path, text)| std::fs::write(path, text))
            })
            .map_err(PytestError::write(&package))?;
        Ok(Pytest {
            coverage: uses_coverage(&root, &extra_args),
            python,
            root,
            plugin_dir: Arc::new(plugin_dir),
            extra_args,
            impact: false,
        })
    }

    /// Checks that the interpreter runs and has pytest and pytest-timeout; one clear line
    /// naming the interpreter and the install command (in the project's own tool) if not.
    pub(crate) fn check_installed(&self) -> Result<(), PytestError> {
        let python = self.python.display();
        let output = Command::new(&self.python)
            .args(["-c", "import pytest, pytest_timeout"])
            .current_dir(&self.root)
            .output()
            .map_err(|source| PytestError::NoPython {
                python: self.python.clone(),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let (missing, packages) = if stderr.contains("No module named 'pytest_timeout'") {
            ("pytest-timeout is", "pytest-timeout")
        } else if stderr.contains("No module named 'pytest'") {
            ("pytest is", "pytest pytest-timeout")
        } else {
            return Err(PytestError::NotInstalled(format!(
                "{python} cannot import pytest and pytest_timeout: {}",
                crate::record::one_line(stderr.lines().last().unwrap_or("unknown error"))
            )));
        };
        let install = install::command(&self.root, &self.python, packages);
        Err(PytestError::NotInstalled(format!(
            "{missing} not installed for {python}; install with: {install}"
        )))
    }

    /// `python -m mtest_boot -p mtest_events` (pytest, with each test's dependencies
    /// recorded from its start when `impact` is on) in the project root, with the plugin on
    /// `PYTHONPATH` and event file `events`. pytest's cache is the project's own, as under
    /// plain pytest (the `cache` fixture, `--lf` at collection); the event plugin keeps
    /// parallel chunks from writing pytest's own entries into it, and mtest writes
    /// `lastfailed` at the end of a run. Callers add their own arguments, then
    /// [`Pytest::finish_args`].
    pub fn command(&self, events: &Path) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.current_dir(&self.root)
            .args(["-m", BOOT_MODULE, "-p", EVENT_PLUGIN_MODULE]);
        // The plugin gives PYTHONPATH back as it was (MTEST_PYTHONPATH) once imported.
        let was = std::env::var_os("PYTHONPATH").unwrap_or_default();
        cmd.env("PYTHONPATH", self.pythonpath())
            .env("MTEST_PYTHONPATH", was)
            .env("MTEST_EVENTS", events)
            .env("MTEST_IMPACT", if self.impact { "1" } else { "0" })
            // A worker's own identity marks what its tests start; the zygote has none.
            .env_remove("PYTEST_XDIST_WORKER")
            .env_remove("PYTEST_XDIST_WORKER_COUNT")
            .env_remove("PYTEST_XDIST_TESTRUNUID")
            .env_remove("MTEST_COLLECT")
            .env_remove("MTEST_SELECT")
            .env_remove("MTEST_INITPATHS")
            .env_remove("MTEST_STACKS");
        cmd
    }

    /// Asks `python -m mtest_impact COMMAND` (in the root, with the plugin's dir on
    /// `PYTHONPATH`) with a JSON `request`; its JSON answer.
    pub fn ask_impact<T: serde::de::DeserializeOwned>(
        &self,
        command: &str,
        request: &impl serde::Serialize,
    ) -> Result<T, PytestError> {
        use std::io::Write;
        let fail = |what: String| PytestError::Impact(format!("mtest_impact {command}: {what}"));
        let body = serde_json::to_vec(request).map_err(|e| fail(e.to_string()))?;
        let mut child = Command::new(&self.python)
            .current_dir(&self.root)
            .env("PYTHONPATH", self.pythonpath())
            .args(["-m", "mtest_impact", command])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|source| PytestError::NoPython {
                python: self.python.clone(),
                source,
            })?;
        let written = child.stdin.take().map(|mut stdin| stdin.write_all(&body));
        let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
        if let Some(Err(e)) = written {
            return Err(fail(format!("cannot send the request: {e}")));
        }
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().last().unwrap_or("no output");
            return Err(fail(format!(
                "{} ({})",
                crate::record::one_line(last),
                output.status
            )));
        }
        serde_json::from_slice(&output.stdout).map_err(|e| fail(format!("its answer: {e}")))
    }

    /// Keeps the plugin dir for a process that outlives this value: the zygote spawned
    /// for collection lives on as the run's pytest, and its session end writes its
    /// private cache there.
    pub(crate) fn dir_guard(&self) -> Arc<PluginDir> {
        Arc::clone(&self.plugin_dir)
    }

    /// The user's extra pytest arguments come last, so they can override ours.
    pub fn finish_args(&self, cmd: &mut Command) {
        cmd.args(&self.extra_args);
    }

    fn pythonpath(&self) -> OsString {
        let mut path = OsString::from(self.plugin_dir.path());
        if let Some(existing) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
            path.push(":");
            path.push(existing);
        }
        path
    }
}

/// Process mode with pytest-cov: every chunk saved its own data (`COVERAGE_FILE` in
/// `chunk_dir`); combine them into the project's data file, as plain pytest would leave
/// it, and return `coverage report`'s table.
pub fn combine_coverage(pytest: &Pytest, chunk_dir: &Path) -> Result<String, PytestError> {
    let fail = PytestError::Coverage;
    let mut files: Vec<PathBuf> = std::fs::read_dir(chunk_dir)
        .map_err(|e| fail(format!("cannot read {}: {e}", chunk_dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "coverage"))
        .collect();
    if files.is_empty() {
        return Err(fail("no chunk saved coverage data".into()));
    }
    files.sort();
    let coverage = |args: &[&str], files: &[PathBuf]| {
        Command::new(&pytest.python)
            .current_dir(&pytest.root)
            .env_remove("COVERAGE_FILE")
            .args(["-m", "coverage"])
            .args(args)
            .args(files)
            .output()
            .map_err(|e| fail(format!("cannot run coverage: {e}")))
    };
    let combined = coverage(&["combine", "-q"], &files)?;
    if !combined.status.success() {
        return Err(fail(format!(
            "coverage combine failed: {}",
            crate::record::one_line(&String::from_utf8_lossy(&combined.stderr))
        )));
    }
    let report = coverage(&["report"], &[])?;
    Ok(String::from_utf8_lossy(&report.stdout)
        .trim_end()
        .to_string())
}

/// Sends the watchdog's `action` to the pytest process `pid` (a worker, or the zygote
/// while it collects): stacks and interrupts to the process, termination to its group.
pub fn signal(pid: i32, action: watchdog::Action) {
    use platform::Sig;
    use watchdog::Action;
    match action {
        Action::DumpStacks => platform::signal_pid(pid, Sig::SIGUSR1),
        Action::Interrupt => platform::signal_pid(pid, Sig::SIGINT),
        Action::Terminate => platform::signal_group(pid, Sig::SIGTERM),
        Action::Kill => platform::signal_group(pid, Sig::SIGKILL),
    }
}

/// A command line as a person would type it (for bundles and messages).
pub fn render_command(cmd: &Command) -> String {
    let mut parts = vec![shell_quote(&cmd.get_program().to_string_lossy())];
    parts.extend(cmd.get_args().map(|a| shell_quote(&a.to_string_lossy())));
    parts.join(" ")
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
