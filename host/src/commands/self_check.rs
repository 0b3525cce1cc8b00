//! `--self-check`: supervises a throw-away project of canned misbehaving tests with this
//! very binary and checks that every outcome (and every bundle) comes out right.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::cli::RunArgs;
use crate::config::ProjectConfig;
use crate::pytest::find_python;
use crate::record::TestRecord;
use crate::Exit;

use super::Stop;

const SCENARIOS: &str = r#"
import ctypes
import os
import signal
import time

import pytest


def test_pass():
    assert 1 + 1 == 2


def test_fail():
    assert 1 + 1 == 3


@pytest.fixture
def broken_fixture():
    raise RuntimeError("the fixture broke")


def test_error(broken_fixture):
    pass


def test_skip():
    pytest.skip("skipped on purpose")


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False


def test_hang():
    time.sleep(600)


def test_hang_ignoring_signals():
    # pytest-timeout's SIGALRM and the supervisor's SIGTERM are both blocked.
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM, signal.SIGTERM])
    time.sleep(600)


def test_segfault():
    ctypes.string_at(0)


def test_hard_exit():
    os._exit(3)


def test_pass_after_the_crashes():
    pass
"#;

/// (test name, expected outcome, what it shows)
const EXPECTED: &[(&str, &str, &str)] = &[
    ("test_pass", "passed", "a passing test"),
    ("test_fail", "failed", "an assertion failure"),
    ("test_error", "error", "a fixture error"),
    ("test_skip", "skipped", "pytest.skip"),
    ("test_xfail", "xfailed", "an expected failure"),
    ("test_hang", "hung", "a hang stopped by pytest-timeout"),
    (
        "test_hang_ignoring_signals",
        "hung",
        "a hang only the watchdog can stop",
    ),
    ("test_segfault", "crashed", "a segfault"),
    ("test_hard_exit", "crashed", "os._exit(3)"),
    (
        "test_pass_after_the_crashes",
        "passed",
        "the run goes on after crashes",
    ),
];

pub fn run(args: &RunArgs, root: &Path, project: &ProjectConfig) -> Exit {
    execute(args, root, project).unwrap_or_else(Stop::report)
}

fn execute(args: &RunArgs, root: &Path, project: &ProjectConfig) -> Result<Exit, Stop> {
    let started = Instant::now();
    let python = find_python(
        args.python.as_deref(),
        project.mtest.python.as_deref(),
        root,
    );
    let dir = temp_project()?;
    let exe = std::env::current_exe()
        .map_err(|e| Stop::internal(format!("cannot find this mtest binary: {e}")))?;
    println!(
        "mtest self-check: {} scenarios with {} in {}",
        EXPECTED.len(),
        python.display(),
        dir.path().display()
    );
    let output = Command::new(exe)
        .arg("--root")
        .arg(dir.path())
        .arg("--python")
        .arg(&python)
        .args(["--timeout", "2", "-j", "2"])
        .output()
        .map_err(|e| Stop::internal(format!("cannot run mtest: {e}")))?;
    let run_dir = dir.path().join(".gates/last-run");
    let records: Vec<TestRecord> = std::fs::read_to_string(run_dir.join("run.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if records.is_empty() {
        println!("FAIL: the supervised run recorded nothing; its output:");
        println!("{}", String::from_utf8_lossy(&output.stderr).trim_end());
        return Ok(Exit::Failures);
    }
    let wrong = wrong_outcomes(&records, &run_dir) + wrong_ends(&run_dir, &output);
    let secs = started.elapsed().as_secs_f64();
    if wrong == 0 {
        println!("PASS: every outcome is right ({secs:.1}s)");
        Ok(Exit::Ok)
    } else {
        println!("FAIL: {wrong} check(s) wrong ({secs:.1}s); the supervised run said:");
        println!("{}", String::from_utf8_lossy(&output.stderr).trim_end());
        Ok(Exit::Failures)
    }
}

/// A project of the scenarios in a temp dir.
fn temp_project() -> Result<tempfile::TempDir, Stop> {
    let dir = tempfile::Builder::new()
        .prefix("mtest-self-check-")
        .tempdir()
        .map_err(|e| Stop::internal(format!("cannot create a temp project: {e}")))?;
    std::fs::create_dir_all(dir.path().join("tests"))
        .and_then(|_| std::fs::write(dir.path().join("tests/test_scenarios.py"), SCENARIOS))
        .and_then(|_| {
            std::fs::write(
                dir.path().join("pyproject.toml"),
                "[project]\nname = \"mtest-self-check\"\n",
            )
        })
        .map_err(|e| Stop::internal(format!("cannot write the temp project: {e}")))?;
    Ok(dir)
}

/// Prints each scenario's check; returns how many are wrong (an outcome, or a failure
/// without its bundle).
fn wrong_outcomes(records: &[TestRecord], run_dir: &Path) -> usize {
    let mut wrong = 0;
    for (name, expected, what) in EXPECTED {
        let id = format!("tests/test_scenarios.py::{name}");
        let record = records.iter().find(|r| r.test_id == id);
        let got = record.map_or("(no record)", |r| r.outcome.as_str());
        let mut ok = got == *expected;
        if let Some(r) = record.filter(|r| r.outcome.is_failure()) {
            ok &= r.bundle.as_ref().is_some_and(|b| run_dir.join(b).is_file());
        }
        wrong += usize::from(!ok);
        println!(
            "  {name:<30} {got:<8} {}  {what}",
            if ok { "PASS" } else { "FAIL" }
        );
    }
    wrong
}

/// Prints the checks of the run's end (its summary, its exit code); returns how many are
/// wrong.
fn wrong_ends(run_dir: &Path, output: &std::process::Output) -> usize {
    let summary_ok = run_dir.join("summary.md").is_file();
    println!(
        "  {:<30} {:<8} {}  the summary reporter ran",
        "summary.md",
        if summary_ok { "written" } else { "missing" },
        if summary_ok { "PASS" } else { "FAIL" }
    );
    let exit_ok = output.status.code() == Some(1);
    println!(
        "  {:<30} {:<8} {}  failures make the run fail",
        "exit code",
        output
            .status
            .code()
            .map_or("signal".into(), |c| c.to_string()),
        if exit_ok { "PASS" } else { "FAIL" }
    );
    usize::from(!summary_ok) + usize::from(!exit_ok)
}
