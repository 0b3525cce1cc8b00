//! The supervisor loop: keeps `-j` chunks running, feeds their records to the sink as
//! they finish, re-queues what a dying chunk never reached, re-runs a crashed test alone
//! for its bundle, retries failures (`--retries`), keeps the budget, handles Ctrl-C.
//!
//! In fork mode the tests are cut into chunks on demand: when a worker is about to run
//! the last test of its chunk it asks for more, and the next chunk is cut from the uncut
//! tests, sized by guided self-scheduling (a share of what is left, so the last chunks are
//! small and every worker finishes at about the same time, history or not); the worker
//! goes on with it in the same process, so its session fixtures stay up. Each chunk has
//! its own event file, log and records; a worker that is answered "no more" (no test is
//! left uncut, the run is stopping, or retries wait: those start in fresh forks) exits.
//!
//! Everything happens on this one thread (chunks are spawned here too, which matters:
//! `PR_SET_PDEATHSIG` fires when the spawning *thread* ends).

pub mod chunk_run;
pub mod chunks;
pub(crate) mod path_args;

// The lower crates' modules, named `crate::…` here as in the host.
use mtest_model::{clock, deps, record, run_event, watchdog, FastMap, FastSet};
use mtest_platform as platform;
use mtest_pytest as pytest;
use mtest_store as store;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use chunk_run::{Chunk, ChunkRun, Ended, Launcher, RunContext};

use crate::pytest::PytestError;
use crate::record::{Outcome, TestRecord};
use crate::run_event::{RunEvent, Running};

#[derive(Debug, PartialEq, Eq)]
pub enum Finish {
    Completed,
    /// Stopped by --max-fail (`-x`) after failing tests; this many selected tests did not
    /// run.
    FailedFast {
        not_run: usize,
    },
    /// The budget ran out; this many selected tests did not run.
    OutOfBudget {
        not_run: usize,
    },
    Interrupted,
    /// `--pdb` / `--trace`: the run stopped at this test, run again on the terminal under
    /// pytest's debugger (resumable).
    Debugged(String),
    /// pytest could not run: its text.
    Broken(String),
}

/// What there is to run.
#[derive(Default)]
pub struct Queue {
    /// Jobs that run first, in order: tests that crashed last time, each alone; in process
    /// mode, every planned chunk.
    pub chunks: Vec<Chunk>,
    /// Fork mode: the tests to hand out in chunks, in this order.
    pub uncut: Vec<usize>,
    /// Tests that failed in an earlier invocation of this run (`--resume`): a pass now
    /// is flaky.
    pub failed_before: Vec<usize>,
}

/// The smallest chunk worth a fork, in estimated milliseconds of tests.
const MIN_CHUNK_MS: u64 = 250;

/// Tests not yet handed out, cut into chunks on demand.
struct Uncut {
    tests: VecDeque<usize>,
    cost: u64,
}

impl Uncut {
    fn new(ctx: &RunContext, tests: Vec<usize>) -> Uncut {
        let cost = tests.iter().map(|&t| cost_of(ctx, t)).sum();
        Uncut {
            tests: tests.into(),
            cost,
        }
    }

    /// The next chunk: about 1/(2·jobs) of what is left, at least [`MIN_CHUNK_MS`]; with
    /// one worker there is nothing to balance: all of it (a fork between chunks costs
    /// ~15 ms and module fixtures set up again).
    fn next(&mut self, ctx: &RunContext, jobs: u32) -> Option<Chunk> {
        if self.tests.is_empty() {
            return None;
        }
        let target = match jobs {
            0 | 1 => u64::MAX,
            _ => (self.cost / (2 * u64::from(jobs))).max(MIN_CHUNK_MS),
        };
        let mut chunk = Vec::new();
        let mut cost = 0;
        while let Some(&t) = self.tests.front() {
            // An xdist_group's tests stay in one chunk (they are uncut together).
            let in_group = |last: &usize| {
                ctx.tests[t].group.is_some() && ctx.tests[t].group == ctx.tests[*last].group
            };
            if cost >= target && chunk.last().is_some_and(|last| !in_group(last)) {
                break;
            }
            self.tests.pop_front();
            cost += cost_of(ctx, t);
            chunk.push(t);
        }
        self.cost = self.cost.saturating_sub(cost);
        Some(Chunk {
            tests: chunk,
            isolated: false,
            attempt: 1,
            forensic: None,
        })
    }
}

