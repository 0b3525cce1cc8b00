//! Flake hunting: `--repeat N`, early flake detection (`new-test-repeats`), and the guard
//! that keeps a broken run out of quarantine.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{mtest_run, project, records};

/// A test that fails on every other run (a counter file beside it), one that always
/// passes and one that always fails.
const SUITE: &str = r#"
import pathlib
COUNTER = pathlib.Path(__file__).with_name("counter.txt")

def test_alternating():
    n = int(COUNTER.read_text()) if COUNTER.exists() else 0
    COUNTER.write_text(str(n + 1))
    assert n % 2 == 1, f"run {n} fails"

def test_steady():
    pass
"#;

fn attempts(root: &Path) -> BTreeMap<String, Vec<(String, u64)>> {
    let mut by_test: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for r in records(root) {
        by_test
            .entry(r["test_id"].as_str().unwrap().to_string())
            .or_default()
            .push((
                r["outcome"].as_str().unwrap().to_string(),
                r["chunk"].as_u64().unwrap(),
            ));
    }
    by_test
}

#[test]
fn repeat_runs_every_test_n_times_in_fresh_workers_and_a_flaky_one_fails_the_run() {
    let p = project(&[
        ("pyproject.toml", "[tool.pytest.ini_options]\n"),
        ("tests/test_f.py", SUITE),
    ]);
    let out = mtest_run(p.path())
        .args(["--repeat", "4", "-j", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let by_test = attempts(p.path());
    let alternating = &by_test["tests/test_f.py::test_alternating"];
    let outcomes: Vec<&str> = alternating.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(outcomes, ["failed", "passed", "failed", "passed"]);
    let chunks: BTreeSet<u64> = alternating.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        chunks.len(),
        4,
        "each run in its own worker: {alternating:?}"
    );
    assert_eq!(by_test["tests/test_f.py::test_steady"].len(), 4);
    assert!(
        stderr.contains("flaky: tests/test_f.py::test_alternating passed 2 of 4 runs"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--repeat 4: every test runs 4 times"),
        "{stderr}"
    );
    // Every run is history: the flaky test's 2 failures of its last 4 runs reach the
    // policy (3 of 5 quarantines it after one more failing run).
    let history: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join(".gates/durations.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        history["tests"]["tests/test_f.py::test_alternating"]["outcomes"],
        serde_json::json!("F.F.")
    );

    // --repeat and --retries do not mix.
    let both = mtest_run(p.path())
        .args(["--repeat", "2", "--retries", "1"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn a_new_test_that_is_already_flaky_fails_the_run_and_old_tests_run_once() {
    let p = project(&[
        (
            "pyproject.toml",
            "[tool.pytest.ini_options]\n[tool.mtest]\nnew-test-repeats = 3\n",
        ),
        ("tests/test_old.py", "def test_old():\n    pass\n"),
    ]);
    // First run: test_old is new, runs 3 times, passes.
    let out = mtest_run(p.path()).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(attempts(p.path())["tests/test_old.py::test_old"].len(), 3);

    // Second run: a new, flaky test beside it.
    std::fs::write(p.path().join("tests/test_f.py"), SUITE).unwrap();
    let out = mtest_run(p.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a new flaky test passed the run:\n{stderr}"
    );
    let by_test = attempts(p.path());
    assert_eq!(
        by_test["tests/test_old.py::test_old"].len(),
        1,
        "an old test repeated"
    );
    assert_eq!(by_test["tests/test_f.py::test_alternating"].len(), 3);
    assert_eq!(by_test["tests/test_f.py::test_steady"].len(), 3);
    assert!(
        stderr.contains("new-test-repeats: 2 new test(s) run 3 times"),
        "{stderr}"
    );
    assert!(
        stderr.contains("flaky: tests/test_f.py::test_alternating passed 1 of 3 runs"),
        "{stderr}"
    );
}

#[test]
fn a_run_where_most_tests_fail_does_not_teach_quarantine() {
    // Six tests that all fail while "the database is down", then pass.
    let mut suite = String::from("import os\n");
    for i in 0..6 {
        suite.push_str(&format!(
            "def test_{i}():\n    assert os.environ.get('DB') == 'up'\n"
        ));
    }
    let p = project(&[
        ("pyproject.toml", "[tool.pytest.ini_options]\n"),
        ("tests/test_db.py", &suite),
    ]);
    for _ in 0..3 {
        let out = mtest_run(p.path()).env_remove("DB").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("quarantine not consulted: 6 of 6 test(s) failed"),
            "{stderr}"
        );
    }
    let quarantine =
        std::fs::read_to_string(p.path().join(".gates/quarantine.json")).unwrap_or_default();
    assert!(
        !quarantine.contains("test_db.py"),
        "a broken run quarantined tests: {quarantine}"
    );
    // Without the guard three failing runs quarantine a flaky test: one failing test
    // among six passing ones, which passed once, is quarantined on its third failure.
    let mut mixed = String::from("import os\n");
    for i in 0..6 {
        mixed.push_str(&format!("def test_ok_{i}():\n    pass\n"));
    }
    mixed.push_str("def test_bad():\n    assert os.environ.get('BAD_PASSES') == '1'\n");
    std::fs::write(p.path().join("tests/test_db.py"), mixed).unwrap();
    mtest_run(p.path()).env("BAD_PASSES", "1").output().unwrap();
    for _ in 0..3 {
        mtest_run(p.path())
            .env_remove("BAD_PASSES")
            .output()
            .unwrap();
    }
    let quarantine = std::fs::read_to_string(p.path().join(".gates/quarantine.json")).unwrap();
    assert!(
        quarantine.contains("tests/test_db.py::test_bad"),
        "{quarantine}"
    );
}

/// A run killed while a failure's retry ran: the failure is recorded, the retry is not.
/// `--resume` runs the retry it still owed, and its pass is flaky — not a failure, not a
/// plain pass.
#[test]
fn resume_runs_the_retry_a_killed_run_still_owed() {
    let p = project(&[
        ("pyproject.toml", "[tool.pytest.ini_options]\n"),
        (
            "tests/test_r.py",
            r#"
import pathlib, time
HERE = pathlib.Path(__file__).parent

def test_first():
    count = HERE / "count.txt"
    n = int(count.read_text()) if count.exists() else 0
    count.write_text(str(n + 1))
    assert n >= 1, "fails on its first run"
    while (HERE / "hold").exists():  # its retry waits here until the test says go
        time.sleep(0.05)

def test_other():
    pass
"#,
        ),
    ]);
    let tests = p.path().join("tests");
    std::fs::write(tests.join("hold"), "").unwrap();
    let mut child = mtest_run(p.path())
        .args(["--retries", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let failed_recorded = |root: &Path| {
        records(root)
            .iter()
            .any(|r| r["test_id"] == "tests/test_r.py::test_first" && r["outcome"] == "failed")
    };
    assert!(
        common::wait_until(std::time::Duration::from_secs(60), &|| {
            std::fs::read_to_string(tests.join("count.txt")).is_ok_and(|n| n == "2")
                && failed_recorded(p.path())
        }),
        "the retry never started"
    );
    child.kill().unwrap(); // SIGKILL, while the retry runs
    child.wait().unwrap();
    std::fs::remove_file(tests.join("hold")).unwrap();

    let out = mtest_run(p.path()).arg("--resume").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("1 run(s) of recorded tests still owed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 flaky test(s) failed, then passed on a retry"),
        "{stderr}"
    );
    let first: Vec<serde_json::Value> = records(p.path())
        .into_iter()
        .filter(|r| r["test_id"] == "tests/test_r.py::test_first")
        .collect();
    let seen: Vec<(&str, u64, bool)> = first
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap(),
                r["attempt"].as_u64().unwrap(),
                r["flaky"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(seen, [("failed", 1, false), ("passed", 2, true)]);
    let junit = std::fs::read_to_string(p.path().join(".gates/last-run/junit.xml")).unwrap();
    assert_eq!(junit.matches("<flakyFailure").count(), 1, "{junit}");
    // The failed attempt was recorded by the killed invocation: its text is kept beside
    // its record (details.jsonl), so the resumed run's file has it, not only its message.
    assert!(junit.contains("fails on its first run"), "{junit}");
    assert!(junit.contains("assert 0 &gt;= 1"), "{junit}");
}

/// One set of counts, one start: a module that fails to import is one test of the run
/// (one passing test beside it is not "1 of 1 failed", and the policy is consulted), and
/// the summary's start is the run's, before collection, as its duration counts.
#[test]
fn a_module_that_fails_to_import_is_one_test_of_the_run_and_the_start_is_the_runs() {
    let p = project(&[
        ("tests/test_ok.py", "def test_ok():\n    pass\n"),
        (
            "tests/test_broken.py",
            "import no_such_module_here\n\ndef test_x():\n    pass\n",
        ),
    ]);
    let out = mtest_run(p.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 passed, 1 error"), "{stderr}");
    assert!(!stderr.contains("quarantine not consulted"), "{stderr}");
    let summary = std::fs::read_to_string(p.path().join(".gates/last-run/summary.md")).unwrap();
    let started = summary
        .lines()
        .find_map(|l| l.strip_prefix("- started: "))
        .expect("summary.md says when the run started")
        .to_string();
    // Collection is part of the run: its first module started after the run did.
    let events = std::fs::read_to_string(p.path().join(".gates/collect/zygote-1.events")).unwrap();
    let first = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["e"] == "collect_start")
        .and_then(|e| e["t"].as_f64())
        .expect("collection started");
    let first =
        mtest::clock::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(first));
    assert!(
        started <= first,
        "the run started at {started}, after its collection did at {first}"
    );
}
