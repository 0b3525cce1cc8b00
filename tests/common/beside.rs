//! mtest beside plain pytest: the same project run by both, each test's outcome compared.
//!
//! Plain pytest's outcomes come from a small reporting plugin (`_beside.py`, written into
//! the project root and loaded with `-p`) that applies pytest's own status rules, the same
//! ones mtest's records follow: a setup or teardown failure is an error unless the call
//! failed, `wasxfail` makes a skip xfailed and a pass xpassed, a module skipped or broken at
//! collection is one skipped or error outcome under the module's id.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::{mtest_in, python, records};

pub type Outcomes = BTreeMap<String, String>;

/// Shared with `bench/realsuites.py`.
const REFERENCE_PLUGIN: &str = include_str!("../faithful/outcomes_plugin.py");

/// Plain `python -m pytest ARGS` in `root`: each test's outcome, and pytest's exit code.
/// With `--continue-on-collection-errors`: a module that fails to import is an error and
/// the rest runs, under mtest as documented (plain pytest would run nothing).
pub fn plain_pytest(root: &Path, args: &[&str], env: &[(&str, &str)]) -> (Outcomes, Option<i32>) {
    std::fs::write(root.join("_beside.py"), REFERENCE_PLUGIN).expect("write _beside.py");
    let out_file = root.join(".beside-outcomes.json");
    let _ = std::fs::remove_file(&out_file);
    let mut cmd = Command::new(python());
    cmd.current_dir(root)
        .args([
            "-m",
            "pytest",
            "-p",
            "_beside",
            "--continue-on-collection-errors",
        ])
        .args(args)
        .env("OUTCOMES_OUT", &out_file);
    clean_env(&mut cmd, env);
    let out = cmd.output().expect("run pytest");
    let text = std::fs::read_to_string(&out_file).unwrap_or_else(|e| {
        panic!(
            "plain pytest wrote no outcomes ({e}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let outcomes: Outcomes = serde_json::from_str(&text).expect("outcomes JSON");
    (outcomes, out.status.code())
}

/// `mtest ARGS -- PYTEST_ARGS` in `root`: each test's last outcome (a timeout's `hung` is
/// pytest's `failed`), the records, and mtest's exit code.
pub fn mtest(
    root: &Path,
    args: &[&str],
    pytest_args: &[&str],
    env: &[(&str, &str)],
) -> (Outcomes, Vec<serde_json::Value>, Option<i32>, String) {
    let _ = std::fs::remove_dir_all(root.join(".gates"));
    let mut cmd = mtest_in(root);
    cmd.args(args);
    if !pytest_args.is_empty() {
        cmd.arg("--").args(pytest_args);
    }
    clean_env(&mut cmd, env);
    let out = cmd.output().expect("run mtest");
    let records = records(root);
    let mut outcomes = Outcomes::new();
    for r in &records {
        let outcome = match r["outcome"].as_str().unwrap_or("?") {
            "hung" => "failed",
            other => other,
        };
        outcomes.insert(
            r["test_id"].as_str().unwrap_or("?").to_string(),
            outcome.to_string(),
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (outcomes, records, out.status.code(), stderr)
}

/// Both runs start from the same environment: the test harness's own variables
/// (`MTEST_TEST_*`, mtest's component cache aside) and `PYTHONFAULTHANDLER` removed, `env`
/// added; and SIGINT as a terminal gives it (a harness started in the background, or
/// under nohup, passes it on ignored, and Python then installs no handler of its own).
fn clean_env(cmd: &mut Command, env: &[(&str, &str)]) {
    #[cfg(unix)]
    // SAFETY: between fork and exec the child only calls signal(2), which is
    // async-signal-safe, and allocates nothing.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            use nix::sys::signal::{signal, SigHandler, Signal};
            signal(Signal::SIGINT, SigHandler::SigDfl)
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if (name.starts_with("MTEST_") && name != "MTEST_CACHE_DIR")
            || name == "PYTHONFAULTHANDLER"
            || name.starts_with("PYTEST_")
        {
            cmd.env_remove(&key);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
}

/// The tests whose outcomes differ: (id, plain pytest's, mtest's).
pub fn differences(plain: &Outcomes, mtest: &Outcomes) -> Vec<(String, String, String)> {
    let ids: std::collections::BTreeSet<&String> = plain.keys().chain(mtest.keys()).collect();
    ids.into_iter()
        .filter_map(|id| {
            let a = plain.get(id).map_or("(not run)", String::as_str);
            let b = mtest.get(id).map_or("(not run)", String::as_str);
            (a != b).then(|| (id.clone(), a.to_string(), b.to_string()))
        })
        .collect()
}
