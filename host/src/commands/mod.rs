//! One module per subcommand.

pub mod external;
pub mod plugins;
pub mod run;
pub mod self_check;
pub mod show;
