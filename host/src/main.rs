use std::process::ExitCode;

/// mtest allocates and frees a few small objects per event (tens of thousands a second on
/// a big suite); mimalloc does that in about half the CPU of glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ExitCode::from(mtest::main().code())
}
