//! A command line shaped like pytest's: positional paths and node ids, `--lf`, `--ff`,
//! `--max-fail` / `-x`. Run from inside the project, as users do.

mod common;

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
