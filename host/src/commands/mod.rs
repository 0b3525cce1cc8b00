//! One module per subcommand.

pub mod external;
pub mod merge;
pub mod plugins;
pub mod quarantine;
pub mod report;
pub mod run;
pub mod self_check;
