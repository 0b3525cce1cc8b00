//! The plugin host against real misbehaving components (tests/fixtures/plugins): each is
//! stopped, reported by name, and the host goes on to serve a well-behaved plugin.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use mtest::plugin_host::session::{
    Candidate, ReporterSession, RunStart, SelectionRequest, SelectionSession,
};
use mtest::plugin_host::{builtins, Limits, LoadError, PluginHost, Source};

fn host(limits: Limits) -> PluginHost {
    let cache = tempfile::tempdir().unwrap().keep();
    PluginHost::new(limits, Some(cache)).unwrap()
}

fn tight() -> Limits {
    Limits {
        call_timeout: Duration::from_millis(500),
        memory_bytes: 64 << 20,
    }
}

fn request(n: u32) -> SelectionRequest {
    SelectionRequest {
        candidates: (0..n)
            .map(|i| Candidate {
                index: i,
                file: 0,
                tier: (i % 4) as u8,
                markers: 0,
                estimate_ms: 10,
                last_outcome: None,
                recent_failures: 0,
                failure_score: 0.0,
                quarantined: false,
                key: u64::from(i),
                impacted: None,
            })
            .collect(),
        files: vec!["tests/test_a.py".into()],
        marker_names: vec![],
        tiers: 0b1111,
        budget_ms: None,
        workers: 2,
        startup_ms: 1000,
        chunk_size: 300,
        shard: None,
        changed: false,
        changes: vec![],
    }
}

/// The host still works: the built-in knapsack answers a selection.
fn assert_host_still_serves(host: &PluginHost) {
    let knapsack = builtins::load(host, "greedy-knapsack").unwrap().unwrap();
    let mut session = SelectionSession::start(host, &knapsack).unwrap();
    let selection = session.select(&request(8)).unwrap();
    assert_eq!(selection.selected.len(), 8);
}

fn select_with(host: &PluginHost, fixture: &str) -> (String, Duration) {
    let plugin = host
        .load_file(
            &common::fixture_plugin(fixture),
            Source::CommandLine(fixture.into()),
        )
        .unwrap();
    let mut session = SelectionSession::start(host, &plugin).unwrap();
    let started = Instant::now();
    let err = session.select(&request(4)).unwrap_err();
    let elapsed = started.elapsed();
    // A dead instance refuses further calls with the same error instead of misbehaving.
    assert_eq!(session.select(&request(4)).unwrap_err(), err);
    (err.to_string(), elapsed)
}

#[test]
fn an_infinite_loop_is_stopped_within_its_deadline() {
    let host = host(tight());
    let (err, elapsed) = select_with(&host, "looping");
    assert!(err.contains("`looping`"), "{err}");
    assert!(
        err.contains("exceeded its CPU time limit of 500ms in select"),
        "{err}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "stopped after {elapsed:?}"
    );
    assert_host_still_serves(&host);
}

#[test]
fn endless_allocation_is_stopped_by_the_memory_limit() {
    let host = host(tight());
    let (err, _) = select_with(&host, "hungry");
    assert!(err.contains("`hungry`"), "{err}");
    assert!(
        err.contains("exceeded its memory limit of 64 MiB in select"),
        "{err}"
    );
    assert_host_still_serves(&host);
}

#[test]
fn a_trap_is_reported_by_name_with_the_panic_message() {
    let host = host(tight());
    let (err, _) = select_with(&host, "trapping");
    assert!(err.starts_with("plugin `trapping` ("), "{err}");
    assert!(err.contains("trapped in select"), "{err}");
    assert!(err.contains("fixture trap: the plugin gave up"), "{err}");
    assert_host_still_serves(&host);
}

#[test]
fn a_plugin_blocked_in_a_host_call_is_abandoned_at_its_wall_clock_limit() {
    let host = host(tight());
    let (err, elapsed) = select_with(&host, "sleepy");
    assert!(err.contains("`sleepy`"), "{err}");
    assert!(
        err.contains("did not return from select within its 500ms limit"),
        "{err}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "stopped after {elapsed:?}"
    );
    assert_host_still_serves(&host);
}

