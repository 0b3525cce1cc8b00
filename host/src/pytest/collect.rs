//! Collection: which tests exist, with their files, lines and markers.
//!
//! Collecting costs about half of a trivial suite's plain run, and every chunk collects
//! its own files again; so a collection is cached in `.gates/collection.json`, keyed by
//! everything that can change its result: the interpreter, the arguments, and the size and
//! mtime of every Python and config file under the project root.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::events::{Event, EventTail};
use super::Pytest;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    pub id: String,
    pub file: String,
    pub line: Option<u32>,
    pub markers: Vec<String>,
    /// From a `@pytest.mark.timeout(N)` marker.
    pub timeout: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CollectError {
    /// The collector's node id, usually the module path.
    pub id: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Collected {
    pub items: Vec<Item>,
    pub errors: Vec<CollectError>,
    /// The command that collected, for bundles of collection errors.
    pub command: String,
}

/// Why collection produced nothing usable.
#[derive(Debug)]
pub enum CollectFailure {
    /// pytest itself could not run (broken conftest, INTERNALERROR, bad arguments):
    /// pytest's own text.
    Broken(String),
    /// We could not start it at all.
    Io(String),
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    key: String,
    collected: Collected,
}

/// Collects, or returns the cached collection when nothing it depends on changed.
/// `work` is a directory for the event and log files.
pub fn collect(
    pytest: &Pytest,
    selection_args: &[String],
    work: &Path,
    cache_file: &Path,
) -> Result<Collected, CollectFailure> {
    let key = cache_key(pytest, selection_args);
    if let Ok(text) = std::fs::read_to_string(cache_file) {
        if let Ok(cached) = serde_json::from_str::<CacheFile>(&text) {
            if cached.key == key {
                return Ok(cached.collected);
            }
        }
    }
    pytest.check_installed().map_err(CollectFailure::Io)?;
    let collected = run_collect(pytest, selection_args, work)?;
    if collected.errors.is_empty() {
        // A cache write that fails costs a collection next time, nothing more.
        let _ = crate::store::atomic_write_json(
            cache_file,
            &CacheFile {
                key,
                collected: collected.clone(),
            },
        );
    } else {
        let _ = std::fs::remove_file(cache_file);
    }
    Ok(collected)
}

fn run_collect(
    pytest: &Pytest,
    selection_args: &[String],
    work: &Path,
) -> Result<Collected, CollectFailure> {
    let events_path = work.join("collect.events");
    let log_path = work.join("collect.log");
    let _ = std::fs::remove_file(&events_path);
    let log = std::fs::File::create(&log_path)
        .map_err(|e| CollectFailure::Io(format!("cannot create {}: {e}", log_path.display())))?;
    let log2 = log
        .try_clone()
        .map_err(|e| CollectFailure::Io(e.to_string()))?;
    let mut cmd = pytest.command(&events_path);
    cmd.args(["--collect-only", "-q"])
        .args(selection_args)
        .env("MTEST_COLLECT", "1");
    pytest.finish_args(&mut cmd);
    let command = super::render_command(&cmd);
    let status = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .status()
        .map_err(|e| CollectFailure::Io(format!("cannot run {}: {e}", pytest.python.display())))?;

    let mut collected = Collected {
        command,
        ..Collected::default()
    };
    let (mut finished, mut internal_error) = (false, None);
    for event in EventTail::new(&events_path).read().into_iter().flatten() {
        match event {
            Event::Item {
                id,
                file,
                line,
                markers,
                timeout,
            } => collected.items.push(Item {
                id,
                file,
                line,
                markers,
                timeout,
            }),
            Event::CollectError { id, text } => collected.errors.push(CollectError { id, text }),
            Event::InternalError { text } => internal_error = Some(text),
            Event::SessionFinish { .. } => finished = true,
            _ => {}
        }
    }
    let code = status.code();
    // 0 ok, 1 tests failed (not when collecting), 2 interrupted (collection errors), 5 none.
    let usable = finished && internal_error.is_none() && matches!(code, Some(0 | 1 | 2 | 5));
    if !usable || (code == Some(2) && collected.errors.is_empty()) {
        let mut text = tail_of(&log_path, 60);
        if let Some(internal) = internal_error {
            text = format!("{internal}\n{text}");
        }
        let how = match code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".into(),
        };
        return Err(CollectFailure::Broken(format!(
            "pytest could not collect the tests ({how}); its output:\n{}",
            text.trim_end()
        )));
    }
    Ok(collected)
}

/// The last `lines` lines of a text file (lossy), for error messages and bundles.
pub fn tail_of(path: &Path, lines: usize) -> String {
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let skip = len.saturating_sub(256 * 1024);
        if skip > 0 {
            use std::io::Seek;
            let _ = f.seek(std::io::SeekFrom::Start(skip));
        }
        let _ = f.read_to_end(&mut text);
    }
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Everything a collection depends on, hashed.
fn cache_key(pytest: &Pytest, selection_args: &[String]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(pytest.python.as_os_str().as_encoded_bytes());
    for arg in selection_args.iter().chain(&pytest.extra_args) {
        h.update(arg.as_bytes());
        h.update(b"\0");
    }
    for var in ["PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH"] {
        h.update(std::env::var(var).unwrap_or_default().as_bytes());
        h.update(b"\0");
    }
    let mut files = Vec::new();
    source_files(&pytest.root, &mut files, 0);
    files.sort();
    for (path, size, mtime) in files {
        h.update(path.as_os_str().as_encoded_bytes());
        h.update(&size.to_le_bytes());
        h.update(&mtime.to_le_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// (path, size, mtime ns) of files that can change what pytest collects.
fn source_files(dir: &Path, out: &mut Vec<(PathBuf, u64, u128)>, depth: usize) {
    const EXTENSIONS: &[&str] = &["py", "toml", "ini", "cfg", "json", "yaml", "yml", "txt"];
    if depth > 32 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            let skip = name.starts_with('.')
                || name == "__pycache__"
                || name == "node_modules"
                || name == "site-packages"
                || path.join("pyvenv.cfg").exists();
            if !skip {
                source_files(&path, out, depth + 1);
            }
        } else if EXTENSIONS.iter().any(|x| name.ends_with(&format!(".{x}"))) {
            if let Ok(meta) = entry.metadata() {
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                out.push((path, meta.len(), mtime));
            }
        }
    }
}
