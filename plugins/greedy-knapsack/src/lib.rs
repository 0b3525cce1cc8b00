//! `greedy-knapsack`: mtest's default selection plugin.
//!
//! Without a budget it runs every test in the chosen tiers, tier-0 first, then recently
//! failing tests, then the rest in collection order. With a budget it packs greedily:
//! tier-0 and recently failing tests are taken first (cheapest first, so a tight budget
//! still holds as many of them as possible), then the rest by value per millisecond,
//! where a lower tier is worth more. Each test is charged its share of the start-up of the
//! chunk it will run in, and the budget is multiplied by the number of parallel workers.
//!
//! With `--changed` it keeps only the tests a change reaches (`impacted`), and then does
//! the above among them.
//!
//! With `--shard K/N` it first partitions the tests of the chosen tiers into N shards of
//! about equal estimated time (longest first, each to the least loaded shard), keeping a
//! file whole unless it alone is more than a quarter of a shard; then the budget, if any,
//! applies to shard K. The partition depends on the request alone (estimates, files, the
//! tests' `key`s), never on the collection order, so every shard computes the same one.

wit_bindgen::generate!({
    world: "selection-plugin",
    path: "../../wit",
});

use exports::mtest::plugin::identity::Guest as Identity;
use exports::mtest::plugin::selector::{
    Candidate, Exclusion, ExclusionReason, Guest as Selector, Selection, SelectionRequest, Shard,
};
use mtest::plugin::types::{Outcome, PluginInfo, PluginKind};

struct GreedyKnapsack;

impl Identity for GreedyKnapsack {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "greedy-knapsack".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Selection,
            description: "value/cost greedy under the budget; tier-0 and recently failing first"
                .into(),
        }
    }
}

/// Priority class: lower runs (and is packed) first.
fn class(c: &Candidate) -> u8 {
    if c.tier == 0 {
        0
    } else if recently_failing(c) {
        1
    } else {
        2
    }
}

fn recently_failing(c: &Candidate) -> bool {
    c.failure_score > 0.05
        || c.recent_failures > 0
        || matches!(
            c.last_outcome,
            Some(Outcome::Failed | Outcome::Error | Outcome::Hung | Outcome::Crashed)
        )
}

/// What running a test is worth: smoke tests most, nightly tests least.
fn value(c: &Candidate) -> f64 {
    match c.tier {
        0 => 8.0,
        1 => 4.0,
        2 => 2.0,
        _ => 1.0,
    }
}

impl Selector for GreedyKnapsack {
    fn select(req: SelectionRequest) -> Result<Selection, String> {
        let mut excluded = Vec::new();
        let mut eligible: Vec<&Candidate> = Vec::with_capacity(req.candidates.len());
        for c in &req.candidates {
            let reason = if !(c.tier < 8 && req.tiers & (1 << c.tier) != 0) {
                ExclusionReason::Tier
            } else if req.changed && c.impacted.is_none() {
                ExclusionReason::Unchanged
            } else {
                eligible.push(c);
                continue;
            };
            excluded.push(Exclusion {
                index: c.index,
                reason,
            });
        }

        let mut notes = Vec::new();
        if let Some(shard) = req.shard {
            let (mine, others, note) = partition(&req, eligible, shard)?;
            excluded.extend(others.iter().map(|c| Exclusion {
                index: c.index,
                reason: ExclusionReason::Shard,
            }));
            notes.push(note);
            eligible = mine;
        }

        let Some(budget_ms) = req.budget_ms else {
            // Stable sort: collection order is kept inside each class.
            eligible.sort_by_key(|c| class(c));
            return Ok(Selection {
                selected: eligible.iter().map(|c| c.index).collect(),
                excluded,
                notes,
            });
        };

        let workers = req.workers.max(1) as f64;
        let per_test_startup = req.startup_ms as f64 / req.chunk_size.max(1) as f64;
        let cost = |c: &Candidate| c.estimate_ms as f64 + per_test_startup;
        // Every worker pays at least one start-up before its first test.
        let mut capacity = budget_ms as f64 * workers - req.startup_ms as f64 * workers;

        // Must-run classes cheapest first; the rest by value density, best first.
        eligible.sort_by(|a, b| {
            class(a).cmp(&class(b)).then_with(|| {
                if class(a) < 2 {
                    cost(a).total_cmp(&cost(b))
                } else {
                    (value(b) / cost(b)).total_cmp(&(value(a) / cost(a)))
                }
            })
        });

        let mut selected = Vec::with_capacity(eligible.len());
        let (mut left_out, mut left_out_ms) = (0u32, 0f64);
        for c in eligible {
            let cost = cost(c);
            if cost <= capacity {
                capacity -= cost;
                selected.push(c);
            } else {
                left_out += 1;
                left_out_ms += c.estimate_ms as f64;
                excluded.push(Exclusion {
                    index: c.index,
                    reason: ExclusionReason::Budget,
                });
            }
        }
        // Run order: must-run classes first, then collection order (keeps files together).
        selected.sort_by_key(|c| (class(c), c.index));

        if left_out > 0 {
            notes.push(format!(
                "budget {}: left out {left_out} test(s), estimated {} of test time",
                human_ms(budget_ms as f64),
                human_ms(left_out_ms)
            ));
        }
        Ok(Selection {
            selected: selected.iter().map(|c| c.index).collect(),
            excluded,
            notes,
        })
    }
}

