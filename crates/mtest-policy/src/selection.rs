//! The host side of selection: collected items + history → candidates → the selection
//! plugin → the ordered tests to run. A failing user plugin falls back to the built-in.

use std::collections::BTreeMap;

use crate::FastMap;

use crate::plugin_host::bindings::WitOutcome;
use crate::plugin_host::session::{
    Candidate, ExclusionReason, Selection, SelectionRequest, SelectionSession, Shard as WitShard,
};
use crate::plugin_host::{LoadedPlugin, PluginError, PluginHost};
use crate::pytest::events::Item;
use crate::record::PlannedTest;
use crate::shard::{self, Shard, ShardPlan};
use crate::store::durations::{median, Durations, History, FLAKY_WINDOW};
use crate::store::quarantine::Quarantine;
use crate::tiers::{tier_of, TAXONOMY};

/// Estimate for a test nobody has timed, in a suite nobody has timed: with the 15-second
/// chunk target this gives the ~300 tests per chunk that suit unknown suites.
pub(crate) const DEFAULT_ESTIMATE_MS: u32 = 50;

pub struct Selected {
    pub tests: Vec<PlannedTest>,
    /// Collected items left out (index into the items), with the plugin's reason.
    pub excluded: Vec<(usize, ExclusionReason)>,
    pub notes: Vec<String>,
    pub left_out_by_tier: usize,
    /// With `--shard`: the partition this shard ran, for `mtest merge`.
    pub shard_plan: Option<ShardPlan>,
    /// Set when the configured plugin failed and the built-in answered instead.
    pub fallback: Option<String>,
}

pub struct Inputs<'a> {
    pub items: &'a [Item],
    pub durations: &'a Durations,
    pub quarantine: &'a Quarantine,
    pub tiers: u8,
    pub budget_ms: Option<u64>,
    pub workers: u32,
    pub startup_ms: u32,
    pub chunk_size: u32,
    pub shard: Option<Shard>,
    /// `--changed`: why a change reaches each test it reaches (by id), and whether only
    /// those are to be selected (not under `--verify`).
    pub changes: Option<Changes<'a>>,
}

#[derive(Clone, Copy)]
pub struct Changes<'a> {
    pub reached: &'a FastMap<String, String>,
    pub only: bool,
}

/// Which quantile of a test's past durations estimates it: the median, or with a
/// `--budget` the upper quartile. A run's tests are not as fast as their medians each
/// time: on anyio's suite, one run's tests took 52.9 s against 46.2 s of medians and
/// 51.4 s of upper quartiles; a budget planned on medians ran out with 329 tests not run.
pub fn estimate_quantile(budget: bool) -> f64 {
    if budget {
        0.75
    } else {
        0.5
    }
}

/// Per-item estimates: own history's `q` quantile, else the median of its file's, else of
/// the suite's. `histories` are the items' own, in the same order.
pub fn estimates(items: &[Item], histories: &[Option<&History>], q: f64) -> Vec<u32> {
    let own: Vec<Option<u32>> = histories
        .iter()
        .map(|h| h.and_then(|h| h.quantile_ms(q)))
        .collect();
    let mut per_file: FastMap<&str, Vec<f64>> = FastMap::default();
    for (item, est) in items.iter().zip(&own) {
        if let Some(ms) = est {
            per_file
                .entry(item.file.as_str())
                .or_default()
                .push(*ms as f64);
        }
    }
    let all: Vec<f64> = own.iter().flatten().map(|ms| *ms as f64).collect();
    let suite = median(&all)
        .map(|m| m as u32)
        .unwrap_or(DEFAULT_ESTIMATE_MS);
    items
        .iter()
        .zip(own)
        .map(|(item, est)| {
            est.or_else(|| {
                per_file
                    .get(item.file.as_str())
                    .and_then(|v| median(v))
                    .map(|m| m as u32)
            })
            .unwrap_or(suite)
        })
        .collect()
}

