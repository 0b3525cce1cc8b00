//! One run per `.gates/` at a time. The lock is the system's file lock on `.gates/lock`
//! (`flock`; `LockFileEx` on Windows): the kernel drops it when the holder dies, so a stale lock from a killed mtest is simply taken over.
//! The file holds the holder's pid and start time, for the message a second mtest prints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use std::fs::TryLockError;

/// Held for the run; the lock goes with the file when it is dropped.
pub struct GatesLock {
    _lock: File,
}

/// Why the store cannot be had.
#[derive(Debug)]
pub enum LockError {
    /// Another mtest holds it: who.
    Busy(String),
    /// The store cannot be created or written (a file in its place, no permission, a full
    /// disk): one line saying which and what to do.
    Store(String),
}

impl LockError {
    pub fn exit(&self) -> crate::Exit {
        match self {
            LockError::Busy(_) => crate::Exit::Usage,
            LockError::Store(_) => crate::Exit::Internal,
        }
    }
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy(s) | LockError::Store(s) => f.write_str(s),
        }
    }
}

pub fn acquire(gates_dir: &Path) -> Result<GatesLock, LockError> {
    if gates_dir.exists() && !gates_dir.is_dir() {
        return Err(LockError::Store(format!(
            "{} is not a directory: mtest keeps its store there; move the file away",
            gates_dir.display()
        )));
    }
    std::fs::create_dir_all(gates_dir).map_err(|e| {
        LockError::Store(format!(
            "cannot create the store {}: {e}; check the project directory's permissions",
            gates_dir.display()
        ))
    })?;
    let path = gates_dir.join("lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| {
            LockError::Store(format!(
                "cannot write the store {}: {e}; mtest needs to write there (check its permissions)",
                path.display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => {
            let mut lock = file;
            let me = format!(
                "pid {} started {}\n",
                std::process::id(),
                crate::clock::now()
            );
            let _ = lock.set_len(0);
            let _ = lock.rewind();
            let _ = lock.write_all(me.as_bytes());
            let _ = lock.sync_all();
            Ok(GatesLock { _lock: lock })
        }
        Err(TryLockError::Error(e)) => Err(LockError::Store(format!(
            "cannot lock the store {}: {e}; mtest needs a file system with file locks there",
            path.display()
        ))),
        Err(TryLockError::WouldBlock) => {
            let mut file = file;
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "unknown pid"
            } else {
                holder
            };
            Err(LockError::Busy(format!(
                "another mtest is running on this project ({holder}; lock {}); wait for it or stop it",
                path.display()
            )))
        }
    }
}
