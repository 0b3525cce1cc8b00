//! The repository's own GitHub Actions workflows parse and hold the matrix the README
//! promises: CI on Linux, macOS and Windows with Python 3.11 and 3.13; release wheels for
//! manylinux 2014 and musllinux on x86_64 and aarch64, macOS on x86_64 and arm64, Windows
//! on x86_64, built by maturin.

use crate::common;

use yaml_rust2::{Yaml, YamlLoader};

fn workflow(name: &str) -> Yaml {
    let path = common::repo_root().join(".github/workflows").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert_eq!(docs.len(), 1, "{path:?}: one document");
    docs.remove(0)
}

fn strings(list: &Yaml) -> Vec<String> {
    list.as_vec()
        .unwrap_or_else(|| panic!("not a list: {list:?}"))
        .iter()
        .map(|v| match v {
            Yaml::String(s) => s.clone(),
            other => panic!("not a string: {other:?}"),
        })
        .collect()
}

/// The job's step that uses the action `prefix` names (`actions/setup-python@`).
fn step_using<'a>(job: &'a Yaml, prefix: &str) -> &'a Yaml {
    job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no step uses {prefix}"))
}

fn runs(job: &Yaml) -> Vec<(String, Option<String>)> {
    job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|s| {
            let run = s["run"].as_str()?.trim().to_string();
            Some((run, s["if"].as_str().map(str::to_string)))
        })
        .collect()
}

#[test]
fn ci_runs_the_suite_on_three_systems_with_the_oldest_and_newest_python() {
    let ci = workflow("ci.yml");
    let job = &ci["jobs"]["test"];
    let matrix = &job["strategy"]["matrix"];
    assert_eq!(
        strings(&matrix["os"]),
        ["ubuntu-latest", "macos-latest", "windows-latest"]
    );
    assert_eq!(strings(&matrix["python"]), ["3.11", "3.13"]);
    assert_eq!(job["runs-on"].as_str(), Some("${{ matrix.os }}"));
    assert_eq!(job["strategy"]["fail-fast"].as_bool(), Some(false));
    let setup = step_using(job, "actions/setup-python@");
    let versions: Vec<&str> = setup["with"]["python-version"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .collect();
    assert_eq!(versions, ["3.12", "3.13", "${{ matrix.python }}"]);
    let runs = runs(job);
    let has = |cmd: &str, cond: Option<&str>| {
        runs.iter()
            .any(|(r, c)| r.as_str() == cmd && c.as_deref() == cond)
    };
    // The plugin's own tests everywhere; every suite on Unix; process isolation again on
    // Linux; on Windows unit tests, the end-to-end suites built, and a self-check.
    assert!(has(
        "\"$MTEST_TEST_PYTHON\" -m pytest tests/python -q -p no:cacheprovider",
        None
    ));
    assert!(has("cargo test --release", Some("runner.os != 'Windows'")));
    // Linux's wheel check and --changed need venvs of 3.12 and 3.13.
    assert!(runs
        .iter()
        .any(|(r, c)| c.as_deref() == Some("runner.os == 'Linux'")
            && r.contains("MTEST_TEST_PYTHON$v=")));
    assert!(has(
        "MTEST_TEST_ISOLATION=process cargo test --release --test e2e -- supervisor:: reliability:: command_line:: flakes:: changed::",
        Some("runner.os == 'Linux'")
    ));
    assert!(has(
        "cargo test --release --workspace --lib --bins\ncargo test --release -p mtest --tests --no-run",
        Some("runner.os == 'Windows'")
    ));
    assert!(has(
        "target/release/mtest --self-check --python \"$MTEST_TEST_PYTHON\"",
        Some("runner.os == 'Windows'")
    ));
}

#[test]
fn release_builds_a_wheel_for_every_system_and_linux_flavour() {
    let release = workflow("release.yml");
    let job = &release["jobs"]["wheels"];
    let include = job["strategy"]["matrix"]["include"].as_vec().unwrap();
    let mut built: Vec<(String, String, String)> = include
        .iter()
        .map(|row| {
            (
                row["os"].as_str().unwrap().to_string(),
                row["target"].as_str().unwrap().to_string(),
                row["manylinux"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    built.sort();
    let want =
        |os: &str, target: &str, tag: &str| (os.to_string(), target.to_string(), tag.to_string());
    assert_eq!(
        built,
        [
            want("macos-latest", "aarch64-apple-darwin", ""),
            want("macos-latest", "x86_64-apple-darwin", ""),
            want("ubuntu-latest", "aarch64-unknown-linux-gnu", "2014"),
            want(
                "ubuntu-latest",
                "aarch64-unknown-linux-musl",
                "musllinux_1_2"
            ),
            want("ubuntu-latest", "x86_64-unknown-linux-gnu", "2014"),
            want(
                "ubuntu-latest",
                "x86_64-unknown-linux-musl",
                "musllinux_1_2"
            ),
            want("windows-latest", "x86_64-pc-windows-msvc", ""),
        ]
    );
    let maturin = step_using(job, "PyO3/maturin-action@");
    assert_eq!(maturin["with"]["command"].as_str(), Some("build"));
    assert_eq!(
        maturin["with"]["target"].as_str(),
        Some("${{ matrix.target }}")
    );
    assert_eq!(
        maturin["with"]["manylinux"].as_str(),
        Some("${{ matrix.manylinux || 'auto' }}")
    );
    // The wheels hold the binaries: pyproject.toml's maturin section says so.
    let pyproject = std::fs::read_to_string(common::repo_root().join("pyproject.toml")).unwrap();
    assert!(pyproject.contains("bindings = \"bin\""));
    // On a version tag, and the release job gathers every wheel.
    assert!(strings(&release["on"]["push"]["tags"]).contains(&"v*".to_string()));
    assert_eq!(release["jobs"]["release"]["needs"].as_str(), Some("wheels"));
}
