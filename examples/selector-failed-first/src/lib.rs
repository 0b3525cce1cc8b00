//! `selector-failed-first`: what broke last time runs first, so a red build turns red fast.
//!
//! Order: tests that failed recently (by failure score, highest first), then every other
//! test by its expected duration, shortest first. Tiers are honoured; with a budget, tests
//! are taken in that order while they fit.

// mtest's WIT, from this repository; in your own project, copy mtest's `wit/` next to
// Cargo.toml and write `path: "wit"`.
wit_bindgen::generate!({ world: "selection-plugin", path: "../../wit" });

use exports::mtest::plugin::identity::Guest as Identity;
use exports::mtest::plugin::selector::{
    Candidate, Exclusion, ExclusionReason, Guest as Selector, Selection, SelectionRequest,
};
use mtest::plugin::types::{Outcome, PluginInfo, PluginKind};

struct FailedFirst;

impl Identity for FailedFirst {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "failed-first".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Selection,
            description: "recently failed tests first, then the rest shortest first".into(),
        }
    }
}

fn failed_recently(c: &Candidate) -> bool {
    c.recent_failures > 0
        || c.failure_score > 0.0
        || matches!(
            c.last_outcome,
            Some(Outcome::Failed | Outcome::Error | Outcome::Hung | Outcome::Crashed)
        )
}

impl Selector for FailedFirst {
    fn select(req: SelectionRequest) -> Result<Selection, String> {
        let mut excluded = Vec::new();
        let mut tests: Vec<&Candidate> = Vec::new();
        for c in &req.candidates {
            let reason = if !(c.tier < 8 && req.tiers & (1 << c.tier) != 0) {
                ExclusionReason::Tier
            } else if req.changed && c.impacted.is_none() {
                // `mtest --changed`: only the tests a change reaches.
                ExclusionReason::Unchanged
            } else {
                tests.push(c);
                continue;
            };
            excluded.push(Exclusion {
                index: c.index,
                reason,
            });
        }
        tests.sort_by(|a, b| {
            failed_recently(b)
                .cmp(&failed_recently(a))
                .then(b.failure_score.total_cmp(&a.failure_score))
                .then(a.estimate_ms.cmp(&b.estimate_ms))
                .then(a.index.cmp(&b.index))
        });
        let mut selected = Vec::new();
        let mut left = req.budget_ms.map(|b| b as f64 * req.workers.max(1) as f64);
        for c in tests {
            match left.as_mut() {
                Some(left) if (c.estimate_ms as f64) > *left => excluded.push(Exclusion {
                    index: c.index,
                    reason: ExclusionReason::Budget,
                }),
                Some(left) => {
                    *left -= c.estimate_ms as f64;
                    selected.push(c.index);
                }
                None => selected.push(c.index),
            }
        }
        Ok(Selection {
            selected,
            excluded,
            notes: vec!["order: recently failed first, then shortest first".into()],
        })
    }
}

export!(FailedFirst);
