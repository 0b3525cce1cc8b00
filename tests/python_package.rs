//! The Python package as a user gets it: the wheel maturin builds from this repository,
//! installed into a fresh venv, gives `mtest` and `mgf-test-supervisor`; `python -m
//! mtest` runs the binary; the installed `mtest --self-check` passes with no `--python`
//! (the venv it is installed in has pytest).
//!
//! Needs maturin: `$MTEST_TEST_MATURIN`, else `maturin` on PATH (`./dev test` installs
//! it). Without it the test says it is skipped.

use crate::common;

use std::path::{Path, PathBuf};
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

/// The wheel, built once for all the tests here (None, said, when maturin is missing). On
/// Linux x86_64 it is the manylinux 2014 wheel (glibc 2.17, linked by zig: `maturin[zig]`),
/// as a release ships it; elsewhere the platform's own.
fn wheel() -> Option<PathBuf> {
    static WHEEL: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    WHEEL
        .get_or_init(|| {
            let Some(maturin) = maturin() else {
                common::missing(
                    "maturin is not installed (set MTEST_TEST_MATURIN or put it on PATH)",
                );
                return None;
            };
            let repo = common::repo_root();
            let out = tempfile::tempdir().unwrap().keep();
            let mut cmd = Command::new(&maturin);
            // The repository's own target directory: built again only when it changed.
            cmd.current_dir(&repo)
                .args(["build", "--release", "--out"])
                .arg(&out)
                .env("CARGO_TARGET_DIR", repo.join("target"));
            if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
                // zig from maturin's own environment (`python -m ziglang`).
                let dir = maturin.parent().map(PathBuf::from).unwrap_or_default();
                let path = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(
                    &std::env::var_os("PATH").unwrap_or_default(),
                )))
                .unwrap();
                cmd.args(["--zig", "--compatibility", "manylinux2014"])
                    .args(["--target", "x86_64-unknown-linux-gnu"])
                    .env("PATH", path);
            }
            run(&mut cmd);
            std::fs::read_dir(&out)
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "whl"))
        })
        .clone()
}

/// A new venv of `python` at `venv` with the wheel installed (no network: no dependency
/// is fetched) and, through a `.pth`, the site-packages of `python` (its pytest and
/// pytest-timeout). Returns the venv's `bin`.
fn install(wheel: &Path, python: &Path, venv: &Path) -> PathBuf {
    run(Command::new(python).args(["-m", "venv"]).arg(venv));
    let bin = venv.join("bin");
    let site = run(Command::new(python).args([
        "-c",
        "import pytest, pytest_timeout, os; print(os.path.dirname(os.path.dirname(pytest.__file__)))",
    ]));
    run(Command::new(bin.join("python"))
        .args(["-m", "pip", "install", "--quiet", "--no-index", "--no-deps"])
        .arg(wheel));
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
    bin
}

/// The installed mtest's `--self-check`, with no `--python`, no project venv, nothing
/// activated: the venv it is installed in.
fn self_check(bin: &Path, cache: &Path) {
    let project = tempfile::tempdir().unwrap();
    let out = Command::new(bin.join("mtest"))
        .arg("--self-check")
        .current_dir(project.path())
        .env_remove("VIRTUAL_ENV")
        .env("MTEST_CACHE_DIR", cache)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("PASS: every outcome is right"),
        "installed mtest --self-check ({}):\n{stdout}{}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_wheel_installs_both_binaries_and_the_installed_mtest_passes_its_self_check() {
    let Some(wheel) = wheel() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();

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
    let bin = install(&wheel, &common::python(), &venv);

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
    self_check(&bin, &work.path().join("cache"));

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

/// The Linux wheel is manylinux 2014 (glibc 2.17: Debian 9, Ubuntu 18.04, Amazon Linux 2
/// and every newer glibc), as auditwheel judges it, and works with Python 3.11, 3.12 and
/// 3.13.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn the_linux_wheel_is_manylinux_2014_and_checks_itself_on_python_3_11_to_3_13() {
    let Some(wheel) = wheel() else {
        return;
    };
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with("-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"),
        "{name}"
    );
    // auditwheel beside maturin (./dev installs both into .venv).
    let auditwheel = maturin()
        .and_then(|m| Some(m.parent()?.join("auditwheel")))
        .filter(|a| a.is_file());
    let Some(auditwheel) = auditwheel else {
        common::missing("auditwheel is not installed beside maturin (./dev test installs it)");
        return;
    };
    let shown = run(Command::new(auditwheel).arg("show").arg(&wheel));
    assert!(
        shown.contains("is consistent with the following platform tag:")
            && shown.contains("\"manylinux_2_17_x86_64\""),
        "{shown}"
    );

    let work = tempfile::tempdir().unwrap();
    // The test Python (3.11 here), 3.12 and 3.13.
    let pythons = [
        (None, Some(common::python().into_os_string())),
        (Some("3.12"), std::env::var_os("MTEST_TEST_PYTHON312")),
        (Some("3.13"), std::env::var_os("MTEST_TEST_PYTHON313")),
    ];
    for (version, python) in pythons {
        let Some(python) = python.map(PathBuf::from) else {
            let v = version.unwrap_or_default().replace('.', "");
            common::missing(&format!(
                "no Python {} (./dev test makes .venv{v} and sets MTEST_TEST_PYTHON{v})",
                version.unwrap_or_default()
            ));
            continue;
        };
        let said =
            run(Command::new(&python)
                .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"]));
        let said = said.trim();
        if let Some(version) = version {
            assert_eq!(said, version, "{python:?}");
        }
        let bin = install(&wheel, &python, &work.path().join(format!("venv{said}")));
        self_check(&bin, &work.path().join("cache"));
    }
}

