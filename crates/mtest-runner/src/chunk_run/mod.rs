//! One chunk: tests run together by one process in its own process group — a forked
//! worker of the zygote (fork mode) or a `python -m pytest` of its own (process mode) —
//! watched through its event file until it exits, then classified.
//!
//! States of the test in flight: started → (reports) → finished, or started → watchdog
//! (stack dump → SIGTERM to the group → SIGKILL to the group) → hung, or started → the
//! process died → crashed. Tests the chunk never reached go back to the dispatcher.
//!
//! Here: starting the chunk, reading its events, its watchdog's signals; in `end`, what its
//! exit leaves classified; in `records`, the records it writes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::path_args::path_args;
use crate::clock;
use crate::platform::{self, Sig};
use crate::pytest::events::{
    parse_line, Aborted, Event, EventTail, Finish, Hot, Leaked, Report, Unreadable,
};
use crate::pytest::zygote::{ForkRequest, Zygote};
use crate::pytest::{render_command, Pytest, PytestError};
use crate::record::PlannedTest;
use crate::record::{one_line, Outcome, TestRecord};
use crate::watchdog::{Action, Asked, Seen, Session, Watchdog, Why};

mod deps;
mod end;
mod records;

use records::check_reports;

/// What every chunk of a run shares.
pub struct RunContext<'a> {
    pub(crate) pytest: &'a Pytest,
    pub tests: &'a [PlannedTest],
    pub index: crate::FastMap<&'a str, usize>,
    /// Every file the collection found tests in (chunks pass directories when complete).
    pub(crate) universe: BTreeSet<String>,
    pub(crate) run_id: String,
    pub(crate) chunk_dir: PathBuf,
    /// Per-test timeout handed to pytest-timeout, seconds.
    pub(crate) timeout_s: f64,
    /// How long past its timeout a test may run before the watchdog stops it.
    pub(crate) grace: Duration,
    /// Written when the budget runs out or --fail-fast stops the run; chunks end after
    /// their current test.
    pub stop_file: Option<PathBuf>,
    /// Fork mode: each test's index among the zygote's collected items.
    pub item_index: Vec<u32>,
    /// Fork mode: workers keep the collected heap frozen.
    pub gc_freeze: bool,
    /// Process mode: a file holding the collection's initial paths (`MTEST_INITPATHS`):
    /// a chunk's own path arguments must not make its files initial paths.
    pub initial_paths: Option<PathBuf>,
    /// `-j`: the workers' number, as pytest-xdist's PYTEST_XDIST_WORKER_COUNT says it.
    pub jobs: u32,
    /// --max-fail, counted by the workers themselves.
    pub max_fail: Option<FailureLimit>,
    /// How long a pytest process may take to end once its tests are over
    /// (`session-end-timeout`).
    pub session_end: Duration,
    /// pytest's debugger flags (`--pdb`, `--trace`): the chunk is one test run on the
    /// user's terminal, in mtest's process group, and no watchdog stops it (the user may
    /// sit in the debugger for as long as they like).
    pub foreground: Option<Vec<String>>,
}

/// --max-fail as the workers count it: each appends its failing tests' ids to `failing`
/// and stops (writing the stop file) once it holds `tests` of them, those in `forgiven`
/// (quarantined) aside. So at `-j 1` exactly N failing tests run.
pub struct FailureLimit {
    pub tests: u32,
    pub failing: PathBuf,
    pub forgiven: PathBuf,
}

/// What the event plugin's `stopped` says when mtest's stop file ended the session.
const STOP_ASKED: &str = "mtest asked to stop";

/// A worker's name as pytest-xdist gives it (`gw0`, `gw1`…), by its slot.
pub(crate) fn worker_name(slot: u32) -> String {
    format!("gw{slot}")
}

