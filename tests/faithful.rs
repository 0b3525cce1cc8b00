//! mtest beside plain pytest: the same project, the same options, the same outcome for
//! every test, in both isolation modes, at `-j 1` and `-j 2`, in a worker's first chunk and
//! in a later one.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::beside::{self, differences};
use common::project;

const BEHAVIOUR: &str = include_str!("faithful/behaviour.py");
/// Its tests.
const BEHAVIOURS: usize = 35;
/// Its tests that do not pass under plain pytest, and how they end.
const EXPECTED: &[(&str, &str)] = &[
    ("test_timeout_by_marker", "failed"),
    ("test_timeout_by_ini", "failed"),
    ("test_gc_leak_check_fails_as_under_pytest", "failed"),
    ("test_output_then_a_failure", "failed"),
    ("test_deprecation_is_an_error_by_the_ini", "failed"),
    ("test_xfail", "xfailed"),
    ("test_xpass", "xpassed"),
    ("test_skip", "skipped"),
    ("test_setup_error", "error"),
    ("test_teardown_error", "error"),
    ("test_unknown_fixture", "error"),
];

/// Quick tests between the two copies of the behaviour module, so that at `-j 2` the
/// second copy runs in a worker's later chunk.
fn filler() -> String {
    "import pytest\n\n@pytest.mark.parametrize('i', range(300))\ndef test_filler(i):\n    pass\n"
        .into()
}

fn behaviour_project() -> tempfile::TempDir {
    project(&[
        (
            "pyproject.toml",
            "[tool.pytest.ini_options]\ntimeout = 2\nfilterwarnings = [\"error::DeprecationWarning\"]\n"
                .to_string(),
        ),
        (
            "conftest.py",
            include_str!("faithful/conftest.py").to_string(),
        ),
        ("tests/test_0_behaviour.py", BEHAVIOUR.to_string()),
        ("tests/test_m_filler.py", filler()),
        ("tests/test_z_behaviour.py", BEHAVIOUR.to_string()),
        (
            "tests/test_0_skipped_module.py",
            include_str!("faithful/skipped_module.py").to_string(),
        ),
        ("extra/README", "a directory on PYTHONPATH\n".to_string()),
    ])
}

/// test id -> the pid of the process that ran it.
fn pids(log: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(id, pid)| (id.to_string(), pid.to_string()))
        .collect()
}

