//! Where plugins come from, in precedence order: built-ins, `*.wasm` in the project's
//! `.mtest/plugins/`, paths named in `[tool.mtest] plugins`, and (cargo-style) `mtest-<name>`
//! executables on `PATH`, which run as external subcommands.

use std::path::{Path, PathBuf};

use super::{builtins, LoadError, LoadedPlugin, PluginHost, Source};

/// One discovered plugin, loaded or not.
pub enum Found {
    Component {
        /// The file stem (or built-in name), used when the plugin cannot say its own name.
        hint: String,
        source: Source,
        loaded: Result<LoadedPlugin, LoadError>,
    },
    Subcommand {
        name: String,
        path: PathBuf,
    },
}

/// The project's plugin directory.
pub(crate) fn project_dir(root: &Path) -> PathBuf {
    root.join(".mtest").join("plugins")
}

/// Every plugin visible from `root`, each loaded (or with the reason it did not load).
pub fn discover(host: &PluginHost, root: &Path, config_paths: &[PathBuf]) -> Vec<Found> {
    let mut found = Vec::new();
    for name in builtins::names() {
        if let Some(loaded) = builtins::load(host, name) {
            found.push(Found::Component {
                hint: name.to_string(),
                source: Source::Builtin,
                loaded,
            });
        }
    }
    for path in wasm_files(&project_dir(root)) {
        found.push(load_path(host, &path, Source::ProjectDir(path.clone())));
    }
    for path in config_paths {
        found.push(load_path(host, path, Source::Config(path.clone())));
    }
    for (name, path) in path_subcommands() {
        found.push(Found::Subcommand { name, path });
    }
    found
}

fn load_path(host: &PluginHost, path: &Path, source: Source) -> Found {
    let hint = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Found::Component {
        hint,
        loaded: host.load_file(path, source.clone()),
        source,
    }
}

/// `*.wasm` in `dir`, sorted; a missing directory has none.
fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    files.sort();
    files
}

/// `mtest-<name>` executables on `PATH`, first one of each name wins (as a shell would).
pub(crate) fn path_subcommands() -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let Some(path) = std::env::var_os("PATH") else {
        return found;
    };
    for dir in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut here: Vec<(String, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                let name = file.strip_prefix("mtest-")?;
                let name = name
                    .strip_suffix(std::env::consts::EXE_SUFFIX)
                    .unwrap_or(name)
                    .to_string();
                (!name.is_empty() && mtest_platform::is_executable(&e.path()))
                    .then(|| (name, e.path()))
            })
            .collect();
        here.sort();
        for (name, p) in here {
            if !found.iter().any(|(n, _)| *n == name) {
                found.push((name, p));
            }
        }
    }
    found
}

/// The external subcommand `mtest-<name>` on `PATH`, if any.
pub fn find_subcommand(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(format!("mtest-{name}{}", std::env::consts::EXE_SUFFIX)))
        .find(|p| mtest_platform::is_executable(p))
}

/// Resolves a plugin named on the command line or in the configuration: a path to a
/// `.wasm` file (anything with a `/` or ending in `.wasm`), else the name of a built-in or
/// of a plugin in the project's `.mtest/plugins/`.
pub fn resolve(
    host: &PluginHost,
    root: &Path,
    spec: &str,
    source_for_path: fn(PathBuf) -> Source,
) -> Result<LoadedPlugin, ResolveError> {
    if spec.contains('/') || spec.ends_with(".wasm") {
        let path = root.join(spec);
        return host
            .load_file(&path, source_for_path(path.clone()))
            .map_err(|source| ResolveError::File { path, source });
    }
    if let Some(loaded) = builtins::load(host, spec) {
        return loaded.map_err(|source| ResolveError::Builtin {
            name: spec.to_string(),
            source,
        });
    }
    for path in wasm_files(&project_dir(root)) {
        if let Ok(plugin) = host.load_file(&path, Source::ProjectDir(path.clone())) {
            if plugin.info.name == spec {
                return Ok(plugin);
            }
        }
    }
    Err(ResolveError::NotFound {
        name: spec.to_string(),
        builtins: builtins::names().collect::<Vec<_>>().join(", "),
        dir: project_dir(root),
    })
}

/// Why a plugin named in the configuration or on the command line is not there.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("plugin {}: {source}", path.display())]
    File { path: PathBuf, source: LoadError },
    #[error("built-in plugin `{name}`: {source}")]
    Builtin { name: String, source: LoadError },
    #[error("no plugin named `{name}`: not a built-in ({builtins}) nor in {}; give a path to a .wasm file instead", dir.display())]
    NotFound {
        name: String,
        builtins: String,
        dir: PathBuf,
    },
    /// A probe with neither `plugin` nor `native` (the configuration refuses one).
    #[error("no plugin configured")]
    NotConfigured,
}