impl<'a> RunContext<'a> {
    pub fn new(
        pytest: &'a Pytest,
        tests: &'a [PlannedTest],
        universe: BTreeSet<String>,
        run_id: String,
        last_run: &Path,
        timeout_s: f64,
    ) -> Self {
        RunContext {
            pytest,
            tests,
            universe,
            index: tests
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.as_str(), i))
                .collect(),
            run_id,
            chunk_dir: last_run.join("chunks"),
            timeout_s,
            grace: Duration::from_secs(5),
            stop_file: None,
            jobs: 1,
            max_fail: None,
            session_end: clock::secs(crate::store::state::session_end_timeout()),
            item_index: Vec::new(),
            gc_freeze: true,
            initial_paths: None,
            foreground: None,
        }
    }

    fn limit_for(&self, test: usize) -> Duration {
        let t = self.tests[test].timeout_s.unwrap_or(self.timeout_s);
        clock::secs(t).saturating_add(self.grace)
    }
}

/// What one chunk is asked to do.
pub struct Chunk {
    pub(crate) tests: Vec<usize>,
    /// One test that crashed last time, run alone and unbuffered (it needs no re-run).
    pub(crate) isolated: bool,
    /// 1 for a first run; n for the (n-1)th retry of failed tests.
    pub attempt: u32,
    /// Set for the re-run of a crashed test alone, unbuffered: its record, held back until
    /// the re-run says more about the crash.
    pub(crate) forensic: Option<Box<TestRecord>>,
}

impl Chunk {
    pub fn first(ctx: &RunContext, tests: Vec<usize>) -> Chunk {
        let isolated = matches!(tests.as_slice(), [t] if ctx.tests[*t].isolate);
        Chunk {
            tests,
            isolated,
            attempt: 1,
            forensic: None,
        }
    }
}

struct InFlight {
    test: usize,
    started: Instant,
    started_at: SystemTime,
    reports: Vec<Report>,
    /// Event lines of this test that could not be read at all.
    unreadable: Vec<String>,
}

/// How the chunk's process is started and waited for.
enum Proc {
    /// A `python -m pytest` of its own: waited for here.
    Spawned(Child),
    /// A fork of the zygote: the zygote reaps it and reports its status.
    Forked { status: Option<ExitStatus> },
}

/// Where chunks come from: their own pytest processes, or forks of the zygote.
pub enum Launcher {
    Process,
    Fork(Box<Zygote>),
}

/// How a chunk ended, for the dispatcher.
pub(crate) struct Ended {
    pub(crate) chunk: u32,
    /// Tests the chunk never ran because it was asked to stop early (budget, --fail-fast).
    pub(crate) dropped: usize,
    /// A forensic re-run's verdict: the held-back record, completed.
    pub(crate) forensic: Option<TestRecord>,
    /// Tests to run again in new chunks (the process died before reaching them).
    pub(crate) requeue: Vec<Chunk>,
    /// pytest could not run at all: its text. The run stops.
    pub(crate) broken: Option<String>,
    /// A test's INTERNALERROR (a hook raised): its text; the same one twice stops the run.
    pub(crate) internal: Option<String>,
    /// Time from spawn to the first test: pytest's fixed cost per chunk here.
    pub(crate) startup: Option<Duration>,
    pub(crate) versions: Option<(String, String)>,
}

pub(crate) struct ChunkRun {
    pub(crate) id: u32,
    attempt: u32,
    isolated: bool,
    forensic: Option<Box<TestRecord>>,
    /// What mtest asked of it: to end after its current test, or to stop now.
    asked: Asked,
    /// A forensic re-run's own records.
    held: Vec<TestRecord>,
    tests: Vec<usize>,
    proc: Proc,
    pid: i32,
    tail: EventTail,
    files: ChunkFiles,
    command: String,
    spawned: Instant,
    last_event: Instant,
    /// Spawn to first test start: start-up plus collecting the chunk's files.
    first_test: Option<Duration>,
    session: Session,
    heard: Heard,
    /// What its event file declared of its tests' dependencies.
    declared: deps::Declared,
    in_flight: Option<InFlight>,
    done: crate::FastSet<usize>,
    /// The processes its tests leaked, killed at each test's end: one may still be dying
    /// when the chunk ends (SIGKILL takes effect when it is next scheduled), and is no
    /// stray of the chunk's then.
    killed: Vec<i32>,
    /// Where in `tests` the next test to start is expected (a worker runs its chunk in
    /// order): its id is compared, not looked up in the run's 100k-entry index.
    cursor: usize,
    any_failure: bool,
    succession: Succession,
    watcher: Watcher,
    /// The number of its worker's first chunk.
    mark: u32,
    /// Its worker's slot among the `-j` running at once: its name (`gw0`…), which the
    /// processes its tests start carry in their environment (PYTEST_XDIST_WORKER).
    slot: u32,
    dog: Watchdog,
}

