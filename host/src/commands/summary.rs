//! The console's last lines of a run, or of a merge of shards: errors, the counts, notes,
//! where the outputs are, and what is left to do.

use std::path::Path;

use crate::report::stats::RunStats;
use crate::store::Gates;

/// What the last lines say.
pub(crate) struct LastLines<'a> {
    /// `mtest: 12 passed, 1 failed in 4.2s (run …)`.
    pub(crate) headline: String,
    /// Why pytest could not run, if it could not.
    pub(crate) broken: Option<&'a str>,
    /// Writes of the store that failed.
    pub(crate) store_errors: &'a [String],
    pub(crate) stats: &'a RunStats,
    pub(crate) notes: &'a [String],
    /// `Python 3.11.2, pytest 8.3.4, -j 2`, when a worker said its versions.
    pub(crate) versions: Option<String>,
    pub(crate) root: &'a Path,
    pub(crate) gates: &'a Gates,
    /// What the run left to do (`--resume`, a stop), if anything.
    pub(crate) left: Option<String>,
}

pub(crate) fn print(e: &LastLines) {
    if let Some(text) = e.broken {
        eprintln!("error: {text}");
    }
    if let Some(first) = e.store_errors.first() {
        eprintln!(
            "error: the store could not be written ({} write(s) failed; first: {first}); the outcomes above stand, but .gates/ is incomplete: free space or fix permissions and run again",
            e.store_errors.len()
        );
    }
    let quarantined_failures = e.stats.quarantined_failing();
    eprintln!("{}", e.headline);
    for note in e.notes {
        eprintln!("  {note}");
    }
    if quarantined_failures > 0 {
        eprintln!("  {quarantined_failures} failure(s) of quarantined tests do not fail the run");
    }
    if let Some(versions) = &e.versions {
        eprintln!("  {versions}");
    }
    let rel = |p: &Path| p.strip_prefix(e.root).unwrap_or(p).display().to_string();
    let last_run = e.gates.last_run();
    eprintln!(
        "  records: {}   summary: {}   junit: {}",
        rel(&e.gates.run_log()),
        rel(&last_run.join("summary.md")),
        rel(&last_run.join("junit.xml"))
    );
    if e.stats.failing() + quarantined_failures > 0 {
        eprintln!("  failure bundles: {}/", rel(&last_run.join("failures")));
    }
    if let Some(left) = &e.left {
        eprintln!("  {left}");
    }
}
