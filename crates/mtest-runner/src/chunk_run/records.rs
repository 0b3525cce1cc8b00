//! The records a chunk writes: from a test's reports, for a test it left unfinished or
//! never ran, and the check that no report of a test was lost.

use std::time::SystemTime;

use super::{ChunkRun, InFlight, RunContext};
use crate::clock::Stamp;
use crate::pytest::outcome::outcome_of;
use crate::record::{one_line, Details, Outcome, TestRecord, SCHEMA_VERSION};

impl ChunkRun {
    pub(super) fn blank_record(&self, ctx: &RunContext, t: usize, outcome: Outcome) -> TestRecord {
        self.record_at(ctx, t, outcome, Stamp::now())
    }

    /// A record of test `t` with both times `at` (callers set what they know better).
    fn record_at(&self, ctx: &RunContext, t: usize, outcome: Outcome, at: Stamp) -> TestRecord {
        let test = &ctx.tests[t];
        let now = at;
        TestRecord {
            schema_version: SCHEMA_VERSION,
            run_id: ctx.run_id.clone(),
            test_id: test.id.clone(),
            outcome,
            duration_s: 0.0,
            tier: test.tier,
            markers: test.markers.clone(),
            file: test.file.clone(),
            line: test.line,
            chunk: self.id,
            attempt: self.attempt,
            quarantined: test.quarantined,
            started_at: now,
            finished_at: now,
            message: None,
            bundle: None,
            leaked: Vec::new(),
            subtests: None,
            flaky: false,
            shard: None,
            details: Details {
                // Only a failure's bundle shows it; 64k passes need no copy of it.
                command: if outcome.is_failure() {
                    self.command.clone()
                } else {
                    String::new()
                },
                ..Details::default()
            },
            test: Some(t),
        }
    }

    pub(super) fn unfinished_record(
        &self,
        ctx: &RunContext,
        f: &InFlight,
        outcome: Outcome,
    ) -> TestRecord {
        let mut r = self.blank_record(ctx, f.test, outcome);
        r.started_at = Stamp::at(f.started_at);
        r.duration_s = f.started.elapsed().as_secs_f64();
        let (_, details) = outcome_of(&f.reports);
        r.details.failure = details.failure;
        r.details.stdout = details.stdout;
        r.details.stderr = details.stderr;
        r.details.log = details.log;
        r
    }

    pub(super) fn not_run_record(&self, ctx: &RunContext, t: usize) -> TestRecord {
        let file = &ctx.tests[t].file;
        if let Some((_, text)) = self
            .heard
            .collect_errors
            .iter()
            .find(|(id, _)| id.starts_with(file.as_str()))
        {
            let mut r = self.blank_record(ctx, t, Outcome::Error);
            r.message = Some(format!(
                "{file} failed to collect in chunk {}: {}",
                self.id,
                one_line(text.lines().last().unwrap_or(""))
            ));
            r.details.failure = text.clone();
            r
        } else if let Some(why) = &self.heard.stopped {
            let mut r = self.blank_record(ctx, t, Outcome::Skipped);
            r.message = Some(format!("not run: pytest ended the session early: {why}"));
            r
        } else if self.any_failure {
            let mut r = self.blank_record(ctx, t, Outcome::Skipped);
            r.message = Some(
                "not run: pytest ended the session early after a failure (-x / --maxfail?)".into(),
            );
            r
        } else {
            let mut r = self.blank_record(ctx, t, Outcome::Error);
            r.message = Some(format!(
                "selected but not run: pytest did not collect this id in chunk {} (did it change since collection?)",
                self.id
            ));
            r
        }
    }

    pub(super) fn record_from_reports(
        &self,
        ctx: &RunContext,
        f: &InFlight,
        finished_at: SystemTime,
    ) -> TestRecord {
        let (outcome, details) = outcome_of(&f.reports);
        let mut r = self.record_at(ctx, f.test, outcome.outcome, Stamp::at(finished_at));
        r.started_at = Stamp::at(f.started_at);
        // Wall time of the whole test protocol (setup, call, teardown and pytest's own
        // work around them): what the test costs a run, which is what budgets need.
        r.duration_s = finished_at
            .duration_since(f.started_at)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        r.message = outcome.message;
        r.subtests = outcome.subtests;
        r.details = Details {
            command: std::mem::take(&mut r.details.command),
            ..details
        };
        r
    }
}

/// A test whose report events did not all arrive, or arrived unreadable, did not pass:
/// its record says so, naming what was lost.
pub(super) fn check_reports(record: &mut TestRecord, f: &InFlight, written: Option<u32>) {
    let read = f.reports.len() as u32;
    let lost = written.is_some_and(|n| n > read);
    if !lost && f.unreadable.is_empty() {
        return;
    }
    let mut why = Vec::new();
    if lost {
        why.push(format!(
            "{} of its {} report event(s) did not arrive",
            written.unwrap_or(0) - read,
            written.unwrap_or(0)
        ));
    }
    if !f.unreadable.is_empty() {
        why.push(format!(
            "{} event line(s) could not be read",
            f.unreadable.len()
        ));
    }
    if !record.outcome.is_failure() {
        record.outcome = Outcome::Error;
    }
    let was = record
        .message
        .take()
        .map(|m| format!(" (last known: {m})"))
        .unwrap_or_default();
    record.message = Some(format!(
        "mtest lost part of this test's result: {}; it is not a pass{was}",
        why.join(", ")
    ));
    for line in &f.unreadable {
        record.details.failure.push_str("\nunreadable event: ");
        record
            .details
            .failure
            .push_str(&crate::record::one_line(line));
    }
}
