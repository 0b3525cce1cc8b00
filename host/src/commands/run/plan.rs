//! A fresh run's plan: the selection plugin asked about the collection (with `--lf`,
//! `--budget`, tiers, shards), the records of what did not collect, `--explain-selection`.

use super::*;
use crate::plugin_host::LoadedPlugin;

/// The record of a module that skipped itself at collection (`pytest.importorskip` at
/// module level): one skipped outcome under the module's id, as pytest counts it.
pub(super) fn collection_skip_record(run_id: &str, id: &str, reason: Option<&str>) -> TestRecord {
    collector_record(
        run_id,
        id,
        Outcome::Skipped,
        reason.map(one_line),
        Details::default(),
    )
}

pub(super) fn collection_error_record(
    run_id: &str,
    collected: &Collected,
    id: &str,
    text: &str,
) -> TestRecord {
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("collection error");
    let details = Details {
        failure: text.to_string(),
        command: collected.command.clone(),
        ..Details::default()
    };
    let message = Some(format!("collection error: {}", one_line(last)));
    collector_record(run_id, id, Outcome::Error, message, details)
}

/// The record of a collector (a module, usually) that is not a test but has an outcome.
pub(super) fn collector_record(
    run_id: &str,
    id: &str,
    outcome: Outcome,
    message: Option<String>,
    details: Details,
) -> TestRecord {
    let now = clock::Stamp::now();
    TestRecord {
        schema_version: SCHEMA_VERSION,
        run_id: run_id.to_string(),
        test_id: id.to_string(),
        outcome,
        duration_s: 0.0,
        tier: crate::tiers::tier_of::<&str>(&[]),
        markers: Vec::new(),
        file: id.split("::").next().unwrap_or(id).to_string(),
        line: None,
        chunk: 0,
        attempt: 1,
        quarantined: false,
        started_at: now,
        finished_at: now,
        message,
        bundle: None,
        leaked: Vec::new(),
        subtests: None,
        flaky: false,
        shard: None,
        details,
        test: None,
    }
}

/// What collection and selection decided, before anything is written.
pub(super) struct Planned {
    pub(super) collection: Collection,
    pub(super) selected: selection::Selected,
    pub(super) notes: Vec<String>,
    /// `--changed`: why each test it keeps is kept.
    pub(super) reasons: FastMap<String, String>,
    /// `--changed --verify`: the tests `--changed` would have left out (all run).
    pub(super) left_out: Vec<String>,
}

/// What is left of a `--budget` of `budget_s` once `spent` is: collection is serial, and
/// already spent when the selection plans.
pub(super) fn budget_left(budget_s: f64, spent: Duration) -> Duration {
    clock::secs((budget_s - spent.as_secs_f64()).max(0.0))
}

/// What the selection may plan with of the budget `left`: less a twentieth for what
/// follows the last test (pytest's session end, the store), at least a millisecond.
pub(super) fn budget_left_ms(left: Duration) -> u64 {
    ((left.as_secs_f64() * 0.95 * 1000.0) as u64).max(1)
}

/// Asks the selection plugin about a collection; writes nothing.
pub(super) fn plan_selection(
    env: &Env,
    opts: &RunOptions,
    collection: Collection,
) -> Result<Planned> {
    let (selector, fallback) = selector_for(env)?;
    let mut notes = Vec::new();
    let collected = &collection.collected;
    let last_failed = opts
        .last_failed
        .then(|| only_failed_last(env, &collected.items, &mut notes))
        .flatten();
    let narrowed = last_failed;
    let items: &[Item] = match &narrowed {
        Some((items, _)) => items,
        None => &collected.items,
    };
    let changed = match &opts.changed {
        Some(asked) => changed_plan(env, opts, asked, items)?,
        None => ChangedPlan::default(),
    };
    notes.extend(changed.notes.iter().cloned());
    let inputs = selection::Inputs {
        items,
        durations: env.durations,
        quarantine: env.quarantine,
        tiers: opts.tiers,
        budget_ms: opts.budget_s.map(|s| budget_for_tests(env, s, &mut notes)),
        workers: opts.jobs,
        startup_ms: env.durations.startup_ms(),
        chunk_size: 300,
        shard: opts.shard,
        changes: opts.changed.as_ref().map(|asked| selection::Changes {
            reached: &changed.reasons,
            only: !asked.verify,
        }),
    };
    let mut selected = selection::select(env.host, &selector, fallback.as_ref(), &inputs)?;
    if let Some((_, positions)) = &narrowed {
        for (i, _) in selected.excluded.iter_mut() {
            *i = positions.get(*i).copied().unwrap_or(*i);
        }
    }
    if opts.failed_first {
        failed_first(env, &mut selected, &mut notes);
    }
    repeats(env, opts, &mut selected, &mut notes);
    notes.extend(selected.notes.iter().cloned());
    if selector.source != Source::Builtin {
        notes.push(format!("selection by {}", selector.label()));
    }
    if let Some(fb) = &selected.fallback {
        eprintln!("warning: {fb}");
        notes.push(fb.clone());
    }
    if selected.left_out_by_tier > 0 {
        notes.push(format!(
            "{} test(s) not in the selected tiers",
            selected.left_out_by_tier
        ));
    }
    Ok(Planned {
        collection,
        selected,
        notes,
        reasons: changed.reasons,
        left_out: changed.left_out,
    })
}

