//! `--changed`: the tests a change can reach, from `.gates/impact.json` (what each test
//! depended on when it last ran) and `mtest_impact check` (what the project's files are
//! now); and, after a run, the store learning what this run's tests depended on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::*;
use crate::deps::Source as FileVersion;
use crate::store::impact::{BlockSums, EarlySums, Impact, Now, Readers};
use crate::store::state::Changed;

/// `--changed` leaves out of collection the test files no change reaches (not with
/// `--verify`, which runs everything): the records and a check are needed first.
pub(super) fn collects_less(args: &RunArgs) -> bool {
    args.changed && !args.verify && !args.resume && !args.explain_selection
}

/// Collection for `--changed`: only the files a change may reach (and every file the
/// records do not know: new tests). The check that finds them runs beside the zygote's
/// start (its interpreter, pytest, the plugins, the configuration), which then waits for
/// them before it collects. A failed check is the error (the collection it cancelled is
/// not).
pub(super) fn start(
    gates: &Gates,
    root: &Path,
    opts: &RunOptions,
    stores: Stores,
) -> Result<(Collection, Option<Checked>)> {
    let asked = opts.changed.clone().unwrap_or(Changed {
        since: None,
        verify: false,
    });
    let (files, later) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let checking = scope.spawn(move || -> Result<Option<Checked>> {
            let mut checked = check(opts, root, stores.impact, &asked)?;
            if let Some(c) = checked.as_mut() {
                skippable(stores, c);
            }
            // The zygote is told even when nothing is recorded (nothing to leave out).
            let skip = checked.as_ref().map_or(&[][..], |c| c.skipped_files());
            let _ = files.send(skip.to_vec());
            Ok(checked)
        });
        // On this thread: the zygote is the run's pytest and dies with the thread that
        // spawned it (see `start_collection`).
        let collection = start_collection(gates, root, opts, &[], Some(later));
        let checked = checking
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        Ok((collection?, checked))
    })
}

/// What `mtest_impact` answers: the environment's fingerprint and, per file, its answer
/// (`sums`: with the early sums of the versions asked about).
#[derive(serde::Deserialize)]
struct Answer<T> {
    env: String,
    files: T,
    #[serde(default)]
    early: EarlySums,
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

/// What a change reaches among the recorded tests, known before collection: each reached
/// test with why, and the files `--changed-since` named.
pub(super) struct Checked {
    /// The environment's fingerprint now.
    pub(super) env: String,
    /// The blocks of each file version the check met that the records do not know: what
    /// the end of the run would otherwise ask the helper for again.
    pub(super) blocks: BTreeMap<FileVersion, BlockSums>,
    reached: FastMap<String, String>,
    named: BTreeMap<String, Option<Vec<String>>>,
    since: String,
    /// The test files left out of collection, and how many known tests they hold.
    skipped_files: Vec<String>,
    skipped_tests: usize,
}

impl Checked {
    /// The test files left out of collection.
    pub(super) fn skipped_files(&self) -> &[String] {
        &self.skipped_files
    }
}

/// Compares the project's files (and environment) with what the records saw; with
/// `--changed-since`, adds what `git diff` names. None when nothing is recorded.
pub(super) fn check(
    opts: &RunOptions,
    root: &Path,
    impact: &Impact,
    changed: &Changed,
) -> Result<Option<Checked>> {
    if impact.is_empty() {
        return Ok(None);
    }
    let request = serde_json::json!({
        "config": config(opts),
        "files": impact.check_request(),
        "early": impact.early_request(),
    });
    let helper = helper(opts, root)?;
    let now: Answer<BTreeMap<Arc<str>, Now>> = helper.ask_impact("check", &request)?;
    let literals = impact.literal_changes(&now.files);
    let readers: Readers = if literals.is_empty() {
        Readers::new()
    } else {
        let request = serde_json::json!({
            "config": config(opts),
            "names": literals,
            "files": impact.check_request().into_keys().collect::<Vec<_>>(),
            "env": false,
        });
        let answer: Answer<Readers> = helper.ask_impact("readers", &request)?;
        answer.files
    };
    let mut reached: FastMap<String, String> = impact
        .impacted(&now.files, &now.env, &readers)
        .into_iter()
        .map(|(test, change)| (test.to_string(), change.to_string()))
        .collect();
    let since = changed.since.clone().unwrap_or_default();
    let named = match &changed.since {
        Some(since) => git_changes(opts, root, since)?,
        None => BTreeMap::new(),
    };
    for (test, what) in impact.depending_on(&named) {
        reached
            .entry(test.to_string())
            .or_insert_with(|| format!("{what} changed since {since}"));
    }
    let blocks = now
        .files
        .into_iter()
        .filter_map(|(path, now)| {
            let sum = now.sum.filter(|s| !s.is_empty())?;
            Some((FileVersion { path, sum }, now.blocks?))
        })
        .collect();
    Ok(Some(Checked {
        env: now.env,
        blocks,
        reached,
        named,
        since,
        skipped_files: Vec::new(),
        skipped_tests: 0,
    }))
}

/// What `--changed` judges a test by: the records and the history.
#[derive(Clone, Copy)]
pub(super) struct Stores<'a> {
    pub(super) impact: &'a Impact,
    pub(super) durations: &'a Durations,
}

/// Why `--changed` keeps a test, if it does.
fn reason(stores: Stores, checked: &Checked, id: &str, file: &str) -> Option<String> {
    if stores.durations.failed_last(id) {
        return Some("failed last run".into());
    }
    if stores.impact.deps(id).is_none() {
        let known = stores.durations.tests.contains_key(id);
        return Some(if known { "no record" } else { "new test" }.into());
    }
    if let Some(why) = checked.reached.get(id) {
        return Some(why.clone());
    }
    checked
        .named
        .contains_key(file)
        .then(|| format!("{file} changed since {}", checked.since))
}

