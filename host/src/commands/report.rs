//! `--report`: the last run's summary.md; `--report --json`: its records and counts as one
//! JSON document; `--report --trace FILE`: its timeline as Chrome trace-event JSON.

use std::path::Path;

use crate::report::stats::RunStats;
use crate::store::{run_log, Gates, Loaded};
use crate::Exit;

use super::Stop;

pub fn report(root: &Path, json: bool) -> Exit {
    let gates = Gates::new(root);
    if json {
        return match report_json(&gates) {
            Ok(text) => {
                println!("{text}");
                Exit::Ok
            }
            Err(stop) => stop.report(),
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
fn report_json(gates: &Gates) -> Result<String, Stop> {
    let path = gates.run_log();
    if !path.exists() {
        return Err(Stop::usage(format!(
            "no report to show: {} does not exist; run `mtest` first",
            path.display()
        )));
    }
    let recorded = run_log::read(&path)?;
    let state = match crate::store::state::read(&gates.state())? {
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
    serde_json::to_string_pretty(&doc)
        .map_err(|e| Stop::internal(format!("cannot encode the report: {e}")))
}

/// Writes the last run's timeline to `file` as Chrome trace-event JSON: a track per
/// worker (chunks placed as `report.html` places them: each in the first lane free when
/// it starts), a slice per test attempt with its outcome, chunk and message.
pub fn trace(root: &Path, file: &Path) -> Exit {
    let result = trace_json(&Gates::new(root)).and_then(|doc| {
        std::fs::write(file, doc)
            .map_err(|e| Stop::usage(format!("cannot write {}: {e}", file.display())))
    });
    match result {
        Ok(()) => {
            println!("{}", file.display());
            Exit::Ok
        }
        Err(stop) => stop.report(),
    }
}

fn trace_json(gates: &Gates) -> Result<String, Stop> {
    let path = gates.run_log();
    if !path.exists() {
        return Err(Stop::usage(format!(
            "no report to show: {} does not exist; run `mtest` first",
            path.display()
        )));
    }
    let records = run_log::read(&path)?.records;
    let micros = |t: crate::clock::Stamp| {
        let ms = i64::try_from(t.ms()?).ok()?;
        Some(ms.saturating_mul(1000))
    };
    // (record, start µs, end µs) of the records that have times (not collection errors).
    let timed: Vec<_> = records
        .iter()
        .filter_map(|r| Some((r, micros(r.started_at)?, micros(r.finished_at)?)))
        .collect();
    let t0 = timed.iter().map(|(_, s, _)| *s).min().unwrap_or(0);
    let mut spans: std::collections::BTreeMap<u32, (i64, i64)> = Default::default();
    for (r, s, e) in &timed {
        let span = spans.entry(r.chunk).or_insert((*s, *e));
        span.0 = span.0.min(*s);
        span.1 = span.1.max(*e);
    }
    let mut order: Vec<_> = spans.into_iter().collect();
    order.sort_by_key(|(chunk, (start, _))| (*start, *chunk));
    let mut lane_ends: Vec<i64> = Vec::new();
    let mut lane_of = std::collections::HashMap::new();
    for (chunk, (start, end)) in order {
        let lane = lane_ends
            .iter()
            .position(|e| *e <= start)
            .unwrap_or_else(|| {
                lane_ends.push(end);
                lane_ends.len() - 1
            });
        lane_ends[lane] = end;
        lane_of.insert(chunk, lane + 1);
    }
    let run_id = records.first().map(|r| r.run_id.as_str()).unwrap_or("");
    let mut events = vec![serde_json::json!({
        "name": "process_name", "ph": "M", "pid": 1, "tid": 0,
        "args": {"name": format!("mtest run {run_id}")},
    })];
    for lane in 1..=lane_ends.len() {
        events.push(serde_json::json!({
            "name": "thread_name", "ph": "M", "pid": 1, "tid": lane,
            "args": {"name": format!("worker {lane}")},
        }));
    }
    for (r, s, e) in timed {
        events.push(serde_json::json!({
            "name": r.test_id,
            "cat": r.outcome.as_str(),
            "ph": "X",
            "pid": 1,
            "tid": lane_of.get(&r.chunk).copied().unwrap_or(0),
            "ts": s - t0,
            "dur": (e - s).max(0),
            "args": {
                "outcome": r.outcome.as_str(),
                "chunk": r.chunk,
                "attempt": r.attempt,
                "message": r.message,
            },
        }));
    }
    serde_json::to_string(&serde_json::json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
    }))
    .map_err(|e| Stop::internal(format!("cannot encode the trace: {e}")))
}
