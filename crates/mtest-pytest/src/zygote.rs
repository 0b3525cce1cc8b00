//! The zygote: one pytest process per run that configures pytest with the project's own
//! configuration, collects every test once, and then only forks. Each worker is a `fork()`
//! of it after collection, in a process group of its own, running chunks of items
//! through pytest's run loop (see the plugin's `zygote.py`: `serve` and `run_worker`).
//!
//! mtest talks to it on its stdin (one JSON command a line) and reads its event file: the
//! collected items, then `forked` (a worker's pid), `want` (a worker about to run the last
//! test of its chunk asks for more: mtest answers `next` with a chunk, or `done`, which
//! the zygote passes on over the worker's socket) and `exited` (its wait status). The
//! zygote runs no test; when mtest dies its stdin closes and it kills its workers.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::events::{Event, EventTail, Unreadable};
use crate::platform::{self, Sig};
use crate::watchdog::{Seen, Watchdog};
use crate::{render_command, Pytest, PytestError};

/// What the zygote does after collecting.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Report the items and end (process mode: chunks are separate pytest processes).
    Collect,
    /// Report the items, then fork workers on command.
    Fork,
}

/// One worker's chunk, as the zygote receives it: `fork` (a new worker) or `next` (the
/// answer to worker `pid`'s `want`: its next chunk, in the same process).
#[derive(Serialize)]
pub struct ForkRequest<'a> {
    pub c: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub w: u32,
    /// Its identity as pytest-xdist names workers (`gw0`…, by slot) and their number.
    pub worker: String,
    pub workers: u32,
    /// The run's id (pytest-xdist's `testrun_uid`).
    pub run: &'a str,
    /// Indices into the zygote's collected items.
    pub items: &'a [u32],
    pub events: &'a Path,
    pub log: &'a Path,
    pub stacks: &'a Path,
    pub stop: Option<&'a Path>,
    /// Tee the test's output into the log, unbuffered (a crash's re-run alone).
    pub unbuffered: bool,
    /// Leave the collected heap frozen in the worker (`gc-freeze`).
    pub gc_freeze: bool,
    /// --max-fail, counted by the workers (see `chunk_run::FailureLimit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fail: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forgiven: Option<&'a Path>,
    /// The worker asks for a next chunk before its last test (a chunk cut from the uncut tests).
    pub more: bool,
}

/// The answer to a `want` when there is no next chunk: the worker finishes and exits.
fn done_line(pid: i32) -> String {
    format!("{{\"c\":\"done\",\"pid\":{pid}}}")
}

/// The `ignore` command (without its newline).
fn ignore_line(paths: &[String]) -> Vec<u8> {
    serde_json::json!({ "c": "ignore", "paths": paths })
        .to_string()
        .into_bytes()
}

/// No more forks: the zygote ends its session once its workers are gone.
const QUIT: &[u8] = b"{\"c\":\"quit\"}\n";

pub struct Zygote {
    child: Child,
    stdin: Option<ChildStdin>,
    pub pid: i32,
    tail: EventTail,
    pub log: PathBuf,
    pub(crate) stacks: PathBuf,
    pub command: String,
    /// Exit statuses the zygote reported, by worker pid, not yet taken.
    exits: HashMap<i32, ExitStatus>,
    /// Workers that asked for a next chunk, not yet answered.
    wants: Vec<i32>,
    /// Notices (options mtest changed), said once.
    pub notices: Vec<String>,
    /// Wakes the supervision loop when the zygote writes (a worker forked or exited).
    waker: platform::FileWaker,
    /// The plugin dir on its `PYTHONPATH`, kept until it is gone (dropped after `Drop`
    /// killed it).
    _plugin_dir: std::sync::Arc<crate::PluginDir>,
}