/// The selection plugin (`--selector`, else the configured one, else the built-in) and,
/// for one that is not built in, the built-in to fall back on.
fn selector_for(env: &Env) -> Result<(LoadedPlugin, Option<LoadedPlugin>)> {
    let spec = env
        .args
        .selector
        .clone()
        .or_else(|| env.project.mtest.selector.clone())
        .unwrap_or_else(|| builtins::DEFAULT_SELECTOR.to_string());
    let selector = discovery::resolve(env.host, env.root, &spec, Source::Config)?;
    let fallback = match selector.source {
        Source::Builtin => None,
        _ => builtins::load(env.host, builtins::DEFAULT_SELECTOR).and_then(|r| r.ok()),
    };
    Ok((selector, fallback))
}

/// What `--changed` decided: why each test it keeps is kept, the tests it would leave out
/// under `--verify`, its notes.
#[derive(Default)]
struct ChangedPlan {
    reasons: FastMap<String, String>,
    left_out: Vec<String>,
    notes: Vec<String>,
}

/// `--changed` among the candidates: why a change reaches each test it reaches (for the
/// selector), and under `--verify` the ones it would leave out.
fn changed_plan(
    env: &Env,
    opts: &RunOptions,
    asked: &crate::store::state::Changed,
    items: &[Item],
) -> Result<ChangedPlan> {
    let stores = changed::Stores {
        impact: env.impact,
        durations: env.durations,
    };
    let own;
    let checked = match env.checked {
        Some(checked) => Some(checked),
        None => {
            own = changed::check(opts, env.root, env.impact, asked)?;
            own.as_ref()
        }
    };
    let only = changed::changed_only(stores, checked, items);
    let mut plan = ChangedPlan {
        notes: only.notes,
        ..ChangedPlan::default()
    };
    if asked.verify {
        let keep: FastSet<usize> = only.kept.iter().map(|(i, _)| *i).collect();
        plan.left_out = (0..items.len())
            .filter(|i| !keep.contains(i))
            .map(|i| items[i].id.clone())
            .collect();
        plan.notes.push(format!(
            "--verify: every test runs; --changed would have left out {}",
            plan.left_out.len()
        ));
    }
    for (i, why) in only.kept {
        plan.reasons.insert(items[i].id.clone(), why);
    }
    Ok(plan)
}

/// `--lf`: the tests whose latest outcome in the history is a failure, with their indices
/// among the collected items; none (all run, as pytest does) when no test failed.
fn only_failed_last(
    env: &Env,
    items: &[Item],
    notes: &mut Vec<String>,
) -> Option<(Vec<Item>, Vec<usize>)> {
    let kept: Vec<usize> = (0..items.len())
        .filter(|&i| env.durations.failed_last(&items[i].id))
        .collect();
    if kept.is_empty() {
        notes.push("--lf: no test failed last time: running all".to_string());
        return None;
    }
    notes.push(format!(
        "--lf: {} test(s) that failed last time",
        kept.len()
    ));
    Some((kept.iter().map(|&i| items[i].clone()).collect(), kept))
}

/// `--budget`: what the tests may take of it (collection and the run's end taken off),
/// in the history's usable milliseconds; says how it was reckoned.
fn budget_for_tests(env: &Env, budget_s: f64, notes: &mut Vec<String>) -> u64 {
    let spent = env.started.elapsed();
    let left = budget_left(budget_s, spent + env.ending);
    let share = env
        .durations
        .throughput
        .map(|t| {
            format!(
                ", at the last run's pace (its tests filled {:.0}% of the workers' time)",
                t * 100.0
            )
        })
        .unwrap_or_default();
    notes.push(format!(
        "--budget {}: collection took {}, the run's end is given {} (the last run's), the tests are planned in the {} left{share}",
        clock::human(clock::secs(budget_s)),
        clock::human(spent),
        clock::human(env.ending),
        clock::human(left)
    ));
    env.durations.usable_ms(budget_left_ms(left))
}

/// `--ff`: the tests that failed last time first, each part in the selection's order.
fn failed_first(env: &Env, selected: &mut selection::Selected, notes: &mut Vec<String>) {
    let (mut first, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut selected.tests)
        .into_iter()
        .partition(|t| env.durations.failed_last(&t.id));
    notes.push(format!(
        "--ff: {} test(s) that failed last time first",
        first.len()
    ));
    first.extend(rest);
    selected.tests = first;
}