#[test]
fn every_observable_behaviour_is_plain_pytests_in_every_chunk_and_mode() {
    let dir = behaviour_project();
    let root = dir.path();
    let extra = root.join("extra").display().to_string();
    let pid_log = root.join(".pids");
    let pid_log_s = pid_log.display().to_string();
    let shared = tempfile::tempdir().unwrap();
    let shared_s = shared.path().display().to_string();
    let env = [
        ("BESIDE_SHARED", shared_s.as_str()),
        ("PYTHONPATH", extra.as_str()),
        ("BESIDE_PYTHONPATH", extra.as_str()),
        ("BESIDE_PIDS", pid_log_s.as_str()),
    ];
    let (plain, _) = beside::plain_pytest(root, &[], &env);
    // The behaviours, the filler, and one module skipped at import.
    assert_eq!(
        plain.len(),
        2 * BEHAVIOURS + 300 + 1,
        "plain pytest's outcomes"
    );
    assert_eq!(plain["tests/test_0_skipped_module.py"], "skipped");
    // Plain pytest itself: every behaviour test passes but those meant to fail.
    for (id, outcome) in plain
        .iter()
        .filter(|(id, _)| id.contains("_behaviour.py::"))
    {
        let name = id.rsplit("::").next().unwrap_or(id);
        let expected = EXPECTED
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("passed", |(_, o)| *o);
        assert_eq!(outcome, expected, "plain pytest: {id}");
    }
    let mut report = Vec::new();
    for isolation in ["fork", "process"] {
        for jobs in ["1", "2"] {
            let _ = std::fs::remove_file(&pid_log);
            let (ran, records, _, stderr) =
                beside::mtest(root, &["--isolation", isolation, "-j", jobs], &[], &env);
            for (id, a, b) in differences(&plain, &ran) {
                report.push(format!(
                    "{isolation} -j {jobs}: {id}: pytest {a}, mtest {b}"
                ));
            }
            if ran.is_empty() {
                report.push(format!("{isolation} -j {jobs}: no records:\n{stderr}"));
            }
            // An error says pytest's reason, not only where.
            for r in records.iter().filter(|r| {
                r["test_id"]
                    .as_str()
                    .is_some_and(|id| id.ends_with("::test_unknown_fixture"))
            }) {
                let message = r["message"].as_str().unwrap_or("");
                if !message.contains("fixture 'no_such_fixture_here' not found") {
                    report.push(format!(
                        "{isolation} -j {jobs}: {}: message {message:?}",
                        r["test_id"]
                    ));
                }
            }
            if isolation == "fork" && jobs == "2" {
                assert_later_chunks(&records, &pids(&pid_log));
            }
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// The second copy of the behaviour module ran in later chunks of workers that had run
/// an earlier chunk: some chunk before its own in the same process.
fn assert_later_chunks(records: &[serde_json::Value], pids: &BTreeMap<String, String>) {
    let chunk_of = |id: &str| {
        records
            .iter()
            .find(|r| r["test_id"] == id)
            .and_then(|r| r["chunk"].as_u64())
    };
    let first_chunk_of_pid = |pid: &str| {
        pids.iter()
            .filter(|(_, p)| p.as_str() == pid)
            .filter_map(|(id, _)| chunk_of(id))
            .min()
    };
    let later: Vec<&String> = pids
        .iter()
        .filter(|(id, _)| id.starts_with("tests/test_z_behaviour.py::"))
        .filter(|(id, pid)| chunk_of(id) > first_chunk_of_pid(pid))
        .map(|(id, _)| id)
        .collect();
    assert!(
        later.len() > 10,
        "the second copy did not run in workers' later chunks: {later:?}"
    );
}

fn flags_project() -> tempfile::TempDir {
    project(&[
        (
            "pyproject.toml",
            "[tool.pytest.ini_options]\nmarkers = [\"slow: a slow test\"]\ntestpaths = [\"tests\", \"pkg\"]\n",
        ),
        (
            "conftest.py",
            "import pytest\n\n\n@pytest.fixture\ndef from_conftest():\n    return 42\n",
        ),
        ("tests/test_f.py", include_str!("faithful/flags_tests.py")),
        ("tests/test_g.py", include_str!("faithful/flags_more.py")),
        ("pkg/__init__.py", ""),
        ("pkg/mod.py", include_str!("faithful/flags_pkg.py")),
    ])
}

/// How mtest must answer a pytest option.
enum Expect {
    /// The same outcome for every test as plain pytest, at this `-j`.
    Same(&'static str),
    /// Refused in one line naming it, nothing run.
    Refused(&'static str),
}

/// pytest's everyday options after `--`: mtest gives each test plain pytest's outcome, or
/// refuses the option in one line (never ignores it).
#[test]
fn pytest_options_give_plain_pytests_outcomes_or_are_refused() {
    use Expect::{Refused, Same};
    let dir = flags_project();
    let root = dir.path();
    let basetemp = tempfile::tempdir().unwrap();
    let basetemp = basetemp.path().join("bt").display().to_string();
    let root_s = root.display().to_string();
    let sets: Vec<(Vec<&str>, Expect)> = vec![
        (vec![], Same("2")),
        (vec![], Same("1")),
        (vec!["-v"], Same("2")),
        (vec!["-vv"], Same("2")),
        (vec!["-q"], Same("2")),
        (vec!["-rA"], Same("2")),
        (vec!["-rfE"], Same("2")),
        (vec!["--tb=short"], Same("2")),
        (vec!["--tb=line"], Same("2")),
        (vec!["--tb=no"], Same("2")),
        (vec!["--tb=native"], Same("2")),
        (vec!["--tb=long"], Same("2")),
        (vec!["-l"], Same("2")),
        (vec!["--full-trace"], Same("2")),
        (vec!["-W", "error"], Same("2")),
        (vec!["-W", "error::UserWarning"], Same("2")),
        (vec!["-p", "no:warnings"], Same("2")),
        (vec!["--strict-markers"], Same("2")),
        (vec!["--strict-config"], Same("2")),
        (vec!["--runxfail"], Same("2")),
        (vec!["-o", "xfail_strict=true"], Same("2")),
        (vec!["-k", "ok or param"], Same("2")),
        (vec!["-k", "not fails"], Same("2")),
        (vec!["-m", "slow"], Same("2")),
        (vec!["-m", "not slow"], Same("2")),
        (vec!["--deselect", "tests/test_f.py::test_ok"], Same("2")),
        (vec!["--ignore", "tests/test_g.py"], Same("2")),
        (vec!["--ignore-glob", "*_g.py"], Same("2")),
        (vec!["--doctest-modules"], Same("2")),
        (vec!["--import-mode=importlib"], Same("2")),
        (vec!["--import-mode=append"], Same("2")),
        (vec!["--import-mode=prepend"], Same("2")),
        (vec!["--durations=3"], Same("2")),
        (vec!["--durations=0", "--durations-min=0"], Same("2")),
        (vec!["--log-cli-level=INFO"], Same("2")),
        (vec!["--log-level=DEBUG"], Same("2")),
        (vec!["--show-capture=no"], Same("2")),
        (vec!["--basetemp", basetemp.as_str()], Same("2")),
        (vec!["--rootdir", root_s.as_str()], Same("2")),
        (vec!["--noconftest"], Same("2")),
        (vec!["--setup-show"], Same("2")),
        (vec!["--color=yes"], Same("2")),
        (vec!["--color=no"], Same("2")),
        (vec!["-s"], Same("2")),
        (vec!["--capture=no"], Same("1")),
        (vec!["--capture=sys"], Same("2")),
        (vec!["--capture=fd"], Same("2")),
        (vec!["--capture=tee-sys"], Same("2")),
        (vec!["-p", "no:cacheprovider"], Same("2")),
        (vec!["--sw"], Refused("--sw")),
        (vec!["--stepwise-skip"], Refused("--sw-skip")),
        (vec!["--pdb"], Refused("--pdb")),
        (vec!["--trace"], Refused("--trace")),
        (vec!["--co"], Refused("--co")),
        (vec!["--collect-only"], Refused("--collect-only")),
        (vec!["--fixtures"], Refused("--fixtures")),
        (vec!["--setup-plan"], Refused("--setup-plan")),
        (vec!["--cache-show"], Refused("--cache-show")),
    ];
    let mut report = Vec::new();
    for (args, expect) in &sets {
        let shown = if args.is_empty() {
            "(none)".to_string()
        } else {
            args.join(" ")
        };
        let _ = std::fs::remove_dir_all(root.join(".pytest_cache"));
        match expect {
            Same(jobs) => {
                let (plain, _) = beside::plain_pytest(root, args, &[]);
                let (ran, _, _, stderr) = beside::mtest(root, &["-j", jobs], args, &[]);
                if ran.is_empty() {
                    report.push(format!(
                        "{shown} (-j {jobs}): mtest recorded nothing:\n{stderr}"
                    ));
                }
                for (id, a, b) in differences(&plain, &ran) {
                    report.push(format!("{shown} (-j {jobs}): {id}: pytest {a}, mtest {b}"));
                }
            }
            Refused(name) => {
                let (ran, _, code, stderr) = beside::mtest(root, &[], args, &[]);
                let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(name)).collect();
                if code == Some(0) || code == Some(1) || !ran.is_empty() || lines.len() != 1 {
                    report.push(format!(
                        "{shown}: not refused in one line (exit {code:?}, {} records):\n{stderr}",
                        ran.len()
                    ));
                }
            }
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// `pytest --lf` after mtest runs what failed under mtest, as after plain pytest; and so
/// does `mtest -- --lf`.
#[test]
fn pytests_last_failed_after_mtest_is_what_failed() {
    let dir = flags_project();
    let root = dir.path();
    let _ = std::fs::remove_dir_all(root.join(".pytest_cache"));
    beside::plain_pytest(root, &[], &[]);
    let (after_pytest, _) = beside::plain_pytest(root, &["--lf"], &[]);
    assert!(
        after_pytest.len() >= 3 && after_pytest.len() < 10,
        "{after_pytest:?}"
    );
    let _ = std::fs::remove_dir_all(root.join(".pytest_cache"));
    let (_, _, code, stderr) = beside::mtest(root, &["-j", "2"], &[], &[]);
    assert_eq!(code, Some(1), "{stderr}");
    let (after_mtest, _) = beside::plain_pytest(root, &["--lf"], &[]);
    assert_eq!(after_mtest, after_pytest);
    let _ = std::fs::remove_dir_all(root.join(".pytest_cache"));
    beside::mtest(root, &["-j", "2"], &[], &[]);
    let (ran, _, _, stderr) = beside::mtest(root, &["-j", "2"], &["--lf"], &[]);
    assert_eq!(
        differences(&after_pytest, &ran),
        Vec::<(String, String, String)>::new(),
        "{stderr}"
    );
}

/// `-x` / `--max-fail N` (mtest's, or pytest's own after `--`) count failing tests, each
/// once, over the whole run: once the limit is reached every worker stops after its
/// running test, so at `-j 1` exactly N failing tests run, in both modes; the rest is not
/// run, not recorded, and the summary says how many.
#[test]
fn max_fail_stops_at_exactly_n_failing_tests_at_j1() {
    let files: Vec<(String, String)> = (1..=6)
        .map(|i| {
            (
                format!("tests/test_{i}.py"),
                format!("def test_ok_{i}():\n    pass\n\ndef test_fail_{i}():\n    assert False\n"),
            )
        })
        .collect();
    let dir = project(&files);
    let root = dir.path();
    for isolation in ["fork", "process"] {
        for (args, pytest_args, n) in [
            (vec!["-x"], vec![], 1),
            (vec!["--max-fail", "2"], vec![], 2),
            (vec!["--max-fail", "4"], vec![], 4),
            (vec![], vec!["-x"], 1),
            (vec![], vec!["--maxfail=3"], 3),
        ] {
            let mut all = vec!["--isolation", isolation, "-j", "1"];
            all.extend(&args);
            let (ran, _, code, stderr) = beside::mtest(root, &all, &pytest_args, &[]);
            let failed = ran.values().filter(|o| *o == "failed").count();
            let shown = format!("{isolation} {args:?} -- {pytest_args:?}");
            assert_eq!(failed, n, "{shown}: {ran:?}\n{stderr}");
            assert!(
                ran.values().all(|o| o == "failed" || o == "passed"),
                "{shown}: a test not run was recorded: {ran:?}"
            );
            assert_eq!(code, Some(1), "{shown}: {stderr}");
            let not_run = 12 - ran.len();
            assert!(
                stderr.contains(&format!("{not_run} selected test(s) did not run")),
                "{shown}: {stderr}"
            );
        }
    }
}

/// Tests that must share a process carry `@pytest.mark.xdist_group("name")`: as under
/// pytest-xdist's `--dist loadgroup`, a group's tests run on one worker, one after
/// another, in the order they were collected (across files too), in both modes; and
/// `--explain-selection` says how groups are placed.
#[test]
fn an_xdist_group_runs_on_one_worker_in_order() {
    let grouped = |n: std::ops::Range<u32>| {
        n.map(|i| {
            format!("@pytest.mark.xdist_group('shared')\ndef test_g{i}():\n    log('g{i}')\n\n")
        })
        .collect::<String>()
    };
    let header = "import os\nimport pytest\n\n\ndef log(name):\n    with open(os.environ['GROUP_LOG'], 'a') as f:\n        f.write('%s %d\\n' % (name, os.getpid()))\n\n\n";
    let a = format!(
        "{header}{}@pytest.mark.parametrize('i', range(150))\ndef test_filler_a(i):\n    pass\n\n{}",
        grouped(0..3),
        grouped(3..5)
    );
    let b = format!(
        "{header}@pytest.mark.parametrize('i', range(150))\ndef test_filler_b(i):\n    pass\n\n{}",
        grouped(5..8)
    );
    let dir = project(&[("tests/test_a.py", a), ("tests/test_b.py", b)]);
    let root = dir.path();
    let log = root.join("group.log");
    let log_s = log.display().to_string();
    for isolation in ["fork", "process"] {
        let _ = std::fs::remove_file(&log);
        let (ran, _, code, stderr) = beside::mtest(
            root,
            &["--isolation", isolation, "-j", "2"],
            &[],
            &[("GROUP_LOG", log_s.as_str())],
        );
        assert_eq!(code, Some(0), "{isolation}: {stderr}");
        assert_eq!(ran.len(), 308, "{isolation}");
        let lines = std::fs::read_to_string(&log).unwrap();
        let (names, pids): (Vec<&str>, std::collections::BTreeSet<&str>) =
            lines.lines().filter_map(|l| l.split_once(' ')).fold(
                (Vec::new(), Default::default()),
                |(mut n, mut p), (name, pid)| {
                    n.push(name);
                    p.insert(pid);
                    (n, p)
                },
            );
        assert_eq!(
            names,
            ["g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7"],
            "{isolation}: in collection order"
        );
        assert_eq!(pids.len(), 1, "{isolation}: on one worker: {lines}");
    }
    let out = common::mtest_in(root)
        .arg("--explain-selection")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("xdist_group shared: its 8 test(s) run on one worker"),
        "{stdout}"
    );
}

/// `mtest ARGS -- PYTEST_ARGS` on a pseudo-terminal, typing each answer at its prompt:
/// what it wrote, and its exit code.
fn on_a_terminal(
    root: &Path,
    answers: &[(&str, &str)],
    args: &[&str],
    pytest_args: &[&str],
) -> (String, i32) {
    let script = common::repo_root().join("tests/faithful/on_a_terminal.py");
    let answers = serde_json::to_string(answers).expect("answers as JSON");
    let mut mtest = common::mtest_in(root);
    mtest.args(args).arg("--").args(pytest_args);
    let mut cmd = std::process::Command::new(common::python());
    cmd.current_dir(root).arg(script).arg(answers).arg("--");
    cmd.arg(mtest.get_program()).args(mtest.get_args());
    for (key, value) in mtest.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    let out = cmd.output().expect("run mtest on a terminal");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "on_a_terminal.py failed:\n{text}"
    );
    let code = text
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("exit: "))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no exit line:\n{text}"));
    (text, code)
}

/// The attempts of `id` in the last run: (outcome, chunk) each.
fn attempts(root: &Path, id: &str) -> Vec<(String, u64)> {
    common::records(root)
        .iter()
        .filter(|r| r["test_id"] == id)
        .map(|r| {
            let outcome = r["outcome"].as_str().unwrap_or("?").to_string();
            (outcome, r["chunk"].as_u64().unwrap_or(0))
        })
        .collect()
}

/// `mtest -- --pdb` on a terminal stops at the first failing test and runs it again alone
/// in the foreground under pytest's debugger (the user's commands reach it, its locals are
/// there), records that attempt too, and ends resumable; `--resume` goes on to the next
/// failure. `--trace` runs the selected test under the debugger from its start. In both
/// modes. Off a terminal both are refused (the flag matrix).
#[test]
fn pytests_debugger_runs_the_test_on_the_terminal() {
    let dir = project(&[
        (
            "tests/test_a.py",
            "def test_one():\n    pass\n\ndef test_two():\n    x = 41\n    assert x == 0\n",
        ),
        (
            "tests/test_b.py",
            "def test_three():\n    pass\n\ndef test_four():\n    pass\n",
        ),
    ]);
    let root = dir.path();
    let state = || std::fs::read_to_string(root.join(".gates/state.json")).unwrap_or_default();
    let two = "tests/test_a.py::test_two";
    for isolation in ["fork", "process"] {
        let _ = std::fs::remove_dir_all(root.join(".gates"));
        let (text, code) = on_a_terminal(
            root,
            &[("(Pdb)", "p x + 1"), ("(Pdb)", "c")],
            &["--isolation", isolation, "-j", "1", "tests/test_a.py"],
            &["--pdb"],
        );
        assert!(text.contains("p x + 1\n42\n"), "{isolation}: {text}");
        assert_eq!(code, 1, "{isolation}: {text}");
        let tried = attempts(root, two);
        assert_eq!(tried.len(), 2, "{isolation}: {tried:?}\n{text}");
        assert!(tried.iter().all(|(o, _)| o == "failed"), "{tried:?}");
        assert_ne!(
            tried[0].1, tried[1].1,
            "the debugged attempt has a chunk of its own"
        );
        assert!(state().contains(r#""status":"interrupted""#), "{}", state());
        assert!(
            text.contains(&format!("stopped at {two} for pytest's debugger")),
            "{text}"
        );

        let (text, code) = on_a_terminal(root, &[], &["--resume"], &[]);
        assert!(
            !text.contains("(Pdb)"),
            "{isolation}: nothing else fails: {text}"
        );
        assert_eq!(code, 1, "{isolation}: the earlier failure stands: {text}");
        let all = common::outcomes(root);
        assert_eq!(all.len(), 2, "{isolation}: {all:?}");

        let (text, code) = on_a_terminal(
            root,
            &[("(Pdb)", "p 6 * 7"), ("(Pdb)", "c")],
            &["--isolation", isolation, "tests/test_b.py::test_four"],
            &["--trace"],
        );
        assert!(text.contains("p 6 * 7\n42\n"), "{isolation}: {text}");
        assert_eq!(code, 0, "{isolation}: {text}");
        assert_eq!(
            attempts(root, "tests/test_b.py::test_four"),
            vec![("passed".to_string(), 1)],
            "{isolation}: {text}"
        );
    }
}

/// A PostgreSQL server of its own, on a Unix socket in a temp dir, stopped when dropped.
struct Postgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    as_root: bool,
}

impl Postgres {
    /// Starts one, or None when PostgreSQL is not installed.
    fn start() -> Option<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("pg_ctl").is_file())?;
        let dir = tempfile::tempdir().expect("temp dir");
        // initdb refuses root: as root, the server runs as the `postgres` user.
        #[cfg(unix)]
        let as_root = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
        };
        #[cfg(not(unix))]
        let as_root = false;
        if as_root {
            let status = std::process::Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status();
            assert!(status.is_ok_and(|s| s.success()), "chown postgres");
        }
        let pg = Postgres { dir, bin, as_root };
        let data = pg.dir.path().join("data");
        pg.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "--auth=trust",
                "-U",
                "postgres",
            ],
        );
        let options = format!(
            "-k {} -c listen_addresses= -p 5432 -c fsync=off",
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("log");
        let (data, log) = (data.to_string_lossy(), log.to_string_lossy());
        pg.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
        Some(pg)
    }

    /// A PostgreSQL tool, as the user the server runs as.
    fn tool(&self, name: &str) -> std::process::Command {
        let tool = self.bin.join(name);
        if !self.as_root {
            return std::process::Command::new(tool);
        }
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .tool(tool)
            .args(args)
            .output()
            .expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Where clients connect (`PGHOST`): the socket's directory.
    fn host(&self) -> String {
        self.dir.path().display().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// Suites made parallel-safe for pytest-xdist: pytest-django names each worker's test
/// database by PYTEST_XDIST_WORKER (`test_app_gw0`, `test_app_gw1`), on a real PostgreSQL.
/// Under `mtest -j 2`, in both modes, every test passes as under plain pytest, each
/// worker used its own database, and two workers ran tests (a shared database would make
/// their creation collide and the transactional tests' flushes empty each other's rows).
#[test]
fn pytest_django_gives_each_mtest_worker_its_own_postgresql_database() {
    let Some(python) = std::env::var_os("MTEST_TEST_DJANGO_PYTHON")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let venv = common::repo_root().join(".venv-django/bin/python");
            venv.is_file().then_some(venv)
        })
    else {
        return common::missing("no venv with pytest-django (./dev setup makes .venv-django)");
    };
    let Some(pg) = Postgres::start() else {
        return common::missing("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)");
    };
    let files: Vec<(&str, &str)> = vec![
        ("pytest.ini", include_str!("faithful/django/pytest.ini")),
        ("proj/__init__.py", ""),
        (
            "proj/settings.py",
            include_str!("faithful/django/proj/settings.py"),
        ),
        ("app/__init__.py", ""),
        (
            "app/models.py",
            include_str!("faithful/django/app/models.py"),
        ),
        (
            "tests/test_items.py",
            include_str!("faithful/django/tests/test_items.py"),
        ),
    ];
    let dir = project(&files);
    let root = dir.path();
    let host = pg.host();
    let names = root.join("dbnames.txt");
    let plain = std::process::Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(root)
        .env("PGHOST", &host)
        .env_remove("PYTEST_XDIST_WORKER")
        .output()
        .expect("plain pytest");
    let plain_out = String::from_utf8_lossy(&plain.stdout);
    assert!(
        plain_out.contains("13 passed"),
        "plain pytest:\n{plain_out}"
    );
    let _ = std::fs::remove_file(&names);
    for isolation in ["fork", "process"] {
        let _ = std::fs::remove_dir_all(root.join(".gates"));
        let out = common::mtest_with(root, &python)
            .args(["--isolation", isolation, "-j", "2"])
            .env("PGHOST", &host)
            .output()
            .expect("run mtest");
        let ran = common::outcomes(root);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{isolation}: {ran:?}\n{stderr}");
        assert!(ran.values().all(|o| o == "passed"), "{isolation}: {ran:?}");
        assert_eq!(ran.len(), 13, "{isolation}: {ran:?}");
        let used = std::fs::read_to_string(&names).unwrap_or_default();
        let distinct: std::collections::BTreeSet<&str> = used.lines().collect();
        assert_eq!(used.lines().count(), 12, "{isolation}: {used}");
        assert_eq!(
            distinct,
            ["test_app_gw0", "test_app_gw1"].into_iter().collect(),
            "{isolation}: the workers' databases"
        );
        let _ = std::fs::remove_file(&names);
    }
}
