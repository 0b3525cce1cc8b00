//! Faults real suites hit, and input that must never panic or wedge mtest: each test here
//! failed before its fix. They run in the isolation mode under test
//! (`$MTEST_TEST_ISOLATION`; `./dev test` runs them in both).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{isolation, mtest_run, outcomes, project, python_has, records};

fn run(root: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = mtest_run(root).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn record<'a>(recs: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    recs.iter()
        .find(|r| r["test_id"] == id)
        .unwrap_or_else(|| panic!("no record for {id}: {recs:?}"))
}

#[test]
fn a_lone_surrogate_in_a_report_is_never_a_pass() {
    let dir = project(&[
        (
            "tests/test_s.py",
            r#"
import pytest

def test_fails():
    assert 0, 'bad \udcff name'

def test_skips():
    pytest.skip('reason \udcff here')

@pytest.mark.xfail(strict=True, reason='strict \ud800 reason')
def test_xpass_strict():
    pass

def test_ok():
    pass
"#,
        ),
        (
            "tests/test_bad_import.py",
            "raise ImportError('cannot import \\udcff')\n",
        ),
    ]);
    let (code, stderr) = run(dir.path(), &["-j", "2"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        outcomes(dir.path()),
        expect(&[
            ("tests/test_bad_import.py", "error"),
            ("tests/test_s.py::test_fails", "failed"),
            ("tests/test_s.py::test_ok", "passed"),
            ("tests/test_s.py::test_skips", "skipped"),
            ("tests/test_s.py::test_xpass_strict", "failed"),
        ])
    );
    let recs = records(dir.path());
    let failed = record(&recs, "tests/test_s.py::test_fails");
    assert!(
        failed["message"].as_str().unwrap().contains("bad \u{fffd}"),
        "{failed}"
    );
}

#[test]
fn options_that_run_no_tests_are_refused() {
    let dir = project(&[("tests/test_a.py", "def test_a():\n    pass\n")]);
    for option in [
        "--setup-plan",
        "--setup-only",
        "--collect-only",
        "--co",
        "--fixtures",
    ] {
        let (code, stderr) = run(dir.path(), &["--", option]);
        assert_eq!(code, Some(2), "{option}: {stderr}");
        assert!(
            stderr.contains(&format!("pytest's {option} does not run tests")),
            "{stderr}"
        );
        assert!(records(dir.path()).is_empty(), "{option} made records");
    }
}

const SERVER_CONFTEST: &str = r#"
import subprocess, pytest

@pytest.fixture(scope="session")
def server():
    p = subprocess.Popen(["sleep", "120"])
    yield p
    p.kill()
    p.wait()

@pytest.fixture(scope="session")
def detached():
    p = subprocess.Popen(["sleep", "121"], start_new_session=True)
    yield p
    p.kill()
    p.wait()
"#;

#[test]
fn a_session_scoped_server_survives_its_tests() {
    let mut tests = String::from("import time\n");
    for i in 0..6 {
        tests.push_str(&format!(
            "def test_server_{i}(server, detached):\n    time.sleep(0.05)\n    assert server.poll() is None and detached.poll() is None\n"
        ));
    }
    let dir = project(&[
        ("tests/conftest.py", SERVER_CONFTEST),
        ("tests/test_a.py", &tests),
        ("tests/test_b.py", &tests),
    ]);
    for jobs in ["1", "2"] {
        let (code, stderr) = run(dir.path(), &["-j", jobs]);
        assert_eq!(code, Some(0), "-j {jobs}: {stderr}");
        let recs = records(dir.path());
        assert_eq!(recs.len(), 12);
        assert!(
            recs.iter()
                .all(|r| r["outcome"] == "passed" && r.get("leaked").is_none()),
            "-j {jobs}: {recs:?}"
        );
        assert!(!stderr.contains("sleep 12"), "nothing was left: {stderr}");
    }
}

#[test]
fn a_fixture_that_outlives_its_teardown_is_a_leak_of_its_owner() {
    let dir = project(&[
        (
            "tests/conftest.py",
            r#"
import subprocess, pytest

@pytest.fixture(scope="module")
def forgetful():
    yield subprocess.Popen(["sleep", "122"])
"#,
        ),
        (
            "tests/test_a.py",
            "def test_one(forgetful):\n    assert forgetful.poll() is None\n\ndef test_two(forgetful):\n    assert forgetful.poll() is None\n",
        ),
    ]);
    let (code, stderr) = run(dir.path(), &["-j", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
    let recs = records(dir.path());
    let all_leaks: Vec<&str> = recs
        .iter()
        .filter_map(|r| r.get("leaked"))
        .flat_map(|l| l.as_array().unwrap().iter().map(|v| v.as_str().unwrap()))
        .collect();
    assert_eq!(all_leaks.len(), 1, "{recs:?}");
    assert!(
        all_leaks[0].contains("sleep")
            && all_leaks[0].contains(
                "module-scoped fixture `forgetful` (set up by tests/test_a.py::test_one)"
            ),
        "{}",
        all_leaks[0]
    );
}

#[test]
fn a_test_that_ends_the_session_gets_its_own_outcome_and_the_rest_run() {
    let dir = project(&[(
        "tests/test_k.py",
        r#"
import pytest

def test_before():
    pass

def test_interrupts():
    raise KeyboardInterrupt

def test_between():
    pass

def test_exits():
    pytest.exit("enough")

def test_after():
    pass
"#,
    )]);
    let (code, stderr) = run(dir.path(), &["-j", "1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        outcomes(dir.path()),
        expect(&[
            ("tests/test_k.py::test_after", "passed"),
            ("tests/test_k.py::test_before", "passed"),
            ("tests/test_k.py::test_between", "passed"),
            ("tests/test_k.py::test_exits", "failed"),
            ("tests/test_k.py::test_interrupts", "failed"),
        ])
    );
    let recs = records(dir.path());
    assert_eq!(
        record(&recs, "tests/test_k.py::test_interrupts")["message"],
        "KeyboardInterrupt raised in the test"
    );
    assert_eq!(
        record(&recs, "tests/test_k.py::test_exits")["message"],
        "pytest.exit() called in the test: enough"
    );
}

#[test]
fn an_internal_error_in_one_test_is_its_error_and_a_repeated_one_stops_the_run() {
    let dir = project(&[
        (
            "tests/conftest.py",
            r#"
def pytest_runtest_logreport(report):
    if "boom" in report.nodeid and report.when == "call":
        raise RuntimeError("plugin hook broke")
"#,
        ),
        (
            "tests/test_i.py",
            "def test_a():\n    pass\n\ndef test_boom():\n    pass\n\ndef test_c():\n    pass\n",
        ),
    ]);
    let (code, stderr) = run(dir.path(), &["-j", "1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        outcomes(dir.path()),
        expect(&[
            ("tests/test_i.py::test_a", "passed"),
            ("tests/test_i.py::test_boom", "error"),
            ("tests/test_i.py::test_c", "passed"),
        ])
    );
    let recs = records(dir.path());
    let boom = record(&recs, "tests/test_i.py::test_boom");
    assert!(
        boom["message"]
            .as_str()
            .unwrap()
            .starts_with("INTERNALERROR: RuntimeError: plugin hook broke"),
        "{boom}"
    );

    // The same INTERNALERROR for every test: pytest's problem, not the tests'.
    std::fs::write(
        dir.path().join("tests/conftest.py"),
        "def pytest_runtest_logreport(report):\n    raise RuntimeError('always broken')\n",
    )
    .unwrap();
    let (code, stderr) = run(dir.path(), &["-j", "1"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("the same INTERNALERROR ended pytest's run loop twice")
            && stderr.contains("always broken"),
        "{stderr}"
    );
}

#[test]
fn a_module_that_crashes_or_hangs_on_import_is_an_error_and_the_rest_runs() {
    let dir = project(&[
        ("pyproject.toml", "[tool.mtest]\ncollect-timeout = 3\n"),
        ("tests/test_a.py", "def test_a():\n    pass\n"),
        (
            "tests/test_crash.py",
            "import ctypes\nctypes.string_at(0)\n\ndef test_never():\n    pass\n",
        ),
        (
            "tests/test_hang.py",
            "import time\ntime.sleep(600)\n\ndef test_never():\n    pass\n",
        ),
        ("tests/test_z.py", "def test_z():\n    pass\n"),
    ]);
    let (code, stderr) = run(dir.path(), &["-j", "2"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        outcomes(dir.path()),
        expect(&[
            ("tests/test_a.py::test_a", "passed"),
            ("tests/test_crash.py", "error"),
            ("tests/test_hang.py", "error"),
            ("tests/test_z.py::test_z", "passed"),
        ])
    );
    let recs = records(dir.path());
    let crash = record(&recs, "tests/test_crash.py");
    assert!(
        crash["message"].as_str().unwrap().contains("SIGSEGV"),
        "{crash}"
    );
    let hang = record(&recs, "tests/test_hang.py");
    assert!(hang["message"].as_str().unwrap().contains("hung"), "{hang}");
}

#[test]
fn a_test_that_leaves_a_thread_running_does_not_wedge_mtest() {
    let dir = project(&[
        ("pyproject.toml", "[tool.mtest]\nsession-end-timeout = 10\n"),
        (
            "tests/test_t.py",
            r#"
import threading, time

def test_starts_a_thread():
    threading.Thread(target=time.sleep, args=(600,), name="forever").start()

def test_after():
    pass
"#,
        ),
    ]);
    let (code, stderr) = run(dir.path(), &["-j", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(records(dir.path()).len(), 2);
    if isolation() == "process" {
        assert!(
            stderr.contains("pytest did not exit")
                && stderr.contains("tests/test_t.py::test_starts_a_thread (forever)"),
            "{stderr}"
        );
    }
}

/// A `pytest_sessionfinish` hook that hangs: the tests keep their outcomes (the last one
/// is not `hung`), the session end is cut after `session-end-timeout`, and the console
/// says so, instead of holding the terminal for minutes.
#[test]
fn a_session_end_that_hangs_is_bounded_and_said() {
    let dir = project(&[
        ("pyproject.toml", "[tool.mtest]\nsession-end-timeout = 2\n"),
        (
            "conftest.py",
            "import time\n\ndef pytest_sessionfinish(session):\n    time.sleep(120)\n",
        ),
        (
            "tests/test_a.py",
            "def test_a():\n    pass\n\ndef test_b():\n    pass\n",
        ),
    ]);
    let (code, stderr) = run(dir.path(), &["-j", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        outcomes(dir.path()),
        expect(&[
            ("tests/test_a.py::test_a", "passed"),
            ("tests/test_a.py::test_b", "passed")
        ])
    );
    assert!(
        stderr.contains("2.0s") && stderr.contains("(session-end-timeout"),
        "{stderr}"
    );
}

#[test]
fn a_test_needing_another_modules_import_passes_as_under_pytest() {
    // Module A imports pkg._impl; module B only imports pkg and relies on A's import.
    let dir = project(&[
        ("pkg/__init__.py", ""),
        ("pkg/_impl.py", "def answer():\n    return 42\n"),
        (
            "tests/test_a.py",
            "import pkg._impl\n\ndef test_a():\n    assert pkg._impl.answer() == 42\n",
        ),
        (
            "tests/test_b.py",
            "import pkg\n\ndef test_b(monkeypatch):\n    monkeypatch.setattr(pkg._impl, 'answer', lambda: 1)\n    assert pkg._impl.answer() == 1\n",
        ),
        ("pyproject.toml", "[tool.pytest.ini_options]\npythonpath = [\".\"]\n"),
    ]);
    let (code, stderr) = run(dir.path(), &["-j", "2"]);
    let got = outcomes(dir.path());
    if isolation() == "fork" {
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(
            got,
            expect(&[
                ("tests/test_a.py::test_a", "passed"),
                ("tests/test_b.py::test_b", "passed"),
            ])
        );
    } else {
        // Documented: in process mode a chunk imports only its own files.
        assert_eq!(got.len(), 2, "{stderr}");
    }
}

/// `files`, and 200 tests in 20 files (`tests/test_fNN.py`: `def test_N` + `rest`):
/// many chunks at `-j2`.
fn with_many_tests(files: &[(&str, &str)], rest: &str) -> tempfile::TempDir {
    let mut all: Vec<(String, String)> = files
        .iter()
        .map(|(path, text)| (path.to_string(), text.to_string()))
        .collect();
    for f in 0..20 {
        let body: String = (0..10).map(|t| format!("def test_{t}{rest}")).collect();
        all.push((format!("tests/test_f{f:02}.py"), body));
    }
    project(&all)
}

/// As zipp's `zipp/glob.py`: a doctest expects a plain `AssertionError` message from a
/// module that is not a test file. pytest rewrites the asserts only of test files and of
/// files named on its command line; a process-mode chunk names its files there, and the
/// rewritten assert's message (with pytest's detail) failed the doctest.
#[test]
fn a_module_a_chunk_names_is_judged_as_in_the_runs_collection() {
    let files = [
        (
            "checks.py",
            "def positive(x):\n    \"\"\"\n    >>> positive(0)\n    Traceback (most recent call last):\n    ...\n    AssertionError: must be positive\n    \"\"\"\n    assert x > 0, 'must be positive'\n",
        ),
        (
            "pyproject.toml",
            "[tool.pytest.ini_options]\naddopts = \"--doctest-modules\"\n",
        ),
    ];
    let dir = with_many_tests(&files, "():\n    pass\n");
    let (code, stderr) = run(dir.path(), &["-j", "2"]);
    let got = outcomes(dir.path());
    assert_eq!(got.len(), 201, "{stderr}");
    assert_eq!(got["checks.py::checks.positive"], "passed", "{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_worker_goes_on_with_chunk_after_chunk_keeping_its_session() {
    // As semver's suite: an autouse fixture of tests/ fills the session-scoped
    // doctest_namespace, and the doctests of docs/ (collected last) rely on it; a session
    // fixture counts its set-ups. 200 tests in 20 files at -j2 are many chunks.
    let files = [
        (
            "conftest.py",
            "import os, pytest\n\n@pytest.fixture(scope='session')\ndef server():\n    with open(os.path.join(os.path.dirname(__file__), 'setups.txt'), 'a') as f:\n        f.write('%d\\n' % os.getpid())\n    yield 'up'\n",
        ),
        (
            "tests/conftest.py",
            "import pytest\n\n@pytest.fixture(autouse=True)\ndef fill(doctest_namespace):\n    doctest_namespace['answer'] = 42\n",
        ),
        (
            "docs/usage.rst",
            "Usage\n=====\n\n>>> answer\n42\n",
        ),
        (
            "pyproject.toml",
            "[tool.pytest.ini_options]\ntestpaths = [\"tests\", \"docs\"]\naddopts = \"--doctest-glob='*.rst'\"\n",
        ),
    ];
    let dir = with_many_tests(&files, "(server):\n    assert server == 'up'\n");
    let (code, stderr) = run(dir.path(), &["-j", "2"]);
    let got = outcomes(dir.path());
    assert_eq!(got.len(), 201, "{stderr}");
    let chunks: std::collections::HashSet<i64> = records(dir.path())
        .iter()
        .map(|r| r["chunk"].as_i64().unwrap())
        .collect();
    assert!(chunks.len() > 2, "expected many chunks: {chunks:?}");
    let setups = std::fs::read_to_string(dir.path().join("setups.txt")).unwrap();
    if isolation() == "fork" {
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(got["docs/usage.rst::usage.rst"], "passed");
        // Once per worker, not once per chunk.
        assert!(
            setups.lines().count() <= 2,
            "set up {} times",
            setups.lines().count()
        );
    } else {
        // Documented: in process mode every chunk is a pytest session of its own.
        assert!(setups.lines().count() >= 2, "{setups}");
    }
}

#[test]
fn huge_output_is_capped_in_the_record_and_kept_whole_beside_it() {
    let dir = project(&[(
        "tests/test_big.py",
        "def test_big():\n    print('x' * 5_000_000)\n    assert 0\n",
    )]);
    let (code, stderr) = run(dir.path(), &[]);
    assert_eq!(code, Some(1), "{stderr}");
    let recs = records(dir.path());
    let line = std::fs::read_to_string(dir.path().join(".gates/last-run/run.jsonl")).unwrap();
    assert!(line.len() < 1_000_000, "run.jsonl is {} bytes", line.len());
    assert_eq!(recs[0]["outcome"], "failed");
    let bundle = std::fs::read_to_string(
        dir.path()
            .join(".gates/last-run")
            .join(recs[0]["bundle"].as_str().unwrap()),
    )
    .unwrap();
    assert!(
        bundle.contains("mtest cut 4868929 characters here"),
        "bundle lacks the cut note"
    );
    let whole: Vec<_> = std::fs::read_dir(dir.path().join(".gates/last-run/chunks"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".stdout.txt"))
        .collect();
    assert_eq!(whole.len(), 1);
    assert!(whole[0].metadata().unwrap().len() >= 5_000_000);
}

#[test]
fn durations_out_of_range_are_one_clear_error() {
    let dir = project(&[(
        "tests/test_a.py",
        "import pytest\n\n@pytest.mark.timeout(1e20)\ndef test_a():\n    pass\n",
    )]);
    for args in [
        &["--timeout", "1e30"][..],
        &["--budget", "1e30"],
        &["--timeout", "0"],
        &["--timeout=-1"],
        &["--timeout", "NaN"],
        &["-j", "0"],
        &["-j", "100000"],
    ] {
        let (code, stderr) = run(dir.path(), args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A marker with an absurd timeout: pytest-timeout cannot arm it (plain pytest says
    // INTERNALERROR); the test's record says so, and nothing panics.
    let (code, stderr) = run(dir.path(), &[]);
    assert_eq!(code, Some(1), "{stderr}");
    let recs = records(dir.path());
    assert_eq!(recs[0]["outcome"], "error", "{recs:?}");
    assert!(
        recs[0]["message"]
            .as_str()
            .unwrap()
            .contains("OverflowError"),
        "{recs:?}"
    );
    for (key, value) in [
        ("timeout", "1e30"),
        ("plugin-timeout", "1e30"),
        ("collect-timeout", "-3"),
    ] {
        std::fs::write(
            dir.path().join("pyproject.toml"),
            format!("[tool.mtest]\n{key} = {value}\n"),
        )
        .unwrap();
        let (code, stderr) = run(dir.path(), &[]);
        assert_eq!(code, Some(2), "{key}: {stderr}");
        assert!(
            stderr.contains(key) && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}

#[test]
fn xdist_options_are_neutralised() {
    if !python_has("xdist") {
        common::missing("pytest-xdist is not installed in the test Python");
        return;
    }
    let dir = project(&[
        (
            "pyproject.toml",
            "[tool.pytest.ini_options]\naddopts = \"-n 2\"\n",
        ),
        (
            "tests/test_a.py",
            "def test_a():\n    pass\n\ndef test_b():\n    pass\n",
        ),
    ]);
    let (code, stderr) = run(dir.path(), &["-j", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(records(dir.path()).len(), 2, "no duplicate records");
    assert_eq!(
        stderr.matches("pytest-xdist's -n 2 is ignored").count(),
        1,
        "said once: {stderr}"
    );
}

#[test]
fn coverage_at_j2_equals_plain_pytest() {
    if !python_has("pytest_cov") {
        common::missing("pytest-cov is not installed in the test Python");
        return;
    }
    let mut files = vec![("pkg/__init__.py".to_string(), String::new())];
    for m in 0..4 {
        let mut module = String::new();
        for f in 0..10 {
            module.push_str(&format!(
                "def f{f}(x):\n    if x > {f}:\n        return x\n    return -x\n\n"
            ));
        }
        files.push((format!("pkg/m{m}.py"), module));
        files.push((
            format!("tests/test_m{m}.py"),
            format!("from pkg import m{m}\n\ndef test_some():\n    assert m{m}.f1(5) == 5\n    assert m{m}.f{m}(-1) == 1\n"),
        ));
    }
    files.push((
        "pyproject.toml".into(),
        "[tool.pytest.ini_options]\npythonpath = [\".\"]\n".into(),
    ));
    let dir = project(&files);
    let total = |root: &Path| -> String {
        let out = std::process::Command::new(common::python())
            .current_dir(root)
            .args(["-m", "coverage", "report", "--format=total"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let plain = std::process::Command::new(common::python())
        .current_dir(dir.path())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--cov=pkg"])
        .output()
        .unwrap();
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stdout)
    );
    let expected = total(dir.path());
    std::fs::remove_file(dir.path().join(".coverage")).unwrap();
    let (code, stderr) = run(dir.path(), &["-j", "2", "--", "--cov=pkg"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(total(dir.path()), expected, "{stderr}");
}

#[test]
fn a_store_deleted_during_the_run_is_written_again() {
    let dir = project(&[(
        "tests/test_d.py",
        r#"
import os, shutil

def test_a():
    pass

def test_b_deletes_the_store():
    # mtest may write the store again while rmtree walks it (a record of test_a
    # arriving): delete until it is gone, as a user's `rm -rf` racing it would.
    store = os.path.join(os.getcwd(), ".gates")
    while os.path.exists(store):
        shutil.rmtree(store, ignore_errors=True)

def test_c_fails():
    assert 0
"#,
    )]);
    let (code, stderr) = run(dir.path(), &["-j", "1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("disappeared during the run"), "{stderr}");
    assert_eq!(
        outcomes(dir.path()),
        expect(&[
            ("tests/test_d.py::test_a", "passed"),
            ("tests/test_d.py::test_b_deletes_the_store", "passed"),
            ("tests/test_d.py::test_c_fails", "failed"),
        ])
    );
    let state = std::fs::read_to_string(dir.path().join(".gates/state.json")).unwrap();
    assert!(state.contains("\"complete\""), "{state}");
}

#[test]
fn a_store_that_cannot_be_written_is_one_clear_error() {
    let dir = project(&[("tests/test_a.py", "def test_a():\n    pass\n")]);
    std::fs::write(dir.path().join(".gates"), "not a directory").unwrap();
    let (code, stderr) = run(dir.path(), &[]);
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(".gates is not a directory"), "{stderr}");
}

#[test]
#[cfg(target_os = "linux")] // Ctrl-C as a signal (Windows: a console event); /proc read
fn ctrl_c_during_collection_ends_the_run_with_130_and_leaves_no_pytest() {
    let dir = project(&[(
        "tests/test_slow_import.py",
        "import time\ntime.sleep(120)\n\ndef test_never():\n    pass\n",
    )]);
    let child = mtest_run(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the collecting pytest has started on the slow module.
    let events = dir.path().join(".gates/collect/zygote-1.events");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&events)
        .unwrap_or_default()
        .contains("test_slow_import.py")
    {
        assert!(started.elapsed().as_secs() < 60, "collection never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    common::interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted while collecting"), "{stderr}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(processes_in(dir.path()), Vec::<String>::new());
}

/// Command lines of the processes whose working directory is `dir`.
#[cfg(target_os = "linux")]
fn processes_in(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == dir))
        .map(|e| {
            String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).unwrap_or_default())
                .replace('\0', " ")
        })
        .collect()
}

#[test]
fn a_full_disk_is_one_clear_error_and_exit_3() {
    // A small tmpfs of its own (needs root, as CI and the dev machines have).
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        common::skip("cannot mount a small tmpfs here (not root, or no CAP_SYS_ADMIN)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(dir.path());
    std::fs::create_dir_all(dir.path().join("tests")).unwrap();
    std::fs::write(
        dir.path().join("tests/test_f.py"),
        r#"
def test_a():
    pass

def test_b_fills_the_disk():
    with open("filler", "wb") as f:
        try:
            while True:
                f.write(b"x" * 65536)
                f.flush()
        except OSError:
            pass

def test_c():
    assert 0
"#,
    )
    .unwrap();
    let (code, stderr) = run(dir.path(), &["-j", "1"]);
    assert_eq!(code, Some(3), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("the store could not be written") && errors[0].contains("No space left"),
        "{stderr}"
    );
}

#[test]
fn fail_fast_ends_every_worker_after_its_current_test() {
    // One worker, one chunk of 40 tests: --fail-fast must not wait for the chunk's end.
    let mut text = String::from("import time\n\ndef test_a_fails():\n    assert 0\n");
    for i in 0..40 {
        text.push_str(&format!("\ndef test_{i:02}():\n    time.sleep(0.1)\n"));
    }
    let dir = project(&[("tests/test_f.py", &text)]);
    let (code, stderr) = run(dir.path(), &["-j", "1", "--fail-fast"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("stopped early (--max-fail 1)"), "{stderr}");
    let recorded = outcomes(dir.path());
    assert_eq!(recorded["tests/test_f.py::test_a_fails"], "failed");
    // Never a pass for a test that did not run: whatever ran is recorded, the rest is not.
    assert!(recorded.len() < 20, "{recorded:?}");
    assert!(
        stderr.contains(&format!(
            "{} selected test(s) did not run",
            41 - recorded.len()
        )),
        "{stderr}"
    );
}

/// A line of the collection's event file that is no event could have been a test: the
/// collection is not trusted, and the run ends as pytest's could not (exit 4), naming the
/// line, never with a test quietly missing.
#[test]
fn an_unreadable_line_of_the_collection_ends_the_run_naming_it() {
    let dir = project(&[(
        "tests/test_a.py",
        r#"
import os
from mtest_events.state import S

if S.env.get("MTEST_COLLECT"):
    fd = os.open(S.env["MTEST_EVENTS"], os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"not an event\n")
    os.close(fd)

def test_a():
    pass
"#,
    )]);
    let (code, stderr) = run(dir.path(), &[]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("an event line could not be read: not an event"),
        "{stderr}"
    );
    assert!(!stderr.contains("1 passed"), "{stderr}");
}

/// A collecting pytest whose session end holds on (a sessionfinish hook that sleeps): its
/// collection stands, the process is killed after `session-end-timeout`, and the run says
/// so (process mode collects in a pytest of its own; fork mode's zygote lives on to fork).
#[test]
fn a_collection_whose_session_end_hangs_is_used_and_the_process_killed() {
    let dir = project(&[
        ("pyproject.toml", "[tool.mtest]\nsession-end-timeout = 2\n"),
        (
            "conftest.py",
            r#"
import time
from mtest_events.state import S

def pytest_sessionfinish(session):
    if S.env.get("MTEST_COLLECT") and not S.env.get("MTEST_ZYGOTE") == "fork":
        time.sleep(60)
"#,
        ),
        (
            "tests/test_a.py",
            "def test_a():\n    pass\n\ndef test_b():\n    pass\n",
        ),
    ]);
    let (code, stderr) = run(dir.path(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("2 passed"), "{stderr}");
    if isolation() == "process" {
        assert!(
            stderr.contains("the collecting pytest did not end 2.0s after reporting its tests"),
            "{stderr}"
        );
    }
}
