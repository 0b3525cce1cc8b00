//! How a chunk ends: what its process left (the test in flight, the tests it never reached)
//! classified into records, re-queued jobs or a broken run, and its strays killed.

use std::process::ExitStatus;

use super::{Chunk, ChunkRun, Ended, InFlight, Proc, RunContext, Succession};
use crate::clock;
use crate::platform::{self, Sig};
use crate::pytest::collect::tail_of;
use crate::record::{Outcome, TestRecord};
use crate::watchdog::{self, in_flight_end, Asked, Exit, InFlightEnd, Rest};

impl ChunkRun {
    /// If the process has exited: classifies what is left, cleans up strays, and says
    /// what the dispatcher must do next.
    pub(crate) fn try_end(
        &mut self,
        ctx: &RunContext,
        running: &[i32],
        out: &mut Vec<TestRecord>,
        warnings: &mut Vec<String>,
    ) -> Option<Ended> {
        let status = self.exit_status(ctx, out, warnings)?;
        let mut mine = std::mem::take(&mut self.held);
        let out: &mut Vec<TestRecord> = if self.forensic.is_some() {
            &mut mine
        } else {
            out
        };
        self.read_events(ctx, out);
        warnings.append(&mut self.heard.warnings);
        if self.succession != Succession::HandedOver || self.proc_status().is_some() {
            // A worker that went on keeps its processes (its fixtures' servers); what its
            // tests leaked was killed test by test, the rest goes at its last chunk's end.
            self.clean_up_strays(running, warnings);
        }
        let how = platform::describe_exit(status);
        let log_tail = tail_of(&self.files.log, 80);
        let in_flight = self.in_flight.take();
        if let Some(f) = &in_flight {
            if let Some(r) = self.in_flight_record(ctx, f, &how, &log_tail) {
                out.push(r);
                self.done.insert(f.test);
            }
        }
        for r in out.iter() {
            self.any_failure |= r.outcome.is_failure();
        }
        let in_flight_test = in_flight.as_ref().map(|f| f.test);
        let (dropped, requeue, broken) = self.rest(ctx, in_flight_test, (&how, &log_tail), out);
        let forensic = self
            .forensic
            .take()
            .map(|held| verdict(*held, &mine, &how, &log_tail));
        Some(Ended {
            chunk: self.id,
            dropped,
            forensic,
            requeue,
            broken,
            internal: self.heard.internal.take(),
            startup: self.first_test,
            versions: self.heard.versions.clone(),
        })
    }