/// `--repeat` and new-test-repeats: how many times each test runs.
fn repeats(
    env: &Env,
    opts: &RunOptions,
    selected: &mut selection::Selected,
    notes: &mut Vec<String>,
) {
    let mut new_repeated = 0;
    for t in &mut selected.tests {
        t.runs = opts.repeat.max(1);
        if opts.new_test_repeats > t.runs && !env.durations.tests.contains_key(&t.id) {
            t.runs = opts.new_test_repeats;
            new_repeated += 1;
        }
    }
    if opts.repeat > 1 {
        notes.push(format!(
            "--repeat {}: every test runs {} times, each time in a fresh worker",
            opts.repeat, opts.repeat
        ));
    }
    if new_repeated > 0 {
        notes.push(format!(
            "new-test-repeats: {new_repeated} new test(s) run {} times",
            opts.new_test_repeats
        ));
    }
}

pub(super) fn nothing_selected(collected: &Collected, opts: &RunOptions) -> Stop {
    if opts.changed.is_some() {
        return Stop(
            Exit::NothingSelected,
            "nothing selected: no change reaches any test (--changed)".into(),
        );
    }
    Stop(
        Exit::NothingSelected,
        format!(
            "nothing selected: {} test(s) collected, none left after tiers{}{}",
            collected.items.len(),
            if opts.budget_s.is_some() {
                " and budget"
            } else {
                ""
            },
            if opts.keyword.is_some() || opts.markexpr.is_some() {
                " (-k/-m applied when collecting)"
            } else {
                ""
            }
        ),
    )
}

/// Collects, selects, and writes the new run's state. Returns the state, the records of
/// modules that failed to collect, and the collection (with the zygote in fork mode).
pub(super) fn fresh_state(
    env: &Env,
    opts: RunOptions,
    collection: Collection,
) -> Result<(RunState, Vec<TestRecord>, Collection)> {
    let Planned {
        collection,
        selected,
        notes,
        left_out,
        ..
    } = plan_selection(env, &opts, collection)?;
    let collected = &collection.collected;
    let run_id = new_run_id();
    // Every shard collects every module; a module's collection error (or skip) is
    // recorded by one of them (merged runs have it once).
    let ours = |id: &str| {
        opts.shard
            .is_none_or(|s| crate::shard::key(id) % u64::from(s.count) == u64::from(s.index - 1))
    };
    let mut errors: Vec<TestRecord> = collected
        .errors
        .iter()
        .filter(|e| ours(&e.id))
        .map(|e| {
            let mut r = collection_error_record(&run_id, collected, &e.id, &e.text);
            if let Some(m) = &e.message {
                r.message = Some(m.clone());
            }
            r
        })
        .collect();
    errors.extend(
        collected
            .skipped
            .iter()
            .filter(|(id, _)| ours(id))
            .map(|(id, reason)| collection_skip_record(&run_id, id, reason.as_deref())),
    );
    // A shard may have nothing to do (more shards than tests, or no change reaches its
    // tests); it still runs, empty, so that `mtest merge` finds every shard.
    let empty_shard = selected.shard_plan.as_ref().is_some_and(|p| p.eligible > 0)
        || (opts.shard.is_some() && opts.changed.is_some());
    if selected.tests.is_empty() && errors.is_empty() && !empty_shard {
        return Err(nothing_selected(collected, &opts));
    }
    env.gates.rotate_last_run()?;
    let now = clock::now();
    let mut opts = opts;
    if opts.stop_after_failures().is_none() {
        // pytest's own -x / --maxfail counts failing tests over the whole run, as mtest's.
        opts.max_fail = collected.pytest_maxfail;
    }
    let state = RunState {
        schema_version: STATE_SCHEMA,
        run_id,
        status: Status::Running,
        started_at: env.started_at.clone(),
        updated_at: now,
        command: command_line(),
        options: opts,
        notes,
        tests: selected.tests,
        // With the files `--changed` left out of collection: a process-mode chunk names
        // its files rather than a directory that holds those too.
        collected_files: collected
            .items
            .iter()
            .map(|i| i.file.clone())
            .chain(
                env.checked
                    .into_iter()
                    .flat_map(|c| c.skipped_files().iter().cloned()),
            )
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        initial_paths: collected.initial_paths.clone(),
        pytest_cache: collected.cache_dir.clone(),
        shard_plan: selected.shard_plan,
        exit_code: None,
        ending_s: None,
        changed_left_out: left_out,
    };
    state::write_start(&env.gates.state(), &state)?;
    Ok((state, errors, collection))
}

