//! `--report`: the last run's summary.md; `--report --json`: its records and counts as one
//! JSON document.

use std::path::Path;

use crate::report::stats::RunStats;
use crate::store::state::RunState;
use crate::store::{run_log, Gates, Loaded};
use crate::Exit;

pub fn report(root: &Path, json: bool) -> Exit {
    let gates = Gates::new(root);
    if json {
        return match report_json(&gates) {
            Ok(text) => {
                println!("{text}");
                Exit::Ok
            }
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Usage
            }
        };
    }
    let path = gates.last_run().join("summary.md");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            print!("{text}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!(
                "error: no report to show: {}: {e}; run `mtest` first",
                path.display()
            );
            Exit::Usage
        }
    }
}

/// `{"run_id", "status", "counts", "tests", "failing", "flaky", "records"}`: counts as the
/// run's summary has them (each test once, by its last attempt), records as run.jsonl has
/// them (every attempt).
fn report_json(gates: &Gates) -> Result<String, String> {
    let path = gates.run_log();
    if !path.exists() {
        return Err(format!(
            "no report to show: {} does not exist; run `mtest` first",
            path.display()
        ));
    }
    let recorded = run_log::read(&path)?;
    let state = match crate::store::read_json::<RunState>(&gates.state())? {
        Loaded::Ok(state) => Some(state),
        _ => None,
    };
    let mut stats = RunStats::default();
    for r in &recorded.records {
        stats.record(r);
    }
    let counts: serde_json::Map<String, serde_json::Value> = stats
        .counts()
        .into_iter()
        .map(|(o, n)| (o.as_str().to_string(), n.into()))
        .collect();
    let doc = serde_json::json!({
        "run_id": state.as_ref().map(|s| s.run_id.clone()),
        "status": state.as_ref().map(|s| s.status),
        "selected": state.as_ref().map(|s| s.tests.len()),
        "counts": counts,
        "tests": stats.tests(),
        "failing": stats.failing(),
        "flaky": stats.flaky(),
        "records": recorded.records,
    });
    serde_json::to_string_pretty(&doc).map_err(|e| format!("cannot encode the report: {e}"))
}
