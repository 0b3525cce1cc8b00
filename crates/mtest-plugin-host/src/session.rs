//! Live plugin instances and the calls into them.
//!
//! A session owns one store. Each call gets a fresh CPU deadline and a wall-clock limit;
//! a call that traps, runs out of time or memory leaves the instance unusable, so the
//! session remembers that and refuses further calls with the same error.

use std::sync::Arc;

use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap};

use super::bindings::{probe, quarantine, reporter, selection};
use super::sandbox::{Grants, PluginState};
use super::{Kind, LoadedPlugin, PluginError, PluginHost, PluginInfo};

pub use probe::exports::mtest::plugin::probe::FailureContext;
pub use quarantine::exports::mtest::plugin::quarantine::{Decision, TestHistory, Verdict};
pub use reporter::exports::mtest::plugin::reporter::{
    ChunkSpan, RunStart, RunSummary, TestRecord, TestReport, TierCounts, Wanted,
};
pub use selection::exports::mtest::plugin::selector::{
    Candidate, Exclusion, ExclusionReason, Selection, SelectionRequest, Shard,
};

struct Session<B> {
    label: String,
    store: Store<PluginState>,
    bindings: B,
    runtime: Arc<tokio::runtime::Runtime>,
    ticker: super::epoch::Ticker,
    deadline_ticks: u64,
    timeout: std::time::Duration,
    memory_bytes: usize,
    dead: Option<PluginError>,
}

/// Calls `$call` (an async export call borrowing `$s.bindings` and `$s.store`) under the
/// session's limits and turns every way it can go wrong into a `PluginError`.
macro_rules! guarded {
    ($s:ident, $what:literal, |$b:ident, $st:ident| $call:expr) => {{
        if let Some(dead) = &$s.dead {
            return Err(dead.clone());
        }
        $s.store.set_epoch_deadline($s.deadline_ticks);
        let outcome = {
            let _timed = $s.ticker.busy();
            let $b = &$s.bindings;
            let $st = &mut $s.store;
            $s.runtime
                .block_on(async { tokio::time::timeout($s.timeout, $call).await })
        };
        $s.settle($what, outcome)
    }};
}

impl<B> Session<B> {
    fn new(
        host: &PluginHost,
        plugin: &LoadedPlugin,
        store: Store<PluginState>,
        bindings: B,
    ) -> Self {
        Session {
            label: plugin.label(),
            store,
            bindings,
            runtime: host.runtime.clone(),
            ticker: host.ticker.clone(),
            deadline_ticks: host.deadline_ticks(),
            timeout: host.limits.call_timeout,
            memory_bytes: host.limits.memory_bytes,
            dead: None,
        }
    }

    /// Maps the result of a guarded call; a failed call kills the session.
    fn settle<R>(
        &mut self,
        what: &str,
        outcome: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    ) -> Result<R, PluginError> {
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => describe_failure(&e, &self.store, what, self.timeout, self.memory_bytes),
            Err(_) => format!(
                "did not return from {what} within its {} limit (blocked waiting); it was abandoned",
                human(self.timeout)
            ),
        };
        let error = PluginError {
            plugin: self.label.clone(),
            what: error,
        };
        self.dead = Some(error.clone());
        Err(error)
    }

    /// A plugin's own `err(...)` answer, as an error naming it.
    fn refused(&self, what: &str, message: String) -> PluginError {
        PluginError {
            plugin: self.label.clone(),
            what: format!("returned an error from {what}: {message}"),
        }
    }

    fn garbage(&mut self, what: &str, message: String) -> PluginError {
        let error = PluginError {
            plugin: self.label.clone(),
            what: format!("returned garbage from {what}: {message}"),
        };
        self.dead = Some(error.clone());
        error
    }
}

