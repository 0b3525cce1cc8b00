//! `mtest <name> ARGS…` runs `mtest-<name>` from PATH, cargo-style.

use std::process::Command;

use crate::plugin_host::discovery;
use crate::Exit;

pub fn run(args: &[String]) -> Exit {
    let Some((name, rest)) = args.split_first() else {
        return Exit::Usage;
    };
    let Some(path) = discovery::find_subcommand(name) else {
        eprintln!(
            "error: `{name}` is not a test path (no such file or directory), a node id (path::name), an mtest subcommand (plugins, quarantine) or an external one (no `mtest-{name}` on PATH); see `mtest --help`"
        );
        return Exit::Usage;
    };
    match Command::new(&path).args(rest).status() {
        Ok(status) => {
            // Killed by a signal: the shell convention, 128 + signal number.
            let code = mtest_platform::shell_code(status);
            Exit::Code(u8::try_from(code).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", path.display());
            Exit::Internal
        }
    }
}