fn cost_of(ctx: &RunContext, t: usize) -> u64 {
    u64::from(ctx.tests[t].estimate_ms.max(1))
}

pub struct Options {
    pub jobs: u32,
    /// Stop after this many failing tests (`-x`: 1).
    pub max_fail: Option<u32>,
    /// Number of the first chunk (a resumed run continues the numbering).
    pub first_chunk: u32,
    /// Re-runs of a failed test, each in a fresh chunk.
    pub retries: u32,
    /// Re-run a crashed test alone, unbuffered, before recording it.
    pub rerun_crashed: bool,
    /// When the budget runs out: running chunks finish their current test, no new starts.
    pub deadline: Option<Instant>,
}

/// The supervision loop sleeps this long after a poll that found something, and twice as
/// long after each one that found nothing, up to [`POLL_IDLE`]: a suite of quick tests
/// is read every few ms, while a long test is not disturbed 200 times a second (on a
/// 2-core machine the workers share a core with mtest; each wake-up costs them).
const POLL: Duration = Duration::from_millis(5);
const POLL_IDLE: Duration = Duration::from_millis(50);
/// In fork mode the loop also wakes when the zygote writes (a worker forked or ended), so
/// a worker waits for its next chunk no longer than in process mode while the records of
/// quick tests are read in fewer, larger turns (each turn costs mtest a few system calls
/// and a wake-up of its recorder thread).
const POLL_FORK: Duration = Duration::from_millis(20);

struct Loop<'s, 'a> {
    queue: VecDeque<Chunk>,
    uncut: Uncut,
    running: Vec<ChunkRun>,
    next_id: u32,
    stopping: Option<Finish>,
    /// Failing tests so far (each once, quarantined ones aside), for --max-fail.
    failing: crate::FastSet<usize>,
    /// Tests to run again when their chunk ends (test, attempt): failures with
    /// `--retries`, every run of a repeated test.
    retry: Vec<(usize, u32)>,
    /// Tests with a failing attempt so far: a later pass is flaky.
    failed_before: crate::FastSet<usize>,
    not_run: usize,
    /// Estimated ms of the tests recorded so far (for the time left).
    done_estimate_ms: u64,
    /// Ctrl-C presses acted on so far.
    interrupts_seen: u32,
    /// A chunk's records and warnings of this turn (buffers kept across turns).
    out: Vec<TestRecord>,
    warnings: Vec<String>,
    /// Warnings said already: each is said once.
    said: HashSet<String>,
    /// INTERNALERRORs seen, by their last line: the same one twice stops the run.
    internal_seen: HashMap<String, u32>,
    /// How long the loop sleeps when it has nothing to do (see POLL).
    pause: Duration,
    sink: &'s mut dyn FnMut(RunEvent),
    options: &'a Options,
}

impl Loop<'_, '_> {
    /// Passes a record on, or holds it back: a crash is re-run alone first; a failure is
    /// queued for a retry.
    fn record(&mut self, ctx: &RunContext, r: TestRecord, forensic_ok: bool) {
        let test = r
            .test
            .or_else(|| ctx.index.get(r.test_id.as_str()).copied());
        // --max-fail counts failing tests, each once, quarantined ones aside (a crash held
        // for its re-run alone counts now).
        if let Some(t) = test.filter(|_| r.outcome.is_failure() && !r.quarantined) {
            self.failing.insert(t);
        }
        if r.outcome == Outcome::Crashed && self.options.rerun_crashed && forensic_ok {
            if let Some(test) = test {
                self.queue.push_front(Chunk {
                    tests: vec![test],
                    isolated: false,
                    attempt: r.attempt,
                    forensic: Some(Box::new(r)),
                });
                return;
            }
        }
        let mut r = r;
        if let Some(test) = test {
            // Flaky: it passed now and failed in an earlier attempt of this run (also one
            // recorded before a `--resume`: the work says which).
            if r.outcome.is_failure() {
                self.failed_before.insert(test);
                r.flaky = false;
            } else {
                r.flaky = self.failed_before.contains(&test);
            }
            // A stopping run starts nothing new: a run queued now would never start.
            let runs = ctx.tests[test].runs.max(1);
            let again = if runs > 1 {
                r.attempt < runs
            } else {
                r.outcome.is_failure() && r.attempt <= self.options.retries
            };
            if again && self.stopping.is_none() {
                self.retry.push((test, r.attempt + 1));
            }
        }
        if let (Some(test), 1) = (test, r.attempt) {
            self.done_estimate_ms += u64::from(ctx.tests[test].estimate_ms);
        }
        (self.sink)(RunEvent::Record(Box::new(r)));
    }

