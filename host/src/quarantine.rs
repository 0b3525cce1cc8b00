//! The host side of quarantine: after a complete run, the quarantine plugin sees each
//! test's recent outcomes and says who enters or leaves; `quarantine.json` keeps the result.

use std::path::Path;

use crate::clock;
use crate::config::ProjectConfig;
use crate::plugin_host::session::{QuarantineSession, TestHistory, Verdict};
use crate::plugin_host::{builtins, discovery, LoadedPlugin, PluginHost, Source};
use crate::record::Attempt;
use crate::store::durations::Durations;
use crate::store::quarantine::{Entry, Quarantine};

fn policy(
    host: &PluginHost,
    root: &Path,
    project: &ProjectConfig,
) -> Result<(LoadedPlugin, Option<LoadedPlugin>), String> {
    let spec = project
        .mtest
        .quarantine_policy
        .clone()
        .unwrap_or_else(|| builtins::DEFAULT_QUARANTINE.to_string());
    let plugin = discovery::resolve(host, root, &spec, Source::Config)?;
    let fallback = match plugin.source {
        Source::Builtin => None,
        _ => builtins::load(host, builtins::DEFAULT_QUARANTINE).and_then(|r| r.ok()),
    };
    Ok((plugin, fallback))
}

/// Asks the policy about every test of this run and applies its verdicts. Returns one
/// line per change, for the summary.
pub fn apply(
    host: &PluginHost,
    root: &Path,
    project: &ProjectConfig,
    records: &[Attempt],
    durations: &Durations,
    quarantine: &mut Quarantine,
) -> Result<Vec<String>, String> {
    // Each test once, in the order the run first recorded it, with its last tier.
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
    let histories: Vec<TestHistory> = tiers
        .iter()
        .map(|&(id, tier)| {
            let recent = durations
                .tests
                .get(id)
                .map(|h| h.outcomes.iter().copied().map(Into::into).collect())
                .unwrap_or_default();
            TestHistory {
                test_id: id.to_string(),
                tier,
                recent,
                quarantined: quarantine.contains(id),
            }
        })
        .collect();
    let (plugin, fallback) = policy(host, root, project)?;
    let ask =
        |p: &LoadedPlugin| QuarantineSession::start(host, p).and_then(|mut s| s.decide(&histories));
    let mut notes = Vec::new();
    let decisions = match ask(&plugin) {
        Ok(d) => d,
        Err(e) => match &fallback {
            Some(fb) => {
                notes.push(format!("{e}; used the built-in {} instead", fb.label()));
                ask(fb).map_err(|e2| format!("{e}; the built-in fallback failed too: {e2}"))?
            }
            None => return Err(e.to_string()),
        },
    };
    quarantine.schema_version = 1;
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
