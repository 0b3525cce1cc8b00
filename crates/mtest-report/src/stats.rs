//! `RunStats`: the one place that counts. Each test counts once, by its last attempt; a
//! flaky test (failed, then passed on a retry) is counted as passed and called out. The
//! console line, `summary.md` and the reporters' run summary, and the exit code all read
//! these counts.

use crate::record::{Outcome, TestRecord};
use crate::Exit;

/// How a run ended, besides its counts: what decides its exit code with them.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunEnd {
    /// Ctrl-C: tests were left to run (`mtest --resume` goes on).
    pub interrupted: bool,
    /// pytest could not run (or a merged shard ended so): the run's exit code.
    pub broken: Option<Exit>,
    /// A write of the store failed.
    pub store_failed: bool,
    /// Selected tests did not run, and not by design (a `--partial` merge).
    pub incomplete: bool,
    /// `--flaky-fails`: a test that passed on a retry fails the run.
    pub flaky_fails: bool,
}

#[derive(Clone, Copy)]
struct Last {
    outcome: Outcome,
    /// 0 to 3.
    tier: usize,
    quarantined: bool,
    flaky: bool,
    /// Attempts so far, and how many of them failed.
    attempts: u32,
    failed: u32,
}

#[derive(Default)]
pub struct RunStats {
    last: crate::FastMap<String, Last>,
    counts: [usize; 8],
    /// The same, per tier.
    tier_counts: [[usize; 8]; 4],
    /// Records seen, every attempt.
    pub(crate) attempts: usize,
    /// Tests whose last attempt failed and that are not quarantined, kept as records come
    /// (the console asks every loop turn).
    failing: usize,
}

fn slot(o: Outcome) -> usize {
    Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0)
}

impl RunStats {
    /// Room for `tests` tests: a big run's map is not grown (and rehashed) a dozen times.
    pub(crate) fn with_capacity(tests: usize) -> Self {
        RunStats {
            last: crate::FastMap::with_capacity_and_hasher(tests, Default::default()),
            ..RunStats::default()
        }
    }

    pub fn record(&mut self, r: &TestRecord) {
        self.attempts += 1;
        let mut now = Last {
            outcome: r.outcome,
            tier: usize::from(r.tier.min(3)),
            quarantined: r.quarantined,
            flaky: r.flaky,
            attempts: 1,
            failed: u32::from(r.outcome.is_failure()),
        };
        let fails = |l: &Last| l.outcome.is_failure() && !l.quarantined;
        if fails(&now) {
            self.failing += 1;
        }
        match self.last.get_mut(&r.test_id) {
            Some(before) => {
                if fails(before) {
                    self.failing -= 1;
                }
                self.counts[slot(before.outcome)] -= 1;
                self.tier_counts[before.tier][slot(before.outcome)] -= 1;
                now.attempts += before.attempts;
                now.failed += before.failed;
                *before = now;
            }
            None => {
                self.last.insert(r.test_id.clone(), now);
            }
        }
        self.counts[slot(r.outcome)] += 1;
        self.tier_counts[now.tier][slot(r.outcome)] += 1;
    }

    /// Tests with a record.
    pub fn tests(&self) -> usize {
        self.last.len()
    }

