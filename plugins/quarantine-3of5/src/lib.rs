//! `quarantine-3of5`: mtest's default quarantine policy.
//!
//! A flaky test enters quarantine after 3 failures among its last 5 runs, and leaves after
//! 3 consecutive passes. Flaky means seen both to pass and to fail: a test that did not
//! pass once in its last 5 runs is broken, not flaky: it never enters, and leaves if it
//! was in. Skips say nothing about flakiness and are ignored.

wit_bindgen::generate!({
    world: "quarantine-plugin",
    path: "../../wit",
});

use exports::mtest::plugin::identity::Guest as Identity;
use exports::mtest::plugin::quarantine::{Decision, Guest as Quarantine, TestHistory, Verdict};
use mtest::plugin::types::{Outcome, PluginInfo, PluginKind};

const WINDOW: usize = 5;
const FAILURES_TO_ENTER: usize = 3;
const PASSES_TO_LEAVE: usize = 3;

struct ThreeOfFive;

impl Identity for ThreeOfFive {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "quarantine-3of5".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::QuarantinePolicy,
            description:
                "enter after 3 failures and a pass in the last 5 runs; leave after 3 passes in a row, or no pass in 5"
                    .into(),
        }
    }
}

fn is_failure(o: Outcome) -> bool {
    matches!(
        o,
        Outcome::Failed | Outcome::Error | Outcome::Hung | Outcome::Crashed
    )
}

fn is_pass(o: Outcome) -> bool {
    matches!(o, Outcome::Passed | Outcome::Xfailed)
}

impl Quarantine for ThreeOfFive {
    fn decide(histories: Vec<TestHistory>) -> Result<Vec<Decision>, String> {
        let mut decisions = Vec::new();
        for (i, h) in histories.iter().enumerate() {
            let runs: Vec<Outcome> = h
                .recent
                .iter()
                .copied()
                .filter(|o| *o != Outcome::Skipped)
                .collect();
            let window = &runs[runs.len().saturating_sub(WINDOW)..];
            let passed = window.iter().any(|o| is_pass(*o));
            if h.quarantined {
                let streak = runs.iter().rev().take_while(|o| is_pass(**o)).count();
                if !passed && !window.is_empty() {
                    decisions.push(Decision {
                        index: i as u32,
                        verdict: Verdict::Leave,
                        reason: format!(
                            "no pass in the last {} runs: broken, not flaky",
                            window.len()
                        ),
                    });
                } else if streak >= PASSES_TO_LEAVE {
                    decisions.push(Decision {
                        index: i as u32,
                        verdict: Verdict::Leave,
                        reason: format!("{streak} consecutive passes"),
                    });
                }
            } else {
                let failures = window.iter().filter(|o| is_failure(**o)).count();
                if failures >= FAILURES_TO_ENTER && passed {
                    decisions.push(Decision {
                        index: i as u32,
                        verdict: Verdict::Enter,
                        reason: format!("{failures} failures in the last {} runs", window.len()),
                    });
                }
            }
        }
        Ok(decisions)
    }
}

export!(ThreeOfFive);
