//! The built-in plugins, called through the host exactly as a run calls them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use mtest::plugin_host::session::{
    Candidate, ExclusionReason, FailureContext, ProbeSession, QuarantineSession, ReporterSession,
    RunStart, RunSummary, SelectionRequest, SelectionSession, Shard, TestHistory, TestRecord,
    TestReport, TierCounts, Verdict,
};
use mtest::plugin_host::{builtins, Limits, LoadedPlugin, PluginHost};

use mtest::plugin_host::bindings::WitOutcome;

fn host() -> PluginHost {
    PluginHost::new(Limits::default(), Some(tempfile::tempdir().unwrap().keep())).unwrap()
}

fn builtin(host: &PluginHost, name: &str) -> LoadedPlugin {
    builtins::load(host, name).unwrap().unwrap()
}

fn candidate(index: u32, tier: u8, estimate_ms: u32) -> Candidate {
    Candidate {
        index,
        file: 0,
        tier,
        markers: 0,
        estimate_ms,
        last_outcome: None,
        recent_failures: 0,
        failure_score: 0.0,
        quarantined: false,
        key: u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        impacted: None,
    }
}

fn request(candidates: Vec<Candidate>, tiers: u8, budget_ms: Option<u64>) -> SelectionRequest {
    SelectionRequest {
        candidates,
        files: vec!["tests/test_a.py".into()],
        marker_names: vec![],
        tiers,
        budget_ms,
        workers: 1,
        startup_ms: 1000,
        chunk_size: 100,
        shard: None,
        changed: false,
        changes: vec![],
    }
}

#[test]
fn knapsack_with_changed_keeps_what_a_change_reaches_and_packs_among_them() {
    let host = host();
    let mut s = SelectionSession::start(&host, &builtin(&host, "greedy-knapsack")).unwrap();
    let mut cands: Vec<Candidate> = (0..6).map(|i| candidate(i, 1, 100 * (i + 1))).collect();
    for i in [1, 3, 4] {
        cands[i as usize].impacted = Some(i % 2);
    }
    let mut req = request(cands, 0b1111, None);
    req.changed = true;
    req.changes = vec!["new test".into(), "src/a.py: f changed".into()];
    let sel = s.select(&req).unwrap();
    assert_eq!(sel.selected, vec![1, 3, 4]);
    let unchanged: Vec<u32> = sel
        .excluded
        .iter()
        .filter(|x| x.reason == ExclusionReason::Unchanged)
        .map(|x| x.index)
        .collect();
    assert_eq!(unchanged, vec![0, 2, 5]);
    // With a budget: among them only (the cheapest that fit, by value per millisecond).
    req.budget_ms = Some(1000 + 650);
    let sel = s.select(&req).unwrap();
    assert!(
        sel.selected.iter().all(|i| [1, 3, 4].contains(i)),
        "{:?}",
        sel.selected
    );
    assert!(!sel.selected.is_empty());
    // `--verify`: the reasons are there, nothing is left out for them.
    req.changed = false;
    req.budget_ms = None;
    assert_eq!(s.select(&req).unwrap().selected.len(), 6);
}

#[test]
fn knapsack_without_budget_runs_chosen_tiers_tier0_then_failing_first() {
    let host = host();
    let mut s = SelectionSession::start(&host, &builtin(&host, "greedy-knapsack")).unwrap();
    let mut failing = candidate(3, 2, 10);
    failing.last_outcome = Some(WitOutcome::Failed);
    failing.failure_score = 1.0;
    let cands = vec![
        candidate(0, 1, 10),
        candidate(1, 3, 10),
        candidate(2, 0, 10),
        failing,
        candidate(4, 2, 10),
    ];
    let sel = s.select(&request(cands, 0b0111, None)).unwrap();
    assert_eq!(sel.selected, vec![2, 3, 0, 4]);
    assert_eq!(sel.excluded.len(), 1);
    assert_eq!(sel.excluded[0].index, 1);
    assert_eq!(sel.excluded[0].reason, ExclusionReason::Tier);
}

