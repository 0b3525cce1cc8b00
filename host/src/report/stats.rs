//! `RunStats`: the one place that counts. Each test counts once, by its last attempt; a
//! flaky test (failed, then passed on a retry) is counted as passed and called out. The
//! console line, `summary.md` and the reporters' run summary, and the exit code all read
//! these counts.

use std::collections::HashMap;

use crate::record::{Outcome, TestRecord};

#[derive(Clone, Copy)]
struct Last {
    outcome: Outcome,
    quarantined: bool,
    flaky: bool,
}

#[derive(Default)]
pub struct RunStats {
    last: HashMap<String, Last>,
    counts: [usize; 8],
    /// Records seen, every attempt.
    pub attempts: usize,
}

fn slot(o: Outcome) -> usize {
    Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0)
}

impl RunStats {
    pub fn record(&mut self, r: &TestRecord) {
        self.attempts += 1;
        let now = Last {
            outcome: r.outcome,
            quarantined: r.quarantined,
            flaky: r.flaky,
        };
        if let Some(before) = self.last.insert(r.test_id.clone(), now) {
            self.counts[slot(before.outcome)] -= 1;
        }
        self.counts[slot(r.outcome)] += 1;
    }

    /// Tests with a record.
    pub fn tests(&self) -> usize {
        self.last.len()
    }

    /// Tests whose last attempt failed and that are not quarantined.
    pub fn failing(&self) -> usize {
        self.last
            .values()
            .filter(|l| l.outcome.is_failure() && !l.quarantined)
            .count()
    }

    /// Tests whose last attempt failed though they are quarantined.
    pub fn quarantined_failing(&self) -> usize {
        self.last
            .values()
            .filter(|l| l.outcome.is_failure() && l.quarantined)
            .count()
    }

    /// Tests that failed, then passed on a retry.
    pub fn flaky(&self) -> usize {
        self.last.values().filter(|l| l.flaky).count()
    }

    /// What fails the run: failing tests, and with `--flaky-fails` flaky ones too.
    pub fn run_failures(&self, flaky_fails: bool) -> usize {
        self.last
            .values()
            .filter(|l| !l.quarantined && (l.outcome.is_failure() || (l.flaky && flaky_fails)))
            .count()
    }

    /// (outcome, tests) for every outcome some test has.
    pub fn counts(&self) -> Vec<(Outcome, usize)> {
        Outcome::ALL
            .iter()
            .map(|o| (*o, self.counts[slot(*o)]))
            .filter(|(_, c)| *c > 0)
            .collect()
    }

    /// `12 passed, 1 failed, 1 crashed` (`no tests ran`), with the flaky ones said.
    pub fn counts_text(&self) -> String {
        let parts: Vec<String> = self
            .counts()
            .iter()
            .map(|(o, c)| format!("{c} {}", o.as_str()))
            .collect();
        let mut text = if parts.is_empty() {
            "no tests ran".to_string()
        } else {
            parts.join(", ")
        };
        let flaky = self.flaky();
        if flaky > 0 {
            text.push_str(&format!(" ({flaky} flaky)"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, outcome: Outcome, attempt: u32, flaky: bool) -> TestRecord {
        let mut rec: TestRecord = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "run_id": "r", "test_id": id, "outcome": outcome,
            "duration_s": 0.0, "tier": 1, "markers": [], "file": "t.py", "line": null,
            "chunk": 1, "attempt": attempt, "quarantined": false, "started_at": "",
            "finished_at": "", "message": null, "bundle": null
        }))
        .unwrap();
        rec.flaky = flaky;
        rec
    }

    #[test]
    fn each_test_counts_once_by_its_last_attempt() {
        let mut s = RunStats::default();
        s.record(&r("a", Outcome::Failed, 1, false));
        s.record(&r("a", Outcome::Passed, 2, true));
        s.record(&r("b", Outcome::Failed, 1, false));
        s.record(&r("b", Outcome::Failed, 2, false));
        s.record(&r("c", Outcome::Passed, 1, false));
        assert_eq!(s.tests(), 3);
        assert_eq!(s.attempts, 5);
        assert_eq!(s.counts(), vec![(Outcome::Passed, 2), (Outcome::Failed, 1)]);
        assert_eq!(s.counts_text(), "2 passed, 1 failed (1 flaky)");
        assert_eq!(s.run_failures(false), 1);
        assert_eq!(s.run_failures(true), 2);
        assert_eq!(s.failing(), 1);
    }
}
