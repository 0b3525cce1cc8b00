//! `html-report`: `report.html`, one self-contained page (no network, no script): the run's
//! timeline, one lane per worker with each test a bar (failures, hangs and crashes
//! marked, a tooltip on each), then the slowest tests, the failures with links to their
//! bundles, the flaky and the quarantined tests.
//!
//! It asks only for what the page shows, not every test: the bars wide enough to see (a bar
//! narrower than half a pixel when it arrives stays so: the run only grows longer), the
//! slowest few, and what every reporter gets (every failing attempt, the retries); each
//! chunk's span (the lanes, drawn as busy) comes with the run summary. A 100k-test run hands
//! it a few thousand records.

wit_bindgen::generate!({
    world: "reporter-plugin",
    path: "../../wit",
    with: { "mtest:plugin/types@0.6.0": shared::types },
});

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use exports::mtest::plugin::identity::Guest as Identity;
use exports::mtest::plugin::reporter::{
    Guest as Reporter, RunStart, RunSummary, TestRecord, Wanted,
};
use shared::types::{Outcome, PluginInfo, PluginKind};
use shared::{is_failure, name, Slowest};

const WIDTH: f64 = 1200.0;
const LANE: f64 = 22.0;
const SLOWEST: usize = 20;
/// Half a pixel of the timeline: a bar thinner than that is not drawn.
const MIN_SHARE: f64 = 0.5 / WIDTH;

/// A chunk: (its shard, `""` outside a sharded run; its number in that shard).
type Chunk = (String, u32);

fn chunk_label((shard, n): &Chunk) -> String {
    if shard.is_empty() {
        format!("chunk {n}")
    } else {
        format!("shard {shard} chunk {n}")
    }
}

struct Bar {
    test_id: String,
    start_ms: i64,
    end_ms: i64,
    chunk: Chunk,
    outcome: Outcome,
    quarantined: bool,
    message: String,
    bundle: Option<String>,
}

#[derive(Default)]
struct State {
    start: Option<RunStart>,
    /// Bars that may be wide enough to draw, and every failing attempt.
    bars: Vec<Bar>,
    /// The slowest attempts: (test id, outcome).
    slowest: Slowest<(String, Outcome), SLOWEST>,
    /// The last outcome of each test that failed at least once (flaky: it passed later).
    last: HashMap<String, Outcome>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn color(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "#3fa34d",
        Outcome::Failed => "#d62828",
        Outcome::Error => "#f77f00",
        Outcome::Hung => "#7b2cbf",
        Outcome::Crashed => "#111111",
        Outcome::Skipped | Outcome::Xfailed => "#a0a0a0",
        Outcome::Xpassed => "#e9c46a",
    }
}

/// A lane per worker: chunks in start order, each in the first lane free by then.
fn lanes(spans: &BTreeMap<Chunk, (i64, i64)>) -> (BTreeMap<&Chunk, usize>, usize) {
    let mut order: Vec<(&Chunk, (i64, i64))> = spans.iter().map(|(c, s)| (c, *s)).collect();
    order.sort_by_key(|(chunk, (start, _))| (*start, *chunk));
    let mut lane_ends: Vec<i64> = Vec::new();
    let mut lane_of = BTreeMap::new();
    for (chunk, (start, end)) in order {
        let lane = match lane_ends.iter().position(|e| *e <= start) {
            Some(l) => l,
            None => {
                lane_ends.push(end);
                lane_ends.len() - 1
            }
        };
        lane_ends[lane] = end;
        lane_of.insert(chunk, lane);
    }
    (lane_of, lane_ends.len())
}

/// Each chunk's (first start, last end), from the run summary.
fn chunk_spans(summary: &RunSummary) -> BTreeMap<Chunk, (i64, i64)> {
    let ms = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    summary
        .chunks
        .iter()
        .map(|c| {
            let key: Chunk = (c.shard.clone().unwrap_or_default(), c.chunk);
            (
                key,
                (ms(c.started_ms), ms(c.finished_ms).max(ms(c.started_ms))),
            )
        })
        .collect()
}