impl Zygote {
    /// Starts `python -m pytest` with the event plugin in zygote `mode`; `args` are added
    /// before the user's own. Files go to `work/zygote.*`. `ignore_later`: it waits for
    /// [`Zygote::ignore`] before it collects.
    pub(crate) fn spawn(
        pytest: &Pytest,
        mode: Mode,
        args: &[String],
        work: &Path,
        attempt: u32,
        ignore_later: bool,
    ) -> Result<Zygote, PytestError> {
        let name = format!("zygote-{attempt}");
        let events = work.join(format!("{name}.events"));
        let log = work.join(format!("{name}.log"));
        let stacks = work.join(format!("{name}.stacks"));
        // Made here (the plugin appends to it), so it can be watched from the start.
        std::fs::File::create(&events).map_err(PytestError::write(&events))?;
        let waker = platform::FileWaker::watch(&events);
        let out = std::fs::File::create(&log).map_err(PytestError::write(&log))?;
        let err = out.try_clone().map_err(PytestError::write(&log))?;
        let mut cmd = pytest.command(&events);
        cmd.env("MTEST_COLLECT", "1")
            .env(
                "MTEST_ZYGOTE",
                match mode {
                    Mode::Collect => "collect",
                    Mode::Fork => "fork",
                },
            )
            .env("MTEST_STACKS", &stacks)
            .env("MTEST_IGNORE_LATER", if ignore_later { "1" } else { "0" })
            .args(["-q", "--continue-on-collection-errors"])
            .args(args);
        pytest.finish_args(&mut cmd);
        cmd.stdin(Stdio::piped()).stdout(out).stderr(err);
        let command = render_command(&cmd);
        let mut child =
            platform::spawn_owned(&mut cmd).map_err(|source| PytestError::NoPython {
                python: pytest.python.clone(),
                source,
            })?;
        let stdin = child.stdin.take();
        Ok(Zygote {
            pid: child.id() as i32,
            child,
            stdin,
            tail: EventTail::new(&events),
            log,
            stacks,
            command,
            exits: HashMap::new(),
            wants: Vec::new(),
            notices: Vec::new(),
            waker,
            _plugin_dir: pytest.dir_guard(),
        })
    }

    /// Sleeps for `pause`, or until the zygote writes an event.
    pub fn wait(&self, pause: Duration) {
        self.waker.wait(pause);
    }

    /// New events. `exited` statuses are kept for [`Zygote::take_exit`]; the rest are
    /// returned (unreadable lines as `Err`).
    pub fn read(&mut self) -> Vec<Result<Event, Unreadable>> {
        let mut events = self.tail.read();
        // In place: at the end of collection this is every collected item.
        events.retain_mut(|event| match event {
            Ok(Event::Exited { pid, status, .. }) => {
                self.exits.insert(*pid, platform::wait_status(*status));
                false
            }
            Ok(Event::Notice { text }) => {
                self.notices.push(std::mem::take(text));
                false
            }
            Ok(Event::Want { pid }) => {
                self.wants.push(*pid);
                false
            }
            _ => true,
        });
        events
    }

    /// The exit status of worker `pid`, once the zygote has reaped it.
    pub fn take_exit(&mut self, pid: i32) -> Option<ExitStatus> {
        self.exits.remove(&pid)
    }

    /// The workers that asked for a next chunk since the last call.
    pub fn take_wants(&mut self) -> Vec<i32> {
        std::mem::take(&mut self.wants)
    }

    /// Answers worker `pid`'s `want`: a next chunk (a `next` request), or none (it
    /// finishes its chunk and exits).
    pub fn answer(&mut self, pid: i32, next: Option<&ForkRequest>) -> Result<(), PytestError> {
        let mut line = match next {
            Some(request) => serde_json::to_vec(request)
                .map_err(|e| PytestError::Zygote(format!("cannot encode a chunk: {e}")))?,
            None => done_line(pid).into_bytes(),
        };
        line.push(b'\n');
        self.send(&line)
    }

    /// The files to leave out of the collection the zygote is waiting to start (it was
    /// spawned with `ignore_later`), as pytest's `--ignore` takes them.
    pub(crate) fn ignore(&mut self, paths: &[String]) -> Result<(), PytestError> {
        let mut line = ignore_line(paths);
        line.push(b'\n');
        self.send(&line)
    }