#[test]
fn knapsack_with_budget_keeps_smoke_and_failing_and_says_what_it_left_out() {
    let host = host();
    let mut s = SelectionSession::start(&host, &builtin(&host, "greedy-knapsack")).unwrap();
    // Budget 10s, start-up 1s: 9s for tests. Smoke (2s) and the failing test (3s) must go
    // in; of the rest, the cheap tier-1 tests beat the expensive one.
    let mut failing = candidate(1, 3, 3000);
    failing.recent_failures = 2;
    let cands = vec![
        candidate(0, 0, 2000),
        failing,
        candidate(2, 1, 1000),
        candidate(3, 1, 1000),
        candidate(4, 1, 6000),
        candidate(5, 2, 1500),
    ];
    let sel = s.select(&request(cands, 0b1111, Some(10_000))).unwrap();
    assert_eq!(sel.selected, vec![0, 1, 2, 3, 5]);
    assert_eq!(sel.excluded.len(), 1);
    assert_eq!(
        (sel.excluded[0].index, sel.excluded[0].reason),
        (4, ExclusionReason::Budget)
    );
    assert_eq!(
        sel.notes,
        vec!["budget 10.0s: left out 1 test(s), estimated 6.0s of test time".to_string()]
    );
}

#[test]
fn knapsack_selects_100k_candidates() {
    let host = host();
    let mut s = SelectionSession::start(&host, &builtin(&host, "greedy-knapsack")).unwrap();
    let cands = (0..100_000)
        .map(|i| candidate(i, (i % 4) as u8, 5 + i % 50))
        .collect();
    let sel = s.select(&request(cands, 0b1111, Some(60_000))).unwrap();
    assert_eq!(sel.selected.len() + sel.excluded.len(), 100_000);
    assert!(sel.selected.len() > 1000);
}

/// The shards of one run, each asked on its own with the candidates in a different order
/// (as pytest-randomly would collect them): every test is selected by exactly one shard,
/// the others exclude it with reason `shard`, and the estimated times are balanced.
#[test]
fn knapsack_shards_partition_every_test_once_whatever_the_order() {
    let host = host();
    let plugin = builtin(&host, "greedy-knapsack");
    // 40 files of 25 tests; file 0 holds a few long tests, the rest are short.
    let candidates: Vec<Candidate> = (0..1000u32)
        .map(|i| {
            let ms = if i < 5 { 4_000 } else { 10 + (i * 7919) % 90 };
            Candidate {
                file: i / 25,
                ..candidate(i, 1, ms)
            }
        })
        .collect();
    let files: Vec<String> = (0..40).map(|f| format!("tests/test_{f}.py")).collect();
    let total: u64 = candidates.iter().map(|c| u64::from(c.estimate_ms)).sum();
    let n = 4u32;
    let mut owner = vec![None; candidates.len()];
    let mut load = vec![0u64; n as usize];
    for k in 1..=n {
        // Shard k sees the candidates rotated by k*37 (and indices renumbered).
        let mut order: Vec<Candidate> = candidates.clone();
        order.rotate_left((k * 37) as usize);
        let original: Vec<u32> = order.iter().map(|c| c.index).collect();
        for (i, c) in order.iter_mut().enumerate() {
            c.index = i as u32;
        }
        let mut req = request(order, 0b1111, None);
        req.files = files.clone();
        req.shard = Some(Shard { index: k, count: n });
        let sel = SelectionSession::start(&host, &plugin)
            .unwrap()
            .select(&req)
            .unwrap();
        for &i in &sel.selected {
            let test = original[i as usize] as usize;
            assert_eq!(owner[test], None, "test {test} selected by two shards");
            owner[test] = Some(k);
            load[k as usize - 1] += u64::from(candidates[test].estimate_ms);
        }
        assert_eq!(sel.selected.len() + sel.excluded.len(), candidates.len());
        assert!(sel
            .excluded
            .iter()
            .all(|x| x.reason == ExclusionReason::Shard));
        assert!(
            sel.notes[0].starts_with(&format!("shard {k}/{n}: ")),
            "{:?}",
            sel.notes
        );
    }
    assert!(
        owner.iter().all(Option::is_some),
        "a test no shard selected"
    );
    let ideal = total / u64::from(n);
    let slowest = *load.iter().max().unwrap();
    assert!(
        slowest * 100 <= ideal * 105,
        "slowest shard {slowest} ms, ideal {ideal} ms: {load:?}"
    );
}

