//! `mtest plugins list|check` and external subcommands, through the real binary.

use crate::common;

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;

use snapbox::cmd::Command;
use snapbox::str;

fn project_with_bad_plugins() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join(".mtest/plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        common::fixture_plugin("old-abi"),
        plugins.join("old-abi.wasm"),
    )
    .unwrap();
    std::fs::write(plugins.join("junk.wasm"), "this is not wasm").unwrap();
    std::fs::copy(
        common::fixture_plugin("looping"),
        plugins.join("looping.wasm"),
    )
    .unwrap();
    dir
}

fn mtest(cache: &std::path::Path) -> Command {
    Command::new(snapbox::cmd::cargo_bin!("mtest"))
        .env("MTEST_CACHE_DIR", cache)
        .env("PATH", "/usr/bin:/bin")
}

#[test]
fn plugins_list_shows_builtins_ok_and_bad_plugins_with_reasons() {
    let project = project_with_bad_plugins();
    let cache = tempfile::tempdir().unwrap();
    mtest(cache.path()).args(["plugins", "list"]).current_dir(project.path()).assert().success().stdout_eq(str![[r#"
NAME             KIND               VERSION  WIT    SOURCE                                     STATUS
greedy-knapsack  selection          0.1.0    0.6.0  builtin                                    ok
quarantine-3of5  quarantine-policy  0.1.0    0.6.0  builtin                                    ok
txt-bundles      reporter           0.1.0    0.6.0  builtin                                    ok
summary-md       reporter           0.1.0    0.6.0  builtin                                    ok
html-report      reporter           0.1.0    0.6.0  builtin                                    ok
github           reporter           0.1.0    0.6.0  builtin                                    ok
tcp              probe              0.1.0    0.6.0  builtin                                    ok
junk             -                  -        -      project dir (.mtest/plugins/junk.wasm)     broken: not a WebAssembly file (bad magic number)
looping          selection          0.1.0    0.6.0  project dir (.mtest/plugins/looping.wasm)  ok
old-abi          -                  -        -      project dir (.mtest/plugins/old-abi.wasm)  incompatible: built for mtest:plugin@0.0.9; this mtest speaks mtest:plugin@0.6.0 (rebuild the plugin against this mtest's wit/)

"#]]);
}

#[test]
fn plugins_list_json_has_the_same_rows() {
    let project = project_with_bad_plugins();
    let cache = tempfile::tempdir().unwrap();
    let output = mtest(cache.path())
        .args(["plugins", "list", "--json"])
        .current_dir(project.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows: serde_json::Value = serde_json::from_slice(&output).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 10, "7 built-ins and 3 project plugins");
    assert_eq!(rows[0]["name"], "greedy-knapsack");
    assert_eq!(rows[0]["source"], "builtin");
    assert_eq!(rows[0]["status"], "ok");
    assert_eq!(rows[0]["wit_version"], "0.6.0");
    let junk = rows.iter().find(|r| r["name"] == "junk").unwrap();
    assert_eq!(junk["status"], "broken");
    assert_eq!(junk["source"], "project dir");
    assert!(junk["path"]
        .as_str()
        .unwrap()
        .ends_with(".mtest/plugins/junk.wasm"));
    let old = rows.iter().find(|r| r["name"] == "old-abi").unwrap();
    assert_eq!(old["status"], "incompatible");
}

#[test]
#[cfg(unix)] // a `#!/bin/sh` subcommand on a `:`-separated PATH
fn plugins_list_includes_configured_paths_and_path_subcommands() {
    let project = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::fixture_plugin("trapping"),
        project.path().join("trapping.wasm"),
    )
    .unwrap();
    std::fs::write(
        project.path().join("pyproject.toml"),
        "[tool.mtest]\nplugins = [\"trapping.wasm\"]\n",
    )
    .unwrap();
    let bin = tempfile::tempdir().unwrap();
    let script = bin.path().join("mtest-hello");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"hello from mtest-hello: $*\"\nexit 7\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());

    let out = mtest(cache.path())
        .args(["plugins", "list"])
        .env("PATH", &path)
        .current_dir(project.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("trapping         selection          0.1.0    0.6.0  config (trapping.wasm)"),
        "{out}"
    );
    assert!(
        out.contains("hello            subcommand         -        -      PATH ("),
        "{out}"
    );

    // `mtest hello a b` runs it, passing its arguments and its exit code through.
    mtest(cache.path())
        .args(["hello", "a", "b"])
        .env("PATH", &path)
        .current_dir(project.path())
        .assert()
        .code(7)
        .stdout_eq(str![[r#"
hello from mtest-hello: a b

"#]]);
}

#[test]
fn a_word_that_is_no_path_node_id_or_subcommand_is_a_usage_error() {
    let cache = tempfile::tempdir().unwrap();
    mtest(cache.path()).args(["frobnicate"]).assert().code(2).stderr_eq(str![[r#"
error: `frobnicate` is not a test path (no such file or directory), a node id (path::name), an mtest subcommand (plugins, quarantine) or an external one (no `mtest-frobnicate` on PATH); see `mtest --help`

"#]]);
}

#[test]
fn plugins_check_says_which_world_and_whether_it_is_accepted() {
    let cache = tempfile::tempdir().unwrap();
    let looping = common::fixture_plugin("looping");
    mtest(cache.path()).args(["plugins", "check"]).arg(&looping).assert().success().stdout_eq(str![[r#"
[..]looping.wasm: ok: `looping` 0.1.0 is a selection plugin (world mtest:plugin/selection-plugin@0.6.0); this mtest accepts it
  loops forever in select

"#]]);
    mtest(cache.path())
        .args(["plugins", "check"])
        .arg(common::fixture_plugin("liar"))
        .assert()
        .code(1)
        .stdout_eq(str![[r#"
[..]liar.wasm: broken: its info() says kind `reporter` but it implements the selection-plugin world

"#]]);
}

#[test]
fn a_misspelt_config_key_is_an_error_naming_key_file_and_line() {
    let project = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("pyproject.toml"),
        "[project]\nname = \"x\"\n\n[tool.mtest]\njbos = 2\n",
    )
    .unwrap();
    mtest(cache.path()).args(["plugins", "list"]).current_dir(project.path()).assert().code(2).stderr_eq(str![[r#"
error: [..]/pyproject.toml:5: unknown field `jbos`, expected one of `jobs`, `timeout`, `retries`, `rerun-crashed`, `new-test-repeats`, `python`, `selector`, `quarantine-policy`, `reporters`, `plugins`, `plugin-timeout`, `plugin-memory-mb`, `probes`, `pytest-args`, `isolation`, `collect-timeout`, `session-end-timeout`, `gc-freeze`, `impact`

"#]]);
}