/// The wheel, the installer `tool` named by `$var` and the wheelhouse its dependencies
/// come from offline (`./dev test` sets both); None, said, when one is missing.
fn wheel_and_installer(tool: &str, var: &str) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let wheel = wheel()?;
    let (Some(installer), Some(wheelhouse)) = (
        std::env::var_os(var).map(PathBuf::from),
        std::env::var_os("MTEST_TEST_WHEELHOUSE").map(PathBuf::from),
    ) else {
        common::missing(&format!(
            "no {tool} or wheelhouse (./dev test sets {var}, MTEST_TEST_WHEELHOUSE)"
        ));
        return None;
    };
    Some((wheel, installer, wheelhouse))
}

/// As a new user would (uv from PyPI): `uv add --dev` of the wheel into a new uv project,
/// then `uv run mtest --self-check`, needs nothing else (the package brings pytest and
/// pytest-timeout; the venv uv made has no pip); and `uv tool install` of the wheel gives an
/// `mtest` whose tool venv runs the check. Offline: the dependencies come from the
/// wheelhouse `./dev` downloads (`$MTEST_TEST_WHEELHOUSE`).
#[test]
fn uv_add_dev_then_uv_run_and_uv_tool_install_need_nothing_else() {
    let Some((wheel, uv, wheelhouse)) = wheel_and_installer("uv", "MTEST_TEST_UV") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let offline = |cmd: &mut Command| {
        cmd.args(["--offline", "--no-index", "--find-links"])
            .arg(&wheelhouse)
            .env("UV_CACHE_DIR", work.path().join("uv-cache"))
            .env("UV_TOOL_DIR", work.path().join("tools"))
            .env("UV_TOOL_BIN_DIR", work.path().join("tool-bin"))
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env_remove("VIRTUAL_ENV");
    };
    let project = work.path().join("project");
    std::fs::create_dir(&project).unwrap();
    run(Command::new(&uv)
        .args(["init", "--bare", "--name", "demo", "--no-workspace"])
        .current_dir(&project));
    let mut add = Command::new(&uv);
    add.args(["add", "--dev", "--python"])
        .arg(common::python())
        .arg(&wheel)
        .current_dir(&project);
    offline(&mut add);
    run(&mut add);
    let pyproject = std::fs::read_to_string(project.join("pyproject.toml")).unwrap();
    assert!(pyproject.contains("mgf-test-supervisor"), "{pyproject}");
    assert!(
        !project.join(".venv/bin/pip").exists(),
        "uv's venv has no pip: nothing may need it"
    );
    let mut uv_run = Command::new(&uv);
    uv_run.arg("run");
    offline(&mut uv_run);
    let out = run(uv_run
        .args(["mtest", "--self-check"])
        .env("MTEST_CACHE_DIR", work.path().join("cache"))
        .current_dir(&project));
    assert!(out.contains("PASS: every outcome is right"), "{out}");

    let mut tool = Command::new(&uv);
    tool.args(["tool", "install", "--python"])
        .arg(common::python())
        .arg(&wheel);
    offline(&mut tool);
    run(&mut tool);
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run(Command::new(work.path().join("tool-bin/mtest"))
        .arg("--self-check")
        .current_dir(elsewhere.path())
        .env_remove("VIRTUAL_ENV")
        .env("MTEST_CACHE_DIR", work.path().join("cache")));
    assert!(out.contains("PASS: every outcome is right"), "{out}");
}

/// `pipx install` of the wheel (pipx from PyPI, offline: pip reads the wheelhouse) gives
/// an `mtest` whose venv runs the check: the package brings what it needs.
#[test]
fn pipx_install_needs_nothing_else() {
    let Some((wheel, pipx, wheelhouse)) = wheel_and_installer("pipx", "MTEST_TEST_PIPX") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    run(Command::new(&pipx)
        .args(["install", "--python"])
        .arg(common::python())
        .arg(&wheel)
        .env("PIPX_HOME", work.path().join("pipx"))
        .env("PIPX_BIN_DIR", &bin)
        .env("PIPX_MAN_DIR", work.path().join("man"))
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", &wheelhouse)
        .env_remove("VIRTUAL_ENV")
        .env_remove("PIP_REQUIRE_VIRTUALENV"));
    self_check(&bin, &work.path().join("cache"));
}
