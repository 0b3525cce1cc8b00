//! Shared by the end-to-end tests: real components built from fixture crates, temp
//! projects, and the real `mtest` binary.
#![allow(dead_code)]

pub mod beside;

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

/// The Python with pytest and pytest-timeout: `$MTEST_TEST_PYTHON` (set by `./dev test`),
/// else the repository's `.venv`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MTEST_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(if cfg!(windows) {
        ".venv/Scripts/python.exe"
    } else {
        ".venv/bin/python"
    });
    assert!(
        venv.is_file(),
        "no test Python: run `./dev test` (it creates .venv) or set MTEST_TEST_PYTHON"
    );
    venv
}

/// A temp project: `files` are (relative path, contents), borrowed or owned.
pub fn project<P: AsRef<str>, T: AsRef<str>>(files: &[(P, T)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let (path, text) = (path.as_ref(), text.as_ref());
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

/// The compiled-component cache the tests' mtest runs share.
pub fn component_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

/// `mtest --root DIR --python PY` with an isolated compiled-component cache.
pub fn mtest_in(root: &Path) -> Command {
    mtest_with(root, &python())
}

/// [`mtest_in`] with another Python (one with other packages installed).
pub fn mtest_with(root: &Path, python: &Path) -> Command {
    let mut cmd = mtest(&component_cache());
    cmd.arg("--root").arg(root).arg("--python").arg(python);
    cmd
}

/// The records of `.gates/last-run/run.jsonl` as JSON values. Read while mtest writes
/// it (a test waiting for records), or after a SIGKILL, which can cut a write short (a
/// fatal signal ends a write to a file between pages), the file may end in part of a
/// line: that is no record yet. Every whole line must be one.
pub fn records(root: &Path) -> Vec<serde_json::Value> {
    let bytes = std::fs::read(root.join(".gates/last-run/run.jsonl")).unwrap_or_default();
    let whole = bytes
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(&[][..], |end| &bytes[..end]);
    std::str::from_utf8(whole)
        .expect("whole run.jsonl lines are UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a whole run.jsonl line is JSON"))
        .collect()
}

/// test id → outcome.
pub fn outcomes(root: &Path) -> std::collections::BTreeMap<String, String> {
    records(root)
        .into_iter()
        .map(|r| {
            (
                r["test_id"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Path of the example plugin `examples/<name>`, built on first use (shared target dir).
pub fn example_plugin(name: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = build_components(
        &repo_root().join("examples").join(name),
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("example-plugins"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    dir.join(format!("{}.wasm", name.replace('-', "_")))
}

/// `mtest_in` for runs, in the isolation mode under test: `$MTEST_TEST_ISOLATION`
/// (`fork` or `process`; unset: mtest's default). `./dev test` runs the end-to-end
/// suites in both.
pub fn mtest_run(root: &Path) -> Command {
    let mut cmd = mtest_in(root);
    if let Some(mode) = std::env::var_os("MTEST_TEST_ISOLATION") {
        cmd.arg("--isolation").arg(mode);
    }
    cmd
}

/// The isolation mode under test (see [`mtest_run`]).
pub fn isolation() -> String {
    std::env::var("MTEST_TEST_ISOLATION").unwrap_or_else(|_| "fork".into())
}

/// Whether `module` imports in the test Python (optional tools: pytest-cov, xdist).
pub fn python_has(module: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Sends SIGINT (Ctrl-C) to a running mtest.
#[cfg(unix)]
pub fn interrupt(child: &std::process::Child) {
    let pid = i32::try_from(child.id()).expect("a pid fits in i32");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT to mtest");
}

/// A test that cannot run here (a tool or a privilege is missing) says so where the test
/// run shows it, straight to stderr past libtest's capture; the caller then returns.
/// (`./dev test` installs every tool these tests use.)
pub fn skip(why: &str) {
    use std::io::Write;
    let name = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {name}: {why}");
}

/// A daemon on localhost that answers each line with `+PONG` (what the probes' tests
/// probe), and a port nothing listens on (bound, then released).
pub fn pong_daemon_and_dead_port() -> (std::net::SocketAddr, std::net::SocketAddr) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let live = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            let _ = (&stream).write_all(b"+PONG\r\n");
        }
    });
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind");
    (live, dead)
}

/// Polls `what` every 20 ms for up to `limit`; says whether it came true.
pub fn wait_until(limit: std::time::Duration, what: &dyn Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while !what() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    what()
}

/// A tool a test needs is missing: under `CI=true` (where `./dev test` installs it) the
/// test fails, so that it can never pass by skipping there; elsewhere it is skipped, and
/// says so.
pub fn missing(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}; CI installs it (./dev test), so this check must run");
    }
    skip(why);
}

/// Copies a directory tree (a project, or a `.gates/` store), leaving out what a run
/// there left behind: a `.gates/` store of its own and `__pycache__`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name();
        if name == ".gates" || name == "__pycache__" {
            continue;
        }
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy");
        }
    }
}
