//! `--shard K/N` and `mtest merge`: a run spread over N machines, simulated with N copies
//! of a project, then merged in another copy.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{copy_dir, mtest_in, records};
use serde_json::Value;

/// A suite with skewed durations: 3 files of slow tests among 24 files of quick ones, a
/// failure, a skip, an xfail and a module that does not import.
fn suite() -> Vec<(String, String)> {
    let mut files = vec![(
        "pyproject.toml".to_string(),
        "[tool.pytest.ini_options]\n".to_string(),
    )];
    for f in 0..3 {
        let mut text = String::from("import time\n");
        for t in 0..4 {
            text.push_str(&format!("def test_slow_{t}():\n    time.sleep(0.3)\n"));
        }
        files.push((format!("tests/test_slow_{f}.py"), text));
    }
    for f in 0..24 {
        let mut text = String::from("import time, pytest\n");
        for t in 0..10 {
            text.push_str(&format!("def test_{t}():\n    time.sleep(0.01)\n"));
        }
        if f == 5 {
            text.push_str("def test_fails():\n    assert 1 == 2\n");
            text.push_str("@pytest.mark.skip(reason='no')\ndef test_skipped():\n    pass\n");
            text.push_str("@pytest.mark.xfail\ndef test_xfail():\n    assert False\n");
        }
        files.push((format!("tests/test_quick_{f}.py"), text));
    }
    files.push((
        "tests/test_broken.py".to_string(),
        "import not_a_module_anywhere\n".to_string(),
    ));
    files
}

