//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift costs tens of milliseconds (seconds for a
//! componentize-py plugin); deserializing a precompiled artifact costs well under one.
//! Artifacts are keyed by the component's content hash *and* the engine's compatibility
//! hash, written atomically, and only ever read back from this cache's own directory:
//! `Component::deserialize_file` trusts its input, so nothing else may be fed to it.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

pub struct ArtifactCache {
    dir: Option<PathBuf>,
    engine_key: blake3::Hash,
}

/// Feeds `Hash` output (the engine's compatibility hash) into blake3.
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0
    }
}

impl ArtifactCache {
    /// `dir` of `None` disables the cache (every load compiles).
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = Blake3Hasher(blake3::Hasher::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        ArtifactCache {
            dir,
            engine_key: hasher.0.finalize(),
        }
    }

    /// The default location: `$MTEST_CACHE_DIR`, else `$XDG_CACHE_HOME/mtest/components`,
    /// else `~/.cache/mtest/components`. Must be absolute.
    pub fn default_dir() -> Option<PathBuf> {
        let dir = if let Some(dir) = std::env::var_os("MTEST_CACHE_DIR") {
            PathBuf::from(dir)
        } else if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            PathBuf::from(dir).join("mtest").join("components")
        } else {
            PathBuf::from(std::env::var_os("HOME")?)
                .join(".cache")
                .join("mtest")
                .join("components")
        };
        dir.is_absolute().then_some(dir)
    }

    fn path_for(&self, bytes: &[u8]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.engine_key.as_bytes());
        hasher.update(bytes);
        Some(dir.join(format!("{}.cwasm", hasher.finalize().to_hex())))
    }

    /// Returns the compiled component, from the cache when it holds this exact component
    /// for this exact engine, else compiled now and stored for next time.
    pub(crate) fn load(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let path = self.path_for(bytes);
        if let Some(path) = &path {
            if path.is_file() {
                // SAFETY: the file sits in our cache directory under a name derived from
                // the blake3 hash of this engine's key and these exact component bytes;
                // only `store` below writes there, with `Component::serialize` output.
                // wasmtime still checks the artifact header against the engine.
                if let Ok(component) = unsafe { Component::deserialize_file(engine, path) } {
                    return Ok(component);
                }
                // Unreadable or stale artifact: recompile and overwrite it below.
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = &path {
            // A cache we cannot write only costs time on the next start.
            let _ = store(path, &component);
        }
        Ok(component)
    }
}

fn store(path: &Path, component: &Component) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let artifact = component
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&artifact)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