#[test]
fn out_of_range_answers_are_garbage_not_a_crash() {
    let host = host(tight());
    let (err, _) = select_with(&host, "garbage");
    assert!(
        err.contains(
            "returned garbage from select: candidate index 11, but there are only 4 candidates"
        ),
        "{err}"
    );
    assert_host_still_serves(&host);
}

#[test]
fn a_reporter_cannot_open_files_it_was_not_granted() {
    let host = host(Limits::default());
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "do not read").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();

    let plugin = host
        .load_file(
            &common::fixture_plugin("snooping"),
            Source::CommandLine("snooping".into()),
        )
        .unwrap();
    let mut session = ReporterSession::start(&host, &plugin, &out).unwrap();
    let start = RunStart {
        run_id: "r1".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        selected: 0,
        command: secret.display().to_string(),
    };
    let lines = session.run_start(&start).unwrap();
    let line = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
            .unwrap_or_default()
    };
    assert!(line("read host file").contains("denied"), "{lines:?}");
    assert!(line("write parent").contains("denied"), "{lines:?}");
    assert!(line("write root").contains("denied"), "{lines:?}");
    assert_eq!(line("write out"), "write out: allowed");
    assert_eq!(line("env vars"), "env vars: 0");
    assert!(!dir.path().join("escaped.txt").exists());
    assert!(!Path::new("/escaped.txt").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("inside.txt")).unwrap(),
        "ok"
    );
}

#[test]
fn wrong_abi_and_lies_are_load_errors() {
    let host = host(Limits::default());
    let load = |name: &str| {
        host.load_file(
            &common::fixture_plugin(name),
            Source::CommandLine(name.into()),
        )
    };
    match load("old-abi") {
        Err(LoadError::Incompatible(why)) => {
            assert!(why.contains("built for mtest:plugin@0.0.9"), "{why}")
        }
        other => panic!("expected incompatible, got {:?}", other.map(|p| p.info)),
    }
    match load("liar") {
        Err(LoadError::Broken(why)) => assert!(why.contains("says kind `reporter`"), "{why}"),
        other => panic!("expected broken, got {:?}", other.map(|p| p.info)),
    }
    match host.load(b"\0asm\x01\0\0\0", Source::Builtin) {
        Err(LoadError::Incompatible(why)) => assert!(why.contains("core wasm module"), "{why}"),
        other => panic!("expected incompatible, got {:?}", other.map(|p| p.info)),
    }
    match host.load(b"not wasm at all", Source::Builtin) {
        Err(LoadError::Broken(why)) => assert!(why.contains("bad magic number"), "{why}"),
        other => panic!("expected broken, got {:?}", other.map(|p| p.info)),
    }
    assert_host_still_serves(&host);
}

#[test]
fn a_warm_start_reuses_the_compiled_artifact() {
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
    builtins::load(&host, "tcp").unwrap().unwrap();
    let artifacts: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert_eq!(artifacts[0].extension().unwrap(), "cwasm");

    // A second host (a new process, in effect) loads from the artifact without writing.
    let modified = std::fs::metadata(&artifacts[0])
        .unwrap()
        .modified()
        .unwrap();
    let again = PluginHost::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
    builtins::load(&again, "tcp").unwrap().unwrap();
    assert_eq!(
        std::fs::metadata(&artifacts[0])
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );

    // A corrupt artifact is recompiled, not trusted.
    std::fs::write(&artifacts[0], b"corrupt").unwrap();
    let third = PluginHost::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
    let plugin = builtins::load(&third, "tcp").unwrap().unwrap();
    assert_eq!(plugin.info.name, "tcp");
    assert!(std::fs::metadata(&artifacts[0]).unwrap().len() > 1000);
}
