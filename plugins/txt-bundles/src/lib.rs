//! `txt-bundles`: one self-contained `.txt` per failing test.
//!
//! The host names each bundle (`record.bundle`, a safe, unique file name) and grants this
//! plugin the `failures/` directory as `/out`; everything a person needs to diagnose the
//! failure without re-running it goes into that one file, under plain headings.

wit_bindgen::generate!({
    world: "reporter-plugin",
    path: "../../wit",
    with: { "mtest:plugin/types@0.6.0": shared::types },
});

use std::fmt::Write as _;

use exports::mtest::plugin::identity::Guest as Identity;
use exports::mtest::plugin::reporter::{
    Guest as Reporter, RunStart, RunSummary, TestRecord, TestReport, Wanted,
};
use shared::types::{PluginInfo, PluginKind};
use shared::{name as outcome_name, rfc3339};

struct TxtBundles;

impl Identity for TxtBundles {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "txt-bundles".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Reporter,
            description: "one self-contained .txt diagnostic bundle per failure".into(),
        }
    }
}

fn render(r: &TestRecord, report: &TestReport) -> String {
    let mut out = String::new();
    let title = format!("mtest failure bundle: {}", r.test_id);
    let _ = writeln!(
        out,
        "{title}\n{}\n",
        "=".repeat(title.chars().count().min(100))
    );
    let field = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "{k:<13}{v}");
    };
    field(&mut out, "test:", &r.test_id);
    field(&mut out, "outcome:", outcome_name(r.outcome));
    field(&mut out, "message:", &report.message);
    field(&mut out, "duration:", &format!("{:.3}s", r.duration_s));
    let location = match r.line {
        Some(line) => format!("{}:{}", r.file, line),
        None => r.file.clone(),
    };
    field(&mut out, "location:", &location);
    field(&mut out, "tier:", &r.tier.to_string());
    field(
        &mut out,
        "markers:",
        &r.markers.as_deref().unwrap_or_default().join(", "),
    );
    field(&mut out, "chunk:", &r.chunk.to_string());
    field(&mut out, "attempt:", &r.attempt.to_string());
    field(
        &mut out,
        "quarantined:",
        if r.quarantined { "yes" } else { "no" },
    );
    field(&mut out, "started:", &rfc3339(r.started_ms));
    field(&mut out, "finished:", &rfc3339(r.finished_ms));
    for (heading, text) in &report.details {
        let _ = writeln!(out, "\n== {heading} ==");
        let text = text.trim_end();
        let _ = writeln!(out, "{}", if text.is_empty() { "(empty)" } else { text });
    }
    out
}

impl Reporter for TxtBundles {
    fn wants() -> Wanted {
        // Failures (and retries, which have no bundle) come anyway.
        Wanted {
            every: false,
            slowest: 0,
            min_share: None,
        }
    }

    fn on_run_start(_start: RunStart) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn on_tests(tests: Vec<TestRecord>) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        for test in tests {
            lines.extend(on_test(test)?);
        }
        Ok(lines)
    }

    fn on_run_end(_summary: RunSummary) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// One record, as `on-tests` gets them.
fn on_test(record: TestRecord) -> Result<Vec<String>, String> {
    let Some((report, bundle)) = record
        .report
        .as_ref()
        .and_then(|report| Some((report, report.bundle.as_ref()?)))
    else {
        return Ok(Vec::new());
    };
    if record.replayed {
        return Ok(Vec::new()); // written by the invocation that ran it
    }
    let name = bundle.rsplit('/').next().unwrap_or(bundle);
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("refusing bundle name {bundle:?}"));
    }
    let path = format!("/out/{name}");
    std::fs::write(&path, render(&record, report)).map_err(|e| format!("writing {path}: {e}"))?;
    Ok(Vec::new())
}

export!(TxtBundles);
