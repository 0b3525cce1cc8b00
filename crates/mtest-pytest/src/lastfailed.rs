//! pytest's `lastfailed` cache entry, written by mtest at the end of a run, so that
//! `pytest --lf` (or `mtest -- --lf`) after mtest runs what failed, as after plain pytest.
//! The workers do not write it: several at once would overwrite each other's (pytest-xdist's
//! workers do not either).

use std::collections::BTreeMap;
use std::path::Path;

use crate::record::{Attempt, Outcome};
use crate::store::StoreError;

/// pytest's own rule, applied to each test's last attempt of the run: a failure (or an
/// error, a hang, a crash) is added, a pass or a skip removes it; tests that did not run
/// keep their entry.
pub(crate) fn update(
    mut failed: BTreeMap<String, bool>,
    attempts: &[Attempt],
) -> BTreeMap<String, bool> {
    let mut last: crate::FastMap<&str, Outcome> = crate::FastMap::default();
    for a in attempts {
        last.insert(a.test_id.as_str(), a.outcome);
    }
    for (id, outcome) in last {
        if outcome.is_failure() {
            failed.insert(id.to_string(), true);
        } else {
            failed.remove(id);
        }
    }
    failed
}

const GITIGNORE: &str = "# Created by pytest automatically.\n*\n";
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by pytest.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/spec.html\n";

/// Updates `<cache_dir>/v/cache/lastfailed` (an unreadable one is replaced, as pytest does);
/// a new cache directory gets pytest's `.gitignore` and `CACHEDIR.TAG`.
pub fn write(cache_dir: &Path, attempts: &[Attempt]) -> Result<(), StoreError> {
    let path = cache_dir.join("v").join("cache").join("lastfailed");
    let old: BTreeMap<String, bool> = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let new = update(old.clone(), attempts);
    if new == old && path.is_file() {
        return Ok(());
    }
    for (name, text) in [(".gitignore", GITIGNORE), ("CACHEDIR.TAG", CACHEDIR_TAG)] {
        let file = cache_dir.join(name);
        if !file.exists() {
            crate::store::atomic_write(&file, text.as_bytes())?;
        }
    }
    // As pytest writes it: sorted, indented by 2.
    let text = serde_json::to_vec_pretty(&new).map_err(|source| StoreError::Encode {
        what: "pytest's lastfailed",
        source,
    })?;
    crate::store::atomic_write(&path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(id: &str, outcome: Outcome) -> Attempt {
        Attempt {
            test_id: id.into(),
            outcome,
            duration_s: 0.0,
            tier: 1,
        }
    }

    #[test]
    fn failures_are_added_passes_and_skips_removed_and_the_rest_kept() {
        let before: BTreeMap<String, bool> = [
            ("t::fixed", true),
            ("t::skipped_now", true),
            ("t::not_run", true),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let after = update(
            before,
            &[
                attempt("t::fixed", Outcome::Passed),
                attempt("t::skipped_now", Outcome::Skipped),
                attempt("t::new", Outcome::Failed),
                attempt("t::hang", Outcome::Hung),
                attempt("t::setup", Outcome::Error),
                attempt("t::flaky", Outcome::Failed),
                attempt("t::flaky", Outcome::Passed), // its retry: the last attempt counts
                attempt("t::xfail", Outcome::Xfailed),
            ],
        );
        let ids: Vec<&str> = after.keys().map(String::as_str).collect();
        assert_eq!(ids, ["t::hang", "t::new", "t::not_run", "t::setup"]);
    }

    #[test]
    fn a_new_cache_gets_pytests_files_and_a_corrupt_entry_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join(".pytest_cache");
        write(&cache, &[attempt("t::a", Outcome::Failed)]).unwrap();
        assert!(cache.join(".gitignore").is_file());
        assert!(cache.join("CACHEDIR.TAG").is_file());
        let file = cache.join("v/cache/lastfailed");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "{\n  \"t::a\": true\n}"
        );
        std::fs::write(&file, "{not json").unwrap();
        write(&cache, &[attempt("t::b", Outcome::Crashed)]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "{\n  \"t::b\": true\n}"
        );
    }
}
