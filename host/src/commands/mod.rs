//! One module per subcommand.

pub mod external;
pub mod plugins;
