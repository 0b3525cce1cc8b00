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
    let wit = root.join("wit");
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let target_dir = out_dir.join("plugins-target");

    println!("cargo:rerun-if-changed={}", wit.display());
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.lock").display()
    );
    // What the built-ins share (WIT types, outcome words, the model's calendar).
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("shared").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("crates/mtest-model/src/civil.rs").display()
    );
    for name in BUILTINS {
        println!(
            "cargo:rerun-if-changed={}",
            plugins.join(name).join("src").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            plugins.join(name).join("Cargo.toml").display()
        );
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
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
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo for the plugins: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build --release --target wasm32-wasip2` in {} failed ({status}); \
             is the target installed? run `rustup target add wasm32-wasip2`",
            plugins.display()
        ));
    }

    let artifacts = target_dir.join("wasm32-wasip2").join("release");
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