/// What its events told, beside its tests' records.
#[derive(Default)]
struct Heard {
    /// Python's and pytest's versions.
    versions: Option<(String, String)>,
    /// Files that failed to collect in it: (id, pytest's text).
    collect_errors: Vec<(String, String)>,
    /// A test ended the run loop (KeyboardInterrupt, pytest.exit(), INTERNALERROR).
    aborted: bool,
    internal: Option<String>,
    /// pytest's session asked to stop (-x, --maxfail): why.
    stopped: Option<String>,
    /// Tests that started non-daemon threads (they keep pytest from exiting).
    thread_starters: Vec<String>,
    /// pytest refused its options: why.
    refused: Option<String>,
    /// Said once the loop takes them (`poll`).
    warnings: Vec<String>,
}

/// Whether its worker goes on with a next chunk in the same process.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Succession {
    /// Its process ends with its chunk (process mode, a test run alone).
    Last,
    /// Fork mode, a chunk from the uncut tests: its worker asks for a next chunk before its
    /// last test.
    MayGoOn,
    /// Its worker went on with a next chunk: this chunk ends when its session does, not
    /// when the process does.
    HandedOver,
}

/// Who watches its process and signals it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Watcher {
    /// It continues a worker that is still running the last test of its previous chunk:
    /// that chunk watches it; this one has no watchdog and sends no signals until
    /// that chunk ends.
    Predecessor,
    Itself,
}

/// A fork-mode chunk's worker: the chunk's id and slot, the worker it continues (pid, its
/// first chunk's id), and how it runs.
#[derive(Clone, Copy)]
struct Worker {
    id: u32,
    slot: u32,
    continues: Option<(i32, u32)>,
    unbuffered: bool,
    more: bool,
}

/// Writes the chunk's test ids, one a line, to `ids`; returns its files, each once, in
/// order.
fn write_ids<'c>(
    ctx: &'c RunContext,
    tests: &[usize],
    ids: &Path,
) -> Result<Vec<&'c str>, PytestError> {
    let mut id_list = String::new();
    let mut files: Vec<&str> = Vec::new();
    for &t in tests {
        id_list.push_str(&ctx.tests[t].id);
        id_list.push('\n');
        let file = ctx.tests[t].file.as_str();
        if !files.contains(&file) {
            files.push(file);
        }
    }
    std::fs::write(ids, id_list).map_err(PytestError::write(ids))?;
    Ok(files)
}

/// The files of a chunk, in the run's chunk directory.
struct ChunkFiles {
    /// Its tests' ids, one a line.
    ids: PathBuf,
    events: PathBuf,
    /// pytest's output.
    log: PathBuf,
    /// Where faulthandler writes its stacks (SIGUSR1).
    stacks: PathBuf,
}

impl ChunkFiles {
    fn of(ctx: &RunContext, id: u32) -> ChunkFiles {
        let file = |ext: &str| ctx.chunk_dir.join(format!("chunk-{id:04}.{ext}"));
        ChunkFiles {
            ids: file("ids"),
            events: file("events"),
            log: file("log"),
            stacks: file("stacks"),
        }
    }
}

