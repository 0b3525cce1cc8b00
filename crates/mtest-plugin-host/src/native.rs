//! Trusted native probes: a shared library with a small C ABI, for daemon state that only a
//! native client library can read. Loaded only when `[tool.mtest.probes.NAME]` says
//! `native = "path.so"` and `trusted = true`, and never inside mtest: each call runs in a
//! helper process (`mtest __native-probe`), so a probe that crashes or hangs costs its own
//! process, under the same time limit as a WebAssembly probe.
//!
//! The ABI (`examples/native-probe/mtest_probe.h`):
//!
//! ```c
//! uint32_t mtest_probe_abi_version(void);          /* must return 1 */
//! int32_t mtest_probe_check(const mtest_probe_setting *settings, size_t n_settings,
//!                           const mtest_probe_context *context, char *out, size_t out_len);
//! ```
//!
//! `check` writes NUL-terminated text into `out` (at most `out_len` bytes with the NUL) and
//! returns 0 when the text is the daemon's state, nonzero when it says why there is none.

use std::ffi::{c_char, CStr, CString};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The ABI version this mtest speaks.
pub const ABI_VERSION: u32 = 1;
/// Room for a probe's answer.
const OUT_LEN: usize = 64 * 1024;
/// The hidden subcommand the helper process runs.
pub const HELPER: &str = "__native-probe";

#[repr(C)]
struct Setting {
    key: *const c_char,
    value: *const c_char,
}

#[repr(C)]
struct Context {
    test_id: *const c_char,
    outcome: *const c_char,
    message: *const c_char,
}

type AbiVersion = unsafe extern "C" fn() -> u32;
type Check = unsafe extern "C" fn(*const Setting, usize, *const Context, *mut c_char, usize) -> i32;

/// What the parent sends the helper on stdin.
#[derive(Serialize, Deserialize)]
struct Request {
    /// Only load the library and check its ABI version.
    info: bool,
    settings: Vec<(String, String)>,
    test_id: String,
    outcome: String,
    message: String,
}

/// What the helper prints on stdout.
#[derive(Serialize, Deserialize)]
enum Answer {
    Ok(String),
    Err(String),
}

/// `mtest __native-probe LIB ANSWER`: in the helper process, load `LIB`, answer the request
/// on stdin, write the answer to the file `ANSWER` (what the probe itself prints goes to
/// stdout and stderr, which the parent sets aside). Any failure is an answer too.
pub fn helper_main(args: &[String]) -> crate::Exit {
    let [lib, answer_path] = args else {
        eprintln!("usage: mtest {HELPER} LIB ANSWER");
        return crate::Exit::Usage;
    };
    let answer = helper(Path::new(lib));
    match serde_json::to_vec(&answer).map(|text| std::fs::write(answer_path, text)) {
        Ok(Ok(())) => crate::Exit::Ok,
        _ => crate::Exit::Internal,
    }
}

