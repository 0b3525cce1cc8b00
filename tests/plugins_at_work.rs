//! Plugins doing their real jobs in real runs: swapped selection, extra reporters (Rust
//! and Python), quarantine over successive runs, retries, budgets, full bundles, probes.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{mtest_in, outcomes, project, records};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `mtest quarantine VERB ID` in `root`.
fn quarantine(root: &Path, verb: &str, id: &str) -> Output {
    common::mtest(&common::component_cache())
        .arg("--root")
        .arg(root)
        .args(["quarantine", verb, id])
        .output()
        .unwrap()
}

/// Test ids in the order they started.
fn run_order(root: &Path) -> Vec<String> {
    let mut recs = records(root);
    recs.sort_by(|a, b| a["started_at"].as_str().cmp(&b["started_at"].as_str()));
    recs.iter()
        .map(|r| r["test_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_failed_first_selector_changes_the_order_of_execution() {
    let dir = project(&[(
        "tests/test_order.py",
        r#"
import os, time

def test_a_slow():
    time.sleep(0.30)

def test_b_fails():
    time.sleep(0.05)
    assert os.environ.get("FIXED") == "1"

def test_c_quick():
    pass

def test_d_medium():
    time.sleep(0.15)
"#,
    )]);
    // Default order (collection order), and a history: b failed.
    let out = mtest_in(dir.path()).args(["-j", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        run_order(dir.path()),
        [
            "tests/test_order.py::test_a_slow",
            "tests/test_order.py::test_b_fails",
            "tests/test_order.py::test_c_quick",
            "tests/test_order.py::test_d_medium"
        ]
    );

    let selector = common::example_plugin("selector-failed-first");
    let out = mtest_in(dir.path())
        .args(["-j", "1", "--selector"])
        .arg(&selector)
        .env("FIXED", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        run_order(dir.path()),
        [
            "tests/test_order.py::test_b_fails",
            "tests/test_order.py::test_c_quick",
            "tests/test_order.py::test_d_medium",
            "tests/test_order.py::test_a_slow"
        ],
        "recently failed first, then shortest first"
    );
    assert!(
        stderr(&out).contains("selection by `failed-first`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_broken_selector_falls_back_to_the_builtin_and_says_so() {
    let dir = project(&[("tests/test_a.py", "def test_a():\n    pass\n")]);
    let looping = common::fixture_plugin("looping");
    std::fs::write(
        dir.path().join("pyproject.toml"),
        "[tool.mtest]\nplugin-timeout = 0.5\n",
    )
    .unwrap();
    let out = mtest_in(dir.path())
        .arg("--selector")
        .arg(&looping)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("exceeded its CPU time limit of 500ms in select; used the built-in `greedy-knapsack` (builtin) instead"), "{}", stderr(&out));
    assert_eq!(outcomes(dir.path()).len(), 1);
}

fn failing_project() -> tempfile::TempDir {
    project(&[(
        "tests/test_mixed.py",
        "def test_ok():\n    pass\n\ndef test_broken():\n    assert 1 == 2, 'one is not two'\n",
    )])
}

#[test]
fn the_github_reporter_annotates_failures_and_writes_a_digest() {
    let dir = failing_project();
    let github = common::example_plugin("reporter-github");
    let out = mtest_in(dir.path())
        .arg("--reporter")
        .arg(&github)
        .args(["--reporter", "summary-md"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("::error file=tests/test_mixed.py,line=4,title=tests/test_mixed.py%3A%3Atest_broken failed::AssertionError: one is not two"),
        "{err}"
    );
    let digest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(".gates/last-run/github/digest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(digest["exit_code"], 1);
    assert_eq!(digest["counts"]["passed"], 1);
    assert_eq!(
        digest["failures"][0]["test_id"],
        "tests/test_mixed.py::test_broken"
    );
    assert!(
        std::fs::read_to_string(dir.path().join(".gates/last-run/github/annotations.txt"))
            .unwrap()
            .starts_with("::error ")
    );
    assert!(dir.path().join(".gates/last-run/summary.md").is_file());
    // --reporter replaced the default list: no txt bundles this time.
    assert!(!dir.path().join(".gates/last-run/failures").exists());
}

/// componentize-py from PyPI, in a venv of its own; None (and why) if it cannot be had.
fn componentize_py() -> Result<std::path::PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("componentize-py-venv");
    let bin = venv.join("bin/componentize-py");
    if bin.is_file() {
        return Ok(bin);
    }
    let ok = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| e.to_string())?;
    if !ok.success() {
        return Err("python3 -m venv failed".into());
    }
    let out = std::process::Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "componentize-py>=0.25,<0.26"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "pip install componentize-py failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(bin)
}

#[test]
fn the_python_reporter_builds_with_componentize_py_and_runs() {
    let tool = match componentize_py() {
        Ok(tool) => tool,
        Err(why) => {
            return common::missing(&format!("componentize-py cannot be installed here: {why}"));
        }
    };
    let example = common::repo_root().join("examples/reporter-python");
    let wasm = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reporter_python.wasm");
    let built = std::process::Command::new(&tool)
        .current_dir(&example)
        .args([
            "-d",
            "../../wit",
            "-w",
            "reporter-plugin",
            "componentize",
            "app",
            "-o",
        ])
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let dir = failing_project();
    let started = Instant::now();
    let out = mtest_in(dir.path())
        .arg("--reporter")
        .arg(&wasm)
        .output()
        .unwrap();
    let cold = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("::error file=tests/test_mixed.py,line=4::AssertionError: one is not two"),
        "{err}"
    );
    assert!(
        err.contains("reporter-python: wrote digest.json with 1 failure(s)"),
        "{err}"
    );
    let digest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            dir.path()
                .join(".gates/last-run/reporter-python/digest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(digest["failures"][0]["outcome"], "failed");

    // The second load comes from the compiled-artifact cache.
    let started = Instant::now();
    let out = mtest_in(dir.path())
        .arg("--reporter")
        .arg(&wasm)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    eprintln!(
        "python reporter run: cold {cold:?}, warm {:?}",
        started.elapsed()
    );
}

#[test]
fn quarantine_enters_on_the_third_failure_of_five_and_leaves_after_three_passes() {
    let dir = project(&[(
        "tests/test_flaky.py",
        "import os\n\ndef test_sometimes():\n    assert os.environ.get('BREAK') != '1'\n\ndef test_steady():\n    pass\n",
    )]);
    let id = "tests/test_flaky.py::test_sometimes";
    let run = |broken: bool| {
        let out = mtest_in(dir.path())
            .env("BREAK", if broken { "1" } else { "0" })
            .output()
            .unwrap();
        let q: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(".gates/quarantine.json")).unwrap(),
        )
        .unwrap();
        let rec = records(dir.path())
            .into_iter()
            .find(|r| r["test_id"] == id)
            .unwrap();
        (
            out.status.code(),
            q["tests"].get(id).is_some(),
            rec["quarantined"].as_bool().unwrap(),
        )
    };
    // Runs 1-5: fail, pass, fail, pass, fail. The third failure quarantines it.
    assert_eq!(run(true), (Some(1), false, false));
    assert_eq!(run(false), (Some(0), false, false));
    assert_eq!(run(true), (Some(1), false, false));
    assert_eq!(run(false), (Some(0), false, false));
    assert_eq!(
        run(true),
        (Some(1), true, false),
        "quarantined after its third failure in five runs"
    );
    // Quarantined: it still runs, its failure is recorded, the run passes.
    assert_eq!(run(true), (Some(0), true, true));
    let q = String::from_utf8(
        mtest_in(dir.path())
            .arg("--quarantine")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        q.contains(id) && q.contains("quarantine-3of5: 3 failures in the last 5 runs"),
        "{q}"
    );
    // Three passes in a row release it.
    assert_eq!(run(false), (Some(0), true, true));
    assert_eq!(run(false), (Some(0), true, true));
    assert_eq!(run(false), (Some(0), false, true));
    assert!(String::from_utf8(
        mtest_in(dir.path())
            .arg("--quarantine")
            .output()
            .unwrap()
            .stdout
    )
    .unwrap()
    .contains("No tests are quarantined."));

    // By hand.
    let out = quarantine(dir.path(), "add", id);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(run(true), (Some(0), true, true));
    let out = quarantine(dir.path(), "release", id);
    assert_eq!(out.status.code(), Some(0));
    let out = quarantine(dir.path(), "release", id);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not quarantined"));
}

/// Quarantine is for flaky tests. One that fails every run is broken: it never enters, and
/// one put there by hand that never passes fails the run every time (no false green).
#[test]
fn a_test_that_never_passes_is_never_forgiven_by_quarantine() {
    let dir = project(&[(
        "tests/test_broken.py",
        "def test_broken():\n    assert False\n\ndef test_fine():\n    pass\n",
    )]);
    let id = "tests/test_broken.py::test_broken";
    let quarantined = || {
        std::fs::read_to_string(dir.path().join(".gates/quarantine.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|q| q["tests"].get(id).is_some())
    };
    for run in 1..=6 {
        let out = mtest_in(dir.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "run {run}: {}", stderr(&out));
        assert!(
            !quarantined(),
            "run {run}: a broken test entered quarantine"
        );
    }
    // By hand: still a failure of the run, said why; and the policy lets it go.
    let out = quarantine(dir.path(), "add", id);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = mtest_in(dir.path()).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{id} is quarantined but did not pass in its last 5 runs"
        )),
        "{err}"
    );
    let rec = records(dir.path())
        .into_iter()
        .find(|r| r["test_id"] == id)
        .unwrap();
    assert_eq!(rec["quarantined"], false);
    assert!(
        err.contains("no pass in the last 5 runs: broken, not flaky"),
        "{err}"
    );
    assert!(!quarantined());
}

#[test]
fn retries_mark_a_pass_after_a_failure_flaky() {
    let dir = project(&[(
        "tests/test_retry.py",
        r#"
import os

def test_flaky(tmp_path_factory):
    marker = os.path.join(os.environ["STATE_DIR"], "seen")
    if not os.path.exists(marker):
        open(marker, "w").close()
        assert False, "first attempt fails"

def test_always_fails():
    assert False
"#,
    )]);
    let state = tempfile::tempdir().unwrap();
    let out = mtest_in(dir.path())
        .args(["--retries", "2"])
        .env("STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let recs = records(dir.path());
    let attempts = |id: &str| {
        recs.iter()
            .filter(|r| r["test_id"] == id)
            .map(|r| {
                (
                    r["attempt"].as_u64().unwrap(),
                    r["outcome"].as_str().unwrap().to_string(),
                    r["flaky"].as_bool().unwrap_or(false),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        attempts("tests/test_retry.py::test_flaky"),
        vec![(1, "failed".into(), false), (2, "passed".into(), true)]
    );
    assert_eq!(
        attempts("tests/test_retry.py::test_always_fails"),
        vec![
            (1, "failed".into(), false),
            (2, "failed".into(), false),
            (3, "failed".into(), false)
        ]
    );
    assert!(
        stderr(&out).contains("1 flaky test(s) failed, then passed on a retry"),
        "{}",
        stderr(&out)
    );

    // Only the flaky one: the run passes, unless --flaky-fails.
    let dir = project(&[(
        "tests/test_retry.py",
        "import os\n\ndef test_flaky():\n    marker = os.path.join(os.environ['STATE_DIR'], 'seen2')\n    if not os.path.exists(marker):\n        open(marker, 'w').close()\n        assert False\n",
    )]);
    let out = mtest_in(dir.path())
        .args(["--retries", "1"])
        .env("STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // One set of counts, per test: the console, summary.md and the exit code agree.
    assert!(
        stderr(&out).contains("mtest: 1 passed (1 flaky) in "),
        "{}",
        stderr(&out)
    );
    let summary = std::fs::read_to_string(dir.path().join(".gates/last-run/summary.md")).unwrap();
    let outcomes =
        &summary[summary.find("## Outcomes").unwrap()..summary.find("## Per tier").unwrap()];
    assert!(
        outcomes.contains("| passed | 1 |") && !outcomes.contains("failed"),
        "{summary}"
    );
    assert!(
        summary.contains("| failed, then passed on a retry (flaky) |"),
        "{summary}"
    );
    std::fs::remove_file(state.path().join("seen2")).unwrap();
    let out = mtest_in(dir.path())
        .args(["--retries", "1", "--flaky-fails"])
        .env("STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // A flaky test counts as a failure in its history (toward quarantine).
    let durations: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(".gates/durations.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        durations["tests"]["tests/test_retry.py::test_flaky"]["outcomes"],
        serde_json::json!("FF")
    );
}

#[test]
fn a_budget_takes_smoke_and_failing_tests_first_and_ends_in_time() {
    let mut text = String::from("import os, time, pytest\n\n");
    for i in 0..4 {
        text.push_str(&format!(
            "@pytest.mark.smoke\ndef test_smoke_{i}():\n    time.sleep(0.2)\n\n"
        ));
    }
    for i in 0..16 {
        text.push_str(&format!(
            "def test_plain_{i:02}():\n    time.sleep(0.4)\n\n"
        ));
    }
    text.push_str(
        "def test_zz_flaky():\n    time.sleep(0.4)\n    assert os.environ.get('BREAK') != '1'\n",
    );
    let dir = project(&[("tests/test_budget.py", &text)]);
    // A warm history: one full run (about 8 s of tests) in which the last test failed.
    let out = mtest_in(dir.path())
        .args(["-j", "1"])
        .env("BREAK", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(records(dir.path()).len(), 21);

    // The plan, without running anything.
    let out = mtest_in(dir.path())
        .args(["-j", "1", "--budget", "4s", "--explain-selection"])
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{plan}{}", stderr(&out));
    let first: Vec<&str> = plan.lines().skip(1).take(5).collect();
    assert!(
        first[..4].iter().all(|l| l.contains("test_smoke_")),
        "{plan}"
    );
    assert!(
        first[4].contains("test_zz_flaky") && first[4].contains("(recently failing)"),
        "{plan}"
    );
    assert!(plan.contains("(does not fit the budget)"), "{plan}");
    assert_eq!(
        records(dir.path()).len(),
        21,
        "--explain-selection runs nothing"
    );

    let started = Instant::now();
    let out = mtest_in(dir.path())
        .args(["-j", "1", "--budget", "4s", "--timeout", "2"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let ran = outcomes(dir.path());
    assert!(
        (0..4).all(|i| ran.contains_key(&format!("tests/test_budget.py::test_smoke_{i}"))),
        "{ran:?}"
    );
    assert!(
        ran.contains_key("tests/test_budget.py::test_zz_flaky"),
        "{ran:?}"
    );
    assert!(ran.len() < 21, "the budget left tests out: {ran:?}");
    // Planned with what collection left of the budget, and said so.
    assert!(err.contains("--budget 4.0s: collection took "), "{err}");
    assert!(err.contains(": left out"), "{err}");
    assert!(took < Duration::from_secs(4 + 2), "took {took:?}");
}

#[test]
fn a_budget_too_small_for_the_estimates_stops_in_time() {
    // The estimates say everything fits; the tests are slower than that now.
    let dir = project(&[("tests/test_slow.py", &(0..10).map(|i| format!("import os, time\ndef test_{i}():\n    time.sleep(float(os.environ.get('NAP', '0.05')))\n")).collect::<String>())]);
    let out = mtest_in(dir.path()).args(["-j", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let started = Instant::now();
    let out = mtest_in(dir.path())
        .args(["-j", "1", "--budget", "3s", "--timeout", "2"])
        .env("NAP", "1")
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(took < Duration::from_secs(3 + 2), "took {took:?}");
    assert!(err.contains("the --budget ran out:"), "{err}");
    assert!(records(dir.path()).len() < 10);
}

fn bundle_of(root: &Path, id: &str) -> String {
    let rec = records(root)
        .into_iter()
        .find(|r| r["test_id"] == id)
        .unwrap_or_else(|| panic!("no record for {id}"));
    std::fs::read_to_string(
        root.join(".gates/last-run")
            .join(rec["bundle"].as_str().unwrap()),
    )
    .unwrap()
}

#[test]
fn bundles_of_a_failure_a_hang_and_a_crash_have_every_section_and_probe_state() {
    let (addr, closed) = common::pong_daemon_and_dead_port();
    let dir = tempfile::tempdir().unwrap();
    let demo = common::repo_root().join("examples/demo-project");
    for entry in std::fs::read_dir(demo.join("tests")).unwrap() {
        let entry = entry.unwrap();
        std::fs::create_dir_all(dir.path().join("tests")).unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("tests").join(entry.file_name()),
        )
        .unwrap();
    }
    let mut config = std::fs::read_to_string(demo.join("pyproject.toml")).unwrap();
    config.push_str(&format!(
        "\n[tool.mtest.probes.cache]\nplugin = \"tcp\"\naddress = \"{addr}\"\nsend = \"PING\"\ntimeout = 2\n\n[tool.mtest.probes.nothing-there]\nplugin = \"tcp\"\naddress = \"{closed}\"\ntimeout = 1\n"
    ));
    std::fs::write(dir.path().join("pyproject.toml"), config).unwrap();
    let out = mtest_in(dir.path())
        .env("MTEST_TEST_SECRET_TOKEN", "hunter2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let failure = bundle_of(dir.path(), "tests/test_contract.py::test_a_real_failure");
    let hang = bundle_of(dir.path(), "tests/test_misbehaving.py::test_HANGS_forever");
    let crash = bundle_of(
        dir.path(),
        "tests/test_misbehaving.py::test_CRASHES_with_a_segfault",
    );
    for (name, text) in [("failure", &failure), ("hang", &hang), ("crash", &crash)] {
        for section in [
            "== Failure ==",
            "== pytest command ==",
            "== Duration history ==",
            "== Daemon state ==",
            "== Environment ==",
        ] {
            assert!(
                text.contains(section),
                "{name} bundle lacks {section}:\n{text}"
            );
        }
        assert!(
            text.contains(&format!(
                "[cache]\n{addr} ({addr}): reachable\nreply: +PONG"
            )),
            "{name}:\n{text}"
        );
        assert!(
            text.contains(&format!(
                "[nothing-there]\n{closed} ({closed}): unreachable"
            )),
            "{name}:\n{text}"
        );
        assert!(text.contains("python:   3."), "{name}:\n{text}");
        assert!(
            text.contains("pytest:   9.") || text.contains("pytest:   8."),
            "{name}:\n{text}"
        );
        assert!(
            text.contains("plugins:  ") && text.contains("pytest-timeout"),
            "{name}:\n{text}"
        );
        assert!(text.contains("cpus:     "), "{name}:\n{text}");
        assert!(text.contains("git:      "), "{name}:\n{text}");
        assert!(
            text.contains("MTEST_TEST_SECRET_TOKEN=<redacted>") && !text.contains("hunter2"),
            "{name}"
        );
    }
    assert!(
        failure.contains("== Captured stdout ==\ncomputing the total..."),
        "{failure}"
    );
    assert!(
        failure.contains("assert 0.30000000000000004 == 0.3"),
        "{failure}"
    );
    assert!(
        hang.contains("== Stacks at the hang ==") && hang.contains("time.sleep(3600)")
            || hang.contains("test_HANGS_forever"),
        "{hang}"
    );
    assert!(
        crash.contains("== Last output of the pytest process ==\n")
            && crash.contains("Fatal Python error: Segmentation fault"),
        "{crash}"
    );
    assert!(
        crash.contains("== Re-run alone ==\ncrashed again when re-run alone (SIGSEGV)"),
        "{crash}"
    );
}

#[test]
fn any_node_id_gets_a_bundle_inside_failures() {
    let dir = project(&[(
        "tests/test_ids.py",
        "import pytest\n\n@pytest.mark.parametrize('p', ['../../x', 'ü' * 150, 'a/b'])\ndef test_p(p):\n    assert False\n",
    )]);
    let out = mtest_in(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let failures = dir.path().join(".gates/last-run/failures");
    let names: Vec<String> = std::fs::read_dir(&failures)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for r in records(dir.path()) {
        let bundle = dir
            .path()
            .join(".gates/last-run")
            .join(r["bundle"].as_str().unwrap());
        assert!(
            bundle.starts_with(&failures) && bundle.is_file(),
            "{bundle:?}"
        );
    }
    assert!(!dir.path().join(".gates/x").exists() && !dir.path().join("x").exists());
}

/// `.gates/last-run/junit.xml`, read with a real XML parser (Python's): every test once;
/// a pass after a failure carries a `flakyFailure`, a failure after failures `rerunFailure`s;
/// a quarantined failure is `skipped` with a `quarantined` property; the suite's counts
/// are the final outcomes.
#[test]
fn the_run_junit_xml_has_every_test_once_with_retries_and_quarantine() {
    let dir = project(&[(
        "tests/test_j.py",
        r#"
import os

def test_passes():
    pass

def test_flaky():
    marker = os.path.join(os.environ["STATE_DIR"], "seen")
    if not os.path.exists(marker):
        open(marker, "w").close()
        assert False, "first attempt fails"

def test_always_fails():
    print("some output")
    assert False, "always <fails> & more"

def test_quarantined():
    if os.environ.get("QUARANTINED_PASSES") != "1":
        assert False, "known bad"

def test_skipped():
    import pytest
    pytest.skip("not here")
"#,
    )]);
    let quarantined = "tests/test_j.py::test_quarantined";
    // It passed once: flaky, so quarantine forgives its failure.
    let earlier = tempfile::tempdir().unwrap();
    let out = mtest_in(dir.path())
        .env("STATE_DIR", earlier.path())
        .env("QUARANTINED_PASSES", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = mtest_in(dir.path())
        .args(["quarantine", "add", quarantined])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let state = tempfile::tempdir().unwrap();
    let out = mtest_in(dir.path())
        .args(["--retries", "1"])
        .env("STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let read = r#"
import json, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suite = root.find("testsuite")
cases = {}
for case in suite.iter("testcase"):
    cases[case.get("name")] = [
        [child.tag, child.get("message"), child.get("type")]
        + ([[p.get("name"), p.get("value")] for p in child] if child.tag == "properties" else [])
        for child in case
    ]
print(json.dumps({"suite": {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")},
                  "root": root.tag, "cases": cases}))
"#;
    let parsed = std::process::Command::new(common::python())
        .args(["-c", read])
        .arg(dir.path().join(".gates/last-run/junit.xml"))
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
    let want = serde_json::json!({
        "root": "testsuites",
        "suite": {"tests": "5", "failures": "1", "errors": "0", "skipped": "2"},
        "cases": {
            "test_passes": [],
            "test_flaky": [["flakyFailure", "AssertionError: first attempt fails", "failed"]],
            "test_always_fails": [
                ["failure", "AssertionError: always <fails> & more", "failed"],
                ["rerunFailure", "AssertionError: always <fails> & more", "failed"],
                ["system-out", null, null],
            ],
            "test_quarantined": [
                ["properties", null, null, ["quarantined", "true"]],
                ["skipped", "quarantined, failed: AssertionError: known bad", null],
                ["rerunFailure", "AssertionError: known bad", "failed"],
            ],
            "test_skipped": [["skipped", "Skipped: not here", null]],
        },
    });
    assert_eq!(got, want, "{}", serde_json::to_string_pretty(&got).unwrap());
}

/// On GitHub Actions (`GITHUB_ACTIONS=true`) the built-in `github` reporter is on by
/// default: one workflow-command annotation per failing test, at the end, escaped as
/// GitHub wants (`::error` for failures; `::warning` for a pass after a retry and for a
/// quarantined failure), and a job summary appended to `$GITHUB_STEP_SUMMARY`.
#[test]
fn on_github_actions_failures_become_annotations_and_a_job_summary() {
    let dir = project(&[(
        "tests/test_g.py",
        r#"import os

def test_passes():
    pass

def test_fails():
    assert 1 == 2, "one is not two, 100%"

def test_flaky():
    marker = os.path.join(os.environ["STATE_DIR"], "seen")
    if not os.path.exists(marker):
        open(marker, "w").close()
        assert False, "first time"

def test_quarantined():
    if os.environ.get("QUARANTINED_PASSES") != "1":
        assert False, "known"
"#,
    )]);
    // It passed once: flaky, so quarantine forgives its failure.
    let earlier = tempfile::tempdir().unwrap();
    let out = mtest_in(dir.path())
        .env("STATE_DIR", earlier.path())
        .env("QUARANTINED_PASSES", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = mtest_in(dir.path())
        .args(["quarantine", "add", "tests/test_g.py::test_quarantined"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let state = tempfile::tempdir().unwrap();
    let summary = state.path().join("step-summary.md");
    std::fs::write(&summary, "earlier steps' summary\n").unwrap();
    let out = mtest_in(dir.path())
        .args(["--retries", "1"])
        .env("STATE_DIR", state.path())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let annotations: Vec<&str> = err.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(
        annotations,
        [
            "::error file=tests/test_g.py,line=6,title=tests/test_g.py%3A%3Atest_fails%3A failed::AssertionError: one is not two, 100%25%0A(bundle: .gates/last-run/failures/tests_test_g.py__test_fails-d35c1855-attempt2.txt)",
            "::warning file=tests/test_g.py,line=9,title=tests/test_g.py%3A%3Atest_flaky%3A flaky%3A failed then passed on a retry::AssertionError: first time%0A(bundle: .gates/last-run/failures/tests_test_g.py__test_flaky-2116ff95.txt)",
            "::warning file=tests/test_g.py,line=15,title=tests/test_g.py%3A%3Atest_quarantined%3A failed (quarantined)::AssertionError: known%0A(bundle: .gates/last-run/failures/tests_test_g.py__test_quarantined-3a5f3eec-attempt2.txt)",
        ],
        "{err}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("earlier steps' summary\n## mtest: failed in "),
        "{md}"
    );
    for part in [
        "### Failures\n\n| test | outcome | message |\n|---|---|---|\n| `tests/test_g.py::test_fails` | failed | AssertionError: one is not two, 100% |\n",
        "### Flaky (failed, then passed on a retry)\n\n| test | outcome | message |\n|---|---|---|\n| `tests/test_g.py::test_flaky` | failed | AssertionError: first time |\n",
        "### Quarantined failures (do not fail the run)\n\n| test | outcome | message |\n|---|---|---|\n| `tests/test_g.py::test_quarantined` | failed | AssertionError: known |\n",
        "### Slowest tests\n",
    ] {
        assert!(md.contains(part), "{part}\nnot in:\n{md}");
    }

    // Elsewhere it stays off.
    let out = mtest_in(dir.path())
        .env("GITHUB_ACTIONS", "false")
        .env("STATE_DIR", state.path())
        .output()
        .unwrap();
    assert!(
        !stderr(&out).lines().any(|l| l.starts_with("::")),
        "{}",
        stderr(&out)
    );
}

/// `report.html` (the built-in `html-report` reporter): the run's timeline with a lane per
/// worker and a bar per test, failures marked and linked to their bundles; rendered by a
/// real headless browser where one is installed. `mtest --report --trace FILE`: the same
/// timeline as Chrome trace-event JSON, a slice per test attempt.
#[test]
fn report_html_and_the_trace_show_the_timeline() {
    let mut files: Vec<(String, String)> = (0..4)
        .map(|f| {
            (
                format!("tests/test_t{f}.py"),
                "import time\n\ndef test_a():\n    time.sleep(0.2)\n\ndef test_b():\n    time.sleep(0.1)\n".to_string(),
            )
        })
        .collect();
    files.push((
        "tests/test_bad.py".into(),
        "def test_fails():\n    assert 1 == 2, 'wrong <value>'\n".into(),
    ));
    let dir = project(&files);
    let out = mtest_in(dir.path()).args(["-j", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let report = dir.path().join(".gates/last-run/report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    let lanes = html.matches("<rect class=\"lane\"").count();
    assert!((1..=2).contains(&lanes), "{lanes} lanes for -j 2:\n{html}");
    assert_eq!(
        html.matches("<rect class=\"test ").count(),
        9,
        "a bar per test:\n{html}"
    );
    assert!(html.contains("<rect class=\"test failed\""), "{html}");
    assert!(
        html.contains("wrong &lt;value&gt;"),
        "messages are escaped:\n{html}"
    );
    let bundle = html
        .split("<a href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no bundle link in:\n{html}"));
    assert!(
        dir.path().join(".gates/last-run").join(bundle).is_file(),
        "{bundle} is not a file"
    );
    assert!(!html.contains("<script"), "no script");

    // Rendered by a real browser (Chromium from the Debian packages; ./dev installs it).
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    match chromium {
        None => common::missing("the rendering check: no chromium here (apt-get install chromium)"),
        Some(browser) => {
            let shot = dir.path().join("shot.png");
            let url = format!("file://{}", report.display());
            let dom = std::process::Command::new(browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--dump-dom",
                    &url,
                ])
                .output()
                .unwrap();
            let dom = String::from_utf8_lossy(&dom.stdout);
            assert!(
                dom.contains("<svg class=\"timeline\"") && dom.contains("Failures"),
                "{dom}"
            );
            let status = std::process::Command::new(browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1300,900",
                ])
                .arg(format!("--screenshot={}", shot.display()))
                .arg(&url)
                .output()
                .unwrap();
            let png = std::fs::read(&shot).unwrap_or_default();
            assert!(
                png.starts_with(b"\x89PNG") && png.len() > 10_000,
                "no screenshot: {}",
                String::from_utf8_lossy(&status.stderr)
            );
        }
    }

    let trace = dir.path().join("trace.json");
    let out = mtest_in(dir.path())
        .args(["--report", "--trace"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let slices: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(slices.len(), 9, "a slice per test attempt");
    assert!(slices
        .iter()
        .all(|e| e["tid"].as_u64().is_some_and(|t| (1..=2).contains(&t))));
    let failed = slices
        .iter()
        .find(|e| e["name"] == "tests/test_bad.py::test_fails")
        .unwrap();
    assert_eq!(failed["args"]["outcome"], "failed");
    assert!(events
        .iter()
        .any(|e| e["ph"] == "M" && e["args"]["name"] == "worker 1"));
}