impl ChunkRun {
    /// Starts `chunk` with id `id` in worker slot `slot`: a new worker, or with
    /// `continues` (a worker's pid and its chunk's mark, fork mode) the next chunk of a
    /// worker that asked for one.
    pub(crate) fn spawn(
        ctx: &RunContext,
        id: u32,
        slot: u32,
        chunk: Chunk,
        launcher: &mut Launcher,
        continues: Option<(i32, u32)>,
    ) -> Result<ChunkRun, PytestError> {
        let Chunk {
            tests,
            isolated,
            attempt,
            forensic,
        } = chunk;
        let paths = ChunkFiles::of(ctx, id);
        // It may have been deleted during the run (with the rest of .gates/).
        std::fs::create_dir_all(&ctx.chunk_dir).map_err(PytestError::write(&ctx.chunk_dir))?;

        let files = write_ids(ctx, &tests, &paths.ids)?;
        let tail = EventTail::create(&paths.events).map_err(PytestError::write(&paths.events))?;
        let unbuffered = forensic.is_some() || isolated;
        let more = matches!(launcher, Launcher::Fork(_)) && !unbuffered;
        let (proc, pid, command) = match launcher {
            Launcher::Fork(zygote) => {
                let worker = Worker {
                    id,
                    slot,
                    continues,
                    unbuffered,
                    more,
                };
                Self::fork_worker(ctx, zygote, &worker, &tests, &paths)?
            }
            Launcher::Process => {
                let (child, command) =
                    Self::spawn_process(ctx, (id, slot), &files, &paths, unbuffered)?;
                let pid = child_pid(&child);
                (Proc::Spawned(child), pid, command)
            }
        };
        let now = Instant::now();
        Ok(ChunkRun {
            id,
            attempt,
            isolated,
            forensic,
            asked: Asked::Nothing,
            held: Vec::new(),
            pid,
            tests,
            proc,
            tail,
            files: paths,
            command,
            spawned: now,
            last_event: now,
            first_test: None,
            session: Session::NotStarted,
            heard: Heard::default(),
            declared: deps::Declared::default(),
            in_flight: None,
            done: crate::FastSet::default(),
            killed: Vec::new(),
            cursor: 0,
            any_failure: false,
            succession: if more {
                Succession::MayGoOn
            } else {
                Succession::Last
            },
            watcher: if continues.is_some() {
                Watcher::Predecessor
            } else {
                Watcher::Itself
            },
            mark: continues.map_or(id, |(_, mark)| mark),
            slot,
            dog: Watchdog::default(),
        })
    }

    /// Fork mode: a fork of the zygote for the chunk, or (`continues`) the next chunk of
    /// a worker that asked for one; its pid and how to tell it in a bundle.
    fn fork_worker(
        ctx: &RunContext,
        zygote: &mut Zygote,
        worker: &Worker,
        tests: &[usize],
        paths: &ChunkFiles,
    ) -> Result<(Proc, i32, String), PytestError> {
        let Worker {
            id,
            slot,
            continues,
            unbuffered,
            more,
        } = *worker;
        let items: Vec<u32> = tests.iter().map(|&t| ctx.item_index[t]).collect();
        let request = ForkRequest {
            c: if continues.is_some() { "next" } else { "fork" },
            pid: continues.map(|(pid, _)| pid),
            w: id,
            worker: worker_name(slot),
            workers: ctx.jobs,
            run: &ctx.run_id,
            items: &items,
            events: &paths.events,
            log: &paths.log,
            stacks: &paths.stacks,
            stop: ctx.stop_file.as_deref(),
            unbuffered,
            gc_freeze: ctx.gc_freeze,
            max_fail: ctx.max_fail.as_ref().map(|l| l.tests),
            failing: ctx.max_fail.as_ref().map(|l| l.failing.as_path()),
            forgiven: ctx.max_fail.as_ref().map(|l| l.forgiven.as_path()),
            more,
        };
        let pid = match continues {
            Some((pid, _)) => zygote.answer(pid, Some(&request)).map(|()| pid)?,
            None => zygote.fork(&request)?,
        };
        let command = format!(
            "{} # forked worker {}, its tests in {}",
            zygote.command,
            continues.map_or(id, |(_, mark)| mark),
            paths.ids.display()
        );
        Ok((Proc::Forked { status: None }, pid, command))
    }

