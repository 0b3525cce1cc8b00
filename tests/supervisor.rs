//! The supervisor end to end: the real binary, real pytest, temp projects.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{copy_dir, mtest_run as mtest_in, outcomes, project, records};

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_demo_project_gives_every_outcome_bundles_and_schema_records() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &common::repo_root().join("examples/demo-project"),
        dir.path(),
    );
    let out = mtest_in(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        outcomes(dir.path()),
        expect(&[
            ("tests/test_collection_error.py", "error"),
            ("tests/test_contract.py::test_a_real_failure", "failed"),
            ("tests/test_contract.py::test_fixed_bug", "xpassed"),
            ("tests/test_contract.py::test_known_bug", "xfailed"),
            ("tests/test_contract.py::test_v2_format", "skipped"),
            (
                "tests/test_contract.py::test_wire_format_is_stable",
                "passed"
            ),
            ("tests/test_integration.py::test_many_cases", "passed"),
            ("tests/test_integration.py::test_needs_a_database", "error"),
            (
                "tests/test_misbehaving.py::test_CRASHES_with_a_hard_exit",
                "crashed"
            ),
            (
                "tests/test_misbehaving.py::test_CRASHES_with_a_segfault",
                "crashed"
            ),
            ("tests/test_misbehaving.py::test_HANGS_forever", "hung"),
            (
                "tests/test_misbehaving.py::test_still_runs_after_the_crashes",
                "passed"
            ),
            ("tests/test_smoke.py::test_arithmetic", "passed"),
            ("tests/test_smoke.py::test_imports_work", "passed"),
        ])
    );

    let last_run = dir.path().join(".gates/last-run");
    let run_id = records(dir.path())[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    for r in records(dir.path()) {
        // The documented contract of a record, field by field.
        assert_eq!(r["schema_version"], 1);
        assert_eq!(r["run_id"], run_id.as_str());
        let outcome = r["outcome"].as_str().unwrap();
        assert!(r["duration_s"].as_f64().unwrap() >= 0.0);
        assert!(r["tier"].as_u64().unwrap() <= 3);
        assert!(r["markers"].is_array());
        assert!(r["file"].as_str().unwrap().starts_with("tests/test_"));
        assert!(r["line"].is_null() || r["line"].is_u64());
        assert!(r["chunk"].is_u64());
        assert_eq!(r["attempt"], 1);
        assert_eq!(r["quarantined"], false);
        for t in ["started_at", "finished_at"] {
            let ts = r[t].as_str().unwrap();
            assert!(
                ts.len() == 24 && ts.ends_with('Z') && &ts[10..11] == "T",
                "{ts}"
            );
        }
        let failure = matches!(outcome, "failed" | "error" | "hung" | "crashed");
        if outcome == "passed" {
            assert!(r["message"].is_null(), "{r}");
        } else if outcome != "xpassed" {
            assert!(!r["message"].as_str().unwrap().contains('\n'), "{r}");
        }
        if failure {
            let bundle = last_run.join(r["bundle"].as_str().unwrap());
            let text = std::fs::read_to_string(&bundle).unwrap();
            assert!(text.contains(&format!("test:        {}", r["test_id"].as_str().unwrap())));
        } else {
            assert!(r["bundle"].is_null());
        }
    }
    let tier = |id: &str| {
        records(dir.path())
            .into_iter()
            .find(|r| r["test_id"] == id)
            .unwrap()["tier"]
            .clone()
    };
    assert_eq!(tier("tests/test_smoke.py::test_arithmetic"), 0);
    assert_eq!(tier("tests/test_integration.py::test_many_cases"), 2);
    assert_eq!(tier("tests/test_misbehaving.py::test_HANGS_forever"), 3);

    let bundles = std::fs::read_dir(last_run.join("failures"))
        .unwrap()
        .count();
    assert_eq!(bundles, 6);
    let hung = std::fs::read_to_string(
        std::fs::read_dir(last_run.join("failures"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains("HANGS"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        hung.contains("time.sleep(3600)") || hung.contains("test_HANGS_forever"),
        "{hung}"
    );
    assert!(hung.contains("== pytest command =="), "{hung}");
    let summary = std::fs::read_to_string(last_run.join("summary.md")).unwrap();
    assert!(summary.contains("| crashed | 2 |"), "{summary}");
    assert!(last_run.join("junit-0001.xml").is_file());
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(".gates/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["status"], "complete");
    assert!(dir.path().join(".gates/durations.json").is_file());
}

fn trivial_suite(
    files: usize,
    per_file: usize,
    bad: &[(usize, usize, &str)],
) -> Vec<(String, String)> {
    (0..files)
        .map(|f| {
            let mut text = String::from("import ctypes, os\n");
            for t in 0..per_file {
                match bad.iter().find(|(bf, bt, _)| *bf == f && *bt == t) {
                    Some((_, _, body)) => text.push_str(&format!("def test_{t}():\n    {body}\n")),
                    None => text.push_str(&format!("def test_{t}():\n    pass\n")),
                }
            }
            (format!("tests/test_f{f:03}.py"), text)
        })
        .collect()
}

#[test]
fn five_segfaults_in_2000_tests_crash_alone() {
    let segv = "ctypes.string_at(0)";
    let bad = [
        (3, 7, segv),
        (11, 0, segv),
        (19, 49, segv),
        (27, 25, segv),
        (38, 12, segv),
    ];
    let files = trivial_suite(40, 50, &bad);
    let dir = project(&files);
    let out = mtest_in(dir.path()).args(["-j", "2"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = outcomes(dir.path());
    assert_eq!(
        records(dir.path()).len(),
        2000,
        "each test recorded exactly once"
    );
    let crashed: Vec<&String> = got
        .iter()
        .filter(|(_, o)| *o == "crashed")
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        crashed,
        vec![
            "tests/test_f003.py::test_7",
            "tests/test_f011.py::test_0",
            "tests/test_f019.py::test_49",
            "tests/test_f027.py::test_25",
            "tests/test_f038.py::test_12"
        ]
    );
    assert_eq!(got.values().filter(|o| *o == "passed").count(), 1995);

    // Next run: each test that crashed runs alone, first, in a pytest process of its own,
    // so a repeat crash takes no chunk down; its bundle says so.
    let out = mtest_in(dir.path()).args(["-j", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(records(dir.path()).len(), 2000);
    for r in records(dir.path())
        .iter()
        .filter(|r| r["outcome"] == "crashed")
    {
        let chunk = r["chunk"].as_u64().unwrap();
        let ids = std::fs::read_to_string(
            dir.path()
                .join(format!(".gates/last-run/chunks/chunk-{chunk:04}.ids")),
        )
        .unwrap();
        assert_eq!(ids.trim(), r["test_id"].as_str().unwrap(), "ran alone");
        assert!(chunk <= 5, "the isolated tests run first: chunk {chunk}");
        let bundle = std::fs::read_to_string(
            dir.path()
                .join(".gates/last-run")
                .join(r["bundle"].as_str().unwrap()),
        )
        .unwrap();
        assert!(
            bundle.contains("it crashed in the previous run too, so this time it ran alone"),
            "{bundle}"
        );
    }
    assert_eq!(
        outcomes(dir.path())
            .values()
            .filter(|o| *o == "passed")
            .count(),
        1995
    );
}

fn wait_for_records(root: &Path, at_least: usize, limit: Duration) {
    let started = Instant::now();
    while records_len(root) < at_least {
        assert!(
            started.elapsed() < limit,
            "only {} records after {limit:?}",
            records_len(root)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn records_len(root: &Path) -> usize {
    std::fs::read_to_string(root.join(".gates/last-run/run.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Each test appends its name to `runs.txt` when it runs.
fn counting_suite(files: usize, per_file: usize, sleep: f64) -> Vec<(String, String)> {
    (0..files)
        .map(|f| {
            let mut text = String::from("import os, time\n");
            for t in 0..per_file {
                text.push_str(&format!(
                    "def test_{t}():\n    open(os.environ['RUNS_FILE'], 'a').write('f{f}_{t}\\n')\n    time.sleep({sleep})\n"
                ));
            }
            (format!("tests/test_f{f}.py"), text)
        })
        .collect()
}

fn runs(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("runs.txt"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn sigkill_of_mtest_then_resume_records_each_test_once_and_reruns_none() {
    let files = counting_suite(4, 10, 0.1);
    let dir = project(&files);
    let runs_file = dir.path().join("runs.txt");
    // mtest's temp dirs go here: the killed run cannot remove its own, the next run must.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut child = mtest_in(dir.path())
        .args(["-j", "2"])
        .env("RUNS_FILE", &runs_file)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_records(dir.path(), 12, Duration::from_secs(60));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before: Vec<String> = records(dir.path())
        .iter()
        .map(|r| r["test_id"].as_str().unwrap().to_string())
        .collect();
    assert!(before.len() < 40, "the kill came too late to test anything");
    let ran_before = runs(dir.path()).len();

    let left_by_the_kill = std::fs::read_dir(&tmp).unwrap().count();
    assert!(left_by_the_kill > 0, "the killed run removed its temp dirs");

    let out = mtest_in(dir.path())
        .args(["--resume", "-j", "2"])
        .env("RUNS_FILE", &runs_file)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "temp dirs left: {left:?}");
    assert!(
        stderr.contains(&format!("{} of 40 test(s) already recorded", before.len())),
        "{stderr}"
    );

    let after: Vec<String> = records(dir.path())
        .iter()
        .map(|r| r["test_id"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::BTreeSet<&String> = after.iter().collect();
    assert_eq!(after.len(), 40, "each test recorded exactly once");
    assert_eq!(unique.len(), 40);
    // No test recorded before the kill ran again.
    let rerun: Vec<String> = runs(dir.path())[ran_before..].to_vec();
    for id in &before {
        let (file, test) = id
            .trim_start_matches("tests/test_")
            .split_once(".py::test_")
            .unwrap();
        assert!(
            !rerun.contains(&format!("{file}_{test}")),
            "{id} ran again after --resume"
        );
    }
}

#[test]
#[cfg(unix)] // Ctrl-C as a signal (on Windows it is a console event)
fn ctrl_c_stops_gracefully_and_resume_finishes() {
    let files = counting_suite(4, 10, 0.1);
    let dir = project(&files);
    let child = mtest_in(dir.path())
        .args(["-j", "2"])
        .env("RUNS_FILE", dir.path().join("runs.txt"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_records(dir.path(), 8, Duration::from_secs(60));
    common::interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("run `mtest --resume`"), "{stderr}");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(".gates/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["status"], "interrupted");
    assert!(records_len(dir.path()) < 40);

    let out = mtest_in(dir.path())
        .args(["--resume"])
        .env("RUNS_FILE", dir.path().join("runs.txt"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(records_len(dir.path()), 40);
    let out = mtest_in(dir.path()).args(["--resume"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to resume"));
}

#[test]
fn a_broken_conftest_ends_the_run_with_pytests_text() {
    let dir = project(&[
        ("conftest.py", "import no_such_package_anywhere\n"),
        ("tests/test_a.py", "def test_a():\n    pass\n"),
    ]);
    let out = mtest_in(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.starts_with("error: pytest could not collect the tests (exit status 4)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("No module named 'no_such_package_anywhere'"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_pytest_is_one_clear_error() {
    let dir = project(&[("tests/test_a.py", "def test_a():\n    pass\n")]);
    // A Python that surely lacks pytest: a bare venv.
    let venv = dir.path().join("bare-venv");
    let ok = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(ok.success());
    let python = venv.join("bin/python");
    let out = common::mtest(&dir.path().join("cache"))
        .arg("--root")
        .arg(dir.path())
        .arg("--python")
        .arg(&python)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: pytest is not installed for {p}; install with: {p} -m pip install pytest pytest-timeout",
            p = python.display()
        )
    );
}

#[test]
#[cfg(target_os = "linux")] // the daemon is found as a subreaper's orphan; /proc read here
fn leaked_processes_are_killed_and_recorded() {
    let dir = project(&[(
        "tests/test_leak.py",
        r#"
import subprocess

def test_leaks_a_child():
    subprocess.Popen(["sleep", "300"])

def test_leaks_a_daemon():
    # A grandchild in its own session: escapes the process group.
    subprocess.Popen(["sh", "-c", "sleep 301 &"], start_new_session=True).wait()

def test_after():
    pass
"#,
    )]);
    let out = mtest_in(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let recs = records(dir.path());
    let child = recs
        .iter()
        .find(|r| r["test_id"] == "tests/test_leak.py::test_leaks_a_child")
        .unwrap();
    let leaked = child["leaked"]
        .as_array()
        .expect("the record lists the leaked process");
    let leaked = leaked[0].as_str().unwrap();
    assert!(
        leaked.contains("sleep") && leaked.ends_with("(killed by mtest)"),
        "{child}"
    );
    assert!(
        stderr.contains("left 1 process(es) running, killed:") && stderr.contains("sleep 301"),
        "{stderr}"
    );
    // The daemon escaped the process group; it is still named with the test that made it.
    assert!(
        stderr.contains("(started by tests/test_leak.py::test_leaks_a_daemon (call))"),
        "{stderr}"
    );
    // The processes mtest says it killed (by pid: a system-wide search would also see
    // another run's) are gone within a few seconds: killed processes are reaped by
    // whoever is their parent by then (init, for one that outlived mtest); a zombie is dead.
    let daemon = stderr
        .split("left 1 process(es) running, killed: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the warning names the daemon's pid");
    let child_pid = leaked.split_whitespace().next().unwrap_or_default();
    assert!(
        daemon.parse::<u32>().is_ok() && child_pid.parse::<u32>().is_ok(),
        "pids {child_pid:?} and {daemon:?}: {stderr}"
    );
    // A process's stat line, if it is alive and not a zombie (which is dead).
    let live = |pid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rsplit(") ").next().unwrap_or_default();
        (!state.starts_with('Z')).then_some(stat)
    };
    let running = |pid: &str| {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        live(pid).filter(|_| String::from_utf8_lossy(&cmd).starts_with("sleep"))
    };
    // Nor is anything else of this run (a worker, the zygote): nothing runs in its directory.
    let root = dir
        .path()
        .canonicalize()
        .unwrap_or(dir.path().to_path_buf());
    let here = |pid: &str| {
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
        live(pid).filter(|_| cwd.starts_with(&root))
    };
    let left = || -> Vec<String> {
        let ours = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.parse::<u32>().is_ok())
            .filter_map(|pid| here(&pid));
        [child_pid, daemon]
            .into_iter()
            .filter_map(running)
            .chain(ours)
            .collect()
    };
    common::wait_until(Duration::from_secs(5), &|| left().is_empty());
    let left = left();
    assert!(left.is_empty(), "still running 5 s after mtest: {left:?}");
}

#[test]
fn subtests_roll_up_into_their_parent() {
    let dir = project(&[(
        "tests/test_sub.py",
        r#"
def test_all_good(subtests):
    for i in range(3):
        with subtests.test(i=i):
            assert True

def test_one_bad(subtests):
    for i in range(4):
        with subtests.test(i=i):
            assert i != 2
"#,
    )]);
    let out = mtest_in(dir.path()).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(dir.path());
    assert_eq!(recs.len(), 2);
    let good = recs
        .iter()
        .find(|r| r["test_id"] == "tests/test_sub.py::test_all_good")
        .unwrap();
    assert_eq!(good["outcome"], "passed");
    assert_eq!(
        good["subtests"],
        serde_json::json!({"passed": 3, "failed": 0})
    );
    let bad = recs
        .iter()
        .find(|r| r["test_id"] == "tests/test_sub.py::test_one_bad")
        .unwrap();
    assert_eq!(bad["outcome"], "failed");
    assert_eq!(
        bad["subtests"],
        serde_json::json!({"passed": 3, "failed": 1})
    );
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .starts_with("1 of 4 subtests failed; first: (i=2)"),
        "{bad}"
    );
}

#[test]
fn tiers_keyword_and_nothing_selected() {
    let dir = project(&[(
        "tests/test_t.py",
        "import pytest\n@pytest.mark.smoke\ndef test_smoke():\n    pass\n@pytest.mark.slow\ndef test_slow():\n    pass\ndef test_plain_one():\n    pass\ndef test_plain_two():\n    pass\n",
    )]);
    let out = mtest_in(dir.path()).args(["--tier", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        outcomes(dir.path()),
        expect(&[("tests/test_t.py::test_smoke", "passed")])
    );

    let out = mtest_in(dir.path())
        .args(["--tier", "1-2", "-k", "two"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        outcomes(dir.path()),
        expect(&[("tests/test_t.py::test_plain_two", "passed")])
    );

    let out = mtest_in(dir.path()).args(["--tier", "2"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("nothing selected: 4 test(s) collected"),
        "{stderr}"
    );

    let out = mtest_in(dir.path()).args(["--tier", "7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_second_mtest_on_the_same_project_is_refused() {
    let files = counting_suite(1, 10, 0.2);
    let dir = project(&files);
    let mut first = mtest_in(dir.path())
        .env("RUNS_FILE", dir.path().join("runs.txt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_records(dir.path(), 1, Duration::from_secs(60));
    let out = mtest_in(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    first.wait().unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another mtest is running on this project (pid {}",
            first.id()
        )),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_store_file_is_reported_and_set_aside() {
    let dir = project(&[("tests/test_a.py", "def test_a():\n    pass\n")]);
    std::fs::create_dir_all(dir.path().join(".gates")).unwrap();
    std::fs::write(dir.path().join(".gates/durations.json"), "{ not json").unwrap();
    let out = mtest_in(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("durations.json is corrupt"), "{stderr}");
    let aside: Vec<_> = std::fs::read_dir(dir.path().join(".gates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("durations.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".gates").join(&aside[0])).unwrap(),
        "{ not json"
    );
}

#[test]
fn self_check_passes() {
    let cache = tempfile::tempdir().unwrap();
    let out = common::mtest(cache.path())
        .arg("--self-check")
        .arg("--python")
        .arg(common::python())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("test_hang_ignoring_signals     hung     PASS"),
        "{stdout}"
    );
    assert!(
        stdout
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("PASS: every outcome is right"),
        "{stdout}"
    );
}

/// `--lf` in `addopts` means what it means under plain pytest: the first run runs all,
/// mtest writes pytest's `lastfailed`, the second runs what failed.
#[test]
fn a_project_whose_addopts_use_pytests_cache_gets_pytests_last_failed() {
    let dir = project(&[
        (
            "pyproject.toml",
            "[tool.pytest.ini_options]\naddopts = \"--lf -p no:randomly\"\n",
        ),
        (
            "tests/test_a.py",
            "def test_a():\n    pass\n\ndef test_b():\n    assert False\n",
        ),
    ]);
    // mtest's temp dirs (the plugin) go here: none may be left.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let both = expect(&[
        ("tests/test_a.py::test_a", "passed"),
        ("tests/test_a.py::test_b", "failed"),
    ]);
    let failed = expect(&[("tests/test_a.py::test_b", "failed")]);
    for want in [both, failed.clone(), failed] {
        let out = mtest_in(dir.path()).env("TMPDIR", &tmp).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(outcomes(dir.path()), want);
    }
    let lastfailed = dir.path().join(".pytest_cache/v/cache/lastfailed");
    assert_eq!(
        std::fs::read_to_string(&lastfailed).unwrap(),
        "{\n  \"tests/test_a.py::test_b\": true\n}"
    );
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "temp dirs left behind: {left:?}");
}

/// Fork mode keeps what collection built frozen in the workers (`gc.freeze()`: their
/// garbage collections do not copy the collected heap) until a test walks the heap: a test
/// that searches `gc.get_objects()` finds module-level objects as under plain pytest,
/// with `gc-freeze` on (thawed then) or off (thawed at once).
#[test]
fn a_test_walking_the_heap_sees_the_collected_objects_frozen_or_not() {
    let test = "import gc\n\nclass Kept:\n    pass\n\nKEPT = Kept()\n\n\
                def test_sees_kept():\n    assert any(o is KEPT for o in gc.get_objects())\n";
    for (config, want) in [("", "passed"), ("gc-freeze = false\n", "passed")] {
        let pyproject = format!("[tool.mtest]\n{config}");
        let dir = project(&[
            ("pyproject.toml", pyproject.as_str()),
            ("tests/test_gc.py", test),
        ]);
        // Fork mode in both passes of `./dev test` (the key means nothing to process mode).
        let out = common::mtest_in(dir.path())
            .args(["--isolation", "fork", "-j", "1"])
            .output()
            .unwrap();
        assert_eq!(
            outcomes(dir.path()),
            expect(&[("tests/test_gc.py::test_sees_kept", want)]),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
