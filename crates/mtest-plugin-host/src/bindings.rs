//! Host-side bindings for the four plugin worlds of `wit/plugin.wit`.
//!
//! Exports are async so a call can be abandoned after its wall-clock limit even while the
//! guest is blocked inside a host call (a sleep, a socket read), which epoch interruption
//! alone cannot stop. The shared `types` interface is generated once (in `selection`) and
//! reused by the other worlds, so an `Outcome` is one type everywhere.

pub(crate) mod selection {
    wasmtime::component::bindgen!({
        world: "selection-plugin",
        path: "../../wit",
        exports: { default: async },
    });
}

pub(crate) mod quarantine {
    wasmtime::component::bindgen!({
        world: "quarantine-plugin",
        path: "../../wit",
        exports: { default: async },
        with: { "mtest:plugin/types": super::selection::mtest::plugin::types },
    });
}

pub(crate) mod reporter {
    wasmtime::component::bindgen!({
        world: "reporter-plugin",
        path: "../../wit",
        exports: { default: async },
        with: { "mtest:plugin/types": super::selection::mtest::plugin::types },
    });
}

pub(crate) mod probe {
    wasmtime::component::bindgen!({
        world: "probe-plugin",
        path: "../../wit",
        exports: { default: async },
        with: { "mtest:plugin/types": super::selection::mtest::plugin::types },
    });
}

/// The WIT package version this host speaks; a plugin must be built against the same.
pub const WIT_PACKAGE: &str = "mtest:plugin";
pub const WIT_VERSION: &str = "0.6.0";

/// The one WIT `outcome` type, shared by every world's bindings.
pub use selection::mtest::plugin::types::Outcome as WitOutcome;

impl From<crate::record::Outcome> for WitOutcome {
    fn from(o: crate::record::Outcome) -> Self {
        use crate::record::Outcome as O;
        match o {
            O::Passed => WitOutcome::Passed,
            O::Failed => WitOutcome::Failed,
            O::Error => WitOutcome::Error,
            O::Skipped => WitOutcome::Skipped,
            O::Xfailed => WitOutcome::Xfailed,
            O::Xpassed => WitOutcome::Xpassed,
            O::Hung => WitOutcome::Hung,
            O::Crashed => WitOutcome::Crashed,
        }
    }
}