/// The budget is per shard: it picks among this shard's tests only, and a test it leaves
/// out is excluded for the budget, the other shards' tests for the shard.
#[test]
fn knapsack_applies_the_budget_within_the_shard() {
    let host = host();
    let plugin = builtin(&host, "greedy-knapsack");
    let candidates: Vec<Candidate> = (0..200u32).map(|i| candidate(i, 1, 100)).collect();
    let ask = |budget_ms: Option<u64>| {
        let mut req = request(candidates.clone(), 0b1111, budget_ms);
        req.shard = Some(Shard { index: 2, count: 4 });
        req.startup_ms = 0;
        SelectionSession::start(&host, &plugin)
            .unwrap()
            .select(&req)
            .unwrap()
    };
    let whole = ask(None);
    assert_eq!(whole.selected.len(), 50);
    let tight = ask(Some(2_000)); // 20 of this shard's 50 tests
    assert_eq!(tight.selected.len(), 20, "{:?}", tight.notes);
    assert!(tight.selected.iter().all(|i| whole.selected.contains(i)));
    let budget: Vec<u32> = tight
        .excluded
        .iter()
        .filter(|x| x.reason == ExclusionReason::Budget)
        .map(|x| x.index)
        .collect();
    assert_eq!(budget.len(), 30);
    assert!(budget.iter().all(|i| whole.selected.contains(i)));
    let others = tight
        .excluded
        .iter()
        .filter(|x| x.reason == ExclusionReason::Shard)
        .count();
    assert_eq!(others, 150);
}

fn history(id: &str, recent: &[WitOutcome], quarantined: bool) -> TestHistory {
    TestHistory {
        test_id: id.into(),
        tier: 1,
        recent: recent.to_vec(),
        quarantined,
    }
}

#[test]
fn quarantine_enters_a_flaky_test_at_3_of_5_and_leaves_after_3_passes_or_none() {
    use WitOutcome::{Failed as F, Passed as P, Skipped as S};
    let host = host();
    let mut s = QuarantineSession::start(&host, &builtin(&host, "quarantine-3of5")).unwrap();
    let histories = vec![
        history("two_of_five", &[F, P, F, P, P], false),
        history("three_of_five", &[P, F, P, F, F], false),
        history("three_long_ago", &[F, F, F, P, P, P, P, P], false),
        history("two_passes", &[F, F, F, P, P], true),
        history("three_passes_and_a_skip", &[F, P, S, P, P], true),
        history("never_passed", &[F, F, F, F], true),
        // Broken, not flaky: it never passed, so it never enters.
        history("broken", &[F, S, F, F], false),
        history("broken_since", &[P, F, F, F, F, F], false),
    ];
    let decisions = s.decide(&histories).unwrap();
    let got: Vec<(u32, Verdict)> = decisions.iter().map(|d| (d.index, d.verdict)).collect();
    assert_eq!(
        got,
        vec![
            (1, Verdict::Enter),
            (4, Verdict::Leave),
            (5, Verdict::Leave)
        ]
    );
    assert_eq!(decisions[0].reason, "3 failures in the last 5 runs");
    assert_eq!(decisions[1].reason, "3 consecutive passes");
    assert_eq!(
        decisions[2].reason,
        "no pass in the last 4 runs: broken, not flaky"
    );
}

fn record(id: &str, outcome: WitOutcome, bundle: Option<&str>) -> TestRecord {
    TestRecord {
        test_id: id.into(),
        outcome,
        duration_s: 0.25,
        tier: 1,
        markers: Some(vec!["regression".into()]),
        file: "tests/test_a.py".into(),
        line: Some(12),
        chunk: 1,
        attempt: 1,
        quarantined: false,
        // 2026-01-01T00:00:00Z and a second later.
        started_ms: Some(1_767_225_600_000),
        finished_ms: Some(1_767_225_601_000),
        report: bundle.map(|bundle| TestReport {
            message: "AssertionError: assert 1 == 2".into(),
            bundle: Some(bundle.into()),
            details: vec![
                ("Failure".into(), "def test_x():\n>   assert 1 == 2".into()),
                ("Captured stdout".into(), "".into()),
            ],
        }),
        replayed: false,
        shard: None,
    }
}

#[test]
fn txt_bundles_writes_one_file_per_failure_and_nothing_for_passes() {
    let host = host();
    let out = tempfile::tempdir().unwrap();
    let mut s = ReporterSession::start(&host, &builtin(&host, "txt-bundles"), out.path()).unwrap();
    // It writes only about failures, and asks for nothing more: passing records are not
    // sent to it.
    let wants = s.wants().unwrap();
    assert_eq!(
        (wants.every, wants.slowest, wants.min_share),
        (false, 0, None)
    );
    s.tests(&[
        record("tests/test_a.py::test_ok", WitOutcome::Passed, None),
        record(
            "tests/test_a.py::test_x",
            WitOutcome::Failed,
            Some("failures/tests_test_a.py__test_x-0001.txt"),
        ),
    ])
    .unwrap();
    let files: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, vec!["tests_test_a.py__test_x-0001.txt"]);
    let text =
        std::fs::read_to_string(out.path().join("tests_test_a.py__test_x-0001.txt")).unwrap();
    assert!(
        text.starts_with("mtest failure bundle: tests/test_a.py::test_x\n"),
        "{text}"
    );
    assert!(text.contains("outcome:     failed\n"), "{text}");
    assert!(text.contains("location:    tests/test_a.py:12\n"), "{text}");
    assert!(
        text.contains("started:     2026-01-01T00:00:00.000Z\n"),
        "{text}"
    );
    assert!(
        text.contains("finished:    2026-01-01T00:00:01.000Z\n"),
        "{text}"
    );
    assert!(
        text.contains("== Failure ==\ndef test_x():\n>   assert 1 == 2\n"),
        "{text}"
    );
    assert!(text.contains("== Captured stdout ==\n(empty)\n"), "{text}");
}

