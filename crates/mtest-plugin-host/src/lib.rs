//! The plugin host: loads WebAssembly components, sandboxes them, and calls them.
//!
//! Every plugin, built-in or not, goes through the same path: bytes → compiled component
//! (via the on-disk artifact cache) → world detected from its exports → instantiated in a
//! store that grants nothing by default → called under a CPU deadline (epochs), a
//! wall-clock limit (async call abandoned) and a memory limit. Any failure becomes one
//! [`PluginError`] that names the plugin and what it did; the host itself goes on.

pub mod bindings;
pub mod builtins;
mod cache;
pub mod discovery;
mod epoch;
mod kind;
pub mod native;
mod sandbox;
pub mod session;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine, Store};

pub use cache::ArtifactCache;
pub(crate) use kind::Kind;
pub(crate) use sandbox::Grants;
use sandbox::PluginState;

// The model, named `crate::…` here as in the host.
use mtest_model::{clock, record, Exit};

/// Resource limits for one plugin call / instance.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall-clock and CPU limit of one call.
    pub call_timeout: Duration,
    /// Linear memory limit of one instance.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_secs(10),
            memory_bytes: 512 << 20,
        }
    }
}

/// Where a plugin was found; shown by `mtest plugins list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Builtin,
    /// `*.wasm` in the project's `.mtest/plugins/`.
    ProjectDir(PathBuf),
    /// A path in `[tool.mtest]` of `pyproject.toml`.
    Config(PathBuf),
    /// A path given on the command line.
    CommandLine(PathBuf),
    /// An `mtest-<name>` executable on `PATH` (an external subcommand).
    Path(PathBuf),
}

impl Source {
    pub fn label(&self) -> &'static str {
        match self {
            Source::Builtin => "builtin",
            Source::ProjectDir(_) => "project dir",
            Source::Config(_) => "config",
            Source::CommandLine(_) => "command line",
            Source::Path(_) => "PATH",
        }
    }

    pub fn path(&self) -> Option<&PathBuf> {
        match self {
            Source::Builtin => None,
            Source::ProjectDir(p)
            | Source::Config(p)
            | Source::CommandLine(p)
            | Source::Path(p) => Some(p),
        }
    }
}

/// What a plugin says about itself (`identity.info`), checked against its world.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub kind: Kind,
    pub description: String,
}

/// A component that loaded, implements a world this host speaks, and answered `info`.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub info: PluginInfo,
    pub source: Source,
    pre: InstancePre<PluginState>,
}

impl LoadedPlugin {
    /// `name (source)`, the way errors refer to a plugin.
    pub fn label(&self) -> String {
        match self.source.path() {
            Some(p) => format!("`{}` ({})", self.info.name, p.display()),
            None => format!("`{}` (builtin)", self.info.name),
        }
    }
}

/// Why a component could not be used as a plugin.
#[derive(Debug)]
pub enum LoadError {
    /// Not a plugin for this host: another WIT version, another ABI, missing imports.
    Incompatible(String),
    /// Not loadable at all: unreadable, not wasm, traps in `info`, lies about its kind.
    Broken(String),
}

impl std::error::Error for LoadError {}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Incompatible(why) => write!(f, "incompatible: {why}"),
            LoadError::Broken(why) => write!(f, "broken: {why}"),
        }
    }
}

/// The plugin host could not start (the wasm engine, WASI, its runtime or timer).
#[derive(Debug, thiserror::Error)]
#[error("cannot {what}: {cause}")]
pub struct HostError {
    what: &'static str,
    cause: String,
}

impl HostError {
    fn new(what: &'static str) -> impl Fn(&dyn fmt::Display) -> HostError {
        move |cause| HostError {
            what,
            cause: cause.to_string(),
        }
    }
}

/// A plugin call that did not return a usable answer. The message names the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub(crate) plugin: String,
    pub(crate) what: String,
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin {} {}", self.plugin, self.what)
    }
}

