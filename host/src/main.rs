use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mtest::cli::Cli::parse();
    ExitCode::from(mtest::run(cli).code())
}