    /// Process mode: a pytest process of its own for the chunk's files, keeping its ids.
    fn spawn_process(
        ctx: &RunContext,
        (id, slot): (u32, u32),
        files: &[&str],
        paths: &ChunkFiles,
        unbuffered: bool,
    ) -> Result<(Child, String), PytestError> {
        let ChunkFiles {
            ids,
            events,
            log,
            stacks,
        } = paths;
        let mut cmd = ctx.pytest.command(events);
        cmd.env("MTEST_SELECT", ids)
            .env("MTEST_STACKS", stacks)
            .env("PYTEST_XDIST_WORKER", worker_name(slot))
            .env("PYTEST_XDIST_WORKER_COUNT", ctx.jobs.to_string())
            .env("PYTEST_XDIST_TESTRUNUID", &ctx.run_id)
            .arg(format!("--timeout={}", ctx.timeout_s))
            .arg("--continue-on-collection-errors");
        if let Some(stop) = &ctx.stop_file {
            cmd.env("MTEST_STOP", stop);
        }
        if let Some(initial) = &ctx.initial_paths {
            cmd.env("MTEST_INITPATHS", initial);
        }
        if let Some(limit) = &ctx.max_fail {
            cmd.env("MTEST_MAXFAIL", limit.tests.to_string())
                .env("MTEST_FAILING", &limit.failing)
                .env("MTEST_FORGIVEN", &limit.forgiven);
        }
        if ctx.pytest.coverage {
            // pytest-cov erases and combines the data file at each session's start and
            // end: each chunk keeps its own, combined when the run ends.
            cmd.env(
                "COVERAGE_FILE",
                ctx.chunk_dir.join(format!("chunk-{id:04}.coverage")),
            );
        }
        if unbuffered {
            // Output lost with --capture=fd survives a crash when teed and unbuffered.
            cmd.env("PYTHONUNBUFFERED", "1").arg("--capture=tee-sys");
        }
        if ctx.foreground.is_none() {
            cmd.arg("-q");
        }
        ctx.pytest.finish_args(&mut cmd);
        if let Some(debugger) = &ctx.foreground {
            // On the terminal, in mtest's process group (the terminal's foreground).
            cmd.env("MTEST_FOREGROUND", "1").args(debugger);
        } else {
            let out = std::fs::File::create(log).map_err(PytestError::write(log))?;
            let err = out.try_clone().map_err(PytestError::write(log))?;
            cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        }
        cmd.arg("--").args(path_args(files, &ctx.universe));
        let command = render_command(&cmd);
        let spawned = match ctx.foreground {
            Some(_) => cmd.spawn(),
            None => platform::spawn_owned(&mut cmd),
        };
        let child = spawned.map_err(|source| PytestError::NoPython {
            python: ctx.pytest.python.clone(),
            source,
        })?;
        Ok((child, command))
    }

    /// Fork mode: the zygote reaped this worker.
    pub(crate) fn exited(&mut self, status: ExitStatus) {
        if let Proc::Forked { status: s } = &mut self.proc {
            *s = Some(status);
        }
    }

    pub(crate) fn is_forked(&self) -> bool {
        matches!(self.proc, Proc::Forked { .. })
    }

    /// Its worker asked for a next chunk and may be given one: a chunk cut on demand whose worker
    /// has not gone on already and is not being stopped.
    pub(crate) fn may_go_on(&self) -> bool {
        self.succession == Succession::MayGoOn && self.asked == Asked::Nothing
    }

    /// Its worker goes on with a next chunk: the chunk ends with its session.
    pub(crate) fn hand_over(&mut self) {
        self.succession = Succession::HandedOver;
    }

    /// The mark its worker puts on the processes its tests start.
    pub(crate) fn mark(&self) -> u32 {
        self.mark
    }

