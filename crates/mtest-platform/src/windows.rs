//! Windows: a job object per pytest process (the tree is killed with the job; what a test
//! left running is what remains in it; the jobs close, killing their processes, when mtest
//! dies), a stop by `CTRL_BREAK_EVENT` to the process group the process leads, Ctrl-C and
//! Ctrl-Break counted by a console handler. No Ctrl-Z, no SIGUSR1 (`mtest --help` says so).

use std::collections::HashMap;
use std::fs::File;
use std::os::windows::fs::FileExt;
use std::os::windows::io::AsRawHandle;
use std::os::windows::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use windows_sys::core::BOOL;
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::Console::{
    GenerateConsoleCtrlEvent, SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT,
    CTRL_C_EVENT,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectBasicProcessIdList,
    JobObjectExtendedLimitInformation, QueryInformationJobObject, SetInformationJobObject,
    TerminateJobObject, JOBOBJECT_BASIC_PROCESS_ID_LIST, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};
use windows_sys::Win32::System::Threading::{
    OpenProcess, QueryFullProcessImageNameW, TerminateProcess, CREATE_NEW_PROCESS_GROUP,
    PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_TERMINATE,
};

use crate::Sig;

/// The exit code of a process mtest killed (its job's or its own termination).
const KILLED: u32 = 1;

static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

/// The job of each process [`spawn_owned`] started, by pid (a handle, as an integer:
/// handles are not `Send`).
static JOBS: Mutex<Option<HashMap<i32, isize>>> = Mutex::new(None);

unsafe extern "system" fn on_console_event(kind: u32) -> BOOL {
    match kind {
        CTRL_C_EVENT | CTRL_BREAK_EVENT | CTRL_CLOSE_EVENT => {
            INTERRUPTS.fetch_add(1, Ordering::SeqCst);
            1
        }
        _ => 0,
    }
}

pub fn prepare_supervisor() {
    // SAFETY: the handler only touches an atomic counter.
    unsafe { SetConsoleCtrlHandler(Some(on_console_event), 1) };
}

pub fn interrupts() -> u32 {
    INTERRUPTS.load(Ordering::SeqCst)
}

pub fn status_requested() -> bool {
    false
}

pub fn catch_pause(_catch: bool) {}

pub fn pause_requested() -> bool {
    false
}

pub fn stop_self() {}

pub fn is_stopped(_pid: i32) -> bool {
    true
}

fn jobs<T>(f: impl FnOnce(&mut HashMap<i32, isize>) -> T) -> T {
    let mut guard = JOBS.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// A job that kills its processes when its last handle (mtest's) closes.
fn new_job() -> std::io::Result<HANDLE> {
    // SAFETY: no name, default security; the handle is checked.
    let job = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
    if job.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: plain data; zeroed is its empty value.
    let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    // SAFETY: the buffer is a JOBOBJECT_EXTENDED_LIMIT_INFORMATION of the size given.
    let ok = unsafe {
        SetInformationJobObject(
            job,
            JobObjectExtendedLimitInformation,
            (&limits as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
            std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        )
    };
    if ok == 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: our own handle, closed once.
        unsafe { CloseHandle(job) };
        return Err(e);
    }
    Ok(job)
}

pub fn spawn_owned(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
    let job = new_job()?;
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            // SAFETY: our own handle, closed once.
            unsafe { CloseHandle(job) };
            return Err(e);
        }
    };
    // Put in its job before it has started anything of its own: Python takes tens of
    // milliseconds to reach a test.
    // SAFETY: both handles are alive: the job's ours, the child's held by `child`.
    if unsafe { AssignProcessToJobObject(job, child.as_raw_handle() as HANDLE) } == 0 {
        let e = std::io::Error::last_os_error();
        let _ = child.kill();
        let _ = child.wait();
        // SAFETY: our own handle, closed once.
        unsafe { CloseHandle(job) };
        return Err(e);
    }
    jobs(|j| j.insert(child.id() as i32, job as isize));
    Ok(child)
}

pub fn signal_group(pgid: i32, sig: Sig) {
    match sig {
        Sig::SIGKILL => {
            if let Some(job) = jobs(|j| j.get(&pgid).copied()) {
                // SAFETY: a job handle still in the table is open.
                unsafe { TerminateJobObject(job as HANDLE, KILLED) };
            } else {
                kill_and_reap(pgid);
            }
        }
        other => signal_pid(pgid, other),
    }
}

pub fn end_group(pgid: i32) {
    kill_strays(Some(pgid), None, &[]);
}

pub fn signal_pid(pid: i32, sig: Sig) {
    match sig {
        // The process leads a console process group of its own (CREATE_NEW_PROCESS_GROUP,
        // where Ctrl-C is ignored): Ctrl-Break is what reaches it, and the event plugin
        // makes it a KeyboardInterrupt, as SIGINT is on Unix.
        Sig::SIGINT | Sig::SIGTERM => {
            // SAFETY: no pointers; a pid that is gone only fails.
            unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, pid as u32) };
        }
        Sig::SIGKILL => kill_and_reap(pid),
        Sig::SIGSTOP | Sig::SIGCONT | Sig::SIGTSTP | Sig::SIGUSR1 => {}
    }
}

