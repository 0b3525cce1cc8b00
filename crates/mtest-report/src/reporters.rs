//! Running the reporter plugins of a run: each gets its own output directory under
//! `.gates/last-run/`, sees run start, the records it wants (see [`crate::record_filter`]), and run
//! end. A reporter that fails is
//! reported once and dropped for the rest of the run; the run itself goes on.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::ReporterSpec;
use crate::plugin_host::discovery;
use crate::plugin_host::session::{
    ReporterSession, RunStart, RunSummary, TestRecord as WitRecord, TestReport, TierCounts,
};
use crate::plugin_host::{builtins, PluginHost, Source};
use crate::record::TestRecord;
use crate::record_filter::{Filter, RunSoFar};

/// Records per `on-tests` call at most (a `--resume` replays a whole earlier invocation;
/// a plugin's memory is bounded).
const BATCH: usize = 1000;

/// How long records wait for more before they go to the reporters: a call per loop turn
/// (a dozen records at 2,400 turns a minute) cost more in calls than in records.
const GATHER: Duration = Duration::from_millis(250);

struct Active {
    name: String,
    session: Option<ReporterSession>,
    /// Its output directory.
    dir: PathBuf,
    /// Which records it is sent.
    filter: Filter,
    /// Records gathered for its next `on-tests` call.
    pending: Vec<WitRecord>,
}

pub struct Reporters {
    active: Vec<Active>,
    /// Console lines and warnings for the caller to print.
    pub(crate) lines: Vec<String>,
    so_far: RunSoFar,
    /// When the last `on-tests` calls were made.
    sent: Instant,
}

/// (plugin, output dir relative to last-run) for the configured or default reporters.
fn specs(configured: Option<&[ReporterSpec]>) -> Vec<(String, Option<String>)> {
    match configured {
        Some(list) => list
            .iter()
            .map(|s| match s {
                ReporterSpec::Name(n) => (n.clone(), None),
                ReporterSpec::Table(t) => (t.plugin.clone(), t.output.clone()),
            })
            .collect(),
        None => {
            let on_github = std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true");
            builtins::DEFAULT_REPORTERS
                .iter()
                .chain(on_github.then_some(&builtins::GITHUB_REPORTER))
                .map(|n| (n.to_string(), None))
                .collect()
        }
    }
}

/// Built-ins write where the original tool did; others into a directory of their name.
fn default_output(name: &str) -> &str {
    match name {
        "txt-bundles" => "failures",
        "summary-md" | "html-report" => ".",
        other => other,
    }
}

fn inside(last_run: &Path, rel: &str) -> Result<PathBuf, crate::BadValue> {
    let rel_path = Path::new(rel);
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(crate::BadValue(format!(
            "output {rel:?} must be a relative path inside .gates/last-run/"
        )));
    }
    Ok(last_run.join(rel_path))
}

impl Reporters {
    /// Loads and starts every reporter. Problems become warnings in `lines`, never errors.
    pub fn start(
        host: &PluginHost,
        root: &Path,
        configured: Option<&[ReporterSpec]>,
        last_run: &Path,
        start: &RunStart,
    ) -> Reporters {
        let mut reporters = Reporters {
            active: Vec::new(),
            lines: Vec::new(),
            so_far: RunSoFar::default(),
            sent: Instant::now(),
        };
        for (spec, output) in specs(configured) {
            let plugin = match discovery::resolve(host, root, &spec, Source::Config) {
                Ok(p) => p,
                Err(e) => {
                    reporters
                        .lines
                        .push(format!("warning: reporter {spec}: {e}"));
                    continue;
                }
            };
            let rel = output.unwrap_or_else(|| default_output(&plugin.info.name).to_string());
            let dir = match inside(last_run, &rel) {
                Ok(dir) => dir,
                Err(e) => {
                    reporters
                        .lines
                        .push(format!("warning: reporter {}: {e}", plugin.label()));
                    continue;
                }
            };
            if let Err(e) = std::fs::create_dir_all(&dir) {
                reporters.lines.push(format!(
                    "warning: reporter {}: cannot create {}: {e}",
                    plugin.label(),
                    dir.display()
                ));
                continue;
            }
            let started = ReporterSession::start(host, &plugin, &dir)
                .and_then(|mut session| Ok((session.wants()?, session)));
            match started {
                Ok((wants, session)) => reporters.active.push(Active {
                    name: plugin.label(),
                    session: Some(session),
                    dir,
                    filter: Filter::new(&wants),
                    pending: Vec::new(),
                }),
                Err(e) => reporters
                    .lines
                    .push(format!("warning: {e}; reporter skipped")),
            }
        }
        reporters.each(|s, _| s.run_start(start));
        reporters
    }

    /// Calls each live reporter (with the records it has pending); one that fails is
    /// dropped for the rest of the run.
    fn each(
        &mut self,
        mut call: impl FnMut(
            &mut ReporterSession,
            Vec<WitRecord>,
        ) -> Result<Vec<String>, crate::plugin_host::PluginError>,
    ) {
        for active in &mut self.active {
            let Some(session) = active.session.as_mut() else {
                continue;
            };
            match call(session, std::mem::take(&mut active.pending)) {
                Ok(lines) => self.lines.extend(lines),
                Err(e) => {
                    self.lines.push(format!(
                        "warning: {e}; reporter {} disabled for this run",
                        active.name
                    ));
                    active.session = None;
                }
            }
        }
    }

