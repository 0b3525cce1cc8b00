//! The Python package as a user gets it: the wheel maturin builds from this repository,
//! installed into a fresh venv, gives `mtest` and `mgf-test-supervisor`; `python -m
//! mtest` runs the binary; the installed `mtest --self-check` passes with no `--python`
//! (the venv it is installed in has pytest).
//!
//! Needs maturin: `$MTEST_TEST_MATURIN`, else `maturin` on PATH (`./dev test` installs
//! it). Without it the test says it is skipped.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

fn maturin() -> Option<PathBuf> {
    let candidate = std::env::var_os("MTEST_TEST_MATURIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("maturin"));
    Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(candidate)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn the_wheel_installs_both_binaries_and_the_installed_mtest_passes_its_self_check() {
    let Some(maturin) = maturin() else {
        common::missing("maturin is not installed (set MTEST_TEST_MATURIN or put it on PATH)");
        return;
    };
    let repo = common::repo_root();
    let work = tempfile::tempdir().unwrap();
    let wheels = work.path().join("wheels");
    // The repository's own target directory: only the host crate is built again.
    run(Command::new(&maturin)
        .current_dir(&repo)
        .args(["build", "--release", "--out"])
        .arg(&wheels)
        .env("CARGO_TARGET_DIR", repo.join("target")));
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("maturin wrote a wheel");

    // The package depends on what mtest runs: installing it brings pytest and
    // pytest-timeout (`uv add --dev`, then `uv run mtest`, needs nothing else).
    let metadata = run(Command::new(common::python()).arg("-c").arg(format!(
        "import zipfile; z = zipfile.ZipFile({:?}); \
         print(z.read(next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))).decode())",
        wheel.display().to_string()
    )));
    let requires: Vec<&str> = metadata
        .lines()
        .filter_map(|l| l.strip_prefix("Requires-Dist: "))
        .collect();
    assert_eq!(requires, ["pytest>=8", "pytest-timeout>=2.3"], "{metadata}");

    let venv = work.path().join("venv");
    run(Command::new(common::python())
        .args(["-m", "venv"])
        .arg(&venv));
    let bin = venv.join("bin");
    // pytest and pytest-timeout from the test Python's own site-packages: no network.
    let site = run(Command::new(common::python()).args([
        "-c",
        "import pytest, pytest_timeout, os; print(os.path.dirname(os.path.dirname(pytest.__file__)))",
    ]));
    run(Command::new(bin.join("python"))
        .args(["-m", "pip", "install", "--quiet", "--no-index", "--no-deps"])
        .arg(&wheel));
    std::fs::write(
        venv.join("lib")
            .read_dir()
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path().join("site-packages"))
            .find(|p| p.is_dir())
            .expect("the venv has site-packages")
            .join("test-python.pth"),
        site.trim(),
    )
    .unwrap();

    for name in ["mtest", "mgf-test-supervisor"] {
        let version = run(Command::new(bin.join(name)).arg("--version"));
        assert!(version.starts_with("mtest "), "{name} --version: {version}");
    }
    let version = run(Command::new(bin.join("python")).args(["-m", "mtest", "--version"]));
    assert_eq!(
        version.trim(),
        format!("mtest {}", env!("CARGO_PKG_VERSION"))
    );

    // No --python, no project venv, nothing activated: the venv mtest is installed in.
    let project = tempfile::tempdir().unwrap();
    let out = Command::new(bin.join("mtest"))
        .arg("--self-check")
        .current_dir(project.path())
        .env_remove("VIRTUAL_ENV")
        .env("MTEST_CACHE_DIR", work.path().join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("PASS: every outcome is right"),
        "installed mtest --self-check:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A project without a venv of its own: its tests run in the venv mtest is installed in.
    let prefix = std::fs::canonicalize(&venv).unwrap();
    let test = format!(
        "import os, sys\n\ndef test_runs_in_the_installed_venv():\n    \
         assert os.path.realpath(sys.prefix) == {:?}\n",
        prefix.display().to_string()
    );
    let dir = common::project(&[("pyproject.toml", ""), ("tests/test_env.py", &test)]);
    let out = Command::new(bin.join("mtest"))
        .current_dir(dir.path())
        .env_remove("VIRTUAL_ENV")
        .env("MTEST_CACHE_DIR", work.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(
        common::outcomes(dir.path()),
        [(
            "tests/test_env.py::test_runs_in_the_installed_venv".to_string(),
            "passed".to_string()
        )]
        .into(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
