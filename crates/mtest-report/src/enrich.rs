//! What mtest adds to a failure's bundle beyond what pytest said: the test's duration
//! history, the environment fingerprint (computed once, on the first failure), and the
//! daemon state from the configured probes.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::config::ProbeSpec;
use crate::plugin_host::session::{FailureContext, ProbeSession};
use crate::plugin_host::{discovery, native, LoadedPlugin, PluginHost, Source};
use crate::record::TestRecord;
use crate::store::durations::Durations;
use std::sync::Arc;

/// What answers a probe: a WebAssembly plugin, or a trusted native library.
enum Kind {
    Plugin(Result<LoadedPlugin, discovery::ResolveError>),
    Native(PathBuf),
}

struct Probe {
    name: String,
    kind: Kind,
    settings: Vec<(String, String)>,
    addresses: Vec<SocketAddr>,
    timeout: Duration,
}

pub struct Enricher<'h> {
    host: &'h PluginHost,
    python: PathBuf,
    root: PathBuf,
    /// Durations before this run: the history a bundle shows.
    history: Arc<Durations>,
    environment: Option<String>,
    probes: Vec<Probe>,
}

impl<'h> Enricher<'h> {
    pub fn new(
        host: &'h PluginHost,
        python: &Path,
        root: &Path,
        history: Arc<Durations>,
        probes: &std::collections::BTreeMap<String, ProbeSpec>,
    ) -> Self {
        let probes = probes
            .iter()
            .map(|(name, spec)| {
                let settings: Vec<(String, String)> = spec
                    .settings
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            toml::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), v)
                    })
                    .collect();
                let addresses = settings
                    .iter()
                    .filter(|(k, _)| k == "address")
                    .flat_map(|(_, v)| {
                        v.to_socket_addrs()
                            .map(|a| a.collect::<Vec<_>>())
                            .unwrap_or_default()
                    })
                    .collect();
                Probe {
                    name: name.clone(),
                    kind: match (&spec.native, &spec.plugin) {
                        (Some(lib), _) => Kind::Native(root.join(lib)),
                        (None, Some(plugin)) => {
                            Kind::Plugin(discovery::resolve(host, root, plugin, Source::Config))
                        }
                        (None, None) => Kind::Plugin(Err(discovery::ResolveError::NotConfigured)),
                    },
                    settings,
                    addresses,
                    timeout: crate::clock::secs(spec.timeout.unwrap_or(5.0).max(0.01)),
                }
            })
            .collect();
        Enricher {
            host,
            python: python.to_path_buf(),
            root: root.to_path_buf(),
            history,
            environment: None,
            probes,
        }
    }

    /// No more bundles: lets go of the history, so the run's end updates it in place.
    pub fn release_history(&mut self) {
        self.history = Arc::default();
    }

    /// Sections for a failing record's bundle.
    pub(crate) fn sections(&mut self, r: &TestRecord) -> Vec<(String, String)> {
        let mut out = vec![("Duration history".to_string(), self.history_of(&r.test_id))];
        if !self.probes.is_empty() {
            out.push(("Daemon state".to_string(), self.probe_all(r)));
        }
        if self.environment.is_none() {
            self.environment = Some(fingerprint(&self.python, &self.root));
        }
        out.push((
            "Environment".to_string(),
            self.environment.clone().unwrap_or_default(),
        ));
        out
    }

    fn history_of(&self, test_id: &str) -> String {
        match self.history.tests.get(test_id) {
            None => "no earlier runs recorded".to_string(),
            Some(h) => {
                let durations: Vec<String> =
                    h.durations.iter().map(|d| format!("{d:.3}s")).collect();
                let outcomes: Vec<&str> = h.outcomes.iter().map(|o| o.as_str()).collect();
                format!(
                    "durations (oldest first): {}\noutcomes (oldest first):  {}\nmedian: {}\nfailure score: {:.2}",
                    durations.join(" "),
                    outcomes.join(" "),
                    h.median_ms().map(|m| format!("{m} ms")).unwrap_or_else(|| "-".into()),
                    h.failure_score
                )
            }
        }
    }

    fn probe_all(&self, r: &TestRecord) -> String {
        let context = FailureContext {
            test_id: r.test_id.clone(),
            outcome: r.outcome.as_str().to_string(),
            message: r.message.clone().unwrap_or_default(),
        };
        let mut out = Vec::new();
        for p in &self.probes {
            let text = match &p.kind {
                Kind::Native(lib) => match native::check(
                    lib,
                    &p.settings,
                    &context.test_id,
                    &context.outcome,
                    &context.message,
                    p.timeout,
                ) {
                    Ok(text) => text,
                    Err(e) => format!("probe failed: {e}"),
                },
                Kind::Plugin(Err(e)) => format!("not probed: {e}"),
                Kind::Plugin(Ok(plugin)) => {
                    match ProbeSession::start(self.host, plugin, p.addresses.clone(), p.timeout)
                        .and_then(|mut s| s.check(&p.settings, &context))
                    {
                        Ok(text) => text,
                        Err(e) => format!("probe failed: {e}"),
                    }
                }
            };
            out.push(format!("[{}]\n{}", p.name, text.trim_end()));
        }
        out.join("\n\n")
    }
}