fn human(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn describe_failure(
    e: &wasmtime::Error,
    store: &Store<PluginState>,
    what: &str,
    timeout: std::time::Duration,
    memory_bytes: usize,
) -> String {
    let state = store.data();
    if state.limiter.refused {
        return format!(
            "exceeded its memory limit of {} MiB in {what}",
            memory_bytes >> 20
        );
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!(
            "exceeded its CPU time limit of {} in {what}",
            human(timeout)
        ),
        Some(trap) => match state.stderr.last_line() {
            Some(line) => format!("trapped in {what} ({trap}): {line}"),
            None => format!("trapped in {what} ({trap})"),
        },
        None => format!("failed in {what}: {}", super::root_cause(e)),
    }
}

fn new_store_or_error(
    host: &PluginHost,
    plugin_label: &str,
    grants: &Grants,
) -> Result<Store<PluginState>, PluginError> {
    host.new_store(grants).map_err(|e| PluginError {
        plugin: plugin_label.to_string(),
        what: format!("cannot grant {e}"),
    })
}

/// Instantiates a typed world binding inside `host.runtime`.
macro_rules! instantiate {
    ($host:expr, $plugin:expr, $grants:expr, $module:ident :: $pre:ident) => {{
        let label = $plugin.label();
        let mut store = new_store_or_error($host, &label, $grants)?;
        store.set_epoch_deadline($host.deadline_ticks());
        let pre = $module::$pre::new($plugin.pre.clone()).map_err(|e| PluginError {
            plugin: label.clone(),
            what: format!("does not match its world: {e}"),
        })?;
        let _timed = $host.ticker.busy();
        let instance = $host.runtime.block_on(async {
            tokio::time::timeout($host.limits.call_timeout, pre.instantiate_async(&mut store)).await
        });
        match instance {
            Ok(Ok(bindings)) => Ok((store, bindings)),
            Ok(Err(e)) => Err(PluginError {
                plugin: label,
                what: describe_failure(
                    &e,
                    &store,
                    "instantiation",
                    $host.limits.call_timeout,
                    $host.limits.memory_bytes,
                ),
            }),
            Err(_) => Err(PluginError {
                plugin: label,
                what: "did not finish instantiating in time".into(),
            }),
        }
    }};
}

/// Calls `identity.info` in a throw-away instance; used when loading.
pub(super) fn call_info(
    host: &PluginHost,
    pre: &InstancePre<PluginState>,
    kind: Kind,
) -> Result<PluginInfo, PluginError> {
    let probe_plugin = LoadedPlugin {
        info: PluginInfo {
            name: "?".into(),
            version: String::new(),
            kind,
            description: String::new(),
        },
        source: super::Source::Builtin,
        pre: pre.clone(),
    };
    macro_rules! info_via {
        ($module:ident :: $pre:ident) => {{
            let (store, bindings) =
                instantiate!(host, &probe_plugin, &Grants::default(), $module::$pre)?;
            let mut s = Session::new(host, &probe_plugin, store, bindings);
            s.label = "being loaded".into();
            let info = guarded!(s, "info", |b, st| b.mtest_plugin_identity().call_info(st))?;
            PluginInfo {
                name: info.name,
                version: info.version,
                kind: match info.kind {
                    $module::mtest::plugin::types::PluginKind::Selection => Kind::Selection,
                    $module::mtest::plugin::types::PluginKind::QuarantinePolicy => {
                        Kind::QuarantinePolicy
                    }
                    $module::mtest::plugin::types::PluginKind::Reporter => Kind::Reporter,
                    $module::mtest::plugin::types::PluginKind::Probe => Kind::Probe,
                },
                description: info.description,
            }
        }};
    }
    let info = match kind {
        Kind::Selection => info_via!(selection::SelectionPluginPre),
        Kind::QuarantinePolicy => info_via!(quarantine::QuarantinePluginPre),
        Kind::Reporter => info_via!(reporter::ReporterPluginPre),
        Kind::Probe => info_via!(probe::ProbePluginPre),
    };
    Ok(info)
}

fn expect_kind(plugin: &LoadedPlugin, kind: Kind) -> Result<(), PluginError> {
    if plugin.info.kind == kind {
        Ok(())
    } else {
        Err(PluginError {
            plugin: plugin.label(),
            what: format!("is a {} plugin, not a {kind} plugin", plugin.info.kind),
        })
    }
}

/// A selection plugin, ready to be asked.
pub struct SelectionSession(Session<selection::SelectionPlugin>);

impl SelectionSession {
    pub fn start(host: &PluginHost, plugin: &LoadedPlugin) -> Result<Self, PluginError> {
        expect_kind(plugin, Kind::Selection)?;
        let (store, bindings) = instantiate!(
            host,
            plugin,
            &Grants::default(),
            selection::SelectionPluginPre
        )?;
        Ok(SelectionSession(Session::new(
            host, plugin, store, bindings,
        )))
    }

    /// Asks for the tests to run; checks that every index is real and used at most once.
    pub fn select(&mut self, request: &SelectionRequest) -> Result<Selection, PluginError> {
        let s = &mut self.0;
        let answer = guarded!(s, "select", |b, st| b
            .mtest_plugin_selector()
            .call_select(st, request))?;
        let selection = answer.map_err(|m| s.refused("select", m))?;
        let n = request.candidates.len();
        let mut seen = vec![false; n];
        for &i in &selection.selected {
            match seen.get_mut(i as usize) {
                None => {
                    return Err(s.garbage(
                        "select",
                        format!("candidate index {i}, but there are only {n} candidates"),
                    ))
                }
                Some(true) => return Err(s.garbage("select", format!("candidate index {i} twice"))),
                Some(slot) => *slot = true,
            }
        }
        if let Some(bad) = selection.excluded.iter().find(|x| x.index as usize >= n) {
            return Err(s.garbage(
                "select",
                format!(
                    "excluded index {}, but there are only {n} candidates",
                    bad.index
                ),
            ));
        }
        Ok(selection)
    }
}

/// A quarantine policy plugin.
pub struct QuarantineSession(Session<quarantine::QuarantinePlugin>);

impl QuarantineSession {
    pub fn start(host: &PluginHost, plugin: &LoadedPlugin) -> Result<Self, PluginError> {
        expect_kind(plugin, Kind::QuarantinePolicy)?;
        let (store, bindings) = instantiate!(
            host,
            plugin,
            &Grants::default(),
            quarantine::QuarantinePluginPre
        )?;
        Ok(QuarantineSession(Session::new(
            host, plugin, store, bindings,
        )))
    }

    pub fn decide(&mut self, histories: &[TestHistory]) -> Result<Vec<Decision>, PluginError> {
        let s = &mut self.0;
        let answer = guarded!(s, "decide", |b, st| b
            .mtest_plugin_quarantine()
            .call_decide(st, histories))?;
        let decisions = answer.map_err(|m| s.refused("decide", m))?;
        if let Some(bad) = decisions
            .iter()
            .find(|d| d.index as usize >= histories.len())
        {
            let n = histories.len();
            return Err(s.garbage(
                "decide",
                format!(
                    "decision for index {}, but there are only {n} tests",
                    bad.index
                ),
            ));
        }
        Ok(decisions)
    }
}

/// A reporter plugin, with its output directory mounted at `/out`.
pub struct ReporterSession(Session<reporter::ReporterPlugin>);

impl ReporterSession {
    pub fn start(
        host: &PluginHost,
        plugin: &LoadedPlugin,
        out_dir: &std::path::Path,
    ) -> Result<Self, PluginError> {
        expect_kind(plugin, Kind::Reporter)?;
        let grants = Grants {
            out_dir: Some(out_dir.to_path_buf()),
            ..Grants::default()
        };
        let (store, bindings) = instantiate!(host, plugin, &grants, reporter::ReporterPluginPre)?;
        Ok(ReporterSession(Session::new(host, plugin, store, bindings)))
    }

    pub fn wants(&mut self) -> Result<Wanted, PluginError> {
        let s = &mut self.0;
        guarded!(s, "wants", |b, st| b.mtest_plugin_reporter().call_wants(st))
    }

    pub fn run_start(&mut self, start: &RunStart) -> Result<Vec<String>, PluginError> {
        let s = &mut self.0;
        let answer = guarded!(s, "on-run-start", |b, st| b
            .mtest_plugin_reporter()
            .call_on_run_start(st, start))?;
        answer.map_err(|m| s.refused("on-run-start", m))
    }

    pub fn tests(&mut self, records: &[TestRecord]) -> Result<Vec<String>, PluginError> {
        let s = &mut self.0;
        let answer = guarded!(s, "on-tests", |b, st| b
            .mtest_plugin_reporter()
            .call_on_tests(st, records))?;
        answer.map_err(|m| s.refused("on-tests", m))
    }

    pub fn run_end(&mut self, summary: &RunSummary) -> Result<Vec<String>, PluginError> {
        let s = &mut self.0;
        let answer = guarded!(s, "on-run-end", |b, st| b
            .mtest_plugin_reporter()
            .call_on_run_end(st, summary))?;
        answer.map_err(|m| s.refused("on-run-end", m))
    }
}

/// A probe plugin, allowed to connect to exactly `addresses`.
pub struct ProbeSession(Session<probe::ProbePlugin>);

impl ProbeSession {
    /// `timeout` bounds each `check` (a probe's own limit, not the host-wide one).
    pub fn start(
        host: &PluginHost,
        plugin: &LoadedPlugin,
        addresses: Vec<std::net::SocketAddr>,
        timeout: std::time::Duration,
    ) -> Result<Self, PluginError> {
        expect_kind(plugin, Kind::Probe)?;
        let grants = Grants {
            tcp_connect: addresses,
            ..Grants::default()
        };
        let (store, bindings) = instantiate!(host, plugin, &grants, probe::ProbePluginPre)?;
        let mut session = Session::new(host, plugin, store, bindings);
        session.timeout = timeout;
        session.deadline_ticks = super::epoch::Ticker::ticks(timeout);
        Ok(ProbeSession(session))
    }

    pub fn check(
        &mut self,
        settings: &[(String, String)],
        context: &FailureContext,
    ) -> Result<String, PluginError> {
        let s = &mut self.0;
        let answer = guarded!(s, "check", |b, st| b
            .mtest_plugin_probe()
            .call_check(st, settings, context))?;
        answer.map_err(|m| s.refused("check", m))
    }
}
