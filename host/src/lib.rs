//! mtest: a test supervisor that drives pytest from the outside.
//!
//! Data flows top to bottom: config → collect → select (plugin) → chunk → run & watch →
//! records → store + reporters (plugins).

pub(crate) mod cli;
mod commands;

// The model (mtest-model): records, the plan's tests, run events, times, options' types,
// the watchdog, exit codes. Imported at the root so every module names them `crate::…`.
pub use mtest_model::clock;
use mtest_model::{config, deps, record, run_event, shard, tiers};
pub use mtest_model::{BadValue, Exit, FastMap, FastSet};
// The OS layer (mtest-platform): every OS call.
use mtest_platform as platform;
// `.gates/` (mtest-store).
use mtest_store as store;
// WebAssembly plugins and native probes (mtest-plugin-host).
pub use mtest_plugin_host as plugin_host;
// pytest: the interpreter, the event plugin, the wire, collection, the zygote (mtest-pytest).
use mtest_pytest as pytest;
// The runner: the supervision loop, chunks, a chunk's process (mtest-runner).
use mtest_runner as supervise;
// The selection and quarantine plugins asked (mtest-policy).
use mtest_policy::{quarantine, selection};
// Everything a run writes for people and tools (mtest-report).
use mtest_report as report;

use cli::{Cli, Command, PluginsCommand, QuarantineCommand};
use plugin_host::{ArtifactCache, Limits, PluginHost};

/// Runs mtest with the process's arguments; returns the exit code.
pub fn main() -> Exit {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(plugin_host::native::HELPER) {
        return plugin_host::native::helper_main(&args[2..]);
    }
    if let Some(external) = cli::external_subcommand(&args) {
        return commands::external::run(external);
    }
    run(<Cli as clap::Parser>::parse_from(args))
}

/// Runs one parsed command line to its exit code.
pub fn run(cli: Cli) -> Exit {
    let root = match config::find_root(cli.root.as_deref()) {
        Ok(root) => root,
        Err(e) => return commands::Stop::from(e).report(),
    };
    let project = match config::load(&root) {
        Ok(project) => project,
        Err(e) => return commands::Stop::from(e).report(),
    };
    let host = match plugin_host(&project.mtest) {
        Ok(host) => host,
        Err(e) => return commands::Stop::from(e).report(),
    };
    match cli.command {
        Some(Command::Plugins {
            action: PluginsCommand::List { json },
        }) => {
            let paths: Vec<_> = project.mtest.plugins.iter().map(|p| root.join(p)).collect();
            let native: Vec<_> = project
                .mtest
                .probes
                .iter()
                .filter_map(|(name, p)| Some((name.clone(), root.join(p.native.as_ref()?))))
                .collect();
            commands::plugins::list(&host, &root, &paths, &native, json)
        }
        Some(Command::Plugins {
            action: PluginsCommand::Check { path },
        }) => commands::plugins::check(&host, &path),
        Some(Command::Merge { dirs, partial }) => {
            commands::merge::merge(&dirs, partial, &root, &project, &host)
        }
        Some(Command::Quarantine {
            action: QuarantineCommand::Release { test_id },
        }) => commands::quarantine::release(&root, &test_id),
        Some(Command::Quarantine {
            action: QuarantineCommand::Add { test_id, reason },
        }) => commands::quarantine::add(&root, &test_id, &reason),
        None if cli.run.report => match &cli.run.trace {
            Some(file) => commands::report::trace(&root, file),
            None => commands::report::report(&root, cli.run.json),
        },
        None if cli.run.quarantine => commands::quarantine::show(&root),
        None if cli.run.self_check => commands::self_check::run(&cli.run, &root, &project),
        None => commands::run::run(&cli.run, &root, &project, &host),
    }
}

pub fn plugin_host(config: &config::Config) -> Result<PluginHost, plugin_host::HostError> {
    let mut limits = Limits::default();
    if let Some(secs) = config.plugin_timeout {
        limits.call_timeout = clock::secs(secs);
    }
    if let Some(mb) = config.plugin_memory_mb {
        limits.memory_bytes = usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    }
    PluginHost::new(limits, ArtifactCache::default_dir())
}
