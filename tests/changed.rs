//! `--changed`: after a full run records what each test depends on, a change selects the
//! tests it can reach — a function, a method, a class body, module-level code, fixtures,
//! a data file, a conftest, pytest's configuration, a deleted module, a new test —
//! `--changed-since`, `--verify`, shards, and a run killed half-way.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{mtest_run, project, records};

const PROJECT: &[(&str, &str)] = &[
    (
        "pyproject.toml",
        "[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n",
    ),
    ("pkg/__init__.py", ""),
    (
        "pkg/shapes.py",
        "SIDES = 4\n\n\
         def area(w, h):\n    return w * h\n\n\
         def perimeter(w, h):\n    return 2 * (w + h)\n\n\
         class Square:\n    sides = SIDES\n\n\
         \x20   def __init__(self, s):\n        self.s = s\n\n\
         \x20   def area(self):\n        return area(self.s, self.s)\n",
    ),
    ("pkg/extra.py", "def double(x):\n    return x * 2\n"),
    (
        "tests/conftest.py",
        "import pytest\n\n\
         @pytest.fixture\ndef unit():\n    return 1\n\n\
         @pytest.fixture(scope='session')\ndef big():\n    return 100\n",
    ),
    (
        "tests/test_area.py",
        "from pkg.shapes import area\n\n\
         def test_area():\n    assert area(2, 3) == 6\n\n\
         def test_area_unit(unit):\n    assert area(unit, unit) == 1\n",
    ),
    (
        "tests/test_perimeter.py",
        "from pkg.shapes import perimeter\n\n\
         def test_perimeter():\n    assert perimeter(2, 3) == 10\n\n\
         def test_big(big):\n    assert perimeter(big, 0) == 200\n\n\
         def test_big_again(big):\n    assert big == 100\n",
    ),
    (
        "tests/test_square.py",
        "from pkg.shapes import Square\n\n\
         def test_square_area():\n    assert Square(3).area() == 9\n\n\
         def test_sides():\n    assert Square.sides == 4\n",
    ),
    (
        "tests/test_extra.py",
        "import os\nfrom pkg.extra import double\n\n\
         def test_double():\n    assert double(2) == 4\n\n\
         def test_data():\n    here = os.path.dirname(__file__)\n\
         \x20   with open(os.path.join(here, 'data', 'value.txt')) as f:\n\
         \x20       assert f.read().strip() == '7'\n",
    ),
    ("tests/data/value.txt", "7\n"),
];

const ALL: &[&str] = &[
    "test_area",
    "test_area_unit",
    "test_perimeter",
    "test_big",
    "test_big_again",
    "test_square_area",
    "test_sides",
    "test_double",
    "test_data",
];

/// A recorded project: a full run passed, so every test has a record.
fn recorded() -> tempfile::TempDir {
    recorded_from(PROJECT, &["-j", "2"])
}

/// `files` as a project, recorded by a full run with `args` that passed.
fn recorded_from(files: &[(&str, &str)], args: &[&str]) -> tempfile::TempDir {
    let dir = project(files);
    let out = mtest_run(dir.path()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join(".gates/impact.json").is_file());
    dir
}

/// What `--changed --explain-selection` would run: the tests' names, and each line.
fn would_run(root: &Path, extra: &[&str]) -> (BTreeSet<String>, String) {
    let out = mtest_run(root)
        .args(["--changed", "--explain-selection"])
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let names = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .split('.')
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|l| l.split_whitespace().find(|w| w.contains("::")))
        .map(|id| id.rsplit("::").next().unwrap_or(id).to_string())
        .collect();
    (names, text)
}

/// The names of the tests the last run ran.
fn ran(root: &Path) -> Vec<String> {
    let id = |r: &serde_json::Value| r["test_id"].as_str().unwrap_or_default().to_string();
    let name = |id: String| id.rsplit("::").next().unwrap_or_default().to_string();
    records(root).iter().map(|r| name(id(r))).collect()
}

