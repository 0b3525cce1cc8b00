//! The built-in plugins, embedded at build time (see `build.rs`).
//!
//! They are ordinary components: loaded through the same cache, sandbox and checks as a
//! user's `.wasm`, so a default never takes a path a user's plugin could not.

use super::{LoadError, LoadedPlugin, PluginHost, Source};

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The defaults a run uses when the configuration names nothing else.
pub const DEFAULT_SELECTOR: &str = "greedy-knapsack";
pub const DEFAULT_QUARANTINE: &str = "quarantine-3of5";
pub const DEFAULT_REPORTERS: &[&str] = &["txt-bundles", "summary-md", "html-report"];
/// Added to the default reporters on GitHub Actions (`GITHUB_ACTIONS=true`).
pub const GITHUB_REPORTER: &str = "github";

/// The component bytes of the built-in called `name`.
pub(crate) fn bytes(name: &str) -> Option<&'static [u8]> {
    BUILTIN_COMPONENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
}

/// Names of all built-ins, in listing order.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    BUILTIN_COMPONENTS.iter().map(|(n, _)| *n)
}

pub fn load(host: &PluginHost, name: &str) -> Option<Result<LoadedPlugin, LoadError>> {
    bytes(name).map(|b| host.load(b, Source::Builtin))
}
