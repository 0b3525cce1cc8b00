//! Which plugin world a component implements, read from its exports before it runs.

use std::fmt;

use wasmtime::component::Component;
use wasmtime::Engine;

use super::bindings::{WIT_PACKAGE, WIT_VERSION};

/// The four extension points; each is one world of `wit/plugin.wit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Selection,
    QuarantinePolicy,
    Reporter,
    Probe,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] = [
        Kind::Selection,
        Kind::QuarantinePolicy,
        Kind::Reporter,
        Kind::Probe,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Selection => "selection",
            Kind::QuarantinePolicy => "quarantine-policy",
            Kind::Reporter => "reporter",
            Kind::Probe => "probe",
        }
    }

    /// The WIT world a plugin of this kind implements.
    pub fn world(self) -> &'static str {
        match self {
            Kind::Selection => "selection-plugin",
            Kind::QuarantinePolicy => "quarantine-plugin",
            Kind::Reporter => "reporter-plugin",
            Kind::Probe => "probe-plugin",
        }
    }

    /// The interface that carries the kind's functions.
    fn interface(self) -> &'static str {
        match self {
            Kind::Selection => "selector",
            Kind::QuarantinePolicy => "quarantine",
            Kind::Reporter => "reporter",
            Kind::Probe => "probe",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a component is not a plugin this host can load.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Incompatible(pub String);

/// Reads the component's export names (`mtest:plugin/selector@0.4.0`, …) and returns the
/// kind it implements, or why it is not one this host accepts.
pub(crate) fn detect(engine: &Engine, component: &Component) -> Result<Kind, Incompatible> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let prefix = format!("{WIT_PACKAGE}/");
    let mut ours = Vec::new();
    for name in &exports {
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, "?"));
        if version != WIT_VERSION {
            return Err(Incompatible(format!(
                "built for {WIT_PACKAGE}@{version}; this mtest speaks {WIT_PACKAGE}@{WIT_VERSION} \
                 (rebuild the plugin against this mtest's wit/)"
            )));
        }
        ours.push(interface);
    }
    if ours.is_empty() {
        let listed = if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        };
        return Err(Incompatible(format!(
            "not an mtest plugin: exports {listed}, none from {WIT_PACKAGE}@{WIT_VERSION}"
        )));
    }
    if !ours.contains(&"identity") {
        return Err(Incompatible(format!(
            "does not export {WIT_PACKAGE}/identity@{WIT_VERSION}, which every plugin must"
        )));
    }
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| ours.contains(&k.interface()))
        .collect();
    match kinds.as_slice() {
        [kind] => Ok(*kind),
        [] => Err(Incompatible(format!(
            "exports identity but none of the plugin interfaces ({})",
            Kind::ALL.map(|k| k.interface()).join(", ")
        ))),
        several => Err(Incompatible(format!(
            "implements several plugin worlds at once ({}); build one component per kind",
            several
                .iter()
                .map(|k| k.world())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
