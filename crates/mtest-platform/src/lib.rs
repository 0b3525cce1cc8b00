//! Every OS-specific call of the supervisor, so another backend (Windows job objects)
//! can replace this one module: process groups, signals, reaping, leaked processes.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_interrupt(_: nix::libc::c_int) {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

static STATUS_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_status_request(_: nix::libc::c_int) {
    STATUS_REQUESTED.store(true, Ordering::SeqCst);
}

/// Makes mtest the reaper of orphans its chunks leave behind (so processes that started a
/// new session are still found), and counts SIGINT/SIGTERM/SIGHUP (a closed terminal)
/// instead of dying on them: each is a graceful, resumable stop.
pub fn prepare_supervisor() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let handler = SigHandler::Handler(on_interrupt);
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only touches an atomic counter.
        let _ = unsafe { signal::signal(sig, handler) };
    }
    // SIGUSR1, and Ctrl-T (SIGINFO) where the terminal has it: print the full status.
    let status = SigHandler::Handler(on_status_request);
    #[cfg(any(
        target_os = "macos",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd"
    ))]
    // SAFETY: the handler only sets an atomic flag.
    let _ = unsafe { signal::signal(Signal::SIGINFO, status) };
    // SAFETY: the handler only sets an atomic flag.
    let _ = unsafe { signal::signal(Signal::SIGUSR1, status) };
}

static PAUSE_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_pause_request(_: nix::libc::c_int) {
    PAUSE_REQUESTED.store(true, Ordering::SeqCst);
}

/// While tests run, Ctrl-Z (SIGTSTP) is the supervisor's to act on (`catch` true): it
/// pauses the workers before mtest stops. Otherwise it stops mtest as usual.
pub fn catch_pause(catch: bool) {
    let handler = if catch {
        SigHandler::Handler(on_pause_request)
    } else {
        SigHandler::SigDfl
    };
    // SAFETY: the handler only sets an atomic flag.
    let _ = unsafe { signal::signal(Signal::SIGTSTP, handler) };
}

/// Whether Ctrl-Z asked for a pause since the last call.
pub fn pause_requested() -> bool {
    PAUSE_REQUESTED.swap(false, Ordering::SeqCst)
}

/// Stops mtest itself (as Ctrl-Z would have); returns when it is continued (`fg`).
pub fn stop_self() {
    let _ = signal::raise(Signal::SIGSTOP);
}

/// Whether `pid` is stopped (or gone): its state in `/proc/PID/stat` is `T`.
pub fn is_stopped(pid: i32) -> bool {
    proc_stat(pid).is_none_or(|s| matches!(s.state.as_str(), "T" | "t" | "Z" | "X"))
}

/// The fields of `/proc/PID/stat` mtest reads.
struct ProcStat {
    /// `R`, `S`, `T` (stopped), `Z` (zombie)…
    state: String,
    ppid: i32,
    pgrp: i32,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may itself hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.to_string();
    let ppid = fields.next()?.parse().unwrap_or(0);
    let pgrp = fields.next()?.parse().unwrap_or(0);
    Some(ProcStat { state, ppid, pgrp })
}

/// Whether SIGUSR1/SIGINFO asked for the status since the last call.
pub fn status_requested() -> bool {
    STATUS_REQUESTED.swap(false, Ordering::SeqCst)
}

/// How many SIGINT/SIGTERM have arrived.
pub fn interrupts() -> u32 {
    INTERRUPTS.load(Ordering::SeqCst)
}

/// The child leads a process group of its own (so its whole tree can be signalled and
/// the terminal's Ctrl-C reaches only mtest), and dies with mtest.
pub fn own_group(cmd: &mut Command) {
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            #[cfg(target_os = "linux")]
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

pub fn signal_group(pgid: i32, sig: Signal) {
    let _ = signal::killpg(Pid::from_raw(pgid), sig);
}

pub fn signal_pid(pid: i32, sig: Signal) {
    let _ = signal::kill(Pid::from_raw(pid), sig);
}

pub use nix::sys::signal::Signal as Sig;

/// `SIGSEGV`, `exit status 3`.
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(s) => s.as_str().to_string(),
            Err(_) => format!("signal {sig}"),
        }
    } else {
        format!("exit status {}", status.code().unwrap_or(-1))
    }
}

/// A process still alive (or a zombie) that nobody waits for.
pub(crate) struct Stray {
    pub(crate) pid: i32,
    pub(crate) cmd: String,
    /// Already dead, only waiting to be reaped.
    pub(crate) zombie: bool,
    /// The test that started it (pytest's `PYTEST_CURRENT_TEST`, inherited).
    pub(crate) test: Option<String>,
}

impl Stray {
    /// `1234 sleep 60 (started by tests/test_x.py::test_y (call))`
    pub(crate) fn describe(&self) -> String {
        match &self.test {
            Some(t) => format!("{} {} (started by {t})", self.pid, self.cmd),
            None => format!("{} {}", self.pid, self.cmd),
        }
    }
}