const PYTHON_FINGERPRINT: &str = r#"
import sys, platform
print("python:  ", sys.version.split()[0], "(" + sys.executable + ")")
import importlib.metadata as m
# The installed distribution's version: importing pytest would take longer than the rest.
try:
    print("pytest:  ", m.version("pytest"))
except Exception:
    try:
        import pytest
        print("pytest:  ", pytest.__version__)
    except Exception as e:
        print("pytest:   not importable:", e)
try:
    plugins = sorted({(d.metadata["Name"], d.version) for d in m.distributions()
                      if any(ep.group == "pytest11" for ep in d.entry_points)})
    print("plugins: ", ", ".join(f"{n} {v}" for n, v in plugins) or "none")
except Exception as e:
    print("plugins:  unknown:", e)
print("platform:", platform.platform())
"#;

/// Words in an environment variable's name that mark its value as secret.
const SECRET_WORDS: &[&str] = &[
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PASS",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "SESSION",
    "PRIVATE",
    "SIGNATURE",
    "DSN",
    "CERT",
];

/// Redacts values of secret-looking variables, and any URL's `user:password@`.
pub(crate) fn redacted(name: &str, value: &str) -> String {
    let upper = name.to_ascii_uppercase();
    if SECRET_WORDS.iter().any(|w| upper.contains(w)) {
        return "<redacted>".into();
    }
    if let Some(scheme_end) = value.find("://") {
        let rest = &value[scheme_end + 3..];
        if let Some(at) = rest.find('@') {
            if rest[..at].contains(':') && !rest[..at].contains('/') {
                return format!("{}://<redacted>@{}", &value[..scheme_end], &rest[at + 1..]);
            }
        }
    }
    value.to_string()
}

fn run_text(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Python, pytest and its plugins, OS, CPUs, git commit and dirtiness, environment.
pub(crate) fn fingerprint(python: &Path, root: &Path) -> String {
    let mut lines = Vec::new();
    match run_text(
        Command::new(python)
            .args(["-c", PYTHON_FINGERPRINT])
            .current_dir(root),
    ) {
        Some(text) => lines.push(text),
        None => lines.push(format!("python:   {} did not answer", python.display())),
    }
    lines.push(format!(
        "os:       {} {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        crate::platform::kernel_release()
    ));
    lines.push(format!(
        "cpus:     {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    ));
    let git = |args: &[&str]| run_text(Command::new("git").arg("-C").arg(root).args(args));
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) => {
            let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
            lines.push(format!(
                "git:      {commit}{}",
                if dirty {
                    " (dirty: uncommitted changes)"
                } else {
                    " (clean)"
                }
            ));
        }
        None => lines.push("git:      not a git checkout".into()),
    }
    lines.push(format!("mtest:    {}", env!("CARGO_PKG_VERSION")));
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    vars.sort();
    lines.push("environment:".into());
    for (k, v) in vars {
        lines.push(format!("  {k}={}", redacted(&k, &v)));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redacted("GITHUB_TOKEN", "ghp_abc"), "<redacted>");
        assert_eq!(redacted("AWS_SECRET_ACCESS_KEY", "x"), "<redacted>");
        assert_eq!(redacted("db_password", "x"), "<redacted>");
        assert_eq!(
            redacted("DATABASE_URL", "postgres://me:hunter2@db:5432/x"),
            "postgres://<redacted>@db:5432/x"
        );
        assert_eq!(redacted("HOME", "/root"), "/root");
        assert_eq!(
            redacted("URL", "https://example.com/a@b"),
            "https://example.com/a@b"
        );
    }
}