/// Splits `eligible` into `shard.count` shards by estimated time and returns this shard's
/// tests (in their given order), the other shards' tests, and a note with every shard's
/// estimate. Longest-processing-time first: units sorted by estimate (longest first, ties
/// by key), each given to the shard with the least estimated time so far (ties to the
/// lowest shard). A unit is a whole file, or one test of a file estimated at more than a
/// quarter of a shard (a file that big would unbalance the shards whole).
fn partition<'c>(
    req: &SelectionRequest,
    eligible: Vec<&'c Candidate>,
    shard: Shard,
) -> Result<(Vec<&'c Candidate>, Vec<&'c Candidate>, String), String> {
    let n = shard.count as usize;
    if n == 0 || shard.index == 0 || shard.index > shard.count {
        return Err(format!(
            "shard {}/{}: the shard must be between 1 and the number of shards",
            shard.index, shard.count
        ));
    }
    let est = |c: &Candidate| u64::from(c.estimate_ms.max(1));
    let total: u64 = eligible.iter().map(|c| est(c)).sum();
    let split_above = total / n as u64 / 4;
    // Per file: its tests and their total estimate.
    let mut files: Vec<(u64, Vec<&Candidate>)> = vec![(0, Vec::new()); req.files.len()];
    for c in &eligible {
        if let Some(f) = files.get_mut(c.file as usize) {
            f.0 += est(c);
            f.1.push(c);
        }
    }
    // Units: (estimate, tie-break key, member keys).
    let mut units: Vec<(u64, u64, Vec<u64>)> = Vec::new();
    for (ms, tests) in files.into_iter().filter(|f| !f.1.is_empty()) {
        if ms > split_above && tests.len() > 1 {
            units.extend(tests.iter().map(|c| (est(c), c.key, vec![c.key])));
        } else {
            let keys: Vec<u64> = tests.iter().map(|c| c.key).collect();
            let first = keys.iter().copied().min().unwrap_or(0);
            units.push((ms, first, keys));
        }
    }
    units.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut load = vec![0u64; n];
    let mut count = vec![0usize; n];
    let mut owner: std::collections::HashMap<u64, usize> =
        std::collections::HashMap::with_capacity(eligible.len());
    for (ms, _, keys) in units {
        let mut to = 0;
        for s in 1..n {
            if load[s] < load[to] {
                to = s;
            }
        }
        load[to] += ms;
        count[to] += keys.len();
        for k in keys {
            owner.insert(k, to);
        }
    }
    let me = shard.index as usize - 1;
    let (mine, others): (Vec<&Candidate>, Vec<&Candidate>) = eligible
        .into_iter()
        .partition(|c| owner.get(&c.key) == Some(&me));
    let all: Vec<String> = load
        .iter()
        .zip(&count)
        .enumerate()
        .map(|(s, (ms, tests))| format!("{}: {tests} test(s) ~{}", s + 1, human_ms(*ms as f64)))
        .collect();
    let note = format!(
        "shard {}/{}: {} test(s), estimated {} of test time (shards {})",
        shard.index,
        shard.count,
        mine.len(),
        human_ms(load[me] as f64),
        all.join(", ")
    );
    Ok((mine, others, note))
}

fn human_ms(ms: f64) -> String {
    let s = ms / 1000.0;
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

export!(GreedyKnapsack);
