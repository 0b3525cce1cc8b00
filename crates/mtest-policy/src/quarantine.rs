//! The host side of quarantine: after a complete run, the quarantine plugin sees the recent
//! outcomes of each test that is quarantined or did not always pass, and says who enters or
//! leaves; `quarantine.json` keeps the result.

use crate::selection::PolicyError;
use std::path::Path;

use crate::clock;
use crate::config::ProjectConfig;
use crate::plugin_host::session::{QuarantineSession, TestHistory, Verdict};
use crate::plugin_host::{builtins, discovery, LoadedPlugin, PluginHost, Source};
use crate::record::{Attempt, Outcome};
use crate::store::durations::Durations;
use crate::store::quarantine::{Entry, Quarantine};

fn policy(
    host: &PluginHost,
    root: &Path,
    project: &ProjectConfig,
) -> Result<(LoadedPlugin, Option<LoadedPlugin>), PolicyError> {
    let spec = project
        .mtest
        .quarantine_policy
        .clone()
        .unwrap_or_else(|| builtins::DEFAULT_QUARANTINE.to_string());
    let plugin =
        discovery::resolve(host, root, &spec, Source::Config).map_err(PolicyError::NotLoaded)?;
    let fallback = match plugin.source {
        Source::Builtin => None,
        _ => builtins::load(host, builtins::DEFAULT_QUARANTINE).and_then(|r| r.ok()),
    };
    Ok((plugin, fallback))
}

/// Asks the policy about the tests of this run that failed lately or are quarantined, and
/// applies its verdicts. Returns one line per change, for the summary.
pub fn apply(
    host: &PluginHost,
    root: &Path,
    project: &ProjectConfig,
    records: &[Attempt],
    durations: &Durations,
    quarantine: &mut Quarantine,
) -> Result<Vec<String>, PolicyError> {
    let histories = histories(records, durations, quarantine);
    quarantine.schema_version = 1;
    if histories.is_empty() {
        return Ok(Vec::new());
    }
    let (plugin, fallback) = policy(host, root, project)?;
    let ask =
        |p: &LoadedPlugin| QuarantineSession::start(host, p).and_then(|mut s| s.decide(&histories));
    let mut notes = Vec::new();
    let decisions = match ask(&plugin) {
        Ok(d) => d,
        Err(e) => match &fallback {
            Some(fb) => {
                notes.push(format!("{e}; used the built-in {} instead", fb.label()));
                ask(fb).map_err(|e2| PolicyError::FallbackFailed {
                    failed: e.clone(),
                    fallback: e2,
                })?
            }
            None => return Err(e.into()),
        },
    };
    for d in decisions {
        let id = &histories[d.index as usize].test_id;
        match d.verdict {
            Verdict::Enter if !quarantine.contains(id) => {
                notes.push(format!("quarantined {id}: {}", d.reason));
                quarantine.tests.insert(
                    id.clone(),
                    Entry {
                        since: clock::now(),
                        reason: d.reason,
                        by: plugin.info.name.clone(),
                    },
                );
            }
            Verdict::Leave if quarantine.contains(id) => {
                notes.push(format!("released from quarantine {id}: {}", d.reason));
                quarantine.tests.remove(id);
            }
            _ => {}
        }
    }
    Ok(notes)
}

/// What the policy is asked about: each test of the run once, in the order the run first
/// recorded it, with its last tier — unless it is not quarantined and every one of its
/// recent runs passed (it has nothing to enter quarantine for; the WIT says so).
fn histories(
    records: &[Attempt],
    durations: &Durations,
    quarantine: &Quarantine,
) -> Vec<TestHistory> {
    let mut seen: crate::FastMap<&str, usize> = crate::FastMap::default();
    seen.reserve(records.len());
    let mut tiers: Vec<(&str, u8)> = Vec::with_capacity(records.len());
    for r in records {
        match seen.entry(r.test_id.as_str()) {
            std::collections::hash_map::Entry::Occupied(at) => tiers[*at.get()].1 = r.tier,
            std::collections::hash_map::Entry::Vacant(at) => {
                at.insert(tiers.len());
                tiers.push((r.test_id.as_str(), r.tier));
            }
        }
    }
    tiers
        .iter()
        .filter_map(|&(id, tier)| {
            let quarantined = quarantine.contains(id);
            let outcomes = durations.tests.get(id).map_or(&[][..], |h| &h.outcomes[..]);
            if !quarantined && outcomes.iter().all(|o| *o == Outcome::Passed) {
                return None;
            }
            Some(TestHistory {
                test_id: id.to_string(),
                tier,
                recent: outcomes.iter().copied().map(Into::into).collect(),
                quarantined,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin_host::bindings::WitOutcome;

    fn attempt(id: &str, outcome: Outcome, tier: u8) -> Attempt {
        Attempt {
            test_id: id.into(),
            outcome,
            duration_s: 0.01,
            tier,
        }
    }

    #[test]
    fn the_policy_is_asked_about_tests_that_did_not_always_pass_or_are_quarantined() {
        use Outcome::{Failed, Passed, Skipped};
        let records = [
            attempt("t::always_passed", Passed, 1),
            attempt("t::flaky", Failed, 1),
            attempt("t::quarantined_passes", Passed, 1),
            attempt("t::skipped", Skipped, 1),
            attempt("t::failed_long_ago", Passed, 1),
            attempt("t::flaky", Passed, 2), // a retry: once, with its last tier
        ];
        let mut durations = Durations::default();
        durations.update(&records[..]);
        // Earlier runs: one failure long ago, nothing but passes for the rest.
        let old = &mut durations.tests["t::failed_long_ago"].outcomes;
        *old = vec![Failed, Passed, Passed, Passed];
        let mut quarantine = Quarantine::default();
        quarantine.tests.insert(
            "t::quarantined_passes".into(),
            crate::store::quarantine::Entry {
                since: "2026-11-27T00:00:00Z".into(),
                reason: "manual".into(),
                by: "manual".into(),
            },
        );
        let asked: Vec<(String, u8, Vec<WitOutcome>, bool)> =
            histories(&records, &durations, &quarantine)
                .into_iter()
                .map(|h| (h.test_id, h.tier, h.recent, h.quarantined))
                .collect();
        use WitOutcome as W;
        assert_eq!(
            asked,
            vec![
                ("t::flaky".into(), 2, vec![W::Failed, W::Passed], false),
                ("t::quarantined_passes".into(), 1, vec![W::Passed], true),
                ("t::skipped".into(), 1, vec![W::Skipped], false),
                (
                    "t::failed_long_ago".into(),
                    1,
                    vec![W::Failed, W::Passed, W::Passed, W::Passed],
                    false
                ),
            ]
        );
    }
}