    /// Its worker's slot (see [`worker_name`]).
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// The chunk before it on the same worker has ended: its own clocks start now.
    pub(crate) fn predecessor_ended(&mut self) {
        if self.watcher == Watcher::Predecessor {
            self.watcher = Watcher::Itself;
            self.spawned = Instant::now();
            self.last_event = self.spawned;
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Ctrl-Z: asks the worker to pause (its event plugin puts pytest-timeout's timer
    /// aside and stops its process group).
    pub(crate) fn pause(&self) {
        if self.watcher == Watcher::Itself {
            platform::signal_pid(self.pid, Sig::SIGTSTP);
        }
    }

    /// Stops the worker's group outright (a worker that did not pause itself in time).
    pub(crate) fn stop(&self) {
        platform::signal_group(self.pid, Sig::SIGSTOP);
    }

    /// `fg`: the worker's group runs on, and every clock of this chunk moves on by the
    /// time it was paused, so a paused test does not become `hung`.
    pub(crate) fn resume(&mut self, paused: Duration) {
        platform::signal_group(self.pid, Sig::SIGCONT);
        let later = |t: Instant| t.checked_add(paused).unwrap_or(t);
        self.spawned = later(self.spawned);
        self.last_event = later(self.last_event);
        if let Session::Over(t) = self.session {
            self.session = Session::Over(later(t));
        }
        if let Some(f) = self.in_flight.as_mut() {
            f.started = later(f.started);
        }
        self.dog.shift(paused);
    }

    /// The test running now, and since when.
    pub(crate) fn current(&self) -> Option<(usize, Instant)> {
        self.in_flight.as_ref().map(|f| (f.test, f.started))
    }

    /// Reads new events (finished tests go to `out`) and advances the watchdog. A forensic
    /// re-run keeps its records to itself: they only inform the held-back one. Says
    /// whether there were new events.
    pub(crate) fn poll(
        &mut self,
        ctx: &RunContext,
        out: &mut Vec<TestRecord>,
        warnings: &mut Vec<String>,
    ) -> bool {
        let read = if self.forensic.is_some() {
            let mut held = std::mem::take(&mut self.held);
            let read = self.read_events(ctx, &mut held);
            self.held = held;
            read
        } else {
            self.read_events(ctx, out)
        };
        self.watch(ctx);
        warnings.append(&mut self.heard.warnings);
        read
    }

    fn read_events(&mut self, ctx: &RunContext, out: &mut Vec<TestRecord>) -> bool {
        let lines = self.tail.read_lines();
        if lines.is_empty() {
            return false;
        }
        self.last_event = Instant::now();
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            // A test's start and plain finish, read in place (two a test).
            match Hot::parse(line) {
                Some(Hot::Start { id, t }) => self.start(ctx, id, t),
                Some(Hot::Finish { id, t, n, deps }) => self.finish(
                    ctx,
                    (id, t, Some(n)),
                    Default::default(),
                    deps.numbers(),
                    out,
                ),
                None => match parse_line(line) {
                    Ok(event) => self.apply(ctx, event, out),
                    Err(Unreadable(line)) => {
                        // Never dropped: the test in flight cannot pass with it unread.
                        match self.in_flight.as_mut() {
                            Some(f) => f.unreadable.push(line),
                            None => self.heard.warnings.push(format!(
                                "chunk {}: an event line could not be read: {}",
                                self.id,
                                one_line(&line)
                            )),
                        }
                    }
                },
            }
        }
        true
    }

    fn start(&mut self, ctx: &RunContext, id: &str, t: f64) {
        if self.first_test.is_none() {
            self.first_test = Some(self.spawned.elapsed());
        }
        let expected = self.tests.get(self.cursor).copied();
        let test = match expected.filter(|&t| ctx.tests[t].id == id) {
            Some(t) => {
                self.cursor += 1;
                Some(t)
            }
            None => ctx.index.get(id).copied(),
        };
        if let Some(test) = test {
            self.in_flight = Some(InFlight {
                test,
                started: Instant::now(),
                started_at: clock::epoch(t),
                reports: Vec::new(),
                unreadable: Vec::new(),
            });
        }
    }

    /// A test's end; `left_behind`: the processes it leaked and the threads it started.
    fn finish(
        &mut self,
        ctx: &RunContext,
        (id, t, n): (&str, f64, Option<u32>),
        (leaked, threads): (Vec<Leaked>, Vec<String>),
        deps: Option<Vec<u32>>,
        out: &mut Vec<TestRecord>,
    ) {
        let Some(f) = self.take_in_flight(ctx, id) else {
            return;
        };
        let mut record = self.record_from_reports(ctx, &f, clock::epoch(t));
        record.details.deps = deps.and_then(|numbers| self.declared.deps(&numbers));
        check_reports(&mut record, &f, n);
        for l in leaked {
            platform::kill_and_reap(l.pid);
            self.killed.push(l.pid);
            let by = l
                .owner
                .map(|o| format!("; started by {o}"))
                .unwrap_or_default();
            record
                .leaked
                .push(format!("{} {} (killed by mtest{by})", l.pid, l.cmd));
        }
        if !threads.is_empty() {
            self.heard
                .thread_starters
                .push(format!("{} ({})", record.test_id, threads.join(", ")));
        }
        self.any_failure |= record.outcome.is_failure();
        self.done.insert(f.test);
        self.with_command(&mut record);
        out.push(record);
    }

    fn apply(&mut self, ctx: &RunContext, event: Event, out: &mut Vec<TestRecord>) {
        match event {
            Event::SessionStart { pytest, python, .. } => {
                self.session = Session::Running;
                self.heard.versions = Some((python, pytest));
            }
            Event::Start { id, t } => self.start(ctx, &id, t),
            Event::Report(report) => {
                if let Some(f) = self
                    .in_flight
                    .as_mut()
                    .filter(|f| ctx.tests[f.test].id == report.id)
                {
                    f.reports.push(report);
                }
            }
            Event::Finish(Finish {
                id,
                t,
                n,
                leaked,
                threads,
                deps,
            }) => self.finish(ctx, (&id, t, n), (leaked, threads), deps, out),
            Event::Source {
                n,
                path,
                sum,
                early,
            } => self.declared.source(n, path, sum, early),
            Event::Block { n, source, name } => self.declared.block(n, source, name),
            Event::Deps {
                n,
                blocks,
                files,
                before,
            } => self.declared.set(n, &blocks, &files, before),
            Event::Aborted(aborted) => self.abort(ctx, aborted, out),
            Event::Stopped { why } => {
                // mtest's own stop (its stop file, or the workers' --max-fail count, which
                // writes it): the rest of the chunk is left out as after `stop_soft`.
                if why == STOP_ASKED {
                    self.asked = self.asked.max(Asked::StopAfterTest);
                }
                self.heard.stopped = Some(why);
            }
            Event::Notice { text } => self.heard.warnings.push(text),
            Event::Refused { text } => self.heard.refused = Some(text),
            Event::CollectError { id, text } => self.heard.collect_errors.push((id, text)),
            Event::SessionFinish { .. } => self.session = Session::Over(Instant::now()),
            Event::TestsDone if self.session.over_since().is_none() => {
                self.session = Session::Over(Instant::now());
            }
            _ => {}
        }
    }

    /// A test ended the run loop: its record, failed (an error for an INTERNALERROR).
    fn abort(&mut self, ctx: &RunContext, a: Aborted, out: &mut Vec<TestRecord>) {
        // A plugin can raise before the test's `start` (pytest-timeout arms its timer
        // first): the test is still the one that broke the loop.
        let f = match self.take_in_flight(ctx, &a.id) {
            Some(f) => f,
            None => match ctx.index.get(a.id.as_str()) {
                Some(&test) if !self.done.contains(&test) => InFlight {
                    test,
                    started: Instant::now(),
                    started_at: clock::epoch(a.t),
                    reports: Vec::new(),
                    unreadable: Vec::new(),
                },
                _ => return,
            },
        };
        let mut record = self.record_from_reports(ctx, &f, clock::epoch(a.t));
        check_reports(&mut record, &f, a.n);
        let internal = a.kind == "internal";
        if internal {
            record.outcome = Outcome::Error;
        } else if !record.outcome.is_failure() {
            record.outcome = Outcome::Failed;
        }
        record.message = Some(a.message);
        if !record.details.failure.is_empty() {
            record.details.failure.push_str("\n\n");
        }
        record.details.failure.push_str(&a.text);
        if internal {
            self.heard.internal = Some(a.text);
        }
        self.heard.aborted = true;
        self.any_failure = true;
        self.done.insert(f.test);
        self.with_command(&mut record);
        out.push(record);
    }

    /// A failure's bundle shows the command that ran it (set late: the outcome can turn
    /// into a failure after the record is made).
    fn with_command(&self, record: &mut TestRecord) {
        if record.outcome.is_failure() && record.details.command.is_empty() {
            record.details.command = self.command.clone();
        }
    }

    /// The test in flight, if it is `id`.
    fn take_in_flight(&mut self, ctx: &RunContext, id: &str) -> Option<InFlight> {
        let f = self.in_flight.take()?;
        if ctx.tests[f.test].id != id {
            self.in_flight = Some(f);
            return None;
        }
        Some(f)
    }

    fn watch(&mut self, ctx: &RunContext) {
        if self.watcher == Watcher::Predecessor || ctx.foreground.is_some() {
            return;
        }
        let seen = Seen {
            in_flight: self
                .in_flight
                .as_ref()
                .map(|f| (f.test, f.started, ctx.limit_for(f.test))),
            last_event: self.last_event,
            quiet_limit: clock::secs(ctx.timeout_s.max(1.0))
                .saturating_add(ctx.grace)
                .saturating_add(Duration::from_secs(60)),
            session_over: self.session.over_since(),
            session_end_limit: ctx.session_end,
        };
        let Some(action) = self.dog.tick(Instant::now(), &seen) else {
            return;
        };
        if self.dog.why() == Some(Why::Lingered) {
            // pytest's session is over but the process lived on: a non-daemon thread, a
            // hanging atexit handler.
            let starters = if self.heard.thread_starters.is_empty() {
                String::new()
            } else {
                format!(
                    "; non-daemon threads were started by {}",
                    self.heard.thread_starters.join("; ")
                )
            };
            self.heard.warnings.push(format!(
                "chunk {}: pytest did not exit {} after its tests ended (session-end-timeout){starters}; killed",
                self.id,
                clock::human(ctx.session_end)
            ));
        }
        self.signal(action);
    }

    fn signal(&self, action: Action) {
        crate::pytest::signal(self.pid, action);
    }

    /// First Ctrl-C: ask pytest to stop (KeyboardInterrupt); the test in flight is not
    /// recorded, so `--resume` runs it.
    pub(crate) fn interrupt(&mut self) {
        self.asked = Asked::Interrupt;
        if self.watcher == Watcher::Predecessor {
            return; // the chunk before it on the same worker signals it
        }
        if let Some(action) = self.dog.interrupt(Instant::now()) {
            self.signal(action);
        }
    }

    /// The budget ran out or --fail-fast: finish the current test, then end the session (the event
    /// plugin sees the stop file after each test).
    pub(crate) fn stop_soft(&mut self) {
        self.asked = self.asked.max(Asked::StopAfterTest);
    }

    /// Every test of its chunk has ended, or its session has: the process ends any
    /// moment now (the loop watches closely, to hand out the next chunk at once).
    pub(crate) fn winding_down(&self) -> bool {
        self.session.over_since().is_some() || self.done.len() >= self.tests.len()
    }

    /// Its crashes need no re-run alone: it was one already.
    pub(crate) fn ran_alone(&self) -> bool {
        self.forensic.is_some() || self.isolated
    }

    /// Second Ctrl-C: kill the whole group now.
    pub(crate) fn kill(&mut self) {
        self.asked = Asked::Interrupt;
        if let Some(action) = self.dog.kill() {
            self.signal(action);
        }
    }
}

fn child_pid(child: &Child) -> i32 {
    i32::try_from(child.id()).unwrap_or(i32::MAX)
}
