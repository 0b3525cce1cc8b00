//! The long name of `mtest`, kept for users of the original tool: the same program.
include!("../main.rs");