    /// Records for the reporters, in order: each reporter's gathered, and sent in one call
    /// when [`BATCH`] wait for one or [`GATHER`] has passed (see
    /// [`Reporters::flush_if_due`]), and at once when one needs a bundle: a kill of mtest
    /// must not take with it a bundle that its record, already in `run.jsonl`, names (a
    /// resumed run does not write it).
    pub(crate) fn tests(&mut self, records: &[TestRecord], replayed: bool) {
        if self.active.iter().all(|a| a.session.is_none()) {
            return;
        }
        let mut bundle = false;
        let mut full = false;
        for r in records {
            let must = self.so_far.note(r);
            let mut wit: Option<WitRecord> = None;
            for active in self.active.iter_mut().filter(|a| a.session.is_some()) {
                if active.filter.wants(r, must, &self.so_far) {
                    let w = wit.get_or_insert_with(|| to_wit_record(r, replayed));
                    active.pending.push(w.clone());
                    full |= active.pending.len() >= BATCH;
                }
            }
            bundle |= wit.is_some() && r.bundle.is_some() && !replayed;
            if full {
                self.flush();
                full = false;
            }
        }
        if bundle {
            self.flush();
        }
        self.flush_if_due();
    }

    /// Sends what waits if it has waited [`GATHER`] (called every loop turn, too).
    pub fn flush_if_due(&mut self) {
        if self.sent.elapsed() >= GATHER {
            self.flush();
        }
    }

    /// Sends each reporter the records that wait for it.
    pub(crate) fn flush(&mut self) {
        self.sent = Instant::now();
        self.each(|s, records| {
            if records.is_empty() {
                return Ok(Vec::new());
            }
            s.tests(&records)
        });
    }

    /// Ends every reporter, with `summary` and the chunks' spans. A reporter that wrote
    /// `step-summary.md` on GitHub Actions has it appended to `$GITHUB_STEP_SUMMARY`
    /// (plugins see only their own directory).
    pub(crate) fn end(&mut self, mut summary: RunSummary) {
        self.flush();
        summary.chunks = self.so_far.chunk_spans();
        self.each(|s, _| s.run_end(&summary));
        let Some(target) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|t| !t.is_empty()) else {
            return;
        };
        for active in self.active.iter().filter(|a| a.session.is_some()) {
            let Ok(md) = std::fs::read(active.dir.join("step-summary.md")) else {
                continue;
            };
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&target)
                .and_then(|mut f| std::io::Write::write_all(&mut f, &md));
            if let Err(e) = appended {
                self.lines.push(format!(
                    "warning: reporter {}: cannot append to $GITHUB_STEP_SUMMARY ({}): {e}",
                    active.name,
                    Path::new(&target).display()
                ));
            }
        }
    }

    pub(crate) fn take_lines(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }
}

/// What reporters get at run end: the counts of `stats`, finished now ([`Reporters::end`]
/// adds the chunks).
pub(crate) fn run_summary(
    run_id: String,
    duration_s: f64,
    stats: &crate::stats::RunStats,
    exit_code: u8,
    notes: Vec<String>,
) -> RunSummary {
    RunSummary {
        run_id,
        finished_at: crate::clock::now(),
        duration_s,
        counts: stats
            .counts()
            .into_iter()
            .map(|(o, c)| (o.into(), c as u32))
            .collect(),
        tiers: stats
            .tier_counts()
            .into_iter()
            .map(|(tier, counts)| TierCounts {
                tier,
                counts: counts
                    .into_iter()
                    .map(|(o, c)| (o.into(), c as u32))
                    .collect(),
            })
            .collect(),
        chunks: Vec::new(),
        exit_code,
        notes,
    }
}

fn to_wit_record(r: &TestRecord, replayed: bool) -> WitRecord {
    let mut details = if replayed || !r.outcome.is_failure() {
        Vec::new()
    } else {
        r.details.sections(r.message.as_deref())
    };
    if !r.leaked.is_empty() {
        details.push((
            "Processes left running (killed by mtest)".into(),
            r.leaked.join("\n"),
        ));
    }
    // A plain pass lowers no text but its id and file into the plugin: every string and
    // list handed over, empty or not, is a call into the plugin's allocator.
    let report =
        (r.message.is_some() || r.bundle.is_some() || !details.is_empty()).then(|| TestReport {
            message: r.message.clone().unwrap_or_default(),
            bundle: r.bundle.clone(),
            details,
        });
    WitRecord {
        test_id: r.test_id.clone(),
        outcome: r.outcome.into(),
        duration_s: r.duration_s,
        tier: r.tier,
        markers: (!r.markers.is_empty()).then(|| r.markers.clone()),
        file: r.file.clone(),
        line: r.line,
        chunk: r.chunk,
        attempt: r.attempt,
        quarantined: r.quarantined,
        started_ms: r.started_at.ms(),
        finished_ms: r.finished_at.ms(),
        report,
        replayed,
        shard: r.shard.map(|s| s.to_string()),
    }
}