/// Builds the request: files and markers become tables, candidates carry indices.
pub(crate) fn request(inputs: &Inputs) -> SelectionRequest {
    let mut files: Vec<String> = Vec::new();
    let mut file_index: FastMap<&str, u32> = FastMap::default();
    let mut marker_names: Vec<String> = TAXONOMY.iter().map(|(m, _)| m.to_string()).collect();
    let mut counts: FastMap<&str, usize> = FastMap::default();
    for item in inputs.items {
        for m in &item.markers {
            if !TAXONOMY.iter().any(|(t, _)| t == m) {
                *counts.entry(m.as_str()).or_default() += 1;
            }
        }
    }
    let mut others: Vec<(&str, usize)> = counts.into_iter().collect();
    others.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    marker_names.extend(
        others
            .into_iter()
            .take(64 - TAXONOMY.len())
            .map(|(m, _)| m.to_string()),
    );
    let marker_bit: FastMap<&str, u64> = marker_names
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), 1u64 << i))
        .collect();

    let histories = inputs
        .durations
        .histories(inputs.items.iter().map(|i| i.id.as_str()));
    let q = estimate_quantile(inputs.budget_ms.is_some());
    let estimates = estimates(inputs.items, &histories, q);
    let mut changes: Vec<String> = Vec::new();
    let mut change_index: FastMap<&str, u32> = FastMap::default();
    let candidates = inputs
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let file = *file_index.entry(item.file.as_str()).or_insert_with(|| {
                files.push(item.file.clone());
                (files.len() - 1) as u32
            });
            let history = histories[i];
            Candidate {
                index: i as u32,
                file,
                tier: tier_of(&item.markers),
                markers: item
                    .markers
                    .iter()
                    .filter_map(|m| marker_bit.get(m.as_str()))
                    .fold(0, |a, b| a | b),
                estimate_ms: estimates[i],
                last_outcome: history
                    .and_then(|h| h.outcomes.last().copied())
                    .map(Into::into),
                recent_failures: history.map(|h| h.recent_failures()).unwrap_or(0),
                failure_score: history.map(|h| h.failure_score as f32).unwrap_or(0.0),
                quarantined: inputs.quarantine.contains(&item.id),
                key: shard::key(&item.id),
                impacted: inputs
                    .changes
                    .and_then(|c| c.reached.get(&item.id))
                    .map(|why| {
                        *change_index.entry(why.as_str()).or_insert_with(|| {
                            changes.push(why.clone());
                            (changes.len() - 1) as u32
                        })
                    }),
            }
        })
        .collect();
    SelectionRequest {
        candidates,
        files,
        marker_names,
        tiers: inputs.tiers,
        budget_ms: inputs.budget_ms,
        workers: inputs.workers,
        startup_ms: inputs.startup_ms,
        chunk_size: inputs.chunk_size,
        shard: inputs.shard.map(|s| WitShard {
            index: s.index,
            count: s.count,
        }),
        changed: inputs.changes.is_some_and(|c| c.only),
        changes,
    }
}

/// What a shard's partition depends on, for `mtest merge` to tell shards of one run from
/// shards of different inputs: N, the selector, and every test of the chosen tiers with
/// its estimate (durations.json and the collection show through them).
fn shard_plan(
    shard: Shard,
    selector: &str,
    req: &SelectionRequest,
    answer: &crate::plugin_host::session::Selection,
) -> ShardPlan {
    let tier_or_policy: crate::FastSet<u32> = answer
        .excluded
        .iter()
        .filter(|x| {
            matches!(
                x.reason,
                ExclusionReason::Tier | ExclusionReason::Policy | ExclusionReason::Unchanged
            )
        })
        .map(|x| x.index)
        .collect();
    let others = answer
        .excluded
        .iter()
        .filter(|x| x.reason == ExclusionReason::Shard)
        .count();
    let mut eligible: Vec<(u64, u32)> = req
        .candidates
        .iter()
        .filter(|c| !tier_or_policy.contains(&c.index))
        .map(|c| (c.key, c.estimate_ms))
        .collect();
    eligible.sort_unstable();
    let mut hasher = blake3::Hasher::new();
    hasher.update(format!("{}\n{selector}\n{}\n", shard.count, req.tiers).as_bytes());
    for (key, ms) in &eligible {
        hasher.update(&key.to_le_bytes());
        hasher.update(&ms.to_le_bytes());
    }
    ShardPlan {
        shard,
        plan: hasher.finalize().to_hex()[..16].to_string(),
        eligible: eligible.len(),
        own: eligible.len().saturating_sub(others),
    }
}

/// The tests of each `xdist_group` run in the order they were collected, as pytest-xdist's
/// `--dist loadgroup` runs them (a group's tests may depend on each other's order): each
/// group's places in `order` are kept, its tests put back into them in collection order.
/// `order` holds indices into `items`, which are in collection order.
fn groups_in_collection_order(order: &mut [u32], items: &[Item]) {
    let mut places: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (at, &i) in order.iter().enumerate() {
        if let Some(g) = items.get(i as usize).and_then(|item| item.group.as_deref()) {
            places.entry(g).or_default().push(at);
        }
    }
    for at in places.values() {
        let mut members: Vec<u32> = at.iter().map(|&p| order[p]).collect();
        members.sort_unstable();
        for (&p, m) in at.iter().zip(members) {
            order[p] = m;
        }
    }
}

/// A quarantined test's failure is forgiven only if the test is flaky: it passed lately.
fn forgiven(durations: &Durations, id: &str) -> bool {
    durations.tests.get(id).is_some_and(History::passed_lately)
}