fn timeline(out: &mut String, state: &State, chunks: &BTreeMap<Chunk, (i64, i64)>) {
    let t0 = chunks.values().map(|(start, _)| *start).min();
    let t1 = chunks.values().map(|(_, end)| *end).max();
    let (Some(t0), Some(t1)) = (t0, t1) else {
        let _ = writeln!(out, "<p>No test ran.</p>");
        return;
    };
    let span = (t1 - t0).max(1) as f64;
    let x = |t: i64| (t - t0) as f64 / span * WIDTH;
    let (lane_of, n) = lanes(chunks);
    let height = LANE * n as f64 + 30.0;
    let _ = writeln!(
        out,
        "<svg class=\"timeline\" viewBox=\"0 0 {} {height}\" width=\"100%\" role=\"img\" \
         aria-label=\"timeline\"><g font-size=\"10\" fill=\"#555\">",
        WIDTH + 80.0
    );
    for lane in 0..n {
        let y = LANE * lane as f64;
        let _ = writeln!(
            out,
            "<text x=\"0\" y=\"{:.1}\">w{}</text><rect class=\"lane\" x=\"40\" y=\"{y:.1}\" \
             width=\"{WIDTH}\" height=\"{:.1}\" fill=\"#f2f2f2\"/>",
            y + 14.0,
            lane + 1,
            LANE - 4.0
        );
    }
    for tick in 0..=10 {
        let t = span / 10.0 * f64::from(tick);
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\">{:.1}s</text>",
            40.0 + t / span * WIDTH,
            LANE * n as f64 + 14.0,
            t / 1000.0
        );
    }
    let _ = writeln!(out, "</g><g>");
    // Each chunk busy on its lane (the bars too thin to draw are in there).
    for (chunk, (start, end)) in chunks {
        let lane = lane_of.get(&chunk).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "<rect class=\"chunk\" x=\"{:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" \
             fill=\"#cfe8d2\"/>",
            40.0 + x(*start),
            LANE * lane as f64 + 1.0,
            (x(*end) - x(*start)).max(0.5),
            LANE - 6.0
        );
    }
    for b in &state.bars {
        let lane = lane_of.get(&b.chunk).copied().unwrap_or(0);
        let (x0, x1) = (x(b.start_ms), x(b.end_ms));
        let w = (x1 - x0).max(if is_failure(b.outcome) { 2.0 } else { 0.0 });
        if w < 0.5 {
            continue;
        }
        let _ = writeln!(
            out,
            "<rect class=\"test {}\" x=\"{:.2}\" y=\"{:.1}\" width=\"{w:.2}\" height=\"{:.1}\" \
             fill=\"{}\"><title>{} — {} in {:.3}s (worker lane {}, {})</title></rect>",
            name(b.outcome),
            40.0 + x0,
            LANE * lane as f64 + 1.0,
            LANE - 6.0,
            color(b.outcome),
            esc(&b.test_id),
            name(b.outcome),
            (b.end_ms - b.start_ms) as f64 / 1000.0,
            lane + 1,
            chunk_label(&b.chunk)
        );
    }
    let _ = writeln!(out, "</g></svg>");
}

fn table(out: &mut String, heading: &str, head: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        return;
    }
    let _ = write!(out, "<h2>{heading}</h2>\n<table><tr>");
    for h in head {
        let _ = write!(out, "<th>{h}</th>");
    }
    let _ = writeln!(out, "</tr>");
    for row in rows {
        let _ = write!(out, "<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</table>");
}

