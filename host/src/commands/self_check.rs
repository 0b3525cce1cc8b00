//! `--self-check`: placeholder replaced below.
use crate::cli::RunArgs;
use crate::Exit;

pub fn run(_args: &RunArgs) -> Exit {
    Exit::Internal
}
