use std::process::ExitCode;

/// mtest allocates and frees a few small objects per event (tens of thousands a second on
/// a big suite); mimalloc does that in about 3/4 of the CPU of glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (the same slot in its v2 and v3): milliseconds
/// before freed memory goes back to the OS. At 0, mtest's peak RSS on a warm 100k-test
/// run is 143 MB instead of 181 (glibc: 161), at no CPU cost that shows.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // SAFETY: sets a plain integer option; no allocation is in flight on another thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    ExitCode::from(mtest::main().code())
}