    /// Tests whose last attempt failed and that are not quarantined.
    pub fn failing(&self) -> usize {
        self.failing
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

    /// Tests that both failed and passed in this run, with (passed, attempts), sorted by
    /// test id: the pass rates `--repeat` reports.
    pub(crate) fn pass_rates(&self) -> Vec<(&str, u32, u32)> {
        let mut rates: Vec<(&str, u32, u32)> = self
            .last
            .iter()
            .filter(|(_, l)| l.failed > 0 && l.failed < l.attempts)
            .map(|(id, l)| (id.as_str(), l.attempts - l.failed, l.attempts))
            .collect();
        rates.sort_unstable();
        rates
    }

    /// The flaky tests' ids.
    pub fn flaky_tests(&self) -> impl Iterator<Item = &str> {
        self.last
            .iter()
            .filter(|(_, l)| l.flaky)
            .map(|(id, _)| id.as_str())
    }

    /// Why the run is too broken for the quarantine policy to learn from, if it is: more
    /// than half of its tests failing (a database that is down is not 500 flaky tests).
    /// Counted as everything is: each test recorded (a module that failed to import is
    /// one) once, by its last attempt.
    pub fn mostly_failing(&self) -> Option<String> {
        let failing = self.failing() + self.quarantined_failing();
        let tests = self.tests();
        (failing * 2 > tests).then(|| {
            format!(
                "quarantine not consulted: {failing} of {tests} test(s) failed (a broken run, not that many flaky tests)"
            )
        })
    }

    /// The summary's lines for [`pass_rates`](Self::pass_rates): the first 20, then how
    /// many more.
    pub fn pass_rate_notes(&self) -> Vec<String> {
        let rates = self.pass_rates();
        let mut notes: Vec<String> = rates
            .iter()
            .take(20)
            .map(|(id, passed, runs)| format!("flaky: {id} passed {passed} of {runs} runs"))
            .collect();
        if rates.len() > 20 {
            notes.push(format!("… and {} more flaky test(s)", rates.len() - 20));
        }
        notes
    }

    /// What fails the run: failing tests; flaky ones with `--flaky-fails`, and those that
    /// were `repeated` (`--repeat`, new-test-repeats: finding flaky tests is why they ran
    /// again). Quarantined tests never do.
    pub(crate) fn run_failures(&self, flaky_fails: bool, repeated: &crate::FastSet<&str>) -> usize {
        self.last
            .iter()
            .filter(|(id, l)| {
                !l.quarantined
                    && (l.outcome.is_failure()
                        || (l.flaky && (flaky_fails || repeated.contains(id.as_str()))))
            })
            .count()
    }

    /// The run's exit code: interrupted (130), pytest broken (4, or the code a merged
    /// shard ended with), a store that could not be written (3), failing tests or an
    /// incomplete run (1), else 0. One rule for a run and a merge of shards.
    pub fn exit(&self, end: &RunEnd, repeated: &crate::FastSet<&str>) -> Exit {
        if end.interrupted {
            Exit::Interrupted
        } else if let Some(broken) = end.broken {
            broken
        } else if end.store_failed {
            Exit::Internal
        } else if end.incomplete || self.run_failures(end.flaky_fails, repeated) > 0 {
            Exit::Failures
        } else {
            Exit::Ok
        }
    }

    /// (outcome, tests) for every outcome some test has.
    pub fn counts(&self) -> Vec<(Outcome, usize)> {
        Outcome::ALL
            .iter()
            .map(|o| (*o, self.counts[slot(*o)]))
            .filter(|(_, c)| *c > 0)
            .collect()
    }

    /// (tier, its [`counts`](Self::counts)) for every tier some test has.
    pub(crate) fn tier_counts(&self) -> Vec<(u8, Vec<(Outcome, usize)>)> {
        (0u8..)
            .zip(&self.tier_counts)
            .map(|(tier, counts)| {
                let counts: Vec<(Outcome, usize)> = Outcome::ALL
                    .iter()
                    .map(|o| (*o, counts[slot(*o)]))
                    .filter(|(_, c)| *c > 0)
                    .collect();
                (tier, counts)
            })
            .filter(|(_, counts)| !counts.is_empty())
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
        let mut c = r("c", Outcome::Passed, 1, false);
        c.tier = 0;
        s.record(&c);
        assert_eq!(s.tests(), 3);
        assert_eq!(s.attempts, 5);
        assert_eq!(s.counts(), vec![(Outcome::Passed, 2), (Outcome::Failed, 1)]);
        // Per tier the same, by each test's last attempt: c is a smoke test.
        assert_eq!(
            s.tier_counts(),
            vec![
                (0, vec![(Outcome::Passed, 1)]),
                (1, vec![(Outcome::Passed, 1), (Outcome::Failed, 1)])
            ]
        );
        assert_eq!(s.counts_text(), "2 passed, 1 failed (1 flaky)");
        let none = crate::FastSet::default();
        assert_eq!(s.run_failures(false, &none), 1);
        assert_eq!(s.run_failures(true, &none), 2);
        // A flaky test that was repeated to find flakes fails the run without --flaky-fails.
        assert_eq!(s.run_failures(false, &crate::FastSet::from_iter(["a"])), 2);
        assert_eq!(s.run_failures(false, &crate::FastSet::from_iter(["c"])), 1);
        assert_eq!(s.failing(), 1);
        let walked = s
            .last
            .values()
            .filter(|l| l.outcome.is_failure() && !l.quarantined)
            .count();
        assert_eq!(s.failing(), walked);
        // a: 1 of 2 passed; b failed both (not flaky); c passed its only run.
        assert_eq!(s.pass_rates(), vec![("a", 1, 2)]);
    }

    #[test]
    fn the_exit_rule_for_a_run_and_a_merge() {
        let none = crate::FastSet::default();
        let mut green = RunStats::default();
        green.record(&r("a", Outcome::Failed, 1, false));
        green.record(&r("a", Outcome::Passed, 2, true));
        let end = |f: fn(&mut RunEnd)| {
            let mut e = RunEnd::default();
            f(&mut e);
            e
        };
        assert_eq!(green.exit(&RunEnd::default(), &none), Exit::Ok);
        assert_eq!(
            green.exit(&end(|e| e.flaky_fails = true), &none),
            Exit::Failures
        );
        assert_eq!(
            green.exit(&RunEnd::default(), &crate::FastSet::from_iter(["a"])),
            Exit::Failures
        );
        // A partial merge fails though every test it has passed.
        assert_eq!(
            green.exit(&end(|e| e.incomplete = true), &none),
            Exit::Failures
        );
        assert_eq!(
            green.exit(&end(|e| e.store_failed = true), &none),
            Exit::Internal
        );
        // A merged shard that could not run pytest: its code, before anything else but Ctrl-C.
        let broken = end(|e| {
            e.broken = Some(Exit::Code(4));
            e.store_failed = true;
        });
        assert_eq!(green.exit(&broken, &none), Exit::Code(4));
        let interrupted = end(|e| {
            e.interrupted = true;
            e.broken = Some(Exit::PytestBroken);
        });
        assert_eq!(green.exit(&interrupted, &none), Exit::Interrupted);
        let mut red = RunStats::default();
        red.record(&r("b", Outcome::Failed, 1, false));
        assert_eq!(red.exit(&RunEnd::default(), &none), Exit::Failures);
        let mut quarantined = r("b", Outcome::Failed, 1, false);
        quarantined.quarantined = true;
        let mut tolerated = RunStats::default();
        tolerated.record(&quarantined);
        assert_eq!(tolerated.exit(&RunEnd::default(), &none), Exit::Ok);
    }
}
