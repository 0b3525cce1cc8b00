//! One module per subcommand.

pub mod external;
pub mod merge;
pub mod plugins;
pub mod quarantine;
pub mod report;
pub mod run;
pub mod self_check;
mod summary;

use crate::Exit;

/// A command that cannot go on: the exit code, and one line for the user (what went
/// wrong, where, what to do).
pub struct Stop(pub Exit, pub String);

impl Stop {
    /// A usage or configuration error (exit 2).
    pub fn usage(message: String) -> Stop {
        Stop(Exit::Usage, message)
    }

    /// Something mtest itself could not do (exit 3).
    pub fn internal(message: String) -> Stop {
        Stop(Exit::Internal, message)
    }

    /// Says it on stderr, once; the exit code.
    pub fn report(self) -> Exit {
        eprintln!("error: {}", self.1);
        self.0
    }
}

/// Each error type's exit code, once.
impl From<crate::store::StoreError> for Stop {
    fn from(e: crate::store::StoreError) -> Stop {
        Stop::internal(e.to_string())
    }
}

impl From<crate::store::lock::LockError> for Stop {
    fn from(e: crate::store::lock::LockError) -> Stop {
        Stop(e.exit(), e.to_string())
    }
}

impl From<crate::pytest::PytestError> for Stop {
    fn from(e: crate::pytest::PytestError) -> Stop {
        use crate::pytest::PytestError;
        match e {
            PytestError::NoPython { .. } | PytestError::NotInstalled(_) => {
                Stop::usage(e.to_string())
            }
            PytestError::Store(e) => e.into(),
            _ => Stop::internal(e.to_string()),
        }
    }
}

impl From<crate::selection::PolicyError> for Stop {
    fn from(e: crate::selection::PolicyError) -> Stop {
        Stop::internal(e.to_string())
    }
}

impl From<crate::config::ConfigError> for Stop {
    fn from(e: crate::config::ConfigError) -> Stop {
        Stop::usage(e.to_string())
    }
}

impl From<crate::plugin_host::discovery::ResolveError> for Stop {
    fn from(e: crate::plugin_host::discovery::ResolveError) -> Stop {
        Stop::usage(e.to_string())
    }
}

impl From<crate::plugin_host::HostError> for Stop {
    fn from(e: crate::plugin_host::HostError) -> Stop {
        Stop::internal(e.to_string())
    }
}

impl From<crate::BadValue> for Stop {
    fn from(e: crate::BadValue) -> Stop {
        Stop::usage(e.to_string())
    }
}
