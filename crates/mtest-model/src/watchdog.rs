//! The watchdog of one pytest process (a worker, or the zygote while it collects), as a
//! pure state machine: what it is shown (the test in
//! flight and since when, the last event, whether pytest's session is over) goes in, the
//! signal to send comes out. No process, no clock of its own, so every path is a unit test.
//! When the worker has exited, [`in_flight_end`] and [`rest_after_exit`] classify what it
//! left: its test in flight, and the tests of its chunk it never reached.
//!
//! ```text
//! watching ──test over its limit / no event for the quiet limit──▶ stacks asked (SIGUSR1)
//!          ──Ctrl-C──────────────────────────────────────────────▶ interrupted (SIGINT)
//!          ──session over and the process lives on past the grace─▶ killed (SIGKILL)
//! stacks asked / interrupted ──after STACKS_WAIT──▶ terminated (SIGTERM to the group)
//! terminated ──after TERM_WAIT──▶ killed (SIGKILL to the group)
//! ```

use std::time::{Duration, Instant};

/// How long the stack dump may take before the group is asked to terminate.
pub(crate) const STACKS_WAIT: Duration = Duration::from_millis(750);
/// How long SIGTERM may take before SIGKILL.
pub(crate) const TERM_WAIT: Duration = Duration::from_secs(3);

/// A signal the watchdog wants sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// SIGUSR1 to the worker: faulthandler writes every thread's stack.
    DumpStacks,
    /// SIGINT to the worker: pytest stops after a KeyboardInterrupt.
    Interrupt,
    /// SIGTERM to the worker's process group.
    Terminate,
    /// SIGKILL to the worker's process group.
    Kill,
}

/// Why the watchdog acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// This test (an index into the run's tests) ran past its limit.
    Hung(usize),
    /// No event for the quiet limit outside any test (collection, session end).
    Quiet,
    /// mtest was interrupted (Ctrl-C, SIGTERM, SIGHUP).
    Interrupted,
    /// pytest's session ended but the process did not exit (a non-daemon thread).
    Lingered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Watching,
    /// Stacks or an interrupt asked for, at this time.
    Asked(Instant),
    Terminated(Instant),
    Killed,
}

/// What the worker is doing, as the events say.
pub struct Seen {
    /// The test in flight, when it started, and how long it may run (timeout + grace).
    pub in_flight: Option<(usize, Instant, Duration)>,
    pub last_event: Instant,
    /// How long a worker may go without an event outside any test.
    pub quiet_limit: Duration,
    /// When its tests were over (the run loop's end, or pytest's session end), if they are.
    pub session_over: Option<Instant>,
    /// How long it may live on after that (`session-end-timeout`): its session end
    /// (pytest_sessionfinish hooks), exit handlers, non-daemon threads.
    pub session_end_limit: Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct Watchdog {
    stage: Stage,
    why: Option<Why>,
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog {
            stage: Stage::Watching,
            why: None,
        }
    }
}

impl Watchdog {
    /// Why it acted, once it has.
    pub fn why(&self) -> Option<Why> {
        self.why
    }

    /// The worker was paused (Ctrl-Z) this long: its escalation waits as long.
    pub fn shift(&mut self, paused: Duration) {
        let later = |t: Instant| t.checked_add(paused).unwrap_or(t);
        self.stage = match self.stage {
            Stage::Asked(t) => Stage::Asked(later(t)),
            Stage::Terminated(t) => Stage::Terminated(later(t)),
            other => other,
        };
    }

    /// Ctrl-C: interrupt now (the escalation follows if pytest does not stop).
    pub fn interrupt(&mut self, now: Instant) -> Option<Action> {
        if self.why == Some(Why::Interrupted) || self.stage == Stage::Killed {
            return None;
        }
        self.why = Some(Why::Interrupted);
        self.stage = Stage::Asked(now);
        Some(Action::Interrupt)
    }

    /// Second Ctrl-C: kill now.
    pub fn kill(&mut self) -> Option<Action> {
        if self.stage == Stage::Killed {
            return None;
        }
        self.why.get_or_insert(Why::Interrupted);
        self.stage = Stage::Killed;
        Some(Action::Kill)
    }