    /// Tells every running chunk to end after its current test (the stop file the event
    /// plugin looks at after each test); where it cannot be written, stops them now.
    fn stop_soft(&mut self, ctx: &RunContext, why: &str) {
        if let Some(stop) = &ctx.stop_file {
            if let Err(e) = std::fs::write(stop, why) {
                (self.sink)(RunEvent::Warning(format!(
                    "{why} and {} cannot be written ({e}): stopping the running tests",
                    stop.display()
                )));
                self.running.iter_mut().for_each(ChunkRun::interrupt);
            }
        }
        self.running.iter_mut().for_each(ChunkRun::stop_soft);
    }

    /// Worker `pid` is about to run the last test of its chunk and asks for more: the
    /// next chunk from the uncut tests, unless the run is stopping or has jobs waiting (retries
    /// and re-runs start in fresh forks), in which case it finishes and exits.
    fn go_on(
        &mut self,
        ctx: &RunContext,
        pid: i32,
        launcher: &mut Launcher,
    ) -> Result<(), PytestError> {
        let asking = self
            .running
            .iter()
            .position(|c| c.pid() == pid && c.may_go_on());
        let chunk = match asking {
            Some(_) if self.stopping.is_none() && self.queue.is_empty() => {
                self.uncut.next(ctx, self.options.jobs)
            }
            _ => None,
        };
        let (Some(i), Some(chunk)) = (asking, chunk) else {
            return match launcher {
                Launcher::Fork(zygote) => zygote.answer(pid, None),
                Launcher::Process => Ok(()),
            };
        };
        let (mark, slot) = (self.running[i].mark(), self.running[i].slot());
        let next =
            match ChunkRun::spawn(ctx, self.next_id, slot, chunk, launcher, Some((pid, mark))) {
                Ok(next) => next,
                Err(e) => {
                    // The run stops; the worker waiting for an answer finishes its chunk.
                    if let Launcher::Fork(zygote) = launcher {
                        let _ = zygote.answer(pid, None);
                    }
                    return Err(e);
                }
            };
        self.next_id += 1;
        self.running[i].hand_over();
        self.running.push(next);
        Ok(())
    }

    fn stop(&mut self, why: Finish) {
        if self.stopping.is_none() {
            self.stopping = Some(why);
        }
    }
}

/// The lowest worker slot that no running chunk holds (a worker's slot is free once its
/// last chunk has ended and its strays are gone).
fn free_slot(running: &[ChunkRun]) -> u32 {
    (0..)
        .find(|s| running.iter().all(|c| c.slot() != *s))
        .unwrap_or(0)
}

pub fn run(
    ctx: &RunContext,
    queue: Queue,
    launcher: &mut Launcher,
    options: &Options,
    sink: &mut dyn FnMut(RunEvent),
) -> Finish {
    // A test on the terminal stops with mtest at Ctrl-Z, as any foreground process does.
    platform::catch_pause(ctx.foreground.is_none());
    let finish = turns(ctx, queue, launcher, options, sink);
    platform::catch_pause(false);
    finish
}

/// How long paused workers get to stop themselves before they are stopped outright.
const PAUSE_WAIT: Duration = Duration::from_secs(1);

/// Ctrl-Z: every worker pauses (pytest-timeout's timer put aside), mtest stops; at `fg`
/// they run on with their clocks moved on by the pause, so no paused test is `hung`.
fn pause_and_resume(running: &mut [ChunkRun]) {
    let paused_at = Instant::now();
    running.iter().for_each(ChunkRun::pause);
    let deadline = paused_at + PAUSE_WAIT;
    while Instant::now() < deadline && !running.iter().all(|c| platform::is_stopped(c.pid())) {
        std::thread::sleep(Duration::from_millis(10));
    }
    running.iter().for_each(ChunkRun::stop);
    eprintln!(
        "\nmtest: paused with {} worker(s); `fg` continues",
        running.len()
    );
    platform::stop_self();
    let paused = paused_at.elapsed();
    for c in running.iter_mut() {
        c.resume(paused);
    }
}

