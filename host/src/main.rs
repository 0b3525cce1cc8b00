use std::process::ExitCode;

/// mtest allocates and frees a few small objects per event (tens of thousands a second on
/// a big suite); mimalloc does that in about 3/4 of the CPU of glibc's allocator. Linux
/// only: on macOS it needs the SDK's headers to build, and the system allocators there and
/// on Windows were not measured against it.
#[cfg(target_os = "linux")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (the same slot in its v2 and v3): milliseconds
/// before freed memory goes back to the OS. At 0 (or the default 10 ms) pages freed in
/// one loop turn went back and were faulted in again by the next: at 1 s, a warm
/// 100k-test run takes 67k page faults instead of 92k and ~7% less of mtest's CPU, for a
/// peak RSS of 121–132 MB (at 0: 115–119 MB). At 10 s (a chunk's buffers outlive a
/// second), a cold 100k-test run: 43k faults instead of 53k, peak RSS 104 MB either way;
/// never purging: 38k, but 149 MB.
#[cfg(target_os = "linux")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
#[cfg(target_os = "linux")]
const PURGE_DELAY_MS: std::os::raw::c_long = 10_000;

fn main() -> ExitCode {
    // SAFETY: sets a plain integer option; no allocation is in flight on another thread.
    #[cfg(target_os = "linux")]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS)
    };
    ExitCode::from(mtest::main().code())
}
