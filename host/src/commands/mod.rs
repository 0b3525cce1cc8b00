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

    /// Says it on stderr, once; the exit code.
    pub fn report(self) -> Exit {
        eprintln!("error: {}", self.1);
        self.0
    }
}