fn edit(root: &Path, file: &str, old: &str, new: &str) {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(old), "{file} has no {old:?}");
    std::fs::write(&path, text.replacen(old, new, 1)).unwrap();
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn nothing_changed_selects_nothing_and_a_run_says_so() {
    let dir = recorded();
    let (names, text) = would_run(dir.path(), &[]);
    assert!(names.is_empty(), "{text}");
    assert!(
        text.contains("4 test file(s) no change reaches (9 test(s)) were not collected"),
        "{text}"
    );
    let out = mtest_run(dir.path()).arg("--changed").output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: nothing selected: no change reaches any test (--changed)"),
        "{err}"
    );
}

#[test]
fn a_function_a_method_and_fixtures_select_the_tests_that_ran_them() {
    let dir = recorded();
    let root = dir.path();
    edit(root, "pkg/shapes.py", "return w * h", "return h * w");
    let (names, text) = would_run(root, &[]);
    assert_eq!(
        names,
        set(&["test_area", "test_area_unit", "test_square_area"]),
        "{text}"
    );
    assert!(text.contains("[pkg/shapes.py: area changed]"), "{text}");
    // It runs them, having collected only the two files that hold them (the collecting
    // pytest, started beside the check, waited for the files to leave out), and learns:
    // the same change selects nothing more.
    let out = mtest_run(root)
        .args(["--changed", "-j", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--changed: 3 of 4 collected test(s) a change can reach")
            && stderr.contains("2 test file(s) no change reaches (5 test(s)) were not collected"),
        "{stderr}"
    );
    assert_eq!(ran(root).into_iter().collect::<BTreeSet<_>>(), names);
    assert!(would_run(root, &[]).0.is_empty());

    edit(
        root,
        "pkg/shapes.py",
        "return area(self.s, self.s)",
        "return self.s ** 2",
    );
    assert_eq!(would_run(root, &[]).0, set(&["test_square_area"]));
    edit(root, "tests/conftest.py", "return 1", "return 1 * 1");
    let (names, _) = would_run(root, &[]);
    assert_eq!(names, set(&["test_square_area", "test_area_unit"]));
    edit(root, "tests/conftest.py", "return 100", "return 10 * 10");
    let (names, text) = would_run(root, &[]);
    assert_eq!(
        names,
        set(&[
            "test_square_area",
            "test_area_unit",
            "test_big",
            "test_big_again"
        ]),
        "a session fixture set up once counts for both of its tests: {text}"
    );
}

/// Every test of a module whose collection imported `pkg/shapes.py` (in fork mode, every
/// module collected after it: the zygote imports them all before any test runs; in
/// process mode, each chunk's process imports only its own modules).
const IMPORTING_SHAPES: &[&str] = &[
    "test_area",
    "test_area_unit",
    "test_perimeter",
    "test_big",
    "test_big_again",
    "test_square_area",
    "test_sides",
];

#[test]
fn code_that_runs_at_import_selects_every_test_after_it() {
    let dir = recorded();
    let root = dir.path();
    edit(root, "pkg/shapes.py", "sides = SIDES", "sides = SIDES + 0");
    let (names, text) = would_run(root, &[]);
    assert!(
        set(IMPORTING_SHAPES).is_subset(&names),
        "a class body runs once, at import: {text}"
    );
    assert!(text.contains("pkg/shapes.py: Square changed"), "{text}");
    let dir = recorded();
    edit(dir.path(), "pkg/shapes.py", "SIDES = 4", "SIDES = 5");
    assert!(set(IMPORTING_SHAPES).is_subset(&would_run(dir.path(), &[]).0));
}

/// A module the tests import themselves, the first of them running its top level (and
/// the function it calls there); in one worker, the later ones find it imported.
const LAZY: &[(&str, &str)] = &[
    ("pkg/__init__.py", ""),
    (
        "pkg/lazy.py",
        "N = 1\n\ndef build():\n    return {'n': N}\n\nTABLE = build()\n\n\
         def f():\n    return N\n",
    ),
    (
        "tests/test_lazy.py",
        "def test_a():\n    from pkg import lazy\n    assert lazy.f() == 1\n\n\
         def test_b():\n    from pkg import lazy\n    assert lazy.f() == 1\n\n\
         def test_c():\n    from pkg import lazy\n    assert lazy.N == 1\n\n\
         def test_d():\n    from pkg import lazy\n    assert lazy.TABLE == {'n': 1}\n",
    ),
];

#[test]
fn a_module_imported_in_a_test_counts_for_every_later_test_of_its_worker() {
    for (old, new) in [("N = 1", "N = 2"), ("return {'n': N}", "return {'n': 2}")] {
        let dir = recorded_from(LAZY, &["-j", "1"]);
        let root = dir.path();
        edit(root, "pkg/lazy.py", old, new);
        let (names, text) = would_run(root, &[]);
        let failing: &[&str] = if old == "N = 1" {
            &["test_a", "test_b", "test_c", "test_d"]
        } else {
            &["test_d"]
        };
        assert!(set(failing).is_subset(&names), "{old} -> {new}: {text}");
        let out = mtest_run(root)
            .args(["--changed", "--verify", "-j", "1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--verify") && !stderr.contains("would have left out:"),
            "{old} -> {new}: no failing test left out: {stderr}"
        );
    }
}

/// Doctests whose examples call nothing of the project: in a module's docstring, a
/// function's, a method's, and a text file.
const DOCTESTS: &[(&str, &str)] = &[
    (
        "pyproject.toml",
        "[tool.pytest.ini_options]\naddopts = \"--doctest-modules --doctest-glob='*.rst'\"\n",
    ),
    ("pkg/__init__.py", ""),
    (
        "pkg/doc.py",
        "\"\"\"The module.\n\n>>> 1 + 1\n2\n\"\"\"\n\n\
         def f():\n    \"\"\"\n    >>> 2 + 2\n    4\n    \"\"\"\n\n\
         class A:\n    def m(self):\n        \"\"\"\n        >>> 3 + 3\n        6\n        \"\"\"\n",
    ),
    ("docs/guide.rst", "A guide.\n\n>>> 5 + 5\n10\n"),
];

#[test]
fn a_doctest_changed_selects_itself_though_it_runs_nothing_of_its_module() {
    for (file, old, new, test) in [
        ("pkg/doc.py", "2\n\"\"\"", "3\n\"\"\"", "pkg.doc"),
        ("pkg/doc.py", "    4\n", "    5\n", "pkg.doc.f"),
        ("pkg/doc.py", "    6\n", "    7\n", "pkg.doc.A.m"),
        ("docs/guide.rst", "10\n", "11\n", "guide.rst"),
    ] {
        let dir = recorded_from(DOCTESTS, &[]);
        let root = dir.path();
        assert!(would_run(root, &[]).0.is_empty());
        edit(root, file, old, new);
        let (names, text) = would_run(root, &[]);
        assert!(names.contains(test), "{file}: {old:?} -> {new:?}: {text}");
    }
}

/// Constants of a module: read by a function of theirs, under another name after an
/// import, as an attribute of the module; and a test that reads none.
const CONSTANTS: &[(&str, &str)] = &[
    ("pkg/__init__.py", ""),
    (
        "pkg/consts.py",
        "LIMIT = 10\nNAMES = ('a', 'b')\n\ndef limit():\n    return LIMIT\n",
    ),
    (
        "pkg/use.py",
        "from pkg.consts import NAMES as ALL\n\ndef names():\n    return ALL\n",
    ),
    (
        "tests/test_limit.py",
        "from pkg.consts import limit\n\ndef test_limit():\n    assert limit() == 10\n",
    ),
    (
        "tests/test_names.py",
        "from pkg.use import names\n\ndef test_names():\n    assert names() == ('a', 'b')\n",
    ),
    (
        "tests/test_attr.py",
        "from pkg import consts\n\ndef test_attr():\n    assert consts.LIMIT == 10\n",
    ),
    (
        "tests/test_other.py",
        "import pkg.consts\n\ndef test_other():\n    assert pkg.consts.limit\n",
    ),
];

#[test]
fn a_changed_constant_selects_the_tests_that_read_it_unless_its_module_is_reached_otherwise() {
    let record = |extra: &[(&str, &str)]| recorded_from(&[CONSTANTS, extra].concat(), &[]);
    let dir = record(&[]);
    let root = dir.path();
    edit(root, "pkg/consts.py", "LIMIT = 10", "LIMIT = 11");
    let (names, text) = would_run(root, &[]);
    assert_eq!(names, set(&["test_limit", "test_attr"]), "{text}");
    assert!(
        text.contains("[pkg/consts.py: LIMIT changed (read by pkg/consts.py: limit)]"),
        "{text}"
    );
    edit(root, "pkg/consts.py", "LIMIT = 11", "LIMIT = 10");
    edit(root, "pkg/consts.py", "('a', 'b')", "('a', 'c')");
    assert_eq!(would_run(root, &[]).0, set(&["test_names"]));
    // Anything else at the top level: every test that imported it.
    edit(root, "pkg/consts.py", "('a', 'c')", "tuple('ab')");
    assert_eq!(would_run(root, &[]).0.len(), 4);
    // The module named in a string (an import by name) or handed over whole: every test.
    for (file, text) in [
        (
            "tests/test_patch.py",
            "from unittest import mock\n\ndef test_patch():\n\
             \x20   with mock.patch('pkg.consts.LIMIT', 5):\n        pass\n",
        ),
        (
            "tests/test_vars.py",
            "from pkg import consts\n\ndef test_vars():\n    assert vars(consts)\n",
        ),
    ] {
        let dir = record(&[(file, text)]);
        edit(dir.path(), "pkg/consts.py", "LIMIT = 10", "LIMIT = 11");
        let (names, text) = would_run(dir.path(), &[]);
        assert_eq!(names.len(), 5, "{file}: {text}");
        assert!(text.contains("pkg/consts.py: <module> changed"), "{text}");
    }
}

/// A function that runs at import, through one branch; a test runs its other branch.
const BRANCHES: &[(&str, &str)] = &[
    ("pkg/__init__.py", ""),
    (
        "pkg/table.py",
        "def setup(kind):\n    table = {}\n    if kind == 'fast':\n        table['a'] = 1\n\
         \x20   else:\n        table['b'] = 2\n    return table\n\n\
         TABLE = setup('fast')\n",
    ),
    (
        "tests/test_setup.py",
        "from pkg.table import setup\n\n\
         def test_slow():\n    assert setup('slow') == {'b': 2}\n",
    ),
    (
        "tests/test_table.py",
        "from pkg.table import TABLE\n\n\
         def test_table():\n    assert TABLE == {'a': 1}\n\n\
         def test_other():\n    pass\n",
    ),
];

/// Whether the test Python records the lines that ran before the tests (3.12+).
fn lines_recorded() -> bool {
    let out = std::process::Command::new(common::python())
        .args(["-c", "import sys; print(sys.version_info >= (3, 12))"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}

#[test]
fn a_change_to_what_did_not_run_at_import_reaches_only_the_tests_that_ran_it() {
    let dir = project(BRANCHES);
    let root = dir.path();
    assert!(mtest_run(root).output().unwrap().status.success());
    // The branch the import did not take: on 3.12+, only the test that ran it in its
    // own time; on 3.11 (no lines known), every test collected after the import.
    edit(root, "pkg/table.py", "table['b'] = 2", "table['b'] = 3");
    let (names, text) = would_run(root, &[]);
    let everything = set(&["test_slow", "test_table", "test_other"]);
    let expected = if lines_recorded() {
        set(&["test_slow"])
    } else {
        everything.clone()
    };
    assert_eq!(names, expected, "{text}");
    let out = mtest_run(root)
        .args(["--changed", "--verify"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "test_slow fails: {err}");
    let missed = err
        .lines()
        .find(|l| l.contains("that --changed would have left out"));
    assert!(
        missed.is_none_or(|l| l.contains(": 0 failing")),
        "no miss: {err}"
    );
    // The branch it took: every test after the import, on any Python.
    let dir = project(BRANCHES);
    let root = dir.path();
    assert!(mtest_run(root).output().unwrap().status.success());
    edit(root, "pkg/table.py", "table['a'] = 1", "table['a'] = 2");
    assert_eq!(would_run(root, &[]).0, everything);
    // A name bound otherwise in the branch that did not run: what ran may run otherwise.
    let dir = project(BRANCHES);
    let root = dir.path();
    assert!(mtest_run(root).output().unwrap().status.success());
    let global = "table['b'] = 2\n        global LATER\n        LATER = 1";
    edit(root, "pkg/table.py", "table['b'] = 2", global);
    assert_eq!(would_run(root, &[]).0, everything);
}

#[test]
fn a_data_file_a_new_test_and_a_deleted_module() {
    let dir = recorded();
    let root = dir.path();
    std::fs::write(root.join("tests/data/value.txt"), "8\n").unwrap();
    let (names, text) = would_run(root, &[]);
    assert_eq!(names, set(&["test_data"]), "{text}");
    assert!(text.contains("[tests/data/value.txt changed]"), "{text}");

    let dir = recorded();
    let root = dir.path();
    edit(
        root,
        "tests/test_square.py",
        "def test_sides():",
        "def test_new():\n    assert Square(1).s == 1\n\ndef test_sides():",
    );
    let (names, text) = would_run(root, &[]);
    assert!(names.contains("test_new"), "{text}");
    assert!(text.contains("test_new  [new test]"), "{text}");
    assert!(
        !names.contains("test_area") && !names.contains("test_double"),
        "a test module's own top level counts for its own tests: {text}"
    );

    let dir = recorded();
    std::fs::remove_file(dir.path().join("pkg/extra.py")).unwrap();
    let (names, text) = would_run(dir.path(), &[]);
    assert!(
        names.contains("test_double") || text.contains("collection error"),
        "{text}"
    );
    assert!(text.contains("pkg/extra.py deleted") || text.contains("collection error"));
}

#[test]
fn a_conftest_and_the_configuration_select_everything() {
    let dir = recorded();
    edit(
        dir.path(),
        "tests/conftest.py",
        "import pytest\n",
        "import pytest\nLIMIT = 3\n",
    );
    assert_eq!(would_run(dir.path(), &[]).0, set(ALL));
    let dir = recorded();
    edit(
        dir.path(),
        "pyproject.toml",
        "testpaths",
        "xfail_strict = true\ntestpaths",
    );
    let (names, text) = would_run(dir.path(), &[]);
    assert_eq!(names, set(ALL));
    assert!(text.contains("the environment changed"), "{text}");
}

#[test]
fn a_failing_test_runs_again_until_it_passes() {
    let dir = recorded();
    let root = dir.path();
    edit(root, "pkg/extra.py", "x * 2", "x * 3");
    let out = mtest_run(root).args(["--changed"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (names, text) = would_run(root, &[]);
    assert_eq!(names, set(&["test_double"]), "{text}");
    assert!(text.contains("[failed last run]"), "{text}");
}

#[test]
fn changed_since_adds_what_git_diff_names() {
    let dir = recorded();
    let root = dir.path();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .current_dir(root)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        root.join(".gitignore"),
        ".gates/\n.pytest_cache/\n__pycache__/\n",
    )
    .unwrap();
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "base"]);
    edit(root, "pkg/extra.py", "x * 2", "x + x");
    git(&["commit", "-qam", "same behaviour"]);
    let (names, _) = would_run(root, &[]);
    assert_eq!(names, set(&["test_double"]));
    // Run, so the records are of the new code: a checksum sees no change any more.
    assert!(mtest_run(root).arg("--changed").status().unwrap().success());
    assert!(would_run(root, &[]).0.is_empty());
    let (names, text) = would_run(root, &["--changed-since", "HEAD~1"]);
    assert_eq!(names, set(&["test_double"]), "{text}");
    assert!(
        text.contains("[pkg/extra.py: double changed since HEAD~1]"),
        "{text}"
    );
    let out = mtest_run(root)
        .args(["--changed", "--changed-since", "no-such-ref"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--changed-since no-such-ref: git"));
}

#[test]
fn verify_runs_everything_and_names_what_changed_would_have_missed() {
    // A test that reads its data through another process: no open() of it is seen.
    let mut files = PROJECT.to_vec();
    files.push((
        "tests/test_unseen.py",
        "import subprocess, sys\n\n\
         def test_unseen():\n\
         \x20   out = subprocess.run(['cat', 'tests/data/value.txt'], capture_output=True)\n\
         \x20   assert out.stdout.strip() == b'7'\n",
    ));
    let dir = project(&files);
    let root = dir.path();
    assert!(mtest_run(root).output().unwrap().status.success());
    std::fs::write(root.join("tests/data/value.txt"), "8\n").unwrap();
    let out = mtest_run(root)
        .args(["--changed", "--verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--verify: 1 failing test(s) that --changed would have left out"),
        "{err}"
    );
    assert!(err.contains("tests/test_unseen.py::test_unseen"), "{err}");
    assert_eq!(records(root).len(), 10, "everything ran");
}

/// `root` copied to a machine of its own under `parent`, with the records (a CI cache).
fn machine(root: &Path, parent: &Path, name: &str) -> std::path::PathBuf {
    let copy = parent.join(name);
    common::copy_dir(root, &copy);
    std::fs::create_dir_all(copy.join(".gates")).unwrap();
    for kept in ["impact.json", "durations.json"] {
        let from = root.join(".gates").join(kept);
        std::fs::copy(from, copy.join(".gates").join(kept)).unwrap();
    }
    copy
}

#[test]
fn every_shard_selects_the_same_tests_and_the_merge_keeps_their_records() {
    let dir = recorded();
    edit(dir.path(), "pkg/shapes.py", "return w * h", "return h * w");
    let machines = tempfile::tempdir().unwrap();
    let mut union = BTreeSet::new();
    let mut shards = Vec::new();
    for (n, k) in ["1/2", "2/2"].into_iter().enumerate() {
        let root = machine(dir.path(), machines.path(), &format!("shard{n}"));
        let out = mtest_run(&root)
            .args(["--changed", "--shard", k])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ran = ran(&root);
        assert!(ran.iter().all(|t| !union.contains(t)), "{ran:?} ran twice");
        union.extend(ran);
        shards.push(root);
    }
    let changed = set(&["test_area", "test_area_unit", "test_square_area"]);
    assert_eq!(union, changed);
    // Merged, the records are the shards': nothing is left to run for that change, and
    // a next change selects from them.
    let merged = machine(dir.path(), machines.path(), "merged");
    let out = common::mtest_in(&merged)
        .arg("merge")
        .args(&shards)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (names, text) = would_run(&merged, &[]);
    assert!(names.is_empty(), "{text}");
    edit(
        &merged,
        "pkg/shapes.py",
        "return 2 * (w + h)",
        "return 2 * (h + w)",
    );
    assert_eq!(
        would_run(&merged, &[]).0,
        set(&["test_perimeter", "test_big"])
    );
}

#[test]
fn a_run_killed_half_way_leaves_the_records_of_the_last_whole_run() {
    let mut files = PROJECT.to_vec();
    files.push((
        "tests/test_slow.py",
        "import time\n\ndef test_slow():\n    time.sleep(60)\n",
    ));
    let dir = project(&files);
    let root = dir.path();
    let full = mtest_run(root).args(["--timeout", "2"]).output().unwrap();
    assert_eq!(full.status.code(), Some(1), "test_slow times out");
    let before = std::fs::read(root.join(".gates/impact.json")).unwrap();
    edit(root, "pkg/shapes.py", "return w * h", "return h * w");
    let mut child = mtest_run(root).args(["--timeout", "120"]).spawn().unwrap();
    assert!(common::wait_until(
        std::time::Duration::from_secs(60),
        &|| { records(root).len() >= 9 }
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        std::fs::read(root.join(".gates/impact.json")).unwrap(),
        before
    );
    let (names, text) = would_run(root, &[]);
    assert!(
        set(&[
            "test_area",
            "test_area_unit",
            "test_square_area",
            "test_slow"
        ])
        .is_subset(&names),
        "{text}"
    );
}
