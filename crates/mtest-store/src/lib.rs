//! `.gates/`, the store: one module per file kind.
//!
//! ```text
//! .gates/
//!   lock                      held (flock) by the running mtest: pid and start time
//!   last-run/run.jsonl        one TestRecord a line, append-only
//!   last-run/summary.md       summary-md reporter
//!   last-run/failures/*.txt   txt-bundles reporter
//!   last-run/junit-NNNN.xml   pytest's XML per chunk
//!   last-run/chunks/          each chunk's ids, events, output and stack dumps
//!   previous-run/             the run before (one kept)
//!   state.json                resume checkpoint (atomic)
//!   plan.json                 the run's selected tests, written once at its start (atomic)
//!   durations.json            per-test history (atomic)
//!   quarantine.json           quarantine state (atomic)
//!   impact.json               what each test depended on when it last ran (atomic)
//!   collect/                  the zygote's events, output and stacks
//! ```
//! Every JSON file is written to a temp file and renamed. A file that does not parse is
//! reported and renamed aside (`NAME.corrupt-TIMESTAMP`), never silently replaced.

pub mod durations;
mod error;
pub mod impact;
pub mod lock;
pub mod quarantine;
pub mod run_log;
pub mod state;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::StoreError;

// The model's modules, named `crate::…` here as in the host.
use mtest_model::{clock, config, deps, record, shard, Exit, FastMap};

pub struct Gates {
    pub dir: PathBuf,
}

impl Gates {
    pub fn new(root: &Path) -> Self {
        Gates {
            dir: root.join(".gates"),
        }
    }
    pub fn last_run(&self) -> PathBuf {
        self.dir.join("last-run")
    }
    pub(crate) fn previous_run(&self) -> PathBuf {
        self.dir.join("previous-run")
    }
    pub fn run_log(&self) -> PathBuf {
        self.last_run().join("run.jsonl")
    }
    pub fn chunks(&self) -> PathBuf {
        self.last_run().join("chunks")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn durations(&self) -> PathBuf {
        self.dir.join("durations.json")
    }
    pub fn quarantine(&self) -> PathBuf {
        self.dir.join("quarantine.json")
    }

    /// Starts a fresh `last-run/`: the old one becomes `previous-run/` (one kept).
    pub fn rotate_last_run(&self) -> Result<(), StoreError> {
        let last = self.last_run();
        if last.exists() {
            let previous = self.previous_run();
            if previous.exists() {
                std::fs::remove_dir_all(&previous).map_err(StoreError::io("remove", &previous))?;
            }
            std::fs::rename(&last, &previous).map_err(|source| StoreError::Move {
                from: last.clone(),
                to: previous.clone(),
                source,
            })?;
        }
        let chunks = self.chunks();
        std::fs::create_dir_all(&chunks).map_err(StoreError::io("create", &chunks))
    }
}

/// Writes JSON to `path` atomically (temp file in the same directory, fsync, rename).
/// Encodes `value` straight into the temp file (a 100k-test state is tens of MB: never
/// held in memory as text).
pub fn atomic_write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    atomic_write_with(path, |file| {
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut out, value).map_err(std::io::Error::other)?;
        out.flush()
    })
}

pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    atomic_write_with(path, |mut file| file.write_all(bytes))
}

/// Writes a temp file beside `path` with `write`, syncs it, and renames it over `path`.
fn atomic_write_with(
    path: &Path,
    write: impl FnOnce(&std::fs::File) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| StoreError::io("write", path)(e);
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    // tempfile creates 0600; the store is as readable as any other project file.
    mtest_platform::make_readable(tmp.as_file()).map_err(fail)?;
    write(tmp.as_file()).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// What reading a store file found.
pub enum Loaded<T> {
    Missing,
    Ok(T),
    /// It did not parse; it was renamed to `aside`. `why` says what was wrong.
    Corrupt {
        why: String,
        aside: PathBuf,
    },
}

/// Reads a JSON store file; a corrupt one is moved aside, never overwritten in place.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Loaded<T>, StoreError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => return Err(StoreError::io("read", path)(e)),
    };
    match serde_json::from_slice(&text) {
        Ok(value) => Ok(Loaded::Ok(value)),
        Err(e) => {
            let aside = set_aside(path)?;
            Ok(Loaded::Corrupt {
                why: e.to_string(),
                aside,
            })
        }
    }
}

/// Renames `path` to `path.corrupt-<unix time>` and returns the new name.
pub(crate) fn set_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".corrupt-{stamp}"));
    let aside = path.with_file_name(name);
    std::fs::rename(path, &aside).map_err(|source| StoreError::Move {
        from: path.to_path_buf(),
        to: aside.clone(),
        source,
    })?;
    Ok(aside)
}

/// Reads a store file; a corrupt one is reported, set aside, and replaced by the default.
pub fn load_or_default<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    warnings: &mut Vec<String>,
) -> T {
    match read_json::<T>(path) {
        Ok(Loaded::Ok(v)) => v,
        Ok(Loaded::Missing) => T::default(),
        Ok(Loaded::Corrupt { why, aside }) => {
            warnings.push(format!(
                "warning: {} is corrupt ({why}); moved to {} and started afresh",
                path.display(),
                aside.display()
            ));
            T::default()
        }
        Err(e) => {
            warnings.push(format!("warning: {e}; using no history"));
            T::default()
        }
    }
}

/// A new run's id: its start to the second, and a salt (`20261206T150139Z-c19011`).
pub fn new_run_id() -> String {
    let now = crate::clock::now();
    let compact: String = now
        .chars()
        .filter(|c| c.is_ascii_digit())
        .take(14)
        .collect();
    let salt = blake3::hash(format!("{now}{}", std::process::id()).as_bytes()).to_hex();
    format!("{}T{}Z-{}", &compact[..8], &compact[8..], &salt[..6])
}