#[test]
fn summary_md_counts_outcomes_and_links_failures() {
    let host = host();
    let out = tempfile::tempdir().unwrap();
    let mut s = ReporterSession::start(&host, &builtin(&host, "summary-md"), out.path()).unwrap();
    // It is sent the failures and the slowest 10, not every record: its counts per tier
    // come with the summary.
    let wants = s.wants().unwrap();
    assert_eq!(
        (wants.every, wants.slowest, wants.min_share),
        (false, 10, None)
    );
    let start = RunStart {
        run_id: "run-1".into(),
        started_at: "t0".into(),
        selected: 3,
        command: "mtest".into(),
    };
    s.run_start(&start).unwrap();
    // Two chunks, as two turns of the supervision loop would send them.
    s.tests(&[
        record("t::a", WitOutcome::Passed, None),
        record("t::b", WitOutcome::Passed, None),
    ])
    .unwrap();
    s.tests(&[record(
        "t::c|d",
        WitOutcome::Crashed,
        Some("failures/t__c-1.txt"),
    )])
    .unwrap();
    let summary = RunSummary {
        run_id: "run-1".into(),
        finished_at: "t1".into(),
        duration_s: 2.5,
        counts: vec![(WitOutcome::Passed, 2), (WitOutcome::Crashed, 1)],
        tiers: vec![
            TierCounts {
                tier: 0,
                counts: vec![(WitOutcome::Passed, 1)],
            },
            TierCounts {
                tier: 1,
                counts: vec![(WitOutcome::Passed, 1), (WitOutcome::Crashed, 1)],
            },
        ],
        chunks: Vec::new(),
        exit_code: 1,
        notes: vec!["budget 30.0s: left out 4 test(s)".into()],
    };
    s.run_end(&summary).unwrap();
    let md = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(md.starts_with("# mtest run run-1\n"), "{md}");
    assert!(md.contains("| passed | 2 |\n| crashed | 1 |\n"), "{md}");
    assert!(
        md.contains(
            "| 0 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |\n| 1 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 1 |\n"
        ),
        "{md}"
    );
    assert!(md.contains("| `t::c\\|d` | crashed | AssertionError: assert 1 == 2 | [bundle](failures/t__c-1.txt) |"), "{md}");
    assert!(md.contains("- budget 30.0s: left out 4 test(s)\n"), "{md}");
}

fn context() -> FailureContext {
    FailureContext {
        test_id: "t::x".into(),
        outcome: "failed".into(),
        message: "boom".into(),
    }
}

#[test]
fn tcp_probe_reports_reachable_with_reply_and_is_confined_to_its_address() {
    let host = host();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        (&stream)
            .write_all(format!("+PONG to {}", line.trim()).as_bytes())
            .unwrap();
        (&stream).write_all(b"\n").unwrap();
    });
    let settings = vec![
        ("address".to_string(), addr.to_string()),
        ("send".to_string(), "PING".to_string()),
    ];
    let tcp = builtin(&host, "tcp");
    let mut s = ProbeSession::start(&host, &tcp, vec![addr], Duration::from_secs(5)).unwrap();
    let report = s.check(&settings, &context()).unwrap();
    assert_eq!(
        report,
        format!("{addr} ({addr}): reachable\nreply: +PONG to PING")
    );
    server.join().unwrap();

    // Another listening address, not granted: the probe cannot reach it.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap();
    let mut s = ProbeSession::start(&host, &tcp, vec![addr], Duration::from_secs(5)).unwrap();
    let settings = vec![
        ("address".to_string(), other_addr.to_string()),
        ("timeout-ms".to_string(), "500".to_string()),
    ];
    let report = s.check(&settings, &context()).unwrap();
    assert!(
        report.starts_with(&format!("{other_addr} ({other_addr}): unreachable")),
        "{report}"
    );
    other.set_nonblocking(true).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        other.accept().is_err(),
        "the probe connected to an address it was not granted"
    );
}
