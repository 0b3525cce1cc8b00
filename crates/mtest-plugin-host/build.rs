//! Builds the built-in plugins (`../plugins`) as wasm32-wasip2 components and embeds them.
//!
//! A nested cargo that shared our target directory would deadlock on cargo's lock, so it
//! gets its own under `OUT_DIR`, and an environment cleaned of the flags meant for the host
//! (`RUSTFLAGS` for x86_64 must not reach a wasm build). `CARGO_MAKEFLAGS` stays, so the
//! nested build shares the outer job slots.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (crate name, artifact stem) of every built-in plugin, in `mtest plugins list` order.
const BUILTINS: &[&str] = &[
    "greedy-knapsack",
    "quarantine-3of5",
    "txt-bundles",
    "summary-md",
    "html-report",
    "github",
    "tcp",
];

fn main() {
    if let Err(e) = run() {
        // A build script's panic is the only way to fail; say what to do first.
        panic!("building the built-in plugins failed: {e}");
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    // crates/mtest-plugin-host → the repository.
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .ok_or("crates/mtest-plugin-host/ is not two levels below the repository")?;
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let target_dir = out_dir.join("plugins-target");
    rerun_if_changed(root);
    let status = nested_cargo(&plugins, &target_dir)
        .status()
        .map_err(|e| format!("cannot run cargo for the plugins: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build --release --target wasm32-wasip2` in {} failed ({status}); \
             is the target installed? run `rustup target add wasm32-wasip2`",
            plugins.display()
        ));
    }
    embed(&target_dir.join("wasm32-wasip2").join("release"), &out_dir)
}

/// What the built-ins are built from: the WIT, the plugins' workspace, what they share
/// (WIT types, outcome words, the model's calendar).
fn rerun_if_changed(root: &Path) {
    let plugins = root.join("plugins");
    let mut inputs = vec![
        root.join("wit"),
        plugins.join("Cargo.toml"),
        plugins.join("Cargo.lock"),
        plugins.join("shared"),
        root.join("crates/mtest-model/src/civil.rs"),
    ];
    for name in BUILTINS {
        inputs.push(plugins.join(name).join("src"));
        inputs.push(plugins.join(name).join("Cargo.toml"));
    }
    for input in inputs {
        println!("cargo:rerun-if-changed={}", input.display());
    }
}

/// `cargo build` of the plugins for wasm32-wasip2, in its own target directory, without
/// the variables cargo set for this (host) build.
fn nested_cargo(plugins: &Path, target_dir: &Path) -> Command {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_PKG_")
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Copies each built-in's component into `out_dir` and writes `builtins.rs`, which embeds
/// them.
fn embed(artifacts: &Path, out_dir: &Path) -> Result<(), String> {
    let mut generated = String::from(
        "/// The built-in plugins, compiled from `plugins/` by `crates/mtest-plugin-host/build.rs`.\n\
         pub const BUILTIN_COMPONENTS: &[(&str, &[u8])] = &[\n",
    );
    for name in BUILTINS {
        let file = artifacts.join(format!("{}.wasm", name.replace('-', "_")));
        let embedded = out_dir.join(format!("{name}.wasm"));
        copy(&file, &embedded)?;
        let _ = writeln!(
            generated,
            "    ({name:?}, include_bytes!({:?})),",
            embedded.display().to_string()
        );
    }
    generated.push_str("];\n");
    fs::write(out_dir.join("builtins.rs"), generated).map_err(|e| e.to_string())
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}
