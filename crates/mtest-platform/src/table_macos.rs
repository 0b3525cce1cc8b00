//! macOS's process table: libproc (`proc_listallpids`, `proc_pidinfo`) for the states and
//! groups, `sysctl(KERN_PROCARGS2)` for a process's command line and environment (both in
//! libSystem: nothing to link beyond libc); a file's writes are waited for with kqueue.

use std::ffi::c_void;

use nix::libc;

use crate::procargs;
use crate::unix::Info;

pub(crate) fn info(pid: i32) -> Option<Info> {
    // SAFETY: proc_bsdinfo is plain data; proc_pidinfo writes at most `size` bytes into it.
    let mut bsd: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: the buffer is `size` bytes of a proc_bsdinfo.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut bsd as *mut libc::proc_bsdinfo).cast::<c_void>(),
            size,
        )
    };
    (n == size).then_some(Info {
        stopped: bsd.pbi_status == libc::SSTOP,
        zombie: bsd.pbi_status == libc::SZOMB,
        ppid: bsd.pbi_ppid as i32,
        pgrp: bsd.pbi_pgid as i32,
    })
}

/// Every pid (macOS has no list of a process's children to read instead).
pub(crate) fn candidates(_group_alive: bool) -> Vec<i32> {
    // SAFETY: with a null buffer it returns how many pids there are.
    let count = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
    let Ok(count) = usize::try_from(count) else {
        return Vec::new();
    };
    let mut pids = vec![0 as libc::pid_t; count + 64];
    let bytes = (pids.len() * std::mem::size_of::<libc::pid_t>()) as libc::c_int;
    // SAFETY: the buffer holds `bytes` bytes of pids.
    let n = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast::<c_void>(), bytes) };
    pids.truncate(usize::try_from(n).unwrap_or(0));
    pids
}

/// The raw `KERN_PROCARGS2` block of `pid`: its argument count, executable, arguments and
/// environment (only a process of the same user's is readable).
fn procargs2(pid: i32) -> Option<Vec<u8>> {
    let mut mib = [libc::CTL_KERN, libc::KERN_ARGMAX];
    let mut argmax: libc::c_int = 0;
    let mut size = std::mem::size_of::<libc::c_int>();
    // SAFETY: sysctl writes one c_int into `argmax`.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            2,
            (&mut argmax as *mut libc::c_int).cast::<c_void>(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 || argmax <= 0 {
        return None;
    }
    let mut buf = vec![0u8; argmax as usize];
    let mut size = buf.len();
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    // SAFETY: sysctl writes at most `size` bytes into `buf` and sets `size` to how many.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buf.as_mut_ptr().cast::<c_void>(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    buf.truncate(size);
    Some(buf)
}

pub(crate) fn environ_var(pid: i32, name: &str) -> Option<String> {
    procargs::parse(&procargs2(pid)?)?.var(name)
}

pub(crate) fn command_line(pid: i32) -> String {
    procargs2(pid)
        .and_then(|b| procargs::parse(&b))
        .map(|p| p.args.join(" "))
        .unwrap_or_default()
}

/// Sleeps until a file is written to or a time has passed (see the Linux backend's
/// inotify waker): a kqueue with the file's `EVFILT_VNODE` write and extend notes,
/// cleared as they are read, so the next wait sleeps until the next write. Where the file
/// cannot be opened or watched, a plain sleep.
pub struct FileWaker {
    watch: Option<(nix::sys::event::Kqueue, std::fs::File)>,
}

impl FileWaker {
    pub fn watch(path: &std::path::Path) -> FileWaker {
        use nix::sys::event::{EvFlags, EventFilter, FilterFlag, KEvent, Kqueue};
        use std::os::fd::AsRawFd;
        let watch = std::fs::File::open(path).ok().and_then(|file| {
            let kqueue = Kqueue::new().ok()?;
            let note = KEvent::new(
                file.as_raw_fd() as usize,
                EventFilter::EVFILT_VNODE,
                EvFlags::EV_ADD | EvFlags::EV_CLEAR,
                FilterFlag::NOTE_WRITE | FilterFlag::NOTE_EXTEND,
                0,
                0,
            );
            kqueue
                .kevent(&[note], &mut [], Some(timespec(std::time::Duration::ZERO)))
                .ok()?;
            Some((kqueue, file))
        });
        FileWaker { watch }
    }

    /// Returns when the file was written to since the last call, or after `pause`.
    pub fn wait(&self, pause: std::time::Duration) {
        use nix::sys::event::{EvFlags, EventFilter, FilterFlag, KEvent};
        let Some((kqueue, _file)) = &self.watch else {
            return std::thread::sleep(pause);
        };
        let mut out = [KEvent::new(
            0,
            EventFilter::EVFILT_VNODE,
            EvFlags::empty(),
            FilterFlag::empty(),
            0,
            0,
        )];
        // An error (EINTR: a signal) ends the wait early, which is what a signal wants.
        let _ = kqueue.kevent(&[], &mut out, Some(timespec(pause)));
    }
}

fn timespec(d: std::time::Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}