fn helper(lib: &Path) -> Answer {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        return Answer::Err(format!("cannot read the request: {e}"));
    }
    let request: Request = match serde_json::from_str(&input) {
        Ok(r) => r,
        Err(e) => return Answer::Err(format!("bad request: {e}")),
    };
    // SAFETY: loading runs the library's initialisers; the user marked it trusted, and
    // this helper process exists so that whatever it does cannot reach mtest.
    let library = match unsafe { libloading::Library::new(lib) } {
        Ok(l) => l,
        Err(e) => return Answer::Err(format!("cannot load {}: {e}", lib.display())),
    };
    // SAFETY: the symbol's type is the documented ABI.
    let version = match unsafe { library.get::<AbiVersion>(b"mtest_probe_abi_version\0") } {
        Ok(f) => unsafe { f() },
        Err(e) => return Answer::Err(format!("not an mtest probe: {e}")),
    };
    if version != ABI_VERSION {
        return Answer::Err(format!(
            "built for native probe ABI {version}; this mtest speaks {ABI_VERSION}"
        ));
    }
    // SAFETY: as above.
    let check = match unsafe { library.get::<Check>(b"mtest_probe_check\0") } {
        Ok(f) => f,
        Err(e) => return Answer::Err(format!("not an mtest probe: {e}")),
    };
    if request.info {
        return Answer::Ok(format!("native probe ABI {version}"));
    }
    let c = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
    let strings: Vec<(CString, CString)> =
        request.settings.iter().map(|(k, v)| (c(k), c(v))).collect();
    let settings: Vec<Setting> = strings
        .iter()
        .map(|(k, v)| Setting {
            key: k.as_ptr(),
            value: v.as_ptr(),
        })
        .collect();
    let (test_id, outcome, message) = (
        c(&request.test_id),
        c(&request.outcome),
        c(&request.message),
    );
    let context = Context {
        test_id: test_id.as_ptr(),
        outcome: outcome.as_ptr(),
        message: message.as_ptr(),
    };
    let mut out = vec![0 as c_char; OUT_LEN];
    // SAFETY: every pointer is valid for the call; `out` has OUT_LEN bytes.
    let status = unsafe {
        check(
            settings.as_ptr(),
            settings.len(),
            &context,
            out.as_mut_ptr(),
            OUT_LEN,
        )
    };
    out[OUT_LEN - 1] = 0; // a probe that filled the buffer without a NUL
                          // SAFETY: `out` is NUL-terminated.
    let text = unsafe { CStr::from_ptr(out.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    if status == 0 {
        Answer::Ok(text)
    } else {
        Answer::Err(format!("the probe says: {text} (status {status})"))
    }
}

/// Runs one check of the native probe `lib` in a helper process within `timeout`.
/// Why a native probe gave no answer: it crashed, hung, or said so itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(String);

pub fn check(
    lib: &Path,
    settings: &[(String, String)],
    test_id: &str,
    outcome: &str,
    message: &str,
    timeout: Duration,
) -> Result<String, ProbeError> {
    call(
        lib,
        &Request {
            info: false,
            settings: settings.to_vec(),
            test_id: test_id.into(),
            outcome: outcome.into(),
            message: message.into(),
        },
        timeout,
    )
}

/// Loads `lib` in a helper process and checks its ABI: `native probe ABI 1`, or why not.
pub fn info(lib: &Path, timeout: Duration) -> Result<String, ProbeError> {
    call(
        lib,
        &Request {
            info: true,
            settings: Vec::new(),
            test_id: String::new(),
            outcome: String::new(),
            message: String::new(),
        },
        timeout,
    )
}

fn call(lib: &Path, request: &Request, timeout: Duration) -> Result<String, ProbeError> {
    let exe = std::env::current_exe()
        .map_err(|e| ProbeError(format!("cannot find mtest itself: {e}")))?;
    let request = serde_json::to_vec(request).map_err(|e| ProbeError(e.to_string()))?;
    let temp = |e: std::io::Error| ProbeError(format!("cannot make a temp file: {e}"));
    // Answers go to a file, not a pipe: a probe that writes a lot never blocks on it.
    let mut answer = tempfile::NamedTempFile::new().map_err(temp)?;
    let output = tempfile::tempfile().map_err(temp)?;
    let mut cmd = Command::new(exe);
    cmd.arg(HELPER)
        .arg(lib)
        .arg(answer.path())
        .stdin(Stdio::piped())
        .stdout(output.try_clone().map_err(temp)?)
        .stderr(output);
    let mut child = mtest_platform::spawn_owned(&mut cmd)
        .map_err(|e| ProbeError(format!("cannot start the probe helper: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A probe that dies first closes the pipe; its exit status says why.
        let _ = stdin.write_all(&request);
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                mtest_platform::end_group(child.id() as i32);
                let _ = child.wait();
                return Err(ProbeError(format!(
                    "no answer within {} (the probe was killed)",
                    crate::clock::human(timeout)
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(ProbeError(format!("cannot wait for the probe helper: {e}"))),
        }
    };
    mtest_platform::end_group(child.id() as i32);
    let mut text = String::new();
    answer
        .as_file_mut()
        .read_to_string(&mut text)
        .map_err(|e| ProbeError(format!("cannot read the probe's answer: {e}")))?;
    match serde_json::from_str::<Answer>(text.trim()) {
        Ok(Answer::Ok(text)) => Ok(text),
        Ok(Answer::Err(e)) => Err(ProbeError(e)),
        // Exited of its own accord (a crash on Windows exits with a negative NTSTATUS).
        Err(_) if status.code().is_some_and(|c| c >= 0) => Err(ProbeError(format!(
            "the probe helper exited ({status}) without an answer"
        ))),
        Err(_) => Err(ProbeError(format!(
            "the probe crashed ({})",
            mtest_platform::describe_exit(status)
        ))),
    }
}
