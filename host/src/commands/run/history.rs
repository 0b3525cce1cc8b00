//! The store's history: reading a file of it (a corrupt one set aside), and what a run
//! teaches it (durations, outcomes, the quarantine policy's decisions).

use super::*;
use crate::selection::PolicyError;

/// Adds this invocation's attempts to the history: one entry per test (a flaky test
/// counts as failing), every run of a repeated test (so its flakiness reaches the
/// quarantine policy); and the workers' start-ups.
pub(super) fn learn(
    history: &mut Durations,
    this_run: &[Attempt],
    repeated: &FastSet<&str>,
    startups: &[Duration],
) {
    let mut folded: Vec<&Attempt> = per_test(this_run, true)
        .into_iter()
        .filter(|a| !repeated.contains(a.test_id.as_str()))
        .collect();
    folded.extend(
        this_run
            .iter()
            .filter(|a| repeated.contains(a.test_id.as_str())),
    );
    history.update(folded);
    history.note_startup(startups);
}

/// What the quarantine policy decides from.
pub(super) struct PolicyInput<'a> {
    pub(super) host: &'a PluginHost,
    pub(super) root: &'a Path,
    pub(super) project: &'a ProjectConfig,
    /// Every attempt of the run.
    pub(super) records: &'a [Attempt],
}

/// Writes `durations.json` while the quarantine policy, when there is one to ask, decides
/// (both only read the history: ~0.1 s each at 64k tests), then `quarantine.json`.
/// Returns the writes that failed and what the policy changed, or why it could not say.
pub(super) fn write_history(
    gates: &Gates,
    durations: &Durations,
    policy: Option<PolicyInput>,
    quarantine: &mut Quarantine,
) -> (
    Vec<String>,
    Option<std::result::Result<Vec<String>, PolicyError>>,
) {
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| store::atomic_write_json(&gates.durations(), durations));
        let mut quarantine_written = Ok(());
        let decided = policy.map(|p| {
            let decided =
                quarantine::apply(p.host, p.root, p.project, p.records, durations, quarantine);
            quarantine_written = store::atomic_write_json(&gates.quarantine(), &*quarantine);
            decided
        });
        let durations_written = writer
            .join()
            .map_err(|_| {
                format!(
                    "cannot write {}: the writer failed",
                    gates.durations().display()
                )
            })
            .and_then(|written| written.map_err(|e| e.to_string()));
        let failed = [
            durations_written,
            quarantine_written.map_err(|e| e.to_string()),
        ]
        .into_iter()
        .filter_map(std::result::Result::err)
        .collect();
        (failed, decided)
    })
}

/// One record per test: with `first_failure`, the first failing attempt if any (for the
/// history: a flaky test failed this run), else the last attempt (what the run ends with).
pub(super) fn per_test(records: &[Attempt], first_failure: bool) -> Vec<&Attempt> {
    let mut order: Vec<&str> = Vec::new();
    let mut chosen: FastMap<&str, &Attempt> = FastMap::default();
    for r in records {
        match chosen.get(r.test_id.as_str()) {
            None => {
                order.push(&r.test_id);
                chosen.insert(&r.test_id, r);
            }
            Some(prev) if first_failure && prev.outcome.is_failure() => {}
            Some(_) => {
                chosen.insert(&r.test_id, r);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| chosen.get(id).copied())
        .collect()
}
