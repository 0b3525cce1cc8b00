//! What can go wrong starting or talking to pytest, typed where it happens.

use std::path::{Path, PathBuf};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PytestError {
    /// A file mtest makes for pytest (the plugin, an event file, a log).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The interpreter does not start.
    #[error("cannot run Python interpreter {}: {source}; pass --python PATH", python.display())]
    NoPython {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// pytest or pytest-timeout is missing; the line says how to install it.
    #[error("{0}")]
    NotInstalled(String),
    /// The zygote's pipe closed, it ended or did not answer: what happened, with its pid.
    #[error("{0}")]
    Zygote(String),
    /// Combining process mode's coverage data.
    #[error("{0}")]
    Coverage(String),
    /// `python -m mtest_impact` (the check of what changed, the blocks of what a run
    /// recorded) failed: what it said.
    #[error("{0}")]
    Impact(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PytestError {
    /// `map_err(PytestError::write(path))`
    pub fn write(path: &Path) -> impl Fn(std::io::Error) -> PytestError + use<'_> {
        move |source| PytestError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}