/// The supervision loop, a turn at a time, until the run is over.
fn turns(
    ctx: &RunContext,
    queue: Queue,
    launcher: &mut Launcher,
    options: &Options,
    sink: &mut dyn FnMut(RunEvent),
) -> Finish {
    let mut l = Loop {
        queue: queue.chunks.into(),
        uncut: Uncut::new(ctx, queue.uncut),
        running: Vec::new(),
        next_id: options.first_chunk.max(1),
        stopping: None,
        failing: queue.failed_before.iter().copied().collect(),
        retry: Vec::new(),
        failed_before: queue.failed_before.into_iter().collect(),
        not_run: 0,
        done_estimate_ms: 0,
        interrupts_seen: 0,
        out: Vec::new(),
        warnings: Vec::new(),
        said: HashSet::new(),
        internal_seen: HashMap::new(),
        pause: POLL,
        sink,
        options,
    };
    loop {
        l.hear_the_user(ctx);
        // Whether this turn found anything to do (see POLL).
        let mut busy = l.start_chunks(ctx, launcher);
        let (heard, wants) = l.hear_the_zygote(launcher);
        busy |= heard || !wants.is_empty();
        for pid in wants {
            if let Err(e) = l.go_on(ctx, pid, launcher) {
                l.stopping = Some(Finish::Broken(e.to_string()));
            }
        }
        let mut pids: Vec<i32> = l.running.iter().map(ChunkRun::pid).collect();
        if let Launcher::Fork(zygote) = launcher {
            pids.push(zygote.pid);
        }
        let (polled, freed) = l.poll_chunks(ctx, &pids);
        l.tick(ctx);
        if let Some(finish) = l.over(&pids) {
            return finish;
        }
        // A chunk ended this turn: its worker's place is handed out at once, not after
        // the next sleep (in fork mode 20 ms a chunk during which a core idles).
        if !freed {
            l.rest(busy || polled, launcher);
        }
    }
}

impl Loop<'_, '_> {
    /// Ctrl-Z pauses the run; Ctrl-C stops it (twice: kills the chunks); the budget's
    /// deadline stops it softly.
    fn hear_the_user(&mut self, ctx: &RunContext) {
        if platform::pause_requested() {
            pause_and_resume(&mut self.running);
        }
        let interrupts = platform::interrupts();
        if ctx.foreground.is_some() {
            // Ctrl-C on the terminal reaches the test too: it is the debugger's to handle.
            self.interrupts_seen = interrupts;
        }
        if interrupts > self.interrupts_seen {
            self.interrupts_seen = interrupts;
            if interrupts == 1 {
                (self.sink)(RunEvent::Warning(
                    "interrupted: stopping the running chunks (Ctrl-C again to kill them at once)"
                        .into(),
                ));
                // First said in the stop file, so the workers tell mtest's SIGINT from
                // a KeyboardInterrupt that a test raises.
                if let Some(stop) = &ctx.stop_file {
                    let _ = std::fs::write(stop, "interrupted");
                }
                self.running.iter_mut().for_each(ChunkRun::interrupt);
            } else {
                self.running.iter_mut().for_each(ChunkRun::kill);
            }
            self.stopping = Some(Finish::Interrupted);
        }
        let out_of_time = self.options.deadline.is_some_and(|d| Instant::now() >= d);
        if out_of_time && self.stopping.is_none() {
            self.stop_soft(ctx, "the budget ran out");
            self.stop(Finish::OutOfBudget { not_run: 0 });
        }
    }

    /// Starts chunks while there are free workers and work; whether it started any.
    fn start_chunks(&mut self, ctx: &RunContext, launcher: &mut Launcher) -> bool {
        let mut started = false;
        while self.stopping.is_none() && self.running.len() < self.options.jobs.max(1) as usize {
            let Some(chunk) = self
                .queue
                .pop_front()
                .or_else(|| self.uncut.next(ctx, self.options.jobs))
            else {
                break;
            };
            let slot = free_slot(&self.running);
            match ChunkRun::spawn(ctx, self.next_id, slot, chunk, launcher, None) {
                Ok(chunk) => {
                    self.running.push(chunk);
                    started = true;
                }
                Err(e) => {
                    self.stopping = Some(Finish::Broken(e.to_string()));
                    break;
                }
            }
            self.next_id += 1;
        }
        started
    }