/// How `xdist_group`s are placed, one line each, for `--explain-selection`.
pub(super) fn group_placement(tests: &[PlannedTest]) -> Vec<String> {
    let mut groups: std::collections::BTreeMap<&str, usize> = Default::default();
    for t in tests {
        if let Some(g) = &t.group {
            *groups.entry(g).or_default() += 1;
        }
    }
    groups
        .into_iter()
        .map(|(g, n)| {
            format!(
                "xdist_group {g}: its {n} test(s) run on one worker, in the order they were collected, one after another (as pytest-xdist's --dist loadgroup)"
            )
        })
        .collect()
}

/// `--explain-selection`: what would run, in order, and why the rest would not.
pub(super) fn explain(env: &Env) -> Result<Exit> {
    let opts = options(env.args, env.root, env.project)?;
    let stores = changed::Stores {
        impact: env.impact,
        durations: env.durations,
    };
    let (collection, checked) = match &opts.changed {
        Some(asked) if !asked.verify => changed::start(env.gates, env.root, &opts, stores)?,
        _ => (
            start_collection(env.gates, env.root, &opts, &[], None)?,
            None,
        ),
    };
    let env = &Env {
        checked: checked.as_ref(),
        started_at: env.started_at.clone(),
        ..*env
    };
    let Planned {
        collection,
        selected,
        notes,
        reasons,
        left_out,
    } = plan_selection(env, &opts, collection)?;
    let collected = &collection.collected;
    let total: u64 = selected.tests.iter().map(|t| t.estimate_ms as u64).sum();
    println!(
        "would run {} of {} collected test(s), estimated {} of test time, in this order:",
        selected.tests.len(),
        collected.items.len(),
        clock::human(std::time::Duration::from_millis(total))
    );
    for (n, t) in selected.tests.iter().enumerate() {
        let why = reasons
            .get(&t.id)
            .map(|r| format!("  [{r}]"))
            .unwrap_or_default();
        println!("{:>6}. {}{why}", n + 1, explain_test(env, t));
    }
    if opts.changed.is_some() {
        let unchanged = selected
            .excluded
            .iter()
            .filter(|(_, r)| *r == ExclusionReason::Unchanged)
            .count();
        println!(
            "{} test(s) no change reaches would be left out",
            unchanged.max(left_out.len())
        );
    }
    for line in group_placement(&selected.tests) {
        println!("{line}");
    }
    let (other_shards, excluded): (Vec<_>, Vec<_>) = selected
        .excluded
        .iter()
        .filter(|(_, reason)| *reason != ExclusionReason::Unchanged)
        .partition(|(_, reason)| *reason == ExclusionReason::Shard);
    if !other_shards.is_empty() {
        println!("{} test(s) belong to the other shards", other_shards.len());
    }
    if !excluded.is_empty() {
        println!("would leave out {} test(s):", excluded.len());
        let histories = env
            .durations
            .histories(collected.items.iter().map(|i| i.id.as_str()));
        let q = selection::estimate_quantile(opts.budget_s.is_some());
        let estimates = selection::estimates(&collected.items, &histories, q);
        for &(i, reason) in excluded {
            let item = &collected.items[i];
            let reason = match reason {
                ExclusionReason::Tier => "not in the selected tiers",
                ExclusionReason::Budget => "does not fit the budget",
                ExclusionReason::Policy => "the selection plugin's policy",
                ExclusionReason::Shard => "in another shard",
                ExclusionReason::Unchanged => "no change reaches it",
            };
            println!(
                "        tier {}  ~{:>7}  {}  ({reason})",
                crate::tiers::tier_of(&item.markers),
                human_ms(estimates[i]),
                item.id
            );
        }
    }
    for e in &collected.errors {
        println!("collection error (would be recorded as `error`): {}", e.id);
    }
    for note in &notes {
        println!("note: {note}");
    }
    if selected.tests.is_empty() && collected.errors.is_empty() {
        return Ok(Exit::NothingSelected);
    }
    Ok(Exit::Ok)
}

fn human_ms(ms: u32) -> String {
    clock::human(std::time::Duration::from_millis(u64::from(ms)))
}

/// A selected test's line: its tier, estimate, id, marks, and why it comes early.
fn explain_test(env: &Env, t: &PlannedTest) -> String {
    let why = if t.tier == 0 {
        "  (tier 0)"
    } else if env
        .durations
        .tests
        .get(&t.id)
        .is_some_and(|h| h.failure_score > 0.05 || h.recent_failures() > 0)
    {
        "  (recently failing)"
    } else {
        ""
    };
    let q = if t.quarantined { " [quarantined]" } else { "" };
    let g = t
        .group
        .as_ref()
        .map(|g| format!(" [xdist_group {g}]"))
        .unwrap_or_default();
    format!(
        "tier {}  ~{:>7}  {}{q}{g}{why}",
        t.tier,
        human_ms(t.estimate_ms),
        t.id
    )
}