    fn send(&mut self, line: &[u8]) -> Result<(), PytestError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| PytestError::Zygote("the zygote's command pipe is closed".into()))?;
        stdin
            .write_all(line)
            .and_then(|()| stdin.flush())
            .map_err(|e| {
                PytestError::Zygote(format!(
                    "cannot send a command to the zygote (pid {}): {e}",
                    self.pid
                ))
            })
    }

    /// The zygote's own exit status, if it has ended.
    pub fn ended(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Asks for a worker and waits for its pid (a fork takes milliseconds; the zygote
    /// answers in its loop, every 10 ms at worst).
    pub fn fork(&mut self, request: &ForkRequest) -> Result<i32, PytestError> {
        let mut line = serde_json::to_vec(request)
            .map_err(|e| PytestError::Zygote(format!("cannot encode a fork request: {e}")))?;
        line.push(b'\n');
        self.send(&line)?;
        let asked = Instant::now();
        loop {
            // Nothing but `forked`, `exited` and notices comes from the zygote now.
            for event in self.read() {
                if let Ok(Event::Forked { w, pid }) = event {
                    if w == request.w {
                        return Ok(pid);
                    }
                }
            }
            if let Some(status) = self.ended() {
                return Err(PytestError::Zygote(format!(
                    "the zygote (pid {}) ended ({}) instead of forking a worker",
                    self.pid,
                    platform::describe_exit(status)
                )));
            }
            if asked.elapsed() > Duration::from_secs(60) {
                return Err(PytestError::Zygote(format!(
                    "the zygote (pid {}) did not fork a worker within 60 s",
                    self.pid
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Asks the zygote to end its session (pytest's session end, coverage combining)
    /// once its workers are gone; [`Zygote::quit`] waits for it.
    pub fn ask_quit(&mut self) {
        // The pipe closes after the command: the zygote reads the command first.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(QUIT);
            let _ = stdin.flush();
        }
    }

    /// Lets the zygote end its session, waiting at most `limit`; then the watchdog's
    /// escalation (its stacks, SIGTERM, SIGKILL to its group) ends it, as it ends a hung
    /// worker. Returns how it ended.
    pub fn quit(&mut self, limit: Duration, mut slow: impl FnMut()) -> String {
        self.ask_quit();
        let asked = Instant::now();
        let seen = Seen {
            in_flight: None,
            last_event: asked,
            quiet_limit: limit,
            session_over: None,
            session_end_limit: limit,
        };
        let mut dog = Watchdog::default();
        let mut said = false;
        loop {
            if !said && asked.elapsed() > SLOW_SESSION_END {
                said = true;
                slow();
            }
            if let Some(status) = self.ended() {
                self.stdin = None;
                if dog.why().is_some() {
                    return format!(
                        "killed: its session end took longer than {} (session-end-timeout; stacks in {})",
                        crate::clock::human(limit),
                        self.stacks.display()
                    );
                }
                // Notices are kept by `read`; nothing else matters now.
                let _ = self.read();
                return platform::describe_exit(status);
            }
            if let Some(action) = dog.tick(Instant::now(), &seen) {
                crate::signal(self.pid, action);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the zygote's group and reaps it (its workers die with it: PDEATHSIG).
    pub(crate) fn kill(&mut self) {
        self.stdin = None;
        platform::signal_group(self.pid, Sig::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A session end that takes longer is said on the console while mtest waits for it.
const SLOW_SESSION_END: Duration = Duration::from_secs(2);

impl Drop for Zygote {
    fn drop(&mut self) {
        if self.ended().is_none() {
            self.kill();
        }
    }
}

/// Fork mode's commands, with Unix paths (there is no fork mode on Windows).
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The wire's golden file: an example of every command mtest sends the zygote. The
    /// plugin's own tests read their commands from it.
    const GOLDEN: &str = include_str!("wire/commands.jsonl");

    fn golden(c: &str) -> serde_json::Value {
        GOLDEN
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_default())
            .find(|v| v["c"] == c)
            .unwrap_or_else(|| panic!("no `{c}` in wire/commands.jsonl"))
    }

    fn chunk(n: u32, what: &str) -> PathBuf {
        PathBuf::from(format!("/p/.gates/last-run/chunks/chunk-{n:04}.{what}"))
    }

    #[test]
    fn the_commands_are_written_as_the_golden_file_shows_them() {
        let (events, log, stacks) = (chunk(3, "events"), chunk(3, "log"), chunk(3, "stacks"));
        let dir = Path::new("/p/.gates/last-run/chunks");
        let (stop, failing, forgiven) =
            (dir.join("stop"), dir.join("failing"), dir.join("forgiven"));
        let fork = ForkRequest {
            c: "fork",
            pid: None,
            w: 3,
            worker: "gw1".into(),
            workers: 2,
            run: "20261206T150139Z-c19011",
            items: &[0, 4, 5],
            events: &events,
            log: &log,
            stacks: &stacks,
            stop: Some(&stop),
            unbuffered: false,
            gc_freeze: true,
            max_fail: Some(2),
            failing: Some(&failing),
            forgiven: Some(&forgiven),
            more: true,
        };
        let as_json = |r: &ForkRequest| serde_json::to_value(r).unwrap_or_default();
        assert_eq!(as_json(&fork), golden("fork"));
        let (events, log, stacks) = (chunk(4, "events"), chunk(4, "log"), chunk(4, "stacks"));
        let next = ForkRequest {
            c: "next",
            pid: Some(5011),
            w: 4,
            items: &[6],
            events: &events,
            log: &log,
            stacks: &stacks,
            stop: None,
            unbuffered: true,
            gc_freeze: false,
            max_fail: None,
            failing: None,
            forgiven: None,
            more: false,
            ..fork
        };
        assert_eq!(as_json(&next), golden("next"));
        let done: serde_json::Value = serde_json::from_str(&done_line(5011)).unwrap_or_default();
        assert_eq!(done, golden("done"));
        let quit: serde_json::Value = serde_json::from_slice(QUIT).unwrap_or_default();
        assert_eq!(quit, golden("quit"));
        let ignore = ignore_line(&["tests/test_b.py".to_string()]);
        let ignore: serde_json::Value = serde_json::from_slice(&ignore).unwrap_or_default();
        assert_eq!(ignore, golden("ignore"));
    }
}
