//! The demo project's outputs — `run.jsonl`, `junit.xml`, `summary.md` — against golden
//! copies made by an earlier mtest (tests/fixtures/golden/demo-MODE/): a change to the
//! code's shape must not change what a run writes. Times, run ids, paths and the order the
//! workers happened to finish in are normalized away; everything else must match.
//!
//! After a change that means to change the outputs, write new golden copies with
//! `MTEST_GOLDEN_UPDATE=1 cargo test --release --test e2e golden` (in both
//! isolation modes) and review the diff.

use std::path::{Path, PathBuf};

use crate::common::{copy_dir, isolation, mtest_run, repo_root};

/// Replaces every match of `pattern` with `with`.
fn replace_all(text: &str, pattern: &str, with: &str) -> String {
    regex_lite::Regex::new(pattern)
        .expect("a valid pattern")
        .replace_all(text, with)
        .into_owned()
}

/// Run ids, timestamps, durations and the machine's paths, made constant.
fn normalize(text: &str, root: &Path) -> String {
    let text = text.replace(&root.display().to_string(), "<root>");
    let text = text.replace(env!("CARGO_BIN_EXE_mtest"), "<mtest>");
    let text = text.replace(&crate::common::python().display().to_string(), "<python>");
    let text = text.replace(&repo_root().display().to_string(), "<repo>");
    let text = replace_all(&text, r"\d{8}T\d{6}Z-[0-9a-f]{6}", "<run>");
    let text = replace_all(&text, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>");
    replace_all(&text, r#"time="[0-9.]+""#, r#"time="<t>""#)
}

/// run.jsonl: each record without its times and chunk, sorted by test and attempt.
fn records(text: &str) -> String {
    let mut records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a run.jsonl line is JSON"))
        .collect();
    for r in &mut records {
        let Some(fields) = r.as_object_mut() else {
            panic!("a record is an object: {r}");
        };
        for unstable in ["duration_s", "chunk", "started_at", "finished_at", "run_id"] {
            fields.remove(unstable);
        }
    }
    records.sort_by_key(|r| (r["test_id"].to_string(), r["attempt"].as_u64()));
    let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    lines.join("\n") + "\n"
}

/// junit.xml: its test cases in order of name (the workers' order varies), without the
/// frames and thread addresses of the stack dumps in them (they name this machine's files
/// and mtest's own frames).
fn junit(text: &str) -> String {
    let text = replace_all(text, r#"(?m)^\s*File &quot;.*\n"#, "");
    // A traceback's frames outside the project (the standard library's, by absolute path).
    let text = replace_all(&text, r"(?m)^/[^\s:]+:\d+: in .*\n", "");
    let text = replace_all(&text, r"0x[0-9a-f]{8,16}", "0x<addr>");
    let (head, rest) = text.split_once("<testcase").expect("a test case");
    let (cases, tail) = rest.rsplit_once("</testsuite>").expect("the suite's end");
    let mut cases: Vec<String> = cases
        .split("<testcase")
        .map(|c| format!("<testcase{}", c.trim_end()))
        .collect();
    cases.sort();
    format!("{head}{}\n</testsuite>{tail}", cases.join("\n"))
}

/// summary.md without its slowest-tests table (times decide its order), each table's
/// rows sorted (the failures are listed as they were recorded).
fn summary(text: &str) -> String {
    let text = replace_all(text, r"(?m)^- duration: .*$", "- duration: <d>");
    let text = match text.split_once("## Slowest tests") {
        Some((before, after)) => {
            let rest = after.split_once("\n## ").map_or("", |(_, r)| r);
            format!("{before}## Slowest tests\n\n(times)\n\n## {rest}")
        }
        None => text,
    };
    let mut out: Vec<String> = Vec::new();
    let mut rows: Vec<&str> = Vec::new();
    for line in text.lines() {
        // A table's rows: after its header and its |---| line.
        let in_table = out.last().is_some_and(|l| l.starts_with("|---")) || !rows.is_empty();
        if line.starts_with('|') && in_table {
            rows.push(line);
            continue;
        }
        rows.sort();
        out.extend(rows.drain(..).map(String::from));
        out.push(line.to_string());
    }
    rows.sort();
    out.extend(rows.into_iter().map(String::from));
    out.join("\n") + "\n"
}

#[test]
fn the_demo_projects_outputs_match_their_golden_copies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    copy_dir(&repo_root().join("examples/demo-project"), root);
    let out = mtest_run(root).output().expect("run mtest");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = root.join(".gates/last-run");
    let read = |name: &str| std::fs::read_to_string(last.join(name)).expect("an output");
    let outputs = [
        ("run.jsonl", records(&normalize(&read("run.jsonl"), root))),
        ("junit.xml", junit(&normalize(&read("junit.xml"), root))),
        ("summary.md", summary(&normalize(&read("summary.md"), root))),
    ];
    let golden: PathBuf = repo_root().join(format!("tests/fixtures/golden/demo-{}", isolation()));
    if std::env::var_os("MTEST_GOLDEN_UPDATE").is_some() {
        std::fs::create_dir_all(&golden).expect("mkdir");
        for (name, text) in &outputs {
            std::fs::write(golden.join(name), text).expect("write a golden copy");
        }
        return;
    }
    for (name, text) in &outputs {
        let path = golden.join(name);
        snapbox::assert_data_eq!(text.as_str(), snapbox::Data::read_from(&path, None).raw());
    }
}
