//! What can go wrong with `.gates/`: a file or directory that cannot be read or written.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `cannot write .gates/state.json: No space left on device`
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot move {} to {}: {source}", from.display(), to.display())]
    Move {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A record that serde cannot encode (never by construction: said, not panicked).
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    /// `map_err(StoreError::io("write", path))`
    pub fn io<'a>(
        op: &'static str,
        path: &'a Path,
    ) -> impl Fn(std::io::Error) -> StoreError + use<'a> {
        move |source| StoreError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