    /// Fork mode: the zygote reaps the workers and says how they ended, and which ask
    /// for a next chunk (returned, with whether it said anything). A zygote that died
    /// leaves the rest of the run to process mode.
    fn hear_the_zygote(&mut self, launcher: &mut Launcher) -> (bool, Vec<i32>) {
        let Launcher::Fork(zygote) = launcher else {
            return (false, Vec::new());
        };
        let heard = !zygote.read().is_empty();
        self.warnings.append(&mut zygote.notices);
        // A worker that went on with a next chunk is the process of two chunks.
        let mut forked: Vec<i32> = self
            .running
            .iter()
            .filter(|c| c.is_forked())
            .map(ChunkRun::pid)
            .collect();
        forked.sort_unstable();
        forked.dedup();
        for pid in forked {
            if let Some(status) = zygote.take_exit(pid) {
                for chunk in self.running.iter_mut().filter(|c| c.pid() == pid) {
                    chunk.exited(status);
                }
            }
        }
        let wants = zygote.take_wants();
        if let Some(status) = zygote.ended() {
            // Its workers died with it (PDEATHSIG): their tests in flight crashed, and
            // the rest goes on in process mode.
            self.warnings.push(format!(
                "the zygote (pid {}) died ({}); its workers with it: going on in process mode",
                zygote.pid,
                platform::describe_exit(status)
            ));
            for chunk in self.running.iter_mut().filter(|c| c.is_forked()) {
                chunk.exited(platform::killed_status());
            }
            *launcher = Launcher::Process;
        }
        (heard, wants)
    }

    /// Reads every running chunk and ends those that are over; (whether any had news,
    /// whether any ended).
    fn poll_chunks(&mut self, ctx: &RunContext, pids: &[i32]) -> (bool, bool) {
        let (mut busy, mut freed) = (false, false);
        let mut i = 0;
        while i < self.running.len() {
            let chunk = &mut self.running[i];
            busy |= chunk.poll(ctx, &mut self.out, &mut self.warnings) || chunk.winding_down();
            let ended = chunk.try_end(ctx, pids, &mut self.out, &mut self.warnings);
            let forensic_ok = !chunk.ran_alone();
            self.take_records(ctx, forensic_ok);
            let Some(ended) = ended else {
                i += 1;
                continue;
            };
            busy = true;
            freed = true;
            let done = self.running.swap_remove(i);
            for next in self.running.iter_mut().filter(|c| c.pid() == done.pid()) {
                next.predecessor_ended();
            }
            self.chunk_ended(ctx, ended);
        }
        (busy, freed)
    }

    /// A chunk's records and warnings of this turn passed on; --max-fail counted.
    fn take_records(&mut self, ctx: &RunContext, forensic_ok: bool) {
        for record in std::mem::take(&mut self.out) {
            self.record(ctx, record, forensic_ok);
        }
        for warning in self.warnings.drain(..) {
            if self.said.insert(warning.clone()) {
                (self.sink)(RunEvent::Warning(warning));
            }
        }
        let enough = self
            .options
            .max_fail
            .is_some_and(|n| self.failing.len() >= n as usize);
        if enough && self.stopping.is_none() {
            // Every running worker ends after its current test; nothing new starts.
            self.stop_soft(ctx, "--max-fail: enough tests failed");
            self.stop(Finish::FailedFast { not_run: 0 });
        }
    }

    /// A chunk is over: said; what it dropped counted, its forensic record passed on, a
    /// broken pytest stops the run, what it never reached and its retries queued.
    fn chunk_ended(&mut self, ctx: &RunContext, mut ended: Ended) {
        (self.sink)(RunEvent::ChunkEnded {
            chunk: ended.chunk,
            startup: ended.startup,
            versions: ended.versions.clone(),
        });
        self.not_run += ended.dropped;
        if ended.dropped > 0 && self.stopping.is_none() {
            // A worker stopped itself at --max-fail (every worker counts the run's
            // failing tests) before mtest had read as many: the run stops all the
            // same, and says how many tests did not run; never a silent gap.
            self.stop_soft(ctx, "--max-fail: enough tests failed");
            self.stop(match self.options.max_fail {
                Some(_) => Finish::FailedFast { not_run: 0 },
                None => Finish::Broken(format!(
                    "a worker stopped early and {} selected test(s) did not run",
                    ended.dropped
                )),
            });
        }
        if let Some(record) = ended.forensic.take() {
            self.record(ctx, record, false);
        }
        if let Some(text) = ended.internal.take() {
            self.internal_error(text, &mut ended);
        }
        if let Some(text) = ended.broken.take() {
            if matches!(self.stopping, None | Some(Finish::FailedFast { .. })) {
                self.stopping = Some(Finish::Broken(text));
            }
            self.running.iter_mut().for_each(ChunkRun::kill);
            return;
        }
        // What a dead chunk never reached runs next, before the rest.
        for chunk in ended.requeue.drain(..).rev() {
            self.queue.push_front(chunk);
        }
        self.queue_retries();
    }

