//! Every OS-specific call of mtest, behind one interface: signals and their Windows
//! counterparts, the group a pytest process and everything it starts belong to (a process
//! group on Unix, a job object on Windows), pausing, exit statuses, the processes a test
//! left behind, positional reads, file permissions.
//!
//! One backend per system: `unix` (Linux and macOS; their process tables differ: `/proc` on
//! Linux, libproc and `sysctl` on macOS) and `windows`. A group is named by the pid of the
//! process [`spawn_owned`] started: on Unix that pid is its process group's id; on Windows
//! the backend keeps the job object that pid was put in.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

#[cfg(any(target_os = "macos", test))]
mod procargs;
#[cfg(target_os = "linux")]
#[path = "table_linux.rs"]
mod table;
#[cfg(target_os = "macos")]
#[path = "table_macos.rs"]
mod table;

pub use imp::FileWaker;

/// What mtest asks of a process or a group. The names are Unix's; on Windows a stop
/// ([`Sig::SIGTERM`], [`Sig::SIGINT`]) is a `CTRL_BREAK_EVENT` (the event plugin makes it a
/// `KeyboardInterrupt`), a kill ends the job, and what Windows has no counterpart for
/// (pausing, the stack dump of [`Sig::SIGUSR1`]) does nothing, as `mtest --help` says.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    SIGINT,
    SIGTERM,
    SIGKILL,
    SIGSTOP,
    SIGCONT,
    SIGTSTP,
    SIGUSR1,
}

/// Makes mtest the reaper of orphans its chunks leave behind where the system allows it
/// (Linux), and counts Ctrl-C, SIGTERM, a closed terminal (Windows: Ctrl-C, Ctrl-Break, a
/// closed console) instead of dying on them: each is a graceful, resumable stop. SIGUSR1
/// (and Ctrl-T where the terminal has it) asks for the full status.
pub fn prepare_supervisor() {
    imp::prepare_supervisor()
}

/// How many interrupts (see [`prepare_supervisor`]) have arrived.
pub fn interrupts() -> u32 {
    imp::interrupts()
}

/// Whether the full status was asked for since the last call.
pub fn status_requested() -> bool {
    imp::status_requested()
}

/// While tests run, Ctrl-Z is the supervisor's to act on (`catch` true): it pauses the
/// workers before mtest stops. Otherwise it stops mtest as usual. Nothing on Windows.
pub fn catch_pause(catch: bool) {
    imp::catch_pause(catch)
}

/// Whether Ctrl-Z asked for a pause since the last call.
pub fn pause_requested() -> bool {
    imp::pause_requested()
}

/// Stops mtest itself (as Ctrl-Z would have); returns when it is continued (`fg`).
pub fn stop_self() {
    imp::stop_self()
}

/// Whether `pid` is stopped (or gone).
pub fn is_stopped(pid: i32) -> bool {
    imp::is_stopped(pid)
}

/// Starts `cmd` leading a group of its own, so that its whole tree can be signalled and
/// killed, the terminal's Ctrl-C reaches only mtest, and it dies with mtest (Linux: the
/// parent-death signal; Windows: the job closes with mtest's handle; macOS: the event
/// plugin watches mtest's pid, `MTEST_SUPERVISOR_PID`, with kqueue).
pub fn spawn_owned(cmd: &mut Command) -> std::io::Result<Child> {
    imp::spawn_owned(cmd)
}

/// Sends `sig` to the group `pgid` leads (see [`spawn_owned`]).
pub fn signal_group(pgid: i32, sig: Sig) {
    imp::signal_group(pgid, sig)
}

/// The group `pgid` leads is done with: whatever is left in it is killed, at once and
/// unreported (a helper's group, not a test's: nothing else is looked for).
pub fn end_group(pgid: i32) {
    imp::end_group(pgid)
}

/// Sends `sig` to the process `pid` alone.
pub fn signal_pid(pid: i32, sig: Sig) {
    imp::signal_pid(pid, sig)
}

/// `SIGSEGV`, `exit status 3`, `access violation (0xC0000005)`.
pub fn describe_exit(status: ExitStatus) -> String {
    imp::describe_exit(status)
}

/// The exit code a shell would give `status`: its code, or 128 + the signal that killed it.
pub fn shell_code(status: ExitStatus) -> i32 {
    imp::shell_code(status)
}

/// The status of a process killed by SIGKILL (a fork-mode worker that died with its zygote).
pub fn killed_status() -> ExitStatus {
    imp::killed_status()
}

/// A raw wait status, as the zygote reports its workers' (fork mode).
pub fn wait_status(raw: i32) -> ExitStatus {
    imp::wait_status(raw)
}

/// Kills the processes a test left behind and returns the live ones' descriptions (`1234
/// sleep 60 (started by tests/test_x.py::test_y (call))`): those still in the group `pgid`
/// leads, and (Linux) orphans reparented to mtest that a test of `worker` started (its name,
/// `gw0`…, in their `PYTEST_XDIST_WORKER`), not counting `known` (the chunk processes still
/// running). With `pgid` and `worker` both `None`, every chunk's (the end of the run).
pub fn kill_strays(pgid: Option<i32>, worker: Option<&str>, known: &[i32]) -> Vec<String> {
    imp::kill_strays(pgid, worker, known)
}

/// Kills a stray and reaps it if it is mtest's child (by pid: never steal a chunk's status).
pub fn kill_and_reap(pid: i32) {
    imp::kill_and_reap(pid)
}

/// Reads into `buf` from `offset`, as `pread`: the file's own position is not relied upon.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    imp::read_at(file, buf, offset)
}

/// Makes a file mtest wrote readable by all (tempfile creates them private); nothing where
/// permissions are not Unix's.
pub fn make_readable(file: &File) -> std::io::Result<()> {
    imp::make_readable(file)
}

/// Whether `path` is a program mtest can run: executable (Unix) or a file (Windows, where
/// the name carries `.exe`).
pub fn is_executable(path: &Path) -> bool {
    imp::is_executable(path)
}

/// A virtual environment's Python: `bin/python`, Windows's `Scripts\python.exe`.
pub fn venv_python(venv: &Path) -> std::path::PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// The Python on PATH when no environment is found: `python3` (Windows: `python`).
pub const PYTHON: &str = if cfg!(windows) { "python" } else { "python3" };

/// The kernel's release, for a bundle's environment (`6.8.0-…`, Darwin's `23.4.0`; empty on
/// Windows).
pub fn kernel_release() -> String {
    imp::kernel_release()
}

#[cfg(test)]
mod tests;
