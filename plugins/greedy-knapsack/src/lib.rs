//! `greedy-knapsack`: mtest's default selection plugin.
//!
//! Without a budget it runs every test in the chosen tiers, tier-0 first, then recently
//! failing tests, then the rest in collection order. With a budget it packs greedily:
//! tier-0 and recently failing tests are taken first (cheapest first, so a tight budget
//! still holds as many of them as possible), then the rest by value per millisecond,
//! where a lower tier is worth more. Each test is charged its share of the start-up of the
//! chunk it will run in, and the budget is multiplied by the number of parallel workers.

wit_bindgen::generate!({
    world: "selection-plugin",
    path: "../../wit",
});

use exports::mtest::plugin::identity::Guest as Identity;
use exports::mtest::plugin::selector::{
    Candidate, Exclusion, ExclusionReason, Guest as Selector, Selection, SelectionRequest,
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
            if c.tier < 8 && req.tiers & (1 << c.tier) != 0 {
                eligible.push(c);
            } else {
                excluded.push(Exclusion {
                    index: c.index,
                    reason: ExclusionReason::Tier,
                });
            }
        }

        let Some(budget_ms) = req.budget_ms else {
            // Stable sort: collection order is kept inside each class.
            eligible.sort_by_key(|c| class(c));
            return Ok(Selection {
                selected: eligible.iter().map(|c| c.index).collect(),
                excluded,
                notes: Vec::new(),
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

        let mut notes = Vec::new();
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

fn human_ms(ms: f64) -> String {
    let s = ms / 1000.0;
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

export!(GreedyKnapsack);
