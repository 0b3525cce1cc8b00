//! Shared by the end-to-end tests: real components built from fixture crates, temp
//! projects, and the real `mtest` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root (tests live in `<root>/tests`, the host package in `<root>/host`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Builds a wasm32-wasip2 workspace with a clean environment (no host RUSTFLAGS) into its
/// own target dir, and returns the directory holding the `.wasm` files.
pub fn build_components(manifest_dir: &Path, target_dir: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(manifest_dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building {} failed:\n{}",
            manifest_dir.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(target_dir.join("wasm32-wasip2").join("release"))
}

/// Path of the fixture plugin `name` (tests/fixtures/plugins/<name>), built on first use.
pub fn fixture_plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        build_components(
            &repo_root().join("tests/fixtures/plugins"),
            &Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixture-plugins"),
        )
    });
    match dir {
        Ok(dir) => dir.join(format!("{}.wasm", name.replace('-', "_"))),
        Err(e) => panic!("{e}"),
    }
}

/// The `mtest` binary under test, with its compiled-component cache in `cache`.
pub fn mtest(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtest"));
    cmd.env("MTEST_CACHE_DIR", cache);
    cmd
}
