//! Linux and macOS: signals, process groups, wait statuses. The process table is
//! `table` (`/proc` on Linux, libproc on macOS).

use std::fs::File;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::table;
use crate::Sig;

pub use crate::table::FileWaker;

static INTERRUPTS: AtomicU32 = AtomicU32::new(0);
static STATUS_REQUESTED: AtomicBool = AtomicBool::new(false);
static PAUSE_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: nix::libc::c_int) {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn on_status_request(_: nix::libc::c_int) {
    STATUS_REQUESTED.store(true, Ordering::SeqCst);
}

extern "C" fn on_pause_request(_: nix::libc::c_int) {
    PAUSE_REQUESTED.store(true, Ordering::SeqCst);
}

fn native(sig: Sig) -> Signal {
    match sig {
        Sig::SIGINT => Signal::SIGINT,
        Sig::SIGTERM => Signal::SIGTERM,
        Sig::SIGKILL => Signal::SIGKILL,
        Sig::SIGSTOP => Signal::SIGSTOP,
        Sig::SIGCONT => Signal::SIGCONT,
        Sig::SIGTSTP => Signal::SIGTSTP,
        Sig::SIGUSR1 => Signal::SIGUSR1,
    }
}

pub fn prepare_supervisor() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let handler = SigHandler::Handler(on_interrupt);
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only touches an atomic counter.
        let _ = unsafe { signal::signal(sig, handler) };
    }
    let status = SigHandler::Handler(on_status_request);
    #[cfg(target_os = "macos")]
    // SAFETY: the handler only sets an atomic flag.
    let _ = unsafe { signal::signal(Signal::SIGINFO, status) };
    // SAFETY: the handler only sets an atomic flag.
    let _ = unsafe { signal::signal(Signal::SIGUSR1, status) };
}

pub fn interrupts() -> u32 {
    INTERRUPTS.load(Ordering::SeqCst)
}

pub fn status_requested() -> bool {
    STATUS_REQUESTED.swap(false, Ordering::SeqCst)
}

pub fn catch_pause(catch: bool) {
    let handler = if catch {
        SigHandler::Handler(on_pause_request)
    } else {
        SigHandler::SigDfl
    };
    // SAFETY: the handler only sets an atomic flag.
    let _ = unsafe { signal::signal(Signal::SIGTSTP, handler) };
}

pub fn pause_requested() -> bool {
    PAUSE_REQUESTED.swap(false, Ordering::SeqCst)
}

pub fn stop_self() {
    let _ = signal::raise(Signal::SIGSTOP);
}

pub fn is_stopped(pid: i32) -> bool {
    table::info(pid).is_none_or(|i| i.stopped || i.zombie)
}

pub fn spawn_owned(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.process_group(0);
    // No parent-death signal on macOS: the event plugin watches this pid instead.
    #[cfg(target_os = "macos")]
    cmd.env("MTEST_SUPERVISOR_PID", std::process::id().to_string());
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
}

pub fn signal_group(pgid: i32, sig: Sig) {
    let _ = signal::killpg(Pid::from_raw(pgid), native(sig));
}

pub fn end_group(pgid: i32) {
    signal_group(pgid, Sig::SIGKILL);
}

pub fn signal_pid(pid: i32, sig: Sig) {
    let _ = signal::kill(Pid::from_raw(pid), native(sig));
}

pub fn describe_exit(status: ExitStatus) -> String {
    match status.signal() {
        Some(sig) => match Signal::try_from(sig) {
            Ok(s) => s.as_str().to_string(),
            Err(_) => format!("signal {sig}"),
        },
        None => format!("exit status {}", status.code().unwrap_or(-1)),
    }
}

pub fn shell_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or(status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

pub fn killed_status() -> ExitStatus {
    ExitStatus::from_raw(Signal::SIGKILL as i32)
}

pub fn wait_status(raw: i32) -> ExitStatus {
    ExitStatus::from_raw(raw)
}

/// What mtest reads of a process in the system's table (`table`).
pub(crate) struct Info {
    pub(crate) stopped: bool,
    pub(crate) zombie: bool,
    pub(crate) ppid: i32,
    pub(crate) pgrp: i32,
}

/// A process still alive (or a zombie) that nobody waits for.
struct Stray {
    pid: i32,
    cmd: String,
    /// Already dead, only waiting to be reaped.
    zombie: bool,
    /// The test that started it (pytest's `PYTEST_CURRENT_TEST`, inherited).
    test: Option<String>,
}

impl Stray {
    fn describe(&self) -> String {
        match &self.test {
            Some(t) => format!("{} {} (started by {t})", self.pid, self.cmd),
            None => format!("{} {}", self.pid, self.cmd),
        }
    }
}

/// Processes in process group `pgid`, and orphans reparented to mtest that are not in
/// `known` and that a test started (their `PYTEST_XDIST_WORKER`). With `worker`, only that
/// worker's, so ending one chunk never kills a daemon that another running chunk uses.
fn strays(pgid: Option<i32>, worker: Option<&str>, known: &[i32]) -> Vec<Stray> {
    let me = std::process::id() as i32;
    let group_alive = pgid.is_some_and(|g| {
        g > 1 && signal::killpg(Pid::from_raw(g), None) != Err(nix::errno::Errno::ESRCH)
    });
    let mut out = Vec::new();
    for pid in table::candidates(group_alive) {
        let Some(Info {
            ppid, pgrp, zombie, ..
        }) = table::info(pid)
        else {
            continue;
        };
        if pid <= 1 || pid == me || known.contains(&pid) {
            continue;
        }
        // Orphans of tests carry the worker's mark in their environment; mtest's own
        // children (a probe, the environment survey of a bundle) do not.
        let orphan_of_ours = ppid == me
            && match (worker, table::environ_var(pid, "PYTEST_XDIST_WORKER")) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(name), Some(mark)) => mark == name,
            };
        if pgid.is_some_and(|g| g > 1 && g == pgrp) || orphan_of_ours {
            out.push(Stray {
                pid,
                cmd: table::command_line(pid),
                zombie,
                test: table::environ_var(pid, "PYTEST_CURRENT_TEST"),
            });
        }
    }
    out
}

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

pub fn kill_and_reap(pid: i32) {
    let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    for _ in 0..50 {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                std::thread::sleep(std::time::Duration::from_millis(2))
            }
            _ => return, // reaped, or not our child (someone else reaps it)
        }
    }
}

pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    file.read_at(buf, offset)
}

pub fn make_readable(file: &File) -> std::io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

pub fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}