fn render(state: &State, summary: &RunSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>mtest run {id}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse;margin-bottom:1em}}\
         td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}\
         code{{font-size:90%}} .legend span{{display:inline-block;padding:0 6px;margin-right:4px;color:#fff}}\
         </style></head><body>\n<h1>mtest run {id}</h1>",
        id = esc(&summary.run_id)
    );
    let counts: Vec<String> = summary
        .counts
        .iter()
        .map(|(o, n)| format!("{n} {}", name(*o)))
        .collect();
    let _ = writeln!(
        out,
        "<p class=\"counts\">{} in {:.1}s · exit code {}</p>",
        counts.join(" · "),
        summary.duration_s,
        summary.exit_code
    );
    if let Some(start) = &state.start {
        let _ = writeln!(
            out,
            "<p>started {} · <code>{}</code></p>",
            esc(&start.started_at),
            esc(&start.command)
        );
    }
    let _ = write!(out, "<h2>Timeline</h2>\n<p class=\"legend\">");
    for o in [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::Error,
        Outcome::Hung,
        Outcome::Crashed,
        Outcome::Skipped,
        Outcome::Xpassed,
    ] {
        let _ = write!(
            out,
            "<span style=\"background:{}\">{}</span>",
            color(o),
            name(o)
        );
    }
    let _ = writeln!(out, "</p>");
    timeline(&mut out, state, &chunk_spans(summary));

    table(
        &mut out,
        "Slowest tests",
        &["test", "duration", "outcome"],
        state
            .slowest
            .iter()
            .map(|(secs, (id, outcome))| {
                vec![
                    format!("<code>{}</code>", esc(id)),
                    format!("{secs:.3}s"),
                    name(*outcome).into(),
                ]
            })
            .collect(),
    );

    // The failing attempts (every one is kept): each test's last and first of them.
    let mut last_failure: BTreeMap<&str, &Bar> = BTreeMap::new();
    let mut first_failure: BTreeMap<&str, &Bar> = BTreeMap::new();
    for b in state.bars.iter().filter(|b| is_failure(b.outcome)) {
        last_failure.insert(&b.test_id, b);
        first_failure.entry(&b.test_id).or_insert(b);
    }
    let failure_row = |b: &Bar| {
        let bundle = match &b.bundle {
            Some(p) => format!("<a href=\"{}\">bundle</a>", esc(p)),
            None => String::new(),
        };
        vec![
            format!("<code>{}</code>", esc(&b.test_id)),
            name(b.outcome).into(),
            esc(&b.message),
            bundle,
        ]
    };
    let still_failing = |id: &str| state.last.get(id).is_some_and(|o| is_failure(*o));
    let (quarantined, failing): (Vec<&Bar>, Vec<&Bar>) = last_failure
        .iter()
        .filter(|(id, _)| still_failing(id))
        .map(|(_, b)| *b)
        .partition(|b| b.quarantined);
    table(
        &mut out,
        "Failures",
        &["test", "outcome", "message", ""],
        failing.iter().map(|b| failure_row(b)).collect(),
    );
    let flaky: Vec<&Bar> = first_failure
        .iter()
        .filter(|(id, _)| !still_failing(id))
        .map(|(_, b)| *b)
        .collect();
    table(
        &mut out,
        "Flaky (failed, then passed on a retry)",
        &["test", "outcome", "message", ""],
        flaky.iter().map(|b| failure_row(b)).collect(),
    );
    table(
        &mut out,
        "Quarantined failures (do not fail the run)",
        &["test", "outcome", "message", ""],
        quarantined.iter().map(|b| failure_row(b)).collect(),
    );
    let _ = writeln!(out, "</body></html>");
    out
}

struct HtmlReport;

impl Identity for HtmlReport {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "html-report".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Reporter,
            description: "report.html: the run's timeline per worker, slowest tests, failures"
                .into(),
        }
    }
}

impl Reporter for HtmlReport {
    fn wants() -> Wanted {
        // Failures and retries come anyway; the chunks' spans come with the summary.
        Wanted {
            every: false,
            slowest: SLOWEST as u32,
            min_share: Some(MIN_SHARE),
        }
    }

    fn on_run_start(start: RunStart) -> Result<Vec<String>, String> {
        STATE.with(|s| {
            *s.borrow_mut() = State {
                start: Some(start),
                ..State::default()
            }
        });
        Ok(Vec::new())
    }

    fn on_tests(tests: Vec<TestRecord>) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        for test in tests {
            lines.extend(on_test(test)?);
        }
        Ok(lines)
    }

    fn on_run_end(summary: RunSummary) -> Result<Vec<String>, String> {
        let html = STATE.with(|s| render(&s.borrow(), &summary));
        std::fs::write("/out/report.html", html)
            .map_err(|e| format!("writing report.html: {e}"))?;
        Ok(Vec::new())
    }
}

/// One record, as `on-tests` gets them.
fn on_test(r: TestRecord) -> Result<Vec<String>, String> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.slowest
            .offer(r.duration_s, || (r.test_id.clone(), r.outcome));
        if is_failure(r.outcome) || s.last.contains_key(&r.test_id) {
            s.last.insert(r.test_id.clone(), r.outcome);
        }
        let ms = |t: Option<u64>| i64::try_from(t?).ok();
        let (Some(start_ms), Some(end_ms)) = (ms(r.started_ms), ms(r.finished_ms)) else {
            return; // a record with no times (a collection error): no bar
        };
        let (message, bundle) = r.report.map(|x| (x.message, x.bundle)).unwrap_or_default();
        s.bars.push(Bar {
            test_id: r.test_id,
            start_ms,
            end_ms: end_ms.max(start_ms),
            chunk: (r.shard.unwrap_or_default(), r.chunk),
            outcome: r.outcome,
            quarantined: r.quarantined,
            message,
            bundle,
        })
    });
    Ok(Vec::new())
}

export!(HtmlReport);