/// The NTSTATUS codes a crashed process exits with.
fn crash_name(code: u32) -> Option<&'static str> {
    Some(match code {
        0xC000_0005 => "access violation",
        0xC000_001D => "illegal instruction",
        0xC000_0094 => "integer division by zero",
        0xC000_00FD => "stack overflow",
        0xC000_013A => "Ctrl-C",
        0xC000_0374 => "heap corruption",
        0xC000_0409 => "fail-fast exception (abort)",
        _ => return None,
    })
}

pub fn describe_exit(status: ExitStatus) -> String {
    let code = status.code().unwrap_or(-1) as u32;
    match crash_name(code) {
        Some(name) => format!("{name} (0x{code:08X})"),
        None => format!("exit status {}", code as i32),
    }
}

pub fn shell_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or(1)
}

pub fn killed_status() -> ExitStatus {
    ExitStatus::from_raw(KILLED)
}

pub fn wait_status(raw: i32) -> ExitStatus {
    ExitStatus::from_raw(raw as u32)
}

/// The pids in `job`.
fn job_pids(job: HANDLE) -> Vec<i32> {
    // The list's header (two u32s) and room for 1,024 ids.
    let mut buf = vec![0usize; 1026];
    let bytes = (buf.len() * std::mem::size_of::<usize>()) as u32;
    // SAFETY: the buffer is `bytes` long and aligned for the list.
    let ok = unsafe {
        QueryInformationJobObject(
            job,
            JobObjectBasicProcessIdList,
            buf.as_mut_ptr().cast(),
            bytes,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Vec::new();
    }
    // SAFETY: the call filled the header and `NumberOfProcessIdsInList` ids after it.
    let list = unsafe { &*(buf.as_ptr() as *const JOBOBJECT_BASIC_PROCESS_ID_LIST) };
    let n = list.NumberOfProcessIdsInList as usize;
    // SAFETY: the ids follow the header within the buffer.
    let ids = unsafe { std::slice::from_raw_parts(list.ProcessIdList.as_ptr(), n) };
    ids.iter().map(|&id| id as i32).collect()
}

/// `1234 C:\Windows\System32\ping.exe`.
fn describe(pid: i32) -> String {
    // SAFETY: a pid that is gone yields a null handle, checked.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid as u32) };
    if process.is_null() {
        return pid.to_string();
    }
    let mut name = vec![0u16; 1024];
    let mut len = name.len() as u32;
    // SAFETY: the buffer holds `len` wide chars; `len` is set to how many were written.
    let ok = unsafe { QueryFullProcessImageNameW(process, 0, name.as_mut_ptr(), &mut len) };
    // SAFETY: our own handle, closed once.
    unsafe { CloseHandle(process) };
    if ok == 0 {
        return pid.to_string();
    }
    format!("{pid} {}", String::from_utf16_lossy(&name[..len as usize]))
}

/// The group `pgid` leads is over: what is left in its job (but `known`) is a stray. The
/// job is killed and closed. Without `pgid`, every job's (the end of the run).
pub fn kill_strays(pgid: Option<i32>, _worker: Option<&str>, known: &[i32]) -> Vec<String> {
    let taken: Vec<(i32, isize)> = jobs(|j| match pgid {
        Some(p) => j.remove(&p).map(|job| (p, job)).into_iter().collect(),
        None => j.drain().collect(),
    });
    let mut out = Vec::new();
    for (leader, job) in taken {
        let job = job as HANDLE;
        let strays: Vec<i32> = job_pids(job)
            .into_iter()
            .filter(|p| *p != leader && !known.contains(p))
            .collect();
        out.extend(strays.iter().map(|&p| describe(p)));
        // SAFETY: the handle was taken out of the table: closed once, here.
        unsafe {
            TerminateJobObject(job, KILLED);
            CloseHandle(job);
        }
    }
    out
}

pub fn kill_and_reap(pid: i32) {
    // SAFETY: a pid that is gone yields a null handle, checked.
    let process = unsafe { OpenProcess(PROCESS_TERMINATE, 0, pid as u32) };
    if !process.is_null() {
        // SAFETY: our own handle, closed once.
        unsafe {
            TerminateProcess(process, KILLED);
            CloseHandle(process);
        }
    }
}

pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    file.seek_read(buf, offset)
}

pub fn make_readable(_file: &File) -> std::io::Result<()> {
    Ok(())
}

pub fn is_executable(path: &Path) -> bool {
    path.is_file()
}

pub fn kernel_release() -> String {
    String::new()
}

/// Waits by sleeping: the loop's own pace.
pub struct FileWaker;

impl FileWaker {
    pub fn watch(_path: &Path) -> FileWaker {
        FileWaker
    }

    pub fn wait(&self, pause: std::time::Duration) {
        std::thread::sleep(pause);
    }
}