    /// The process's exit status once it has ended (a worker that went on with a next
    /// chunk: once its session has); none while it runs.
    fn exit_status(
        &mut self,
        ctx: &RunContext,
        out: &mut Vec<TestRecord>,
        warnings: &mut Vec<String>,
    ) -> Option<ExitStatus> {
        match &mut self.proc {
            Proc::Forked {
                status: Some(status),
            } => Some(*status),
            // Its worker went on with the next chunk: the session's end is the chunk's.
            Proc::Forked { status: None } if self.succession == Succession::HandedOver => {
                self.read_events(ctx, out);
                self.session.over_since()?;
                Some(ExitStatus::default())
            }
            Proc::Forked { status: None } => None,
            Proc::Spawned(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status),
                Ok(None) => None,
                Err(e) => {
                    warnings.push(format!(
                        "chunk {}: cannot wait for pytest (pid {}): {e}",
                        self.id, self.pid
                    ));
                    platform::signal_group(self.pid, Sig::SIGKILL);
                    let _ = child.wait();
                    None
                }
            },
        }
    }

    /// The tests of the chunk it never reached (neither recorded nor in flight), by the
    /// watchdog's rule: (dropped, re-queued, why the run is broken), records in `out`.
    fn rest(
        &mut self,
        ctx: &RunContext,
        in_flight_test: Option<usize>,
        (how, log_tail): (&str, &str),
        out: &mut Vec<TestRecord>,
    ) -> (usize, Vec<Chunk>, Option<String>) {
        let remaining: Vec<usize> = self
            .tests
            .iter()
            .copied()
            .filter(|t| !self.done.contains(t) && Some(*t) != in_flight_test)
            .collect();
        let (mut dropped, mut requeue, mut broken) = (0, Vec::new(), None);
        let refused = self.heard.refused.take();
        let rest = watchdog::rest_after_exit(Exit {
            refused: refused.is_some(),
            asked: self.asked,
            aborted: self.heard.aborted,
            session: self.session,
            any_test_started: in_flight_test.is_some() || remaining.len() < self.tests.len(),
            continued: self.mark != self.id,
        });
        match rest {
            Rest::Refused => broken = refused,
            Rest::LeftForResume => {}
            Rest::Dropped => dropped = remaining.len(),
            Rest::Requeue => {
                if !remaining.is_empty() {
                    requeue.push(self.same_attempt(remaining));
                }
            }
            Rest::NotStarted => {
                broken = Some(format!(
                    "pytest could not start ({how}): {}\n{}",
                    self.command,
                    log_tail.trim_end()
                ))
            }
            Rest::NotRun => {
                for t in remaining {
                    out.push(self.not_run_record(ctx, t));
                }
            }
            Rest::DiedLoading => {
                self.died_loading(ctx, remaining, how, log_tail, out, &mut requeue)
            }
        }
        (dropped, requeue, broken)
    }

    /// The record of the test a worker was running when it exited: `hung` or `crashed`,
    /// with what the watchdog, pytest-timeout or the output showed; none when mtest was
    /// interrupted (`--resume` runs it).
    fn in_flight_record(
        &self,
        ctx: &RunContext,
        f: &InFlight,
        how: &str,
        log_tail: &str,
    ) -> Option<TestRecord> {
        let thread_timeout = log_tail.contains("+ Timeout +");
        let end = match in_flight_end(f.test, &self.dog, thread_timeout) {
            InFlightEnd::HungByWatchdog => InFlightEnd::HungByWatchdog,
            _ if self.asked == Asked::Interrupt => InFlightEnd::LeftForResume,
            end => end,
        };
        match end {
            InFlightEnd::HungByWatchdog => {
                let limit = ctx.limit_for(f.test);
                let mut r = self.unfinished_record(ctx, f, Outcome::Hung);
                r.message = Some(format!(
                    "hung: no result {} after it started; mtest's watchdog dumped its stacks and killed pytest ({how})",
                    clock::human(limit)
                ));
                r.details.stacks = std::fs::read_to_string(&self.files.stacks).unwrap_or_default();
                r.details.last_output = log_tail.to_string();
                Some(r)
            }
            InFlightEnd::HungByTimeout => {
                let mut r = self.unfinished_record(ctx, f, Outcome::Hung);
                r.message = Some(format!(
                    "Timeout from pytest-timeout, which ended the pytest process ({how})"
                ));
                r.details.stacks = log_tail.to_string();
                Some(r)
            }
            InFlightEnd::Crashed => {
                let mut r = self.unfinished_record(ctx, f, Outcome::Crashed);
                r.message = Some(format!("pytest died ({how}) while this test ran"));
                r.details.last_output = log_tail.to_string();
                if self.isolated {
                    r.details.rerun = format!(
                        "it crashed in the previous run too, so this time it ran alone, unbuffered \
                         (--capture=tee-sys): it crashed again ({how}); its output is above"
                    );
                }
                Some(r)
            }
            InFlightEnd::LeftForResume => None,
        }
    }

    /// The process died before its first test, while loading the tests' modules: with
    /// tests of several files left, each file is tried again in a chunk of its own; with
    /// one file left, that file is the culprit and its tests are `crashed`.
    fn died_loading(
        &self,
        ctx: &RunContext,
        remaining: Vec<usize>,
        how: &str,
        log_tail: &str,
        out: &mut Vec<TestRecord>,
        requeue: &mut Vec<Chunk>,
    ) {
        let mut by_file: Vec<(&str, Vec<usize>)> = Vec::new();
        for t in remaining {
            let file = ctx.tests[t].file.as_str();
            match by_file.iter_mut().find(|(f, _)| *f == file) {
                Some((_, v)) => v.push(t),
                None => by_file.push((file, vec![t])),
            }
        }
        if by_file.len() > 1 {
            for (_, tests) in by_file {
                requeue.push(self.same_attempt(tests));
            }
            return;
        }
        for (file, tests) in by_file {
            for t in tests {
                let mut r = self.blank_record(ctx, t, Outcome::Crashed);
                r.message = Some(format!(
                    "pytest died ({how}) before this test started, while loading {file}"
                ));
                r.details.last_output = log_tail.to_string();
                out.push(r);
            }
        }
    }

    fn same_attempt(&self, tests: Vec<usize>) -> Chunk {
        Chunk {
            tests,
            isolated: false,
            attempt: self.attempt,
            forensic: None,
        }
    }

    /// A forked worker's status, once the zygote has reaped it.
    fn proc_status(&self) -> Option<ExitStatus> {
        match self.proc {
            Proc::Forked { status } => status,
            Proc::Spawned(_) => None,
        }
    }

    /// Kills whatever the chunk left: its process group, and orphans reparented to mtest
    /// that it started (marked with its worker's PYTEST_XDIST_WORKER); never what another chunk started.
    fn clean_up_strays(&self, running: &[i32], warnings: &mut Vec<String>) {
        let name = super::worker_name(self.slot);
        let known = [running, &self.killed].concat();
        let list = platform::kill_strays(Some(self.pid), Some(&name), &known);
        if !list.is_empty() {
            warnings.push(format!(
                "chunk {} left {} process(es) running, killed: {}",
                self.id,
                list.len(),
                list.join("; ")
            ));
        }
    }
}

/// Completes a crashed test's held-back record with what its re-run alone showed.
fn verdict(mut crashed: TestRecord, rerun: &[TestRecord], how: &str, log_tail: &str) -> TestRecord {
    let again = rerun.iter().find(|r| r.test_id == crashed.test_id);
    let summary = match again.map(|r| r.outcome) {
        Some(Outcome::Crashed) => {
            format!("crashed again when re-run alone ({how}): the crash is the test's own")
        }
        Some(Outcome::Hung) => "hung when re-run alone".to_string(),
        Some(o) if o.is_failure() => format!("{} when re-run alone", o.as_str()),
        Some(o) => format!(
            "{} when re-run alone: the crash needs the tests that ran before it in chunk {}",
            o.as_str(),
            crashed.chunk
        ),
        None => format!("did not run when re-run alone ({how})"),
    };
    crashed.details.rerun = format!(
        "{summary}\n\nIts output, unbuffered (--capture=tee-sys):\n{}",
        log_tail.trim_end()
    );
    crashed
}
