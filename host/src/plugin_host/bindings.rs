//! Host-side bindings for the four plugin worlds of `wit/plugin.wit`.
//!
//! Exports are async so a call can be abandoned after its wall-clock limit even while the
//! guest is blocked inside a host call (a sleep, a socket read), which epoch interruption
//! alone cannot stop.

pub mod selection {
    wasmtime::component::bindgen!({
        world: "selection-plugin",
        path: "../wit",
        exports: { default: async },
    });
}

pub mod quarantine {
    wasmtime::component::bindgen!({
        world: "quarantine-plugin",
        path: "../wit",
        exports: { default: async },
    });
}

pub mod reporter {
    wasmtime::component::bindgen!({
        world: "reporter-plugin",
        path: "../wit",
        exports: { default: async },
    });
}

pub mod probe {
    wasmtime::component::bindgen!({
        world: "probe-plugin",
        path: "../wit",
        exports: { default: async },
    });
}

/// The WIT package version this host speaks; a plugin must be built against the same.
pub const WIT_PACKAGE: &str = "mtest:plugin";
pub const WIT_VERSION: &str = "0.1.0";
