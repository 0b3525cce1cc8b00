//! The end-to-end tests, one binary (wasmtime linked once): the real `mtest` binary
//! against real pytest in temp projects, a module per area. Run one area with a filter:
//! `cargo test --release --test e2e -- supervisor::`.

mod common;

mod builtin_plugins;
mod changed;
mod cli_plugins;
mod command_line;
mod faithful;
mod flakes;
mod native_probes;
mod plugin_sandbox;
mod plugins_at_work;
mod python_package;
mod reliability;
mod shards;
mod supervisor;
mod workflows;