    /// Advances to `now`; returns the signal to send, if any.
    pub fn tick(&mut self, now: Instant, seen: &Seen) -> Option<Action> {
        match self.stage {
            Stage::Watching => {
                if let Some(over) = seen.session_over {
                    if now.saturating_duration_since(over) > seen.session_end_limit {
                        self.why = Some(Why::Lingered);
                        self.stage = Stage::Killed;
                        return Some(Action::Kill);
                    }
                    return None;
                }
                let why = match seen.in_flight {
                    Some((test, started, limit)) => {
                        (now.saturating_duration_since(started) > limit).then_some(Why::Hung(test))
                    }
                    None => (now.saturating_duration_since(seen.last_event) > seen.quiet_limit)
                        .then_some(Why::Quiet),
                };
                let why = why?;
                self.why = Some(why);
                self.stage = Stage::Asked(now);
                Some(Action::DumpStacks)
            }
            Stage::Asked(at) if now.saturating_duration_since(at) > STACKS_WAIT => {
                self.stage = Stage::Terminated(now);
                Some(Action::Terminate)
            }
            Stage::Terminated(at) if now.saturating_duration_since(at) > TERM_WAIT => {
                self.stage = Stage::Killed;
                Some(Action::Kill)
            }
            _ => None,
        }
    }
}

/// What became of the test in flight when its worker exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InFlightEnd {
    /// The watchdog stopped it: `hung`, with the stacks it dumped.
    HungByWatchdog,
    /// pytest-timeout's thread method ended the process: `hung`, its stacks in the output.
    HungByTimeout,
    /// The process died under it: `crashed`.
    Crashed,
    /// mtest was interrupted: no record, `--resume` runs it.
    LeftForResume,
}

/// Classifies the end of a worker's test in flight.
pub fn in_flight_end(test: usize, dog: &Watchdog, timeout_in_output: bool) -> InFlightEnd {
    match dog.why() {
        Some(Why::Hung(t)) if t == test => InFlightEnd::HungByWatchdog,
        Some(Why::Interrupted) => InFlightEnd::LeftForResume,
        _ if timeout_in_output => InFlightEnd::HungByTimeout,
        _ => InFlightEnd::Crashed,
    }
}

/// How far a worker's pytest session got, as its events say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Session {
    #[default]
    NotStarted,
    Running,
    /// Its tests are over (the run loop's end, or pytest's session end), since then.
    Over(Instant),
}

impl Session {
    pub fn over_since(self) -> Option<Instant> {
        match self {
            Session::Over(t) => Some(t),
            _ => None,
        }
    }
}

/// What mtest asked of a worker; a later, stronger request replaces a weaker one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Asked {
    #[default]
    Nothing,
    /// End the session after the current test (the budget ran out, `--fail-fast`,
    /// `--max-fail`).
    StopAfterTest,
    /// mtest was interrupted (Ctrl-C): stop now.
    Interrupt,
}

/// What a worker's exit left known, for [`rest_after_exit`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Exit {
    /// pytest refused its options (`--setup-plan`…): nothing can be recorded.
    pub refused: bool,
    pub asked: Asked,
    /// A test ended pytest's run loop (`pytest.exit()`, KeyboardInterrupt in a test).
    pub aborted: bool,
    pub session: Session,
    /// A test of the chunk started.
    pub any_test_started: bool,
    /// The chunk was the next one of a worker that had run another: it may have died in
    /// that one's last test, before this one's session began.
    pub continued: bool,
}

/// What becomes of the tests of a chunk that never ended, first reason first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rest {
    /// pytest refused the options: the run is broken.
    Refused,
    /// No record: `--resume` runs them.
    LeftForResume,
    /// Not run and not recorded: the budget or `--fail-fast` stopped the run.
    Dropped,
    /// Run them in a new worker, same attempt.
    Requeue,
    /// pytest never started: the run is broken.
    NotStarted,
    /// The session ended without running them: each gets a record saying why.
    NotRun,
    /// The worker died before any test started, loading one of their files: run each
    /// file again on its own; a lone file's tests crashed.
    DiedLoading,
}

