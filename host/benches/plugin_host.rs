//! `cargo bench --bench plugin_host`: what plugins cost at start-up and per call.
//!
//! Prints, cold (empty compiled-component cache) beside warm (cache in place):
//! - `mtest plugins list` wall time (the real binary, a fresh process each time);
//! - loading the built-in `greedy-knapsack` and one `select` over 100,000 candidates
//!   (in-process, through the same host API a run uses).
//!
//! Targets (issue 2, 2 cores): warm `plugins list` <= 20 ms, warm 100k `select` <= 60 ms.

use std::process::Command;
use std::time::{Duration, Instant};

use mtest::plugin_host::session::{Candidate, SelectionRequest, SelectionSession};
use mtest::plugin_host::{builtins, Limits, PluginHost};

const RUNS: usize = 15;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:8.2} ms", d.as_secs_f64() * 1000.0)
}

fn plugins_list(cache: &std::path::Path) -> Duration {
    let project = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_mtest"))
        .args(["plugins", "list"])
        .current_dir(project.path())
        .env("MTEST_CACHE_DIR", cache)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run mtest");
    assert!(status.success(), "mtest plugins list failed");
    started.elapsed()
}

fn request(n: u32) -> SelectionRequest {
    SelectionRequest {
        candidates: (0..n)
            .map(|i| Candidate {
                index: i,
                file: i / 50,
                tier: (i % 4) as u8,
                markers: 1 << (i % 13),
                estimate_ms: 2 + (i * 7919) % 400,
                last_outcome: None,
                recent_failures: (i % 97 == 0) as u8,
                failure_score: if i % 97 == 0 { 0.5 } else { 0.0 },
                quarantined: false,
                key: u64::from(i),
                impacted: None,
            })
            .collect(),
        files: (0..n / 50 + 1)
            .map(|f| format!("tests/test_{f}.py"))
            .collect(),
        marker_names: vec![],
        tiers: 0b1111,
        budget_ms: Some(120_000),
        workers: 2,
        startup_ms: 1000,
        chunk_size: 300,
        shard: None,
        changed: false,
        changes: vec![],
    }
}

/// (load + instantiate, one select) in a fresh host using `cache`.
fn select_100k(cache: &std::path::Path, req: &SelectionRequest) -> (Duration, Duration) {
    let started = Instant::now();
    let host = PluginHost::new(Limits::default(), Some(cache.to_path_buf())).expect("host");
    let plugin = builtins::load(&host, "greedy-knapsack")
        .expect("built-in")
        .expect("loads");
    let mut session = SelectionSession::start(&host, &plugin).expect("instantiates");
    let loaded = started.elapsed();
    let started = Instant::now();
    let selection = session.select(req).expect("selects");
    assert!(!selection.selected.is_empty());
    (loaded, started.elapsed())
}

fn main() {
    let req = request(100_000);

    let cold_list = median(
        (0..5)
            .map(|_| {
                let cache = tempfile::tempdir().expect("temp dir");
                plugins_list(cache.path())
            })
            .collect(),
    );
    let warm_cache = tempfile::tempdir().expect("temp dir");
    plugins_list(warm_cache.path());
    let warm_list = median((0..RUNS).map(|_| plugins_list(warm_cache.path())).collect());

    let cold: Vec<(Duration, Duration)> = (0..5)
        .map(|_| {
            let cache = tempfile::tempdir().expect("temp dir");
            select_100k(cache.path(), &req)
        })
        .collect();
    let select_cache = tempfile::tempdir().expect("temp dir");
    select_100k(select_cache.path(), &req);
    let warm: Vec<(Duration, Duration)> = (0..RUNS)
        .map(|_| select_100k(select_cache.path(), &req))
        .collect();

    println!("plugin host benchmark (median of runs)");
    println!("{:<44}{:>12}{:>12}", "", "cold", "warm");
    println!(
        "{:<44}{}{}",
        "mtest plugins list (process)",
        ms(cold_list),
        ms(warm_list)
    );
    println!(
        "{:<44}{}{}",
        "greedy-knapsack load + instantiate",
        ms(median(cold.iter().map(|c| c.0).collect())),
        ms(median(warm.iter().map(|c| c.0).collect()))
    );
    println!(
        "{:<44}{}{}",
        "greedy-knapsack select, 100k candidates",
        ms(median(cold.iter().map(|c| c.1).collect())),
        ms(median(warm.iter().map(|c| c.1).collect()))
    );
    let warm_select = median(warm.iter().map(|c| c.1).collect());
    println!(
        "targets: warm plugins list <= 20 ms: {}; warm 100k select <= 60 ms: {}",
        if warm_list <= Duration::from_millis(20) {
            "met"
        } else {
            "MISSED"
        },
        if warm_select <= Duration::from_millis(60) {
            "met"
        } else {
            "MISSED"
        },
    );
}