/// A fresh copy of the suite under `parent/name`.
fn copy(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    for (path, text) in suite() {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    mtest_in(dir).args(["-j", "2"]).args(args).output().unwrap()
}

/// Runs shard `k` of `n` in `dir` and checks it ran as a shard.
fn shard(dir: &Path, k: u32, n: u32) {
    let out = run(dir, &["--shard", &format!("{k}/{n}")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(", shard {k}/{n})")),
        "shard {k}/{n}:\n{stderr}"
    );
}

/// test id → outcome of its last record, and how many records each test has.
fn last_outcomes(root: &Path) -> (BTreeMap<String, String>, BTreeMap<String, usize>) {
    let mut last = BTreeMap::new();
    let mut count = BTreeMap::new();
    for r in records(root) {
        let id = r["test_id"].as_str().unwrap().to_string();
        *count.entry(id.clone()).or_insert(0) += 1;
        last.insert(id, r["outcome"].as_str().unwrap().to_string());
    }
    (last, count)
}

fn merge(dir: &Path, shards: &[&Path], extra: &[&str]) -> std::process::Output {
    mtest_in(dir)
        .arg("merge")
        .args(shards)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn four_shards_merged_are_the_single_run_and_balanced_once_warm() {
    let tmp = tempfile::tempdir().unwrap();
    let single = copy(tmp.path(), "single");
    let out = run(&single, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (want, _) = last_outcomes(&single);
    assert_eq!(want.len(), 3 * 4 + 24 * 10 + 3 + 1, "{want:?}");

    // Round 1: cold (no history), then merged.
    let dirs: Vec<PathBuf> = (1..=4)
        .map(|k| copy(tmp.path(), &format!("shard{k}")))
        .collect();
    for (i, dir) in dirs.iter().enumerate() {
        shard(dir, i as u32 + 1, 4);
    }
    let merged = copy(tmp.path(), "merged");
    let gates: Vec<PathBuf> = dirs.iter().map(|d| d.join(".gates")).collect();
    let gate_refs: Vec<&Path> = gates.iter().map(PathBuf::as_path).collect();
    let out = merge(&merged, &gate_refs, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("from 4 of 4 shard(s)"), "{stderr}");
    let (got, count) = last_outcomes(&merged);
    assert_eq!(got, want, "the merged run differs from the single run");
    assert!(
        count.values().all(|&c| c == 1),
        "a test recorded twice: {count:?}"
    );
    let shards_seen: std::collections::BTreeSet<String> = records(&merged)
        .iter()
        .map(|r| {
            r["shard"]
                .as_str()
                .expect("every record says its shard")
                .to_string()
        })
        .collect();
    assert_eq!(shards_seen.len(), 4, "{shards_seen:?}");
    // The collection error is recorded once, by one shard.
    assert_eq!(got["tests/test_broken.py"], "error");

    // One junit.xml: a suite per shard, every test once, the totals of the run.
    let junit = std::fs::read_to_string(merged.join(".gates/last-run/junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), want.len(), "{junit}");
    assert_eq!(junit.matches("<testsuite ").count(), 4);
    for k in 1..=4 {
        assert!(
            junit.contains(&format!("name=\"mtest shard {k}/4\"")),
            "{junit}"
        );
    }
    // A failure's text came along with its record (details.jsonl), as the shard had it.
    assert!(junit.contains("assert 1 == 2"), "{junit}");
    assert!(
        junit.contains("ModuleNotFoundError: No module named &apos;not_a_module_anywhere&apos;")
            || junit.contains("No module named 'not_a_module_anywhere'"),
        "{junit}"
    );
    assert!(
        junit.contains(&format!(
            "<testsuites tests=\"{}\" failures=\"1\" errors=\"1\" skipped=\"2\"",
            want.len()
        )),
        "{}",
        &junit[..300]
    );
    // The failure's bundle came along; the summary is the whole run's.
    let bundles: Vec<_> = std::fs::read_dir(merged.join(".gates/last-run/failures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(bundles.len(), 2, "{bundles:?}"); // test_fails and the collection error
    let summary = std::fs::read_to_string(merged.join(".gates/last-run/summary.md")).unwrap();
    assert!(summary.contains("| passed | 252 |"), "{summary}");
    // report.html's timeline tells the shards' chunks apart (each shard has a chunk 1).
    let html = std::fs::read_to_string(merged.join(".gates/last-run/report.html")).unwrap();
    let shards_drawn = (1..=4)
        .filter(|k| html.contains(&format!("shard {k}/4 chunk ")))
        .count();
    assert!(
        shards_drawn >= 2,
        "bars of {shards_drawn} shard(s) in report.html"
    );
    // The merged durations.json has the history the single run has, test for test.
    let history = |root: &Path| -> BTreeMap<String, Value> {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(".gates/durations.json")).unwrap(),
        )
        .unwrap();
        v["tests"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(id, h)| (id.clone(), h["outcomes"].clone()))
            .collect()
    };
    assert_eq!(history(&merged), history(&single));
    assert_eq!(history(&merged).len(), want.len() - 1); // not the collection error

    // Round 2: every shard starts from the merged history (as CI restores it from its
    // cache); the partition is then balanced by measured durations.
    for dir in &dirs {
        std::fs::copy(
            merged.join(".gates/durations.json"),
            dir.join(".gates/durations.json"),
        )
        .unwrap();
    }
    for (i, dir) in dirs.iter().enumerate() {
        shard(dir, i as u32 + 1, 4);
    }
    let merged2 = copy(tmp.path(), "merged2");
    let out = merge(&merged2, &gate_refs, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(last_outcomes(&merged2).0, want);
    // Balance: each shard's test time (the sum of its tests' durations) against the ideal.
    let mut per_shard: BTreeMap<String, f64> = BTreeMap::new();
    for r in records(&merged2) {
        *per_shard
            .entry(r["shard"].as_str().unwrap().to_string())
            .or_default() += r["duration_s"].as_f64().unwrap();
    }
    let total: f64 = per_shard.values().sum();
    let slowest = per_shard.values().cloned().fold(0.0, f64::max);
    assert!(
        slowest <= 1.15 * total / 4.0,
        "slowest shard {slowest:.2}s, ideal {:.2}s: {per_shard:?}",
        total / 4.0
    );
}

/// Three quick shards of a small suite, for the error cases.
fn three_shards(tmp: &Path) -> Vec<PathBuf> {
    (1..=3)
        .map(|k| {
            let dir = copy(tmp, &format!("s{k}"));
            shard(&dir, k, 3);
            dir.join(".gates")
        })
        .collect()
}

#[test]
fn merge_refuses_what_is_not_one_whole_run_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = three_shards(tmp.path());
    let target = copy(tmp.path(), "target");
    let fails = |shards: &[&Path], extra: &[&str], expect: &str| {
        let out = merge(&target, shards, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expect), "expected {expect:?} in:\n{stderr}");
        assert!(
            !target.join(".gates/last-run").exists(),
            "a refused merge wrote .gates/last-run"
        );
    };
    let (a, b, c) = (
        shards[0].as_path(),
        shards[1].as_path(),
        shards[2].as_path(),
    );

    // A missing shard; a shard given twice.
    fails(&[a, b], &[], "missing shard(s) 3/3");
    fails(&[a, b, b, c], &[], "shard 2/3 given twice");

    // A shard of another run: shard 3 planned again from different durations.
    let other = copy(tmp.path(), "other");
    std::fs::create_dir_all(other.join(".gates")).unwrap();
    std::fs::write(
        other.join(".gates/durations.json"),
        r#"{"schema_version":1,"tests":{"tests/test_slow_0.py::test_slow_0":{"durations":[9.0],"outcomes":["passed"],"failure_score":0.0}}}"#,
    )
    .unwrap();
    shard(&other, 3, 3);
    let other_gates = other.join(".gates");
    fails(&[a, b, &other_gates], &[], "was planned from other inputs");

    // A test in two shards (a record appended to shard 1 from shard 2).
    let sneaky = copy(tmp.path(), "sneaky");
    copy_dir(a, &sneaky.join(".gates"));
    let line = std::fs::read_to_string(b.join("last-run/run.jsonl"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let log = sneaky.join(".gates/last-run/run.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(&line);
    text.push('\n');
    std::fs::write(&log, text).unwrap();
    let sneaky_gates = sneaky.join(".gates");
    fails(
        &[&sneaky_gates, b, c],
        &[],
        "ran in shard 1/3 and in shard 2/3",
    );

    // A record lost from a finished shard: an error that names a test, never a pass.
    let lossy = copy(tmp.path(), "lossy");
    copy_dir(b, &lossy.join(".gates"));
    let log = lossy.join(".gates/last-run/run.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"outcome\":\"passed\""))
        .collect();
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    let lossy_gates = lossy.join(".gates");
    let out = merge(&target, &[a, &lossy_gates, c], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("have no record though the shard finished (first: tests/"),
        "{stderr}"
    );

    // --partial merges what there is and fails the run.
    let out = merge(&target, &[a, b], &["--partial"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--partial: missing shard(s) 3/3: their tests did not run"),
        "{stderr}"
    );
    assert!(stderr.contains("quarantine not updated"), "{stderr}");
    assert!(target.join(".gates/last-run/run.jsonl").is_file());

    // Shards as archives of their .gates/ (as CI keeps artifacts): .tar.gz and .tar.
    let tgz = tmp.path().join("s1.tgz");
    let plain_tar = tmp.path().join("s2.tar");
    for (archive, flags, dir) in [(&tgz, "czf", a), (&plain_tar, "cf", b)] {
        let status = std::process::Command::new("tar")
            .arg(flags)
            .arg(archive)
            .arg("-C")
            .arg(dir.parent().unwrap())
            .arg(".gates")
            .status()
            .unwrap();
        assert!(status.success());
    }
    let out = merge(&target, &[&tgz, &plain_tar, c], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("from 3 of 3 shard(s)"), "{stderr}");
    let (merged, count) = last_outcomes(&target);
    assert_eq!(merged.len(), 3 * 4 + 24 * 10 + 3 + 1);
    assert!(count.values().all(|&n| n == 1));
}

#[test]
fn a_shard_says_what_every_shard_would_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy(tmp.path(), "p");
    let out = mtest_in(&dir)
        .args(["--shard", "2/4", "--explain-selection"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("belong to the other shards"), "{stdout}");
    let note = stdout
        .lines()
        .find(|l| l.starts_with("note: shard 2/4: "))
        .unwrap_or_else(|| panic!("no shard note:\n{stdout}"));
    for k in 1..=4 {
        assert!(note.contains(&format!("{k}: ")), "{note}");
    }
    let bad = mtest_in(&dir).args(["--shard", "5/4"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected K/N with 1 <= K <= N"));
}

/// `examples/github-actions/tests.yml` parses as YAML and is the workflow the README
/// describes: a matrix of N shards each running `mtest --shard K/N` from the same history,
/// uploading its hidden `.gates/`, and a merge job that runs `mtest merge` and saves the
/// merged history under the key the shards restore from.
#[test]
fn the_github_actions_example_is_a_workflow_that_shards_and_merges() {
    use yaml_rust2::{Yaml, YamlLoader};
    let path = common::repo_root().join("examples/github-actions/tests.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let wf = &docs[0];
    let jobs = &wf["jobs"];
    let steps = |job: &str| -> Vec<Yaml> { jobs[job]["steps"].as_vec().unwrap().clone() };
    let runs = |job: &str| -> Vec<String> {
        steps(job)
            .iter()
            .filter_map(|s| s["run"].as_str().map(str::to_string))
            .collect()
    };
    let uses = |step: &Yaml| step["uses"].as_str().unwrap_or("").to_string();

    let shards = jobs["test"]["strategy"]["matrix"]["shard"]
        .as_vec()
        .unwrap();
    let n = wf["env"]["SHARDS"].as_i64().unwrap();
    assert_eq!(shards.len() as i64, n, "the matrix and SHARDS disagree");
    let ks: Vec<i64> = shards.iter().map(|k| k.as_i64().unwrap()).collect();
    assert_eq!(ks, (1..=n).collect::<Vec<_>>());
    // A pull request runs --changed; a push, everything.
    assert!(runs("test").iter().any(|r| r.trim()
        == "mtest --shard ${{ matrix.shard }}/${{ env.SHARDS }} ${{ github.event_name == 'pull_request' && '--changed' || '' }}"));
    assert_eq!(jobs["test"]["needs"].as_str(), Some("history"));
    // Every upload of .gates/ includes hidden files (upload-artifact@v4 skips them).
    for job in ["history", "test"] {
        let upload = steps(job)
            .into_iter()
            .find(|s| uses(s).starts_with("actions/upload-artifact@"))
            .unwrap();
        assert_eq!(upload["with"]["path"].as_str(), Some(".gates/"));
        assert_eq!(upload["with"]["include-hidden-files"].as_bool(), Some(true));
    }
    // The shards download the history the history job uploaded.
    let history_download = steps("test")
        .into_iter()
        .find(|s| uses(s).starts_with("actions/download-artifact@"))
        .unwrap();
    assert_eq!(
        history_download["with"]["name"].as_str(),
        Some("mtest-history")
    );

    assert_eq!(jobs["merge"]["needs"].as_str(), Some("test"));
    assert_eq!(jobs["merge"]["if"].as_str(), Some("always()"));
    assert!(runs("merge")
        .iter()
        .any(|r| r.trim() == "mtest merge shards/mtest-shard-*"));
    let restore = steps("history")
        .into_iter()
        .find(|s| uses(s).starts_with("actions/cache/restore@"))
        .unwrap();
    let save = steps("merge")
        .into_iter()
        .find(|s| uses(s).starts_with("actions/cache/save@"))
        .unwrap();
    assert_eq!(restore["with"]["path"], save["with"]["path"]);
    let cached: Vec<&str> = save["with"]["path"].as_str().unwrap().lines().collect();
    assert_eq!(
        cached,
        [
            ".gates/durations.json",
            ".gates/quarantine.json",
            ".gates/impact.json"
        ]
    );
    let key = save["with"]["key"].as_str().unwrap();
    let prefix = restore["with"]["restore-keys"]
        .as_str()
        .unwrap()
        .lines()
        .next()
        .unwrap();
    assert!(key.starts_with(prefix), "{key} is not restored by {prefix}");
}

/// A shard that repeated a flaky test exits 1 (a repeated test that failed once fails the
/// run); `mtest merge` of it and the other shard exits as the shards did, and says why.
#[test]
fn a_merge_of_shards_that_repeated_a_flaky_test_exits_as_the_shard_did() {
    let tmp = tempfile::tempdir().unwrap();
    let files = [
        ("pyproject.toml", "[tool.pytest.ini_options]\n".to_string()),
        (
            "tests/test_flaky.py",
            "import pathlib\n\ndef test_flaky():\n    count = pathlib.Path(__file__).with_name('count')\n    \
             n = int(count.read_text()) if count.exists() else 0\n    count.write_text(str(n + 1))\n    \
             assert n % 2 == 1, 'fails on every other run'\n"
                .to_string(),
        ),
        (
            "tests/test_quick.py",
            (0..6).map(|i| format!("def test_{i}():\n    pass\n\n")).collect(),
        ),
    ];
    let make = |name: &str| {
        let dir = tmp.path().join(name);
        for (path, text) in &files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    };
    let mut codes = Vec::new();
    let mut gates = Vec::new();
    for k in 1..=2 {
        let dir = make(&format!("s{k}"));
        let out = run(&dir, &["--shard", &format!("{k}/2"), "--repeat", "2"]);
        codes.push(out.status.code());
        gates.push(dir.join(".gates"));
    }
    assert!(
        codes.contains(&Some(1)),
        "the flaky test's shard fails: {codes:?}"
    );
    let target = make("target");
    let shards: Vec<&Path> = gates.iter().map(PathBuf::as_path).collect();
    let out = merge(&target, &shards, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let flaky: Vec<Value> = records(&target)
        .into_iter()
        .filter(|r| r["test_id"] == "tests/test_flaky.py::test_flaky")
        .collect();
    assert_eq!(flaky.len(), 2, "both runs of the repeated test: {flaky:?}");
}