/// The test files no change reaches, which collection may leave out (as pytest's `--lf`
/// does): every test of theirs the history knows has a record, and none is kept. Kept in
/// `checked`, with how many known tests they hold.
pub(super) fn skippable(stores: Stores, checked: &mut Checked) {
    let mut files: BTreeMap<&str, (bool, FastSet<&str>)> = BTreeMap::new();
    let known = stores.durations.tests.keys().map(String::as_str);
    for id in known.chain(stores.impact.tests()) {
        let file = id.split("::").next().unwrap_or(id);
        let unreached = reason(stores, checked, id, file).is_none();
        let entry = files.entry(file).or_insert((true, FastSet::default()));
        entry.0 &= unreached;
        entry.1.insert(id);
    }
    let skipped: Vec<(&str, usize)> = files
        .into_iter()
        .filter(|(file, (skip, _))| {
            *skip && file.ends_with(".py") && !file.ends_with("conftest.py")
        })
        .map(|(file, (_, tests))| (file, tests.len()))
        .collect();
    checked.skipped_tests = skipped.iter().map(|(_, n)| n).sum();
    checked.skipped_files = skipped.into_iter().map(|(f, _)| f.to_string()).collect();
}

/// `--changed` among `items` (what collection, paths, `-k`, `-m` and `--lf` left).
pub(super) fn changed_only(
    stores: Stores,
    checked: Option<&Checked>,
    items: &[Item],
) -> ChangedOnly {
    let mut notes = Vec::new();
    let Some(checked) = checked else {
        notes.push("--changed: nothing is recorded yet: all tests run".into());
        let kept = (0..items.len())
            .map(|i| (i, "no record".to_string()))
            .collect();
        return ChangedOnly { kept, notes };
    };
    let kept: Vec<(usize, String)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| reason(stores, checked, &item.id, &item.file).map(|why| (i, why)))
        .collect();
    notes.push(format!(
        "--changed: {} of {} collected test(s) a change can reach",
        kept.len(),
        items.len()
    ));
    let (files, tests) = (checked.skipped_files.len(), checked.skipped_tests);
    if files > 0 {
        notes.push(format!(
            "--changed: {files} test file(s) no change reaches ({tests} test(s)) were not collected"
        ));
    }
    ChangedOnly { kept, notes }
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

/// The environment's fingerprint, asked for in a thread while the run goes on, so that
/// the end of a run that meets no new file version asks the helper nothing (a run without
/// `--changed` has no check to take it from). None when the helper failed: the end of the
/// run asks again, and says why.
pub(super) fn fingerprint(opts: &RunOptions, pytest: &Pytest) -> JoinHandle<Option<String>> {
    let (pytest, request) = (
        pytest.clone(),
        serde_json::json!({ "config": config(opts), "files": {} }),
    );
    std::thread::spawn(move || {
        let answer: Answer<BTreeMap<Arc<str>, BlockSums>> =
            pytest.ask_impact("sums", &request).ok()?;
        Some(answer.env)
    })
}

/// After a run: the store learns what this run's tests depended on; the blocks of the
/// file versions first recorded are computed now (or were, by `--changed`'s check), and
/// the early sums of the versions with new lines that ran before the tests (3.12+). A
/// failure is said, and leaves the store as it was (its records stay true of what they
/// recorded).
/// `known`: the environment's fingerprint at the start (from `--changed`'s check or
/// [`fingerprint`]) and the blocks the check computed; the helper is asked only for the
/// versions neither knows. The file is written only when a record changed.
pub(super) fn learn(
    (gates, opts, pytest): (&Gates, &RunOptions, &Pytest),
    impact: &mut Impact,
    this_run: &[(String, Option<crate::deps::Deps>)],
    (env, checked): (Option<&str>, Option<&BTreeMap<FileVersion, BlockSums>>),
) -> std::result::Result<(), String> {
    let mut blocks: BTreeMap<FileVersion, BlockSums> = BTreeMap::new();
    let mut new = impact.new_sources(this_run);
    let grew = impact.learn_lines(this_run);
    let early = impact.early_pending();
    let mut early_sums = EarlySums::new();
    if let Some(checked) = checked {
        new.retain(|path, sum| {
            let version = FileVersion {
                path: path.clone(),
                sum: sum.clone(),
            };
            match checked.get(&version) {
                Some(known) => {
                    blocks.insert(version, known.clone());
                    false
                }
                None => true,
            }
        });
    }
    let env = match env {
        Some(env) if new.is_empty() && early.is_empty() => env.to_string(),
        _ => {
            let request = serde_json::json!({
                "config": config(opts),
                "files": new,
                "early": early,
                "env": env.is_none(),
            });
            let answer: Answer<BTreeMap<Arc<str>, BlockSums>> = pytest
                .ask_impact("sums", &request)
                .map_err(|e| e.to_string())?;
            // The helper answers for a file still at the checksum asked.
            for (path, sums) in answer.files {
                if let Some(sum) = new.get(&path) {
                    let sum = sum.clone();
                    blocks.insert(FileVersion { path, sum }, sums);
                }
            }
            early_sums = answer.early;
            env.map_or(answer.env, str::to_string)
        }
    };
    let changed = impact.learn(this_run, &env) || grew;
    impact.set_sums(&blocks);
    impact.set_early_sums(&early_sums);
    if !changed && Impact::path(&gates.dir).is_file() {
        return Ok(());
    }
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
