//! The private temp dir that holds the event plugin (and private pytest caches) while a run
//! lives. It is removed when the run ends; a run killed by `SIGKILL` cannot remove it, so
//! each dir carries a lock file its owner holds until it exits (the kernel releases it
//! however the owner dies), and a later run removes every such dir whose lock is free.

use std::fs::File;
use std::path::Path;

const PREFIX: &str = "mtest-plugin-";
const OWNER_LOCK: &str = "owner.lock";

pub(crate) struct PluginDir {
    dir: tempfile::TempDir,
    /// Locked for this value's life; opened close-on-exec, so no pytest child holds it.
    _owner: File,
}

impl PluginDir {
    /// A new dir under the system temp dir, after sweeping the ones dead runs left.
    pub(crate) fn create() -> Result<Self, super::PytestError> {
        static SWEEP: std::sync::Once = std::sync::Once::new();
        let temp = std::env::temp_dir();
        SWEEP.call_once(|| sweep_abandoned(&temp));
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir()
            .map_err(super::PytestError::write(&temp))?;
        let owner = lock_owner(dir.path())
            .map_err(super::PytestError::write(&dir.path().join(OWNER_LOCK)))?;
        Ok(PluginDir { dir, _owner: owner })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Locks the lock file before it takes its name, so a sweep never sees it unlocked.
fn lock_owner(dir: &Path) -> std::io::Result<File> {
    let unnamed = dir.join(format!("{OWNER_LOCK}.new"));
    let file = File::create(&unnamed)?;
    file.lock()?;
    std::fs::rename(&unnamed, dir.join(OWNER_LOCK))?;
    Ok(file)
}

/// Removes every plugin dir in `tmp` whose owner is gone. Best effort: a dir that cannot
/// be read, locked or removed (another user's, one from an mtest before the lock file)
/// is left as it is; nothing in it is a result.
pub(crate) fn sweep_abandoned(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = entry.path();
        let Ok(lock) = File::open(dir.join(OWNER_LOCK)) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            // Its owner is gone for good (an owner locks before the file takes its name);
            // closed first: Windows removes no file that is open.
            drop(lock);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_dirs_whose_owner_is_gone_and_keeps_live_and_foreign_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let mk = |name: &str| {
            let d = tmp.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("mtest_events.py"), "").unwrap();
            d
        };
        // A dead owner: its lock file exists and nobody holds it.
        let dead = mk("mtest-plugin-dead");
        drop(lock_owner(&dead).unwrap());
        // A live owner holds its lock.
        let live = mk("mtest-plugin-live");
        let _held = lock_owner(&live).unwrap();
        // No lock file (an older mtest, or not ours to judge), and not a plugin dir.
        let unlocked = mk("mtest-plugin-old");
        let other = mk("something-else");
        std::fs::write(other.join(OWNER_LOCK), "").unwrap();

        sweep_abandoned(tmp.path());
        assert!(!dead.exists());
        assert!(live.join("mtest_events.py").exists());
        assert!(unlocked.exists());
        assert!(other.exists());
    }
}