/// Classifies the rest of a worker's chunk once it has exited (the test in flight is
/// [`in_flight_end`]'s).
pub fn rest_after_exit(e: Exit) -> Rest {
    let (started, over) = match e.session {
        Session::NotStarted => (false, false),
        Session::Running => (true, false),
        Session::Over(_) => (true, true),
    };
    if e.refused {
        Rest::Refused
    } else if e.asked == Asked::Interrupt {
        Rest::LeftForResume
    } else if e.asked == Asked::StopAfterTest && over {
        Rest::Dropped
    } else if e.aborted || (e.continued && !started) {
        Rest::Requeue
    } else if !started {
        Rest::NotStarted
    } else if over {
        Rest::NotRun
    } else if e.any_test_started {
        // Died in or between tests.
        Rest::Requeue
    } else {
        Rest::DiedLoading
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(now: Instant, in_flight: Option<(usize, Duration)>) -> Seen {
        Seen {
            in_flight: in_flight.map(|(t, ago)| (t, now - ago, Duration::from_secs(10))),
            last_event: now,
            quiet_limit: Duration::from_secs(60),
            session_over: None,
            session_end_limit: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_test_past_its_limit_gets_stacks_then_term_then_kill() {
        let t0 = Instant::now();
        let mut dog = Watchdog::default();
        let s = seen(t0, Some((7, Duration::from_secs(5))));
        assert_eq!(dog.tick(t0, &s), None, "within its limit");
        let late = t0 + Duration::from_secs(6);
        assert_eq!(dog.tick(late, &s), Some(Action::DumpStacks));
        assert_eq!(dog.why(), Some(Why::Hung(7)));
        assert_eq!(dog.tick(late + Duration::from_millis(100), &s), None);
        let term = late + STACKS_WAIT + Duration::from_millis(1);
        assert_eq!(dog.tick(term, &s), Some(Action::Terminate));
        assert_eq!(dog.tick(term + Duration::from_secs(1), &s), None);
        let kill = term + TERM_WAIT + Duration::from_millis(1);
        assert_eq!(dog.tick(kill, &s), Some(Action::Kill));
        assert_eq!(dog.tick(kill + Duration::from_secs(60), &s), None, "once");
        assert_eq!(in_flight_end(7, &dog, false), InFlightEnd::HungByWatchdog);
    }

    #[test]
    fn silence_outside_a_test_is_a_hang_too() {
        let t0 = Instant::now();
        let mut dog = Watchdog::default();
        let mut s = seen(t0, None);
        assert_eq!(dog.tick(t0 + Duration::from_secs(59), &s), None);
        s.last_event = t0;
        assert_eq!(
            dog.tick(t0 + Duration::from_secs(61), &s),
            Some(Action::DumpStacks)
        );
        assert_eq!(dog.why(), Some(Why::Quiet));
        assert!(!matches!(dog.why(), Some(Why::Hung(_))));
    }

    #[test]
    fn an_interrupt_is_not_a_hang_and_escalates_if_ignored() {
        let t0 = Instant::now();
        let mut dog = Watchdog::default();
        let s = seen(t0, Some((3, Duration::from_secs(1))));
        assert_eq!(dog.interrupt(t0), Some(Action::Interrupt));
        assert_eq!(dog.interrupt(t0), None, "once");
        // Running past its limit now is no hang: the test is left for --resume.
        assert_eq!(dog.tick(t0 + Duration::from_millis(10), &s), None);
        let term = t0 + STACKS_WAIT + Duration::from_millis(1);
        assert_eq!(dog.tick(term, &s), Some(Action::Terminate));
        assert_eq!(in_flight_end(3, &dog, true), InFlightEnd::LeftForResume);
        assert_eq!(dog.kill(), Some(Action::Kill));
        assert_eq!(dog.kill(), None);
    }

    #[test]
    fn a_process_that_outlives_its_session_is_killed_after_the_grace() {
        let t0 = Instant::now();
        let mut dog = Watchdog::default();
        let mut s = seen(t0, None);
        s.session_over = Some(t0);
        s.last_event = t0 - Duration::from_secs(600);
        assert_eq!(dog.tick(t0 + Duration::from_secs(5), &s), None, "no hang");
        assert_eq!(
            dog.tick(t0 + s.session_end_limit + Duration::from_millis(1), &s),
            Some(Action::Kill)
        );
        assert_eq!(dog.why(), Some(Why::Lingered));
    }

    #[test]
    fn exits_classify_the_test_in_flight() {
        let dog = Watchdog::default();
        assert_eq!(in_flight_end(1, &dog, false), InFlightEnd::Crashed);
        assert_eq!(in_flight_end(1, &dog, true), InFlightEnd::HungByTimeout);
        let t0 = Instant::now();
        let mut other = Watchdog::default();
        other.tick(
            t0 + Duration::from_secs(11),
            &seen(t0, Some((2, Duration::ZERO))),
        );
        assert_eq!(
            in_flight_end(1, &other, false),
            InFlightEnd::Crashed,
            "stopped for another test"
        );
    }

    #[test]
    fn a_stronger_request_is_kept() {
        // A chunk keeps `asked.max(new)`: a stop after an interrupt is still an interrupt.
        assert_eq!(Asked::Interrupt.max(Asked::StopAfterTest), Asked::Interrupt);
        assert_eq!(
            Asked::Nothing.max(Asked::StopAfterTest),
            Asked::StopAfterTest
        );
        let interrupted_then_stopped = Exit {
            asked: Asked::Interrupt.max(Asked::StopAfterTest),
            session: Session::Over(Instant::now()),
            ..Exit::default()
        };
        assert_eq!(
            rest_after_exit(interrupted_then_stopped),
            Rest::LeftForResume
        );
    }

    #[test]
    fn exits_classify_the_rest_of_the_batch() {
        let died = Exit {
            session: Session::Running,
            ..Exit::default()
        };
        assert_eq!(rest_after_exit(died), Rest::DiedLoading);
        let died_mid = Exit {
            any_test_started: true,
            ..died
        };
        assert_eq!(rest_after_exit(died_mid), Rest::Requeue);
        let ended = Exit {
            session: Session::Over(Instant::now()),
            ..died_mid
        };
        assert_eq!(rest_after_exit(ended), Rest::NotRun);
        assert_eq!(rest_after_exit(Exit::default()), Rest::NotStarted);
        // A worker's next chunk whose session never began: the worker died in its previous
        // chunk's last test, which says nothing of this chunk's tests: run them again.
        let next_of_a_dead_worker = Exit {
            continued: true,
            ..Exit::default()
        };
        assert_eq!(rest_after_exit(next_of_a_dead_worker), Rest::Requeue);
        // Once its session began, it is any chunk.
        let continued_and_ended = Exit {
            continued: true,
            ..ended
        };
        assert_eq!(rest_after_exit(continued_and_ended), Rest::NotRun);
        // A stop asked for counts only if the session did end: a crash after the
        // request still sends the rest to a new worker, never to "not run".
        let stop_then_crash = Exit {
            asked: Asked::StopAfterTest,
            ..died_mid
        };
        assert_eq!(rest_after_exit(stop_then_crash), Rest::Requeue);
        let stopped = Exit {
            asked: Asked::StopAfterTest,
            ..ended
        };
        assert_eq!(rest_after_exit(stopped), Rest::Dropped);
        let aborted = Exit {
            aborted: true,
            ..ended
        };
        assert_eq!(rest_after_exit(aborted), Rest::Requeue);
        let interrupted = Exit {
            asked: Asked::Interrupt,
            ..stopped
        };
        assert_eq!(rest_after_exit(interrupted), Rest::LeftForResume);
        let refused = Exit {
            refused: true,
            ..interrupted
        };
        assert_eq!(rest_after_exit(refused), Rest::Refused);
    }
}
