//! `--changed`: the tests a change can reach, from `.gates/impact.json` (what each test
//! depended on when it last ran) and `mtest_impact check` (what the project's files are
//! now); and, after a run, the store learning what this run's tests depended on.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::store::impact::{BlockSums, Impact, Now};
use crate::store::state::Changed;

/// What `mtest_impact` answers: the environment's fingerprint and, per file, its answer.
#[derive(serde::Deserialize)]
struct Answer<T> {
    env: String,
    files: T,
}

/// The selection `--changed` makes among `items`: the positions it keeps, each with why.
pub(super) struct ChangedOnly {
    pub(super) kept: Vec<(usize, String)>,
    pub(super) notes: Vec<String>,
}

/// What a run's options change in how a test behaves, beside pytest's configuration
/// files (the helper reads those): part of the environment's fingerprint.
fn config(opts: &RunOptions) -> String {
    format!(
        "pytest args {:?}; timeout {}; isolation {:?}; gc-freeze {}",
        opts.pytest_args, opts.timeout_s, opts.isolation, opts.gc_freeze
    )
}

fn helper(opts: &RunOptions, root: &Path) -> Result<Pytest> {
    Ok(Pytest::new(
        opts.python.clone().into(),
        root.to_path_buf(),
        Vec::new(),
    )?)
}

/// `--changed` among `items` (what collection, paths, `-k`, `-m` and `--lf` left).
pub(super) fn changed_only(
    env: &Env,
    opts: &RunOptions,
    changed: &Changed,
    items: &[Item],
) -> Result<ChangedOnly> {
    let impact = env.impact;
    let mut notes = Vec::new();
    if impact.is_empty() {
        notes.push("--changed: nothing is recorded yet: all tests run".into());
        let kept = (0..items.len())
            .map(|i| (i, "no record".to_string()))
            .collect();
        return Ok(ChangedOnly { kept, notes });
    }
    let request = serde_json::json!({
        "config": config(opts),
        "files": impact.check_request(),
    });
    let now: Answer<BTreeMap<Arc<str>, Now>> =
        helper(opts, env.root)?.ask_impact("check", &request)?;
    let impacted = impact.impacted(&now.files, &now.env);
    let named = match &changed.since {
        Some(since) => git_changes(opts, env.root, since)?,
        None => Default::default(),
    };
    let by_git = impact.depending_on(&named);
    let since = changed.since.as_deref().unwrap_or("");
    let reason = |item: &Item| -> Option<String> {
        if plan::failed_last(env, &item.id) {
            return Some("failed last run".into());
        }
        if impact.deps(&item.id).is_none() {
            let known = env.durations.tests.contains_key(&item.id);
            return Some(if known { "no record" } else { "new test" }.into());
        }
        if let Some(change) = impacted.get(item.id.as_str()) {
            return Some(change.to_string());
        }
        let what = by_git.get(item.id.as_str()).cloned();
        what.or_else(|| named.contains_key(&item.file).then(|| item.file.clone()))
            .map(|what| format!("{what} changed since {since}"))
    };
    let kept: Vec<(usize, String)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| reason(item).map(|why| (i, why)))
        .collect();
    notes.push(format!(
        "--changed: {} of {} test(s) a change can reach",
        kept.len(),
        items.len()
    ));
    Ok(ChangedOnly { kept, notes })
}

/// What changed since git revision `since`: per file `git diff` names (or untracked), the
/// names of its blocks that differ (`None`: the whole file), relative to the root.
fn git_changes(
    opts: &RunOptions,
    root: &Path,
    since: &str,
) -> Result<BTreeMap<String, Option<Vec<String>>>> {
    let git = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .map_err(|e| usage(format!("--changed-since {since}: cannot run git: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(usage(format!(
                "--changed-since {since}: git {} failed: {}",
                args.join(" "),
                one_line(err.lines().next().unwrap_or("no output"))
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let diff = git(&["diff", "--name-only", "--relative", since, "--"])?;
    let untracked = git(&["ls-files", "--others", "--exclude-standard"])?;
    let named: BTreeSet<&str> = diff.lines().chain(untracked.lines()).collect();
    // Each Python file as it was then (none: it did not exist); the helper compares blocks.
    let then: BTreeMap<&str, Option<String>> = named
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| {
            let old = p
                .ends_with(".py")
                .then(|| git(&["show", &format!("{since}:./{p}")]).ok());
            (p, old.flatten())
        })
        .collect();
    let request = serde_json::json!({ "config": "", "files": then });
    let answer: Answer<BTreeMap<String, Option<Vec<String>>>> =
        helper(opts, root)?.ask_impact("since", &request)?;
    Ok(answer.files)
}

/// After a run: the store learns what this run's tests depended on; the blocks of the
/// file versions first recorded are computed now. A failure is said, and leaves the
/// store as it was (its records stay true of what they recorded).
pub(super) fn learn(
    gates: &Gates,
    opts: &RunOptions,
    pytest: &Pytest,
    impact: &mut Impact,
    this_run: &[(String, Option<crate::deps::Deps>)],
) -> std::result::Result<(), String> {
    let request = serde_json::json!({
        "config": config(opts),
        "files": impact.new_sources(this_run),
    });
    let answer: Answer<BTreeMap<Arc<str>, BlockSums>> = pytest
        .ask_impact("sums", &request)
        .map_err(|e| e.to_string())?;
    impact.learn(this_run, &answer.env);
    impact.set_sums(answer.files);
    impact
        .save(&Impact::path(&gates.dir))
        .map_err(|e| e.to_string())
}

/// `--verify`: the failing tests of this run that `--changed` would have left out.
pub(super) fn missed<'r>(left_out: &FastSet<String>, records: &'r [Attempt]) -> Vec<&'r str> {
    let mut missed: Vec<&str> = records
        .iter()
        .filter(|r| r.outcome.is_failure() && left_out.contains(&r.test_id))
        .map(|r| r.test_id.as_str())
        .collect();
    missed.sort_unstable();
    missed.dedup();
    missed
}
