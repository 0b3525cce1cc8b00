use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(mtest::main().code())
}