/// Why a policy plugin (the selector, the quarantine policy) gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The configured plugin could not be found or loaded.
    #[error(transparent)]
    NotLoaded(#[from] crate::plugin_host::discovery::ResolveError),
    /// It failed, and there is no built-in to fall back on.
    #[error(transparent)]
    Failed(#[from] PluginError),
    #[error("{failed}; the built-in fallback failed too: {fallback}")]
    FallbackFailed {
        failed: PluginError,
        fallback: PluginError,
    },
    #[error("--shard {shard}: the selector {selector} left no test to the other shards (a selector that ignores --shard would run every test on every shard); use the built-in {} or a selector that shards", crate::plugin_host::builtins::DEFAULT_SELECTOR)]
    ShardIgnored { shard: Shard, selector: String },
}

/// Asks `plugin`; if it fails and a `fallback` is given, asks that and says so.
pub fn select(
    host: &PluginHost,
    plugin: &LoadedPlugin,
    fallback: Option<&LoadedPlugin>,
    inputs: &Inputs,
) -> Result<Selected, PolicyError> {
    let req = request(inputs);
    let (answer, used, fallback_note) = ask(host, (plugin, fallback), &req)?;
    if let Some(shard) = inputs.shard {
        let to_others = answer
            .excluded
            .iter()
            .any(|x| x.reason == ExclusionReason::Shard);
        if shard.count > 1 && answer.selected.len() >= 2 && !to_others {
            return Err(PolicyError::ShardIgnored {
                shard,
                selector: used.label(),
            });
        }
    }
    let mut order = answer.selected.clone();
    groups_in_collection_order(&mut order, inputs.items);
    let tests: Vec<PlannedTest> = order.iter().map(|&i| planned(inputs, &req, i)).collect();
    let count = |r: ExclusionReason| answer.excluded.iter().filter(|x| x.reason == r).count();
    let shard_plan = inputs
        .shard
        .map(|shard| shard_plan(shard, &used.info.name, &req, &answer));
    let excluded = excluded(&answer, inputs.items.len());
    let mut notes = answer.notes;
    // Quarantined, and not forgiven by `planned`.
    notes.extend(
        order
            .iter()
            .zip(&tests)
            .filter(|(&i, t)| req.candidates[i as usize].quarantined && !t.quarantined)
            .map(|(_, t)| {
                format!(
                    "{} is quarantined but did not pass in its last {FLAKY_WINDOW} runs: broken, not flaky, so a failure fails the run",
                    t.id
                )
            }),
    );
    Ok(Selected {
        tests,
        excluded,
        notes,
        left_out_by_tier: count(ExclusionReason::Tier),
        shard_plan,
        fallback: fallback_note,
    })
}

/// The selector's answer, the plugin that gave it, and the note said when that was the
/// fallback.
fn ask<'p>(
    host: &PluginHost,
    (plugin, fallback): (&'p LoadedPlugin, Option<&'p LoadedPlugin>),
    req: &SelectionRequest,
) -> Result<(Selection, &'p LoadedPlugin, Option<String>), PolicyError> {
    let ask = |p: &LoadedPlugin| SelectionSession::start(host, p).and_then(|mut s| s.select(req));
    match ask(plugin) {
        Ok(sel) => Ok((sel, plugin, None)),
        Err(e) => match fallback {
            Some(fb) => {
                let sel = ask(fb).map_err(|e2| PolicyError::FallbackFailed {
                    failed: e.clone(),
                    fallback: e2,
                })?;
                let note = format!("{e}; used the built-in {} instead", fb.label());
                Ok((sel, fb, Some(note)))
            }
            None => Err(e.into()),
        },
    }
}

/// Collected item `i` as the run plans it.
fn planned(inputs: &Inputs, req: &SelectionRequest, i: u32) -> PlannedTest {
    let item = &inputs.items[i as usize];
    let c = &req.candidates[i as usize];
    PlannedTest {
        id: item.id.clone(),
        file: item.file.clone(),
        line: item.line,
        markers: item.markers.clone(),
        tier: c.tier,
        estimate_ms: c.estimate_ms,
        timeout_s: item.timeout,
        quarantined: c.quarantined && forgiven(inputs.durations, &item.id),
        isolate: c.last_outcome == Some(WitOutcome::Crashed),
        runs: 1,
        group: item.group.clone(),
    }
}

/// The items the answer left out, and why; an item it neither selected nor excluded is
/// left out by its policy.
fn excluded(answer: &Selection, items: usize) -> Vec<(usize, ExclusionReason)> {
    let mut excluded: Vec<(usize, ExclusionReason)> = answer
        .excluded
        .iter()
        .map(|x| (x.index as usize, x.reason))
        .collect();
    let mut accounted = vec![false; items];
    for &i in answer
        .selected
        .iter()
        .chain(answer.excluded.iter().map(|x| &x.index))
    {
        accounted[i as usize] = true;
    }
    excluded.extend(
        accounted
            .iter()
            .enumerate()
            .filter(|(_, a)| !**a)
            .map(|(i, _)| (i, ExclusionReason::Policy)),
    );
    excluded
}