impl std::error::Error for PluginError {}

pub struct PluginHost {
    engine: Engine,
    linker: Arc<Linker<PluginState>>,
    cache: ArtifactCache,
    runtime: Arc<tokio::runtime::Runtime>,
    ticker: epoch::Ticker,
    pub(crate) limits: Limits,
}

impl PluginHost {
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self, HostError> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .parallel_compilation(true);
        let engine =
            Engine::new(&config).map_err(|e| HostError::new("start the wasm engine")(&e))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| HostError::new("set up WASI for plugins")(&e))?;
        // Guests import the type-only `types` interface; it has nothing to provide.
        let types = format!("{}/types@{}", bindings::WIT_PACKAGE, bindings::WIT_VERSION);
        linker
            .instance(&types)
            .map_err(|e| HostError::new("set up the plugin ABI")(&e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HostError::new("start the plugin runtime")(&e))?;
        let ticker = epoch::Ticker::start(&engine)
            .map_err(|e| HostError::new("start the plugin deadline timer")(&e))?;
        let cache = ArtifactCache::new(&engine, cache_dir);
        Ok(PluginHost {
            engine,
            linker: Arc::new(linker),
            cache,
            runtime: Arc::new(runtime),
            ticker,
            limits,
        })
    }

    /// Compiles (or fetches from the cache) and checks a component; calls its `info`.
    pub fn load(&self, bytes: &[u8], source: Source) -> Result<LoadedPlugin, LoadError> {
        let component = self.compile(bytes)?;
        let kind =
            kind::detect(&self.engine, &component).map_err(|e| LoadError::Incompatible(e.0))?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            LoadError::Incompatible(format!(
                "needs imports this host does not provide: {}",
                root_cause(&e)
            ))
        })?;
        let info = session::call_info(self, &pre, kind).map_err(|e| LoadError::Broken(e.what))?;
        if info.kind != kind {
            return Err(LoadError::Broken(format!(
                "its info() says kind `{}` but it implements the {} world",
                info.kind,
                kind.world()
            )));
        }
        if info.name.trim().is_empty() {
            return Err(LoadError::Broken("its info() returns an empty name".into()));
        }
        Ok(LoadedPlugin { info, source, pre })
    }

    /// Reads a `.wasm` file and loads it.
    pub fn load_file(
        &self,
        path: &std::path::Path,
        source: Source,
    ) -> Result<LoadedPlugin, LoadError> {
        let bytes = std::fs::read(path)
            .map_err(|e| LoadError::Broken(format!("cannot read {}: {e}", path.display())))?;
        self.load(&bytes, source)
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::Broken(
                "not a WebAssembly file (bad magic number)".into(),
            ));
        }
        // Byte 4..8: version + layer; layer 1 is a component, 0 a core module.
        if bytes.len() >= 8 && bytes[6..8] == [0, 0] {
            return Err(LoadError::Incompatible(
                "a core wasm module, not a component: build for wasm32-wasip2 (or run `wasm-tools component new`)"
                    .into(),
            ));
        }
        self.cache
            .load(&self.engine, bytes)
            .map_err(|e| LoadError::Broken(format!("does not compile: {}", root_cause(&e))))
    }

    /// A store for one plugin's calls; the grants' directories must open.
    fn new_store(&self, grants: &Grants) -> std::io::Result<Store<PluginState>> {
        let state = PluginState::new(grants, self.limits.memory_bytes)?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        Ok(store)
    }

    fn deadline_ticks(&self) -> u64 {
        epoch::Ticker::ticks(self.limits.call_timeout)
    }
}

/// The innermost cause, which is the useful part of a wasmtime error chain.
fn root_cause(e: &wasmtime::Error) -> String {
    let mut chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    let last = chain.pop().unwrap_or_default();
    match chain.first() {
        Some(first) if first != &last => format!("{first}: {last}"),
        _ => last,
    }
}
