//! Where records go: `run.jsonl` first (so a kill loses nothing that finished), then the
//! reporter plugins, then the console.

pub(crate) mod bundle_name;
pub mod enrich;
pub mod junit;
pub mod progress;
pub(crate) mod record_filter;
pub mod reporters;
pub mod stats;

// The lower crates' modules, named `crate::…` here as in the host.
use mtest_model::{
    clock, config, deps, record, run_event, shard, BadValue, Exit, FastMap, FastSet,
};
use mtest_platform as platform;
use mtest_plugin_host as plugin_host;
use mtest_store as store;

use crate::record::{Attempt, TestRecord};
use crate::store::run_log::RunLog;
use progress::Progress;
use reporters::Reporters;
use stats::RunStats;

/// The one place a run's records go, in order: `run.jsonl` (with `details.jsonl`), the
/// reporters, the JUnit files, the counts, the console.
pub struct Recorder<'h> {
    pub(crate) log: RunLog,
    pub reporters: Reporters,
    pub progress: Progress,
    /// The run's counts: each test once, by its last attempt.
    pub stats: RunStats,
    /// Every attempt of the run (replayed ones included), in record order.
    pub records: Vec<Attempt>,
    /// What each attempt of this invocation depended on (`None`: nothing recorded), in
    /// record order: `.gates/impact.json` learns it at the run's end.
    pub deps: Vec<(String, Option<crate::deps::Deps>)>,
    /// A failure to write run.jsonl: the run cannot promise resumability any more.
    pub write_error: Option<String>,
    pub junit: junit::Junit,
    /// Adds history, environment and daemon state to failure bundles (a merge makes none).
    pub enricher: Option<enrich::Enricher<'h>>,
    /// `--shard K/N`: written into every record.
    pub shard: Option<crate::shard::Shard>,
}

impl<'h> Recorder<'h> {
    pub fn new(
        log: RunLog,
        reporters: Reporters,
        progress: Progress,
        enricher: Option<enrich::Enricher<'h>>,
        junit: junit::Junit,
    ) -> Self {
        Recorder {
            log,
            reporters,
            records: Vec::with_capacity(progress.total),
            deps: Vec::new(),
            stats: RunStats::with_capacity(progress.total),
            progress,
            write_error: None,
            junit,
            enricher,
            shard: None,
        }
    }

    /// New records from this invocation (one turn of the supervision loop): bundles
    /// named, all stored in one write, then each reported and shown.
    pub fn record(&mut self, mut records: Vec<TestRecord>) {
        if self.shard.is_some() {
            records.iter_mut().for_each(|r| r.shard = self.shard);
        }
        for record in records.iter_mut().filter(|r| r.outcome.is_failure()) {
            record.bundle = Some(format!(
                "failures/{}",
                bundle_name::bundle_name(&record.test_id, record.attempt)
            ));
            if let Some(enricher) = &mut self.enricher {
                record.details.extra = enricher.sections(record);
            }
        }
        self.store(&records);
        self.reporters.tests(&records, false);
        for mut record in records {
            self.junit.add(&record);
            self.count(&record);
            self.progress.show(&record);
            self.flush_lines();
            let deps = record.details.deps.take();
            self.deps.push((record.test_id.clone(), deps));
            self.records.push(Attempt::from(record));
        }
    }

    /// Writes records to `run.jsonl`; a failure is said once and kept in `write_error`.
    fn store(&mut self, records: &[TestRecord]) {
        if !self.log.intact() && self.write_error.is_none() {
            // The store was deleted (or replaced) while the run went on: write it again.
            match self.log.recreate() {
                Ok(()) => self.progress.line(&format!(
                    "warning: {} disappeared during the run (was .gates/ deleted?); re-created it with the {} record(s) so far",
                    self.log.path().display(),
                    self.records.len()
                )),
                Err(e) => {
                    self.progress.line(&format!("warning: {e}"));
                    self.write_error = Some(e.to_string());
                }
            }
        }
        if let Err(e) = self.log.append(records) {
            if self.write_error.is_none() {
                self.progress.line(&format!("warning: {e}"));
            }
            self.write_error.get_or_insert(e.to_string());
        }
    }

    fn count(&mut self, record: &TestRecord) {
        self.stats.record(record);
    }

    /// A turn of the supervision loop, for the console: what runs now, the estimated
    /// milliseconds of the tests done, and the counts.
    pub fn tick(&mut self, running: Vec<crate::run_event::Running>, done_ms: u64) {
        self.progress.counted(&self.stats);
        self.progress.tick(running, done_ms);
    }

    /// The records of earlier invocations of this run (`--resume`): counted and shown to
    /// reporters, not written again.
    pub fn replay(&mut self, records: Vec<TestRecord>) {
        self.reporters.tests(&records, true);
        for record in &records {
            self.junit.replay(record);
            self.count(record);
            self.records.push(Attempt::from(record));
        }
        self.flush_lines();
    }

    /// Records other runs made (`mtest merge`: the shards'), made this run's: written to
    /// its `run.jsonl`, then replayed (their bundles were written where they ran).
    pub fn adopt(&mut self, records: Vec<TestRecord>) {
        self.store(&records);
        self.replay(records);
    }

    pub fn flush_lines(&mut self) {
        for line in self.reporters.take_lines() {
            self.progress.line(&line);
        }
    }

    /// The run's JUnit files: every chunk's still open, then the run's `junit.xml`. A
    /// file that cannot be written is a warning: the records stand.
    pub fn end_junit(&mut self) {
        self.progress.clear();
        for chunk in self.junit.pending() {
            if let Err(e) = self.junit.finish(chunk) {
                self.progress.line(&format!("warning: {e}"));
            }
        }
        if let Err(e) = self.junit.end() {
            self.progress.line(&format!("warning: {e}"));
        }
    }

    /// The reporters' end: the run's counts, its exit code and notes.
    pub fn end(&mut self, run_id: String, duration_s: f64, exit: crate::Exit, notes: Vec<String>) {
        let summary = reporters::run_summary(run_id, duration_s, &self.stats, exit.code(), notes);
        self.reporters.end(summary);
        self.flush_lines();
    }
}
