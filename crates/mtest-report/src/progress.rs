//! What a person watching the run sees. On a terminal: a progress bar (done/total,
//! failures, elapsed, the time left estimated from the durations history) with the running
//! tests under it, longest first, and failures printed above it as they happen (drawn by
//! indicatif). Off a terminal (CI): failures as they happen and a status line when another
//! tenth of the run is done, at most one every 10 s and at least one a minute. SIGUSR1
//! (and SIGINFO, Ctrl-T, where it exists) prints the full status: every running test, its
//! worker and how long it has run.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::stats::RunStats;
use crate::clock::human;
use crate::record::{Outcome, TestRecord};
use crate::run_event::Running;

/// Off a terminal: a status line at most this often…
const LINE_EVERY: Duration = Duration::from_secs(10);
/// …when this much more of the run is done…
const LINE_FRACTION: f64 = 0.1;
/// …and at least this often.
const LINE_AT_LEAST: Duration = Duration::from_secs(60);

/// What the time-left estimate knows before the run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plan {
    /// The selected tests' estimated durations (history, else file or suite medians), ms.
    pub estimate_ms: u64,
    /// How many of them have a duration history of their own.
    pub with_history: usize,
    pub jobs: u32,
}

pub struct Progress {
    /// Tests to record: the bar's length.
    pub(crate) total: usize,
    /// Tests recorded so far, and how many of them fail (by their last attempt): the
    /// recorder's counts, as it last said them.
    done: usize,
    failing: usize,
    started: Instant,
    plan: Plan,
    color: bool,
    /// On a terminal: the bar. Off one: when the last status line was printed, at what
    /// fraction done.
    bar: Option<ProgressBar>,
    last_line: Option<(Instant, f64)>,
    /// From the last tick: the tests running now, longest first, and the estimate of
    /// what is done.
    running: Vec<Running>,
    done_ms: u64,
    /// The first tick: when tests began to run (collection is over).
    run_started: Option<Instant>,
    /// A test runs on the terminal (under pytest's debugger): nothing is drawn.
    held: bool,
}

