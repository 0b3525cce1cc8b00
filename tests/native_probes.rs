//! Trusted native probes: a shared library with mtest's probe C ABI, built here with the
//! system C compiler, run in a helper process for each failure bundle. The probes' own
//! test is Linux's (`.so` built by the system's cc; helpers found in /proc).
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports))]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{mtest_in, project};

/// Compiles `source` (C) into `dir/lib{name}.so`; None (and why) without a C compiler.
fn shared_library(dir: &Path, name: &str, source: &str) -> Result<PathBuf, String> {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let lib = dir.join(format!("lib{name}.so"));
    let include = common::repo_root().join("examples/native-probe");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&lib)
        .arg(&c)
        .output()
        .map_err(|e| format!("no C compiler (cc): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(lib)
}

const SEGFAULT: &str = r#"
#include "mtest_probe.h"
uint32_t mtest_probe_abi_version(void) { return MTEST_PROBE_ABI_VERSION; }
int32_t mtest_probe_check(const mtest_probe_setting *s, size_t n, const mtest_probe_context *c,
                          char *out, size_t len) {
    (void)s; (void)n; (void)c; (void)out; (void)len;
    *(volatile int *)0 = 1;
    return 0;
}
"#;

const HANG: &str = r#"
#include <unistd.h>
#include "mtest_probe.h"
uint32_t mtest_probe_abi_version(void) { return MTEST_PROBE_ABI_VERSION; }
int32_t mtest_probe_check(const mtest_probe_setting *s, size_t n, const mtest_probe_context *c,
                          char *out, size_t len) {
    (void)s; (void)n; (void)c; (void)out; (void)len;
    for (;;) pause();
}
"#;

const NOT_A_PROBE: &str = "int something_else(void) { return 1; }\n";

fn section<'t>(bundle: &'t str, name: &str) -> &'t str {
    let start = bundle
        .find(&format!("[{name}]\n"))
        .unwrap_or_else(|| panic!("no [{name}] in the bundle:\n{bundle}"));
    let rest = &bundle[start..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

#[test]
#[cfg(target_os = "linux")] // probes built as `.so`; the helpers found in /proc
fn native_probes_answer_for_a_live_and_a_dead_daemon_and_a_crash_or_hang_costs_only_their_helper() {
    let tmp = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(common::repo_root().join("examples/native-probe/tcp_probe.c"))
            .unwrap();
    let built = (|| {
        Ok::<_, String>((
            shared_library(tmp.path(), "tcp_probe", &example)?,
            shared_library(tmp.path(), "segfault", SEGFAULT)?,
            shared_library(tmp.path(), "hang", HANG)?,
            shared_library(tmp.path(), "not_a_probe", NOT_A_PROBE)?,
        ))
    })();
    let (tcp, segfault, hang, not_a_probe) = match built {
        Ok(libs) => libs,
        Err(why) => return common::missing(&why),
    };

    // A daemon that answers PING, and a port nothing listens on.
    let (live, dead) = common::pong_daemon_and_dead_port();
    let lib = |p: &Path| p.display().to_string();
    let config = format!(
        r#"[tool.pytest.ini_options]

[tool.mtest.probes.cache]
native = "{tcp}"
trusted = true
address = "{live}"
send = "PING"

[tool.mtest.probes.gone]
native = "{tcp}"
trusted = true
address = "{dead}"

[tool.mtest.probes.crashes]
native = "{segfault}"
trusted = true

[tool.mtest.probes.hangs]
native = "{hang}"
trusted = true
timeout = 1
"#,
        tcp = lib(&tcp),
        segfault = lib(&segfault),
        hang = lib(&hang),
    );
    let p = project(&[
        ("pyproject.toml", config.as_str()),
        (
            "tests/test_x.py",
            "def test_fails():\n    assert 1 == 2\n\ndef test_ok():\n    pass\n",
        ),
    ]);
    let out = mtest_in(p.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let outcomes = common::outcomes(p.path());
    assert_eq!(outcomes["tests/test_x.py::test_fails"], "failed");
    assert_eq!(outcomes["tests/test_x.py::test_ok"], "passed");
    let failures = p.path().join(".gates/last-run/failures");
    let bundle_file = std::fs::read_dir(&failures)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bundle = std::fs::read_to_string(bundle_file).unwrap();
    assert_eq!(
        section(&bundle, "cache"),
        format!("[cache]\n{live}: reachable; replied to PING: +PONG")
    );
    assert!(
        section(&bundle, "gone").starts_with(&format!("[gone]\n{dead}: unreachable (")),
        "{bundle}"
    );
    assert_eq!(
        section(&bundle, "crashes"),
        "[crashes]\nprobe failed: the probe crashed (SIGSEGV)"
    );
    assert_eq!(
        section(&bundle, "hangs"),
        "[hangs]\nprobe failed: no answer within 1.0s (the probe was killed)"
    );
    // The hanging helper is gone (killed with its process group).
    let helpers = Command::new("pgrep")
        .args(["-f", "__native-probe"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert!(
        !helpers.split_whitespace().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains("libhang.so"))
        }),
        "a hung probe helper is still running"
    );

    // `mtest plugins list` shows them: source native, trusted, and whether each loads.
    let with_broken = format!(
        "{config}\n[tool.mtest.probes.wrong]\nnative = \"{}\"\ntrusted = true\n",
        lib(&not_a_probe)
    );
    std::fs::write(p.path().join("pyproject.toml"), with_broken).unwrap();
    let list = mtest_in(p.path())
        .args(["plugins", "list"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{table}");
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{table}"))
            .to_string()
    };
    for name in ["cache", "crashes", "hangs"] {
        let row = line(name);
        assert!(row.contains(" probe "), "{row}");
        assert!(row.contains("abi 1"), "{row}");
        assert!(row.contains("native, trusted ("), "{row}");
        assert!(row.trim_end().ends_with(" ok"), "{row}");
    }
    let wrong = line("wrong");
    assert!(wrong.contains("broken: not an mtest probe"), "{wrong}");
}

#[test]
fn a_native_probe_needs_trusted_true() {
    let p = project(&[
        (
            "pyproject.toml",
            "[tool.mtest.probes.db]\nnative = \"probes/libdb.so\"\n",
        ),
        ("tests/test_x.py", "def test_ok():\n    pass\n"),
    ]);
    let out = mtest_in(p.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("probes.db: native = \"probes/libdb.so\" runs native code with mtest's rights: add `trusted = true` to allow it"),
        "{stderr}"
    );
}