/// One variable of a process's environment, as it was when it started.
fn environ_var(pid: i32, name: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    env.split(|b| *b == 0)
        .find(|kv| kv.starts_with(prefix.as_bytes()))
        .map(|kv| String::from_utf8_lossy(&kv[prefix.len()..]).into_owned())
}

/// Processes in process group `pgid`, and orphans reparented to mtest that are not in
/// `known` (the chunk processes still running) and that a test started (their
/// `PYTEST_XDIST_WORKER`). With `worker` (its name there: `gw0`…), only that worker's, so ending one chunk
/// never kills a daemon that another running chunk uses; without, every chunk's (the end of
/// the run).
pub(crate) fn strays(pgid: Option<i32>, worker: Option<&str>, known: &[i32]) -> Vec<Stray> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for pid in candidates(pgid) {
        let Some(ProcStat { state, ppid, pgrp }) = proc_stat(pid) else {
            continue;
        };
        if pid <= 1 || pid == me || known.contains(&pid) {
            continue;
        }
        // Orphans of tests carry the worker's mark in their environment; mtest's own
        // children (a probe, the environment survey of a bundle) do not.
        let orphan_of_ours = ppid == me
            && match (worker, environ_var(pid, "PYTEST_XDIST_WORKER")) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(name), Some(mark)) => mark == name,
            };
        if pgid.is_some_and(|g| g > 1 && g == pgrp) || orphan_of_ours {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            let zombie = state == "Z";
            let test = environ_var(pid, "PYTEST_CURRENT_TEST");
            out.push(Stray {
                pid,
                cmd,
                zombie,
                test,
            });
        }
    }
    out
}

/// The pids that may be strays: every process when group `pgid` still has a member
/// (only a scan of /proc finds them); otherwise mtest's own children, which orphans
/// reparented to mtest are (a few reads instead of a scan: this runs at every chunk end).
fn candidates(pgid: Option<i32>) -> Vec<i32> {
    let group_alive = pgid.is_some_and(|g| {
        g > 1 && signal::killpg(Pid::from_raw(g), None) != Err(nix::errno::Errno::ESRCH)
    });
    let numbers = |names: std::fs::ReadDir| -> Vec<i32> {
        names
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect()
    };
    if !group_alive {
        // Children are listed per thread (the one that forked them, or the one an orphan
        // was handed to); without the `children` files (an older kernel), scan.
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            let lists: Option<Vec<String>> = numbers(tasks)
                .iter()
                .map(|t| std::fs::read_to_string(format!("/proc/self/task/{t}/children")).ok())
                .collect();
            if let Some(lists) = lists {
                return lists
                    .iter()
                    .flat_map(|l| l.split_whitespace())
                    .filter_map(|p| p.parse().ok())
                    .collect();
            }
        }
    }
    std::fs::read_dir("/proc").map(numbers).unwrap_or_default()
}

/// Kills the strays [`strays`] finds and returns the live ones' descriptions (zombies were
/// already dead: reaped, not worth a warning).
pub fn kill_strays(pgid: Option<i32>, worker: Option<&str>, known: &[i32]) -> Vec<String> {
    let strays = strays(pgid, worker, known);
    for s in &strays {
        kill_and_reap(s.pid);
    }
    strays
        .iter()
        .filter(|s| !s.zombie)
        .map(Stray::describe)
        .collect()
}

/// SIGKILLs a stray and reaps it if it is ours (by pid: never steal a chunk's status).
pub fn kill_and_reap(pid: i32) {
    signal_pid(pid, Signal::SIGKILL);
    for _ in 0..50 {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                std::thread::sleep(std::time::Duration::from_millis(2))
            }
            _ => return, // reaped, or not our child (someone else reaps it)
        }
    }
}

/// Sleeps until a file is written to or a time has passed: the supervision loop waits on
/// the zygote's event file, so a worker's exit (or fork) is seen at once, while the
/// workers' own event files are read at the loop's pace. Where inotify cannot be had, a
/// plain sleep.
pub struct FileWaker {
    #[cfg(target_os = "linux")]
    inotify: Option<nix::sys::inotify::Inotify>,
}

impl FileWaker {
    pub fn watch(path: &std::path::Path) -> FileWaker {
        #[cfg(target_os = "linux")]
        {
            use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
            let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                .ok()
                .filter(|i| i.add_watch(path, AddWatchFlags::IN_MODIFY).is_ok());
            FileWaker { inotify }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = path;
            FileWaker {}
        }
    }

    /// Returns when the file was written to since the last call, or after `pause`.
    pub fn wait(&self, pause: std::time::Duration) {
        #[cfg(target_os = "linux")]
        if let Some(inotify) = &self.inotify {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            use std::os::fd::AsFd;
            let ms = u16::try_from(pause.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
            // An error (EINTR: a signal) ends the wait early, which is what a signal wants.
            if poll(&mut fds, PollTimeout::from(ms)).is_ok_and(|n| n > 0) {
                // Drain what is pending, so the next wait sleeps until the next write.
                while inotify.read_events().is_ok_and(|events| !events.is_empty()) {}
            }
            return;
        }
        std::thread::sleep(pause);
    }
}