    /// The same INTERNALERROR for a second test: it is not the test's, it is pytest's or
    /// a plugin's, and re-queueing would only repeat it.
    fn internal_error(&mut self, text: String, ended: &mut Ended) {
        let key = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .to_string();
        let seen = self.internal_seen.entry(key).or_insert(0);
        *seen += 1;
        if *seen > 1 && ended.broken.is_none() {
            ended.broken = Some(format!(
                "the same INTERNALERROR ended pytest's run loop twice; pytest's text:\n{text}"
            ));
            ended.requeue.clear();
        }
    }

    /// Failures of the chunk that ended get their retry, each attempt level in one chunk.
    fn queue_retries(&mut self) {
        let mut retries = std::mem::take(&mut self.retry);
        retries.sort_by_key(|(_, attempt)| *attempt);
        let levels: std::collections::BTreeSet<u32> = retries.iter().map(|(_, a)| *a).collect();
        for attempt in levels {
            let tests = retries
                .iter()
                .filter(|(_, a)| *a == attempt)
                .map(|(t, _)| *t)
                .collect();
            self.queue.push_back(Chunk {
                tests,
                isolated: false,
                attempt,
                forensic: None,
            });
        }
    }

    /// What runs now and the estimate of what is done, for the console.
    fn tick(&mut self, ctx: &RunContext) {
        let running = self
            .running
            .iter()
            .filter_map(|c| {
                let (test, started) = c.current()?;
                Some(Running {
                    test_id: ctx.tests[test].id.clone(),
                    worker: c.id,
                    started,
                })
            })
            .collect();
        (self.sink)(RunEvent::Tick {
            running,
            done_estimate_ms: self.done_estimate_ms,
        });
    }

    /// How the run finished, once nothing runs and nothing is left (or it is stopping):
    /// strays killed, crashes whose re-run never started recorded as they are, the tests
    /// that did not run counted.
    fn over(&mut self, pids: &[i32]) -> Option<Finish> {
        let nothing_left = self.queue.is_empty() && self.uncut.tests.is_empty();
        if !self.running.is_empty() || !(nothing_left || self.stopping.is_some()) {
            return None;
        }
        // Whatever the chunks' tests left running that no chunk end caught.
        let list = platform::kill_strays(None, None, pids);
        if !list.is_empty() {
            (self.sink)(RunEvent::Warning(format!(
                "{} process(es) were left running at the end of the run, killed: {}",
                list.len(),
                list.join("; ")
            )));
        }
        // An interrupted run leaves them to --resume.
        if self.stopping != Some(Finish::Interrupted) {
            for chunk in self.queue.iter_mut() {
                if let Some(record) = chunk.forensic.take() {
                    (self.sink)(RunEvent::Record(record));
                }
            }
        }
        let not_run = self.not_run
            + self.uncut.tests.len()
            + self
                .queue
                .iter()
                .filter(|j| j.forensic.is_none())
                .map(|j| j.tests.len())
                .sum::<usize>();
        Some(match self.stopping.take() {
            Some(Finish::OutOfBudget { .. }) => Finish::OutOfBudget { not_run },
            Some(Finish::FailedFast { .. }) => Finish::FailedFast { not_run },
            Some(other) => other,
            None => Finish::Completed,
        })
    }

    /// Sleeps until the next turn: briefly after a busy one, longer and longer while
    /// nothing happens (in fork mode, woken early when the zygote writes).
    fn rest(&mut self, busy: bool, launcher: &mut Launcher) {
        self.pause = match (busy, &*launcher) {
            (true, Launcher::Fork(_)) => POLL_FORK,
            (true, Launcher::Process) => POLL,
            (false, _) => (self.pause * 2).min(POLL_IDLE),
        };
        match launcher {
            Launcher::Fork(zygote) => zygote.wait(self.pause),
            Launcher::Process => std::thread::sleep(self.pause),
        }
    }
}
