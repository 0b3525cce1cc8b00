//! Linux's process table: `/proc`. A file's writes are waited for with inotify.

use crate::unix::Info;

/// The fields of `/proc/PID/stat` mtest reads.
pub(crate) fn info(pid: i32) -> Option<Info> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may itself hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().unwrap_or(0);
    let pgrp = fields.next()?.parse().unwrap_or(0);
    Some(Info {
        stopped: matches!(state, "T" | "t"),
        zombie: matches!(state, "Z" | "X"),
        ppid,
        pgrp,
    })
}

/// One variable of a process's environment, as it was when it started.
pub(crate) fn environ_var(pid: i32, name: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    env.split(|b| *b == 0)
        .find(|kv| kv.starts_with(prefix.as_bytes()))
        .map(|kv| String::from_utf8_lossy(&kv[prefix.len()..]).into_owned())
}

/// `sleep 60`.
pub(crate) fn command_line(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// The pids that may be strays: every process when the group still has a member (only a
/// scan of /proc finds them); otherwise mtest's own children, which orphans reparented to
/// mtest are (a few reads instead of a scan: this runs at every chunk end).
pub(crate) fn candidates(group_alive: bool) -> Vec<i32> {
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

/// Sleeps until a file is written to or a time has passed: the supervision loop waits on
/// the zygote's event file, so a worker's exit (or fork) is seen at once, while the
/// workers' own event files are read at the loop's pace. Where inotify cannot be had, a
/// plain sleep.
pub struct FileWaker {
    inotify: Option<nix::sys::inotify::Inotify>,
}

impl FileWaker {
    pub fn watch(path: &std::path::Path) -> FileWaker {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .ok()
            .filter(|i| i.add_watch(path, AddWatchFlags::IN_MODIFY).is_ok());
        FileWaker { inotify }
    }

    /// Returns when the file was written to since the last call, or after `pause`.
    pub fn wait(&self, pause: std::time::Duration) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let Some(inotify) = &self.inotify else {
            return std::thread::sleep(pause);
        };
        let ms = u16::try_from(pause.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        // An error (EINTR: a signal) ends the wait early, which is what a signal wants.
        if poll(&mut fds, PollTimeout::from(ms)).is_ok_and(|n| n > 0) {
            // Drain what is pending, so the next wait sleeps until the next write.
            while inotify.read_events().is_ok_and(|events| !events.is_empty()) {}
        }
    }
}
