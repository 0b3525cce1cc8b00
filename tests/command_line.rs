//! A command line shaped like pytest's: positional paths and node ids, `--lf`, `--ff`,
//! `--max-fail` / `-x`. Run from inside the project, as users do.

use crate::common;
#[path = "golden.rs"]
mod golden;

use std::collections::BTreeMap;
use std::path::Path;

use common::{mtest_run, outcomes, project};

fn run_in(cwd: &Path, root: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = mtest_run(root)
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn suite() -> tempfile::TempDir {
    project(&[
        ("pyproject.toml", "[tool.pytest.ini_options]\n"),
        (
            "tests/unit/test_a.py",
            "import pytest\n\ndef test_one():\n    pass\n\n\
             class TestA:\n    @pytest.mark.parametrize('x', [1, 2])\n    def test_b(self, x):\n        pass\n",
        ),
        ("tests/unit/test_b.py", "def test_two():\n    pass\n"),
        ("tests/other/test_c.py", "def test_three():\n    pass\n"),
    ])
}

fn ids(root: &Path) -> Vec<String> {
    outcomes(root).into_keys().collect()
}

#[test]
fn positional_paths_and_node_ids_select_exactly_their_tests() {
    let dir = suite();
    let root = dir.path();
    let (code, stderr) = run_in(root, root, &["tests/unit/test_b.py", "tests/other"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        ids(root),
        [
            "tests/other/test_c.py::test_three",
            "tests/unit/test_b.py::test_two"
        ]
    );

    // A node id with a class and a parameter, given from a subdirectory.
    let (code, stderr) = run_in(
        &root.join("tests"),
        root,
        &["unit/test_a.py::TestA::test_b[2]", "-j", "1"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(ids(root), ["tests/unit/test_a.py::TestA::test_b[2]"]);

    // A directory with -k on top.
    let (code, stderr) = run_in(root, root, &["tests/unit", "-k", "one or two"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        ids(root),
        [
            "tests/unit/test_a.py::test_one",
            "tests/unit/test_b.py::test_two"
        ]
    );
}

#[test]
fn a_path_that_does_not_exist_is_a_usage_error() {
    let dir = suite();
    let root = dir.path();
    let (code, stderr) = run_in(root, root, &["-j", "1", "tests/nope.py"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("test path tests/nope.py does not exist"),
        "{stderr}"
    );
}

#[test]
fn last_failed_and_failed_first_follow_the_last_outcomes() {
    let dir = project(&[
        ("pyproject.toml", "[tool.pytest.ini_options]\n"),
        (
            "tests/test_x.py",
            "import os\n\ndef test_a():\n    pass\n\n\
             def test_b():\n    assert not os.path.exists('fail_b')\n\n\
             def test_c():\n    pass\n",
        ),
    ]);
    let root = dir.path();
    // Nothing failed yet: --lf runs everything, as pytest's does.
    let (code, stderr) = run_in(root, root, &["--lf", "-j", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("--lf: no test failed last time"),
        "{stderr}"
    );
    assert_eq!(ids(root).len(), 3);

    std::fs::write(root.join("fail_b"), "").unwrap();
    let (code, _) = run_in(root, root, &["-j", "1"]);
    assert_eq!(code, Some(1));
    let (code, stderr) = run_in(root, root, &["--lf", "-j", "1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        outcomes(root),
        BTreeMap::from([("tests/test_x.py::test_b".to_string(), "failed".to_string())])
    );

    // --ff: the failing test runs first, then the rest.
    let (code, stderr) = run_in(root, root, &["--ff", "-j", "1"]);
    assert_eq!(code, Some(1), "{stderr}");
    let order: Vec<String> = common::records(root)
        .iter()
        .map(|r| r["test_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!(order[0], "tests/test_x.py::test_b", "{order:?}");

    // Fixed: --lf runs it, it passes, and the next --lf has nothing failed: all run.
    std::fs::remove_file(root.join("fail_b")).unwrap();
    let (code, _) = run_in(root, root, &["--lf", "-j", "1"]);
    assert_eq!(code, Some(0));
    assert_eq!(ids(root), ["tests/test_x.py::test_b"]);
    let (code, _) = run_in(root, root, &["--lf", "-j", "1"]);
    assert_eq!(code, Some(0));
    assert_eq!(ids(root).len(), 3);
}

#[test]
fn max_fail_stops_after_n_failing_tests() {
    // A failing test, then a slow passing one, three times, then more: each running test
    // finishes (the slow one), nothing after it starts.
    let mut text = String::from("import time\n");
    for i in 0..3 {
        text.push_str(&format!("\ndef test_{i}_fails():\n    assert 0\n"));
        text.push_str(&format!("\ndef test_{i}_slow():\n    time.sleep(0.3)\n"));
    }
    for i in 0..20 {
        text.push_str(&format!("\ndef test_p{i:02}():\n    time.sleep(0.1)\n"));
    }
    let dir = project(&[("pyproject.toml", ""), ("tests/test_m.py", &text)]);
    let root = dir.path();
    let (code, stderr) = run_in(root, root, &["-j", "1", "--max-fail", "2"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("stopped early (--max-fail 2)"), "{stderr}");
    let recorded = outcomes(root);
    assert_eq!(
        recorded.values().filter(|o| *o == "failed").count(),
        2,
        "{recorded:?}"
    );
    assert!(recorded.len() < 20, "{recorded:?}");
    // Without history (which would put the failing tests first), in file order.
    std::fs::remove_dir_all(root.join(".gates")).unwrap();
    let (code, stderr) = run_in(root, root, &["-j", "1", "-x"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        outcomes(root).values().filter(|o| *o == "failed").count(),
        1,
        "{stderr}"
    );
    let (code, stderr) = run_in(root, root, &["--max-fail", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
}

/// `--max-fail` counts failing tests, not attempts: a test that fails three times with
/// `--retries 2` is one failing test, so `--max-fail 2` lets the run go on to its end.
#[test]
fn max_fail_counts_a_retried_failing_test_once() {
    let mut text = String::from("def test_fails():\n    assert 0\n");
    for i in 0..5 {
        text.push_str(&format!("\ndef test_p{i}():\n    pass\n"));
    }
    let dir = project(&[("pyproject.toml", ""), ("tests/test_m.py", &text)]);
    let root = dir.path();
    let (code, stderr) = run_in(
        root,
        root,
        &["-j", "1", "--retries", "2", "--max-fail", "2"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains("stopped early"), "{stderr}");
    let attempts = common::records(root)
        .iter()
        .filter(|r| r["test_id"] == "tests/test_m.py::test_fails")
        .count();
    assert_eq!(attempts, 3, "{stderr}");
    assert_eq!(outcomes(root).len(), 6, "every test ran: {stderr}");
}

#[test]
fn report_json_is_one_document_with_counts_and_records() {
    let dir = project(&[
        ("pyproject.toml", ""),
        (
            "tests/test_r.py",
            "def test_ok():\n    pass\n\ndef test_bad():\n    assert 0\n",
        ),
    ]);
    let root = dir.path();
    let (code, stderr) = run_in(root, root, &["--report", "--json"]);
    assert_eq!(code, Some(2), "no run yet: {stderr}");
    let (code, _) = run_in(root, root, &["-j", "1"]);
    assert_eq!(code, Some(1));
    let out = mtest_run(root)
        .current_dir(root)
        .args(["--report", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["counts"]["passed"], 1, "{doc}");
    assert_eq!(doc["counts"]["failed"], 1, "{doc}");
    assert_eq!(doc["tests"], 2, "{doc}");
    assert_eq!(doc["failing"], 1, "{doc}");
    assert_eq!(doc["status"], "complete", "{doc}");
    assert_eq!(doc["records"].as_array().map(Vec::len), Some(2), "{doc}");
    let (code, stderr) = run_in(root, root, &["--json"]);
    assert_eq!(code, Some(2), "--json needs --report: {stderr}");
}

/// Whether a test of the run has started (its chunk's event file says so).
#[cfg(unix)]
fn a_test_started(root: &Path) -> bool {
    std::fs::read_dir(root.join(".gates/last-run/chunks"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .any(|e| {
            e.path().extension().is_some_and(|x| x == "events")
                && std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("\"start\""))
        })
}

/// Four files of slow tests (one failing each): long enough for the display to draw.
#[cfg(unix)]
fn slow_suite() -> tempfile::TempDir {
    let mut files = vec![(
        "pyproject.toml".to_string(),
        "[tool.pytest.ini_options]\n".to_string(),
    )];
    for f in 1..=4 {
        let mut text = String::from("import time\n\n");
        for t in 0..6 {
            text.push_str(&format!("def test_{t}():\n    time.sleep(0.15)\n\n"));
        }
        text.push_str("def test_fail():\n    assert 0, 'boom'\n");
        files.push((format!("tests/test_s{f}.py"), text));
    }
    project(&files)
}

/// On a terminal (a pseudo-terminal here): a bar with done/total, the failures so far, the
/// time left estimated from the history (rough on a first run, plain on the second), the
/// running tests under it; failures printed above it; colour unless NO_COLOR.
#[test]
#[cfg(unix)] // a pseudo-terminal
fn on_a_terminal_the_display_has_a_bar_an_estimate_and_the_running_tests() {
    use std::io::Read;
    use std::os::fd::OwnedFd;

    let dir = slow_suite();
    let run = |extra_env: &[(&str, &str)]| -> String {
        let size = nix::pty::Winsize {
            ws_row: 30,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let slave: OwnedFd = pty.slave;
        let mut cmd = mtest_run(dir.path());
        cmd.args(["-j", "2"])
            .env_remove("NO_COLOR")
            .env_remove("FORCE_COLOR")
            .stdin(std::process::Stdio::null())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        drop(cmd); // our copies of the slave end: EOF when mtest exits
        let mut master = std::fs::File::from(pty.master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break, // EIO once the last slave fd is closed
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        child.wait().unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };

    let first = run(&[]);
    for part in [
        "/28 ",                          // done/total
        "█",                             // the bar
        " failed · ",                    // failures so far
        " left (rough: little history)", // no history yet
        "s  tests/test_s",               // a running test with its elapsed time
        "FAILED ",                       // a failure above the bar
        "\u{1b}[31m",                    // in red
    ] {
        assert!(
            first.contains(part),
            "{part:?} not in the display:\n{first}"
        );
    }
    let second = run(&[("NO_COLOR", "1")]);
    assert!(second.contains(" left"), "{second}");
    assert!(
        !second.contains("(rough"),
        "the history is there now:\n{second}"
    );
    assert!(!second.contains("\u{1b}[31m"), "NO_COLOR:\n{second}");
}

/// SIGUSR1 prints the full status: every running test, its worker, how long it has run.
#[test]
#[cfg(unix)] // Windows has no SIGUSR1 (mtest --help says so)
fn sigusr1_prints_every_running_test() {
    let dir = project(&[
        ("pyproject.toml", "[tool.pytest.ini_options]\n"),
        (
            "tests/test_long.py",
            "import time\n\ndef test_waits():\n    time.sleep(4)\n",
        ),
    ]);
    let child = mtest_run(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Ask once the test is running.
    assert!(
        common::wait_until(std::time::Duration::from_secs(30), &|| a_test_started(
            dir.path()
        )),
        "the test never started"
    );
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let status = err
        .lines()
        .skip_while(|l| !l.starts_with("mtest status: [0/1]"))
        .nth(1)
        .unwrap_or_else(|| panic!("no status in:\n{err}"));
    assert!(
        status.starts_with("  worker ") && status.ends_with("s  tests/test_long.py::test_waits"),
        "{status}"
    );
}

/// Ctrl-Z (SIGTSTP) pauses the workers and mtest; SIGCONT (`fg`) resumes them with their
/// clocks moved on: a test paused for longer than its timeout is not `hung` and does not
/// time out.
#[test]
#[cfg(target_os = "linux")] // Ctrl-Z (none on Windows); the state read from /proc
fn a_test_paused_longer_than_its_timeout_is_not_hung() {
    use nix::sys::signal::{kill, Signal};
    use std::time::Duration;

    let dir = project(&[
        ("pyproject.toml", "[tool.pytest.ini_options]\ntimeout = 2\n"),
        (
            "tests/test_p.py",
            "import time\n\ndef test_sleeps():\n    time.sleep(1.5)\n",
        ),
    ]);
    let child = mtest_run(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    assert!(
        common::wait_until(Duration::from_secs(30), &|| a_test_started(dir.path())),
        "the test never started"
    );
    let state = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s[s.rfind(')')? + 2..].chars().next())
    };
    kill(pid, Signal::SIGTSTP).unwrap();
    assert!(
        common::wait_until(Duration::from_secs(30), &|| state(pid.as_raw())
            == Some('T')),
        "mtest did not stop"
    );
    std::thread::sleep(Duration::from_millis(3500)); // past the 2 s timeout
    kill(pid, Signal::SIGCONT).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mtest: paused with 1 worker(s)"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        outcomes(dir.path()),
        [(
            "tests/test_p.py::test_sleeps".to_string(),
            "passed".to_string()
        )]
        .into()
    );
}
