//! What a person watching the run sees: failures as they happen, a status line that
//! redraws on a terminal (a compact line every few seconds otherwise), and a summary.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::stats::RunStats;
use crate::clock::human;
use crate::record::{Outcome, TestRecord};

pub struct Progress {
    total: usize,
    /// The counts, per test.
    pub stats: RunStats,
    started: Instant,
    tty: bool,
    last_draw: Option<Instant>,
    status_shown: bool,
    running: usize,
}

impl Progress {
    /// `started`: when the run began (its collection counts, as in pytest's "in 12.3s").
    pub fn new(total: usize, started: Instant) -> Self {
        Progress {
            total,
            stats: RunStats::default(),
            started,
            tty: std::io::stderr().is_terminal(),
            last_draw: None,
            status_shown: false,
            running: 0,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts a record; prints it if it failed (or was replayed from an earlier invocation,
    /// silently).
    pub fn record(&mut self, r: &TestRecord, replayed: bool) {
        self.stats.record(r);
        if replayed {
            return;
        }
        if r.outcome.is_failure() || r.outcome == Outcome::Xpassed {
            let label = format!(
                "{}{}",
                r.outcome.as_str().to_uppercase(),
                if r.quarantined { " (quarantined)" } else { "" }
            );
            let message = r.message.as_deref().unwrap_or("");
            self.line(&format!("{label:<8} {}  {message}", r.test_id));
        }
    }

    /// A line above the status line.
    pub fn line(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.tty && self.status_shown {
            let _ = write!(err, "\r\x1b[2K");
            self.status_shown = false;
        }
        let _ = writeln!(err, "{text}");
    }

    pub fn tick(&mut self, running: usize) {
        self.running = running;
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(10)
        };
        if self.last_draw.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        if !self.tty && self.last_draw.is_none() {
            self.last_draw = Some(Instant::now());
            return;
        }
        self.last_draw = Some(Instant::now());
        let status = self.status();
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{status}");
            self.status_shown = true;
        } else {
            let _ = writeln!(err, "mtest: {status}");
        }
        let _ = err.flush();
    }

    fn status(&self) -> String {
        format!(
            "[{}/{}] {} failed · {} · {} chunk(s) running",
            self.stats.tests(),
            self.total,
            self.stats.failing(),
            human(self.elapsed()),
            self.running
        )
    }

    pub fn clear(&mut self) {
        if self.tty && self.status_shown {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.status_shown = false;
        }
    }

    /// `12 passed, 1 failed, 1 crashed in 4.2s`
    pub fn counts_line(&self) -> String {
        format!("{} in {}", self.stats.counts_text(), human(self.elapsed()))
    }
}