impl Progress {
    /// `started`: when the run began (its collection counts, as in pytest's "in 12.3s").
    pub fn new(total: usize, started: Instant, plan: Plan, color: bool) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(10),
            );
            let template = if color {
                "{bar:30.green/blue} {pos}/{len} {msg}"
            } else {
                "{bar:30} {pos}/{len} {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
            }
            bar
        });
        Progress {
            plan,
            color,
            bar,
            ..Progress::quiet(total, started)
        }
    }

    /// No bar, no status lines: lines only (`mtest merge`, which runs nothing).
    pub fn quiet(total: usize, started: Instant) -> Self {
        Progress {
            total,
            done: 0,
            failing: 0,
            started,
            plan: Plan::default(),
            color: false,
            bar: None,
            last_line: None,
            running: Vec::new(),
            done_ms: 0,
            run_started: None,
            held: false,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The run's counts now.
    pub(crate) fn counted(&mut self, stats: &RunStats) {
        self.done = stats.tests();
        self.failing = stats.failing();
    }

    /// Prints a new record if it failed.
    pub(crate) fn show(&mut self, r: &TestRecord) {
        if r.outcome.is_failure() || r.outcome == Outcome::Xpassed {
            let label = format!(
                "{}{}",
                r.outcome.as_str().to_uppercase(),
                if r.quarantined { " (quarantined)" } else { "" }
            );
            let label = format!("{label:<8}");
            let label = if !self.color {
                label
            } else if r.outcome == Outcome::Xpassed || r.quarantined {
                console::style(label).yellow().bold().to_string()
            } else {
                console::style(label).red().bold().to_string()
            };
            let message = r.message.as_deref().unwrap_or("");
            self.line(&format!("{label} {}  {message}", r.test_id));
        }
    }

    /// A line above the bar.
    pub fn line(&mut self, text: &str) {
        match &self.bar {
            Some(bar) if !bar.is_finished() => bar.suspend(|| eprintln!("{text}")),
            _ => eprintln!("{text}"),
        }
    }

    /// A turn of the supervision loop: what runs now, and the estimated milliseconds of
    /// the tests done so far.
    pub fn tick(&mut self, mut running: Vec<Running>, done_ms: u64) {
        if self.held {
            return;
        }
        self.run_started.get_or_insert_with(Instant::now);
        running.sort_by_key(|r| r.started);
        self.running = running;
        self.done_ms = done_ms;
        if crate::platform::status_requested() {
            let full = self.full_status();
            self.line(&full);
        }
        let done = self.done;
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            bar.set_message(self.bar_message());
            return;
        }
        let fraction = done as f64 / self.total.max(1) as f64;
        let Some((at, was)) = self.last_line else {
            self.last_line = Some((Instant::now(), fraction));
            return;
        };
        let since = at.elapsed();
        if since >= LINE_AT_LEAST || (since >= LINE_EVERY && fraction - was >= LINE_FRACTION) {
            self.last_line = Some((Instant::now(), fraction));
            let status = format!("mtest: {}", self.status_line());
            self.line(&status);
        }
    }

    /// `· 3 failed · 12.3s · ~8s left` and, under it, the running tests, longest first.
    fn bar_message(&self) -> String {
        let mut msg = format!("· {}", self.summary_words());
        for r in &self.running {
            msg.push_str(&format!(
                "\n  {:>7}  {}",
                human(r.started.elapsed()),
                r.test_id
            ));
        }
        msg
    }

    /// `3 failed · 12.3s · ~8s left`
    fn summary_words(&self) -> String {
        let failed = self.failing;
        let failed = if failed > 0 && self.color {
            console::style(format!("{failed} failed")).red().to_string()
        } else {
            format!("{failed} failed")
        };
        let mut words = format!("{failed} · {}", human(self.elapsed()));
        if let Some(left) = self.time_left() {
            words.push_str(&format!(" · {left}"));
        }
        words
    }

    /// `[2104/5000] 42% · 3 failed · 12.3s · ~8s left · longest running: id (4.1s)`
    fn status_line(&self) -> String {
        let done = self.done;
        let mut line = format!(
            "[{done}/{}] {:.0}% · {}",
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64,
            self.summary_words()
        );
        if let Some(r) = self.running.first() {
            line.push_str(&format!(
                " · longest running: {} ({})",
                r.test_id,
                human(r.started.elapsed())
            ));
        }
        line
    }

    /// The status on request (SIGUSR1 / SIGINFO): counts, then every running test.
    fn full_status(&self) -> String {
        let mut text = format!("mtest status: {}", self.status_line());
        if self.running.is_empty() {
            text.push_str("\n  no test is running");
        }
        for r in &self.running {
            text.push_str(&format!(
                "\n  worker {:>4}  {:>7}  {}",
                r.worker,
                human(r.started.elapsed()),
                r.test_id
            ));
        }
        text
    }

    /// `~8s left`: the estimated work not done yet, at the rate the run has gone so far
    /// (before a tenth is done: `-j` estimated seconds a second). Said to be rough when
    /// fewer than half the tests have a history of their own.
    fn time_left(&self) -> Option<String> {
        let run = self.run_started?.elapsed().as_secs_f64() * 1000.0;
        let total = self.plan.estimate_ms as f64;
        if total <= 0.0 || self.done >= self.total {
            return None;
        }
        let done = (self.done_ms as f64).min(total);
        let rate = if done >= LINE_FRACTION * total && run >= 2000.0 {
            done / run
        } else {
            f64::from(self.plan.jobs.max(1))
        };
        let left =
            Duration::from_secs_f64(((total - done) / rate / 1000.0).min(crate::clock::MAX_SECS));
        let rough = self.plan.with_history * 2 < self.total;
        Some(format!(
            "~{} left{}",
            human(left),
            if rough {
                " (rough: little history)"
            } else {
                ""
            }
        ))
    }

    /// The terminal is a test's now: the bar goes, and ticks draw nothing.
    pub fn hold(&mut self) {
        self.clear();
        self.held = true;
    }

    pub(crate) fn clear(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Whether output to stderr is coloured: `forced` (`--color always|never`), else
/// `NO_COLOR` (set and not empty: no), else `FORCE_COLOR` (set and not empty: yes), else
/// whether stderr is a terminal. Applies the answer to indicatif's styles too.
pub fn use_color(forced: Option<bool>) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let color = forced.unwrap_or_else(|| {
        if set("NO_COLOR") {
            false
        } else if set("FORCE_COLOR") {
            true
        } else {
            std::io::stderr().is_terminal()
        }
    });
    console::set_colors_enabled_stderr(color);
    color
}
