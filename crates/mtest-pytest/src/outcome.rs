//! A test's outcome from its phase reports, as pytest decides it.

use super::events::Report;
use crate::record::{one_line, Details, Outcome, SubtestCounts};

pub struct Classified {
    pub outcome: Outcome,
    pub message: Option<String>,
    pub subtests: Option<SubtestCounts>,
}

/// pytest's own status logic over the phase reports: a setup/teardown failure is an
/// error, a call failure a failure, `wasxfail` turns skips into xfailed and passes into
/// xpassed; a pytest-timeout failure is a hang; failed subtests fail their parent.
pub fn outcome_of(reports: &[Report]) -> (Classified, Details) {
    let mut tally = Tally {
        outcome: Outcome::Passed,
        message: None,
        details: Details::default(),
        subtests: SubtestCounts::default(),
        first_failed_subtest: None,
        failure_texts: Vec::new(),
    };
    for r in reports {
        match &r.subtest {
            Some(desc) => tally.subtest(r, desc),
            None => tally.phase(r),
        }
    }
    tally.end()
}

/// The reports of one test, as they are read.
struct Tally {
    outcome: Outcome,
    message: Option<String>,
    details: Details,
    subtests: SubtestCounts,
    first_failed_subtest: Option<String>,
    failure_texts: Vec<String>,
}

impl Tally {
    fn subtest(&mut self, r: &Report, desc: &str) {
        if r.outcome == "failed" {
            self.subtests.failed += 1;
            self.first_failed_subtest.get_or_insert_with(|| {
                format!(
                    "{desc}: {}",
                    r.message.as_deref().map(one_line).unwrap_or_default()
                )
            });
            if let Some(text) = &r.longrepr {
                self.failure_texts.push(format!("subtest {desc}:\n{text}"));
            }
            self.captured(r);
        } else if r.outcome == "passed" {
            self.subtests.passed += 1;
        }
    }

    /// A phase's report (setup, call, teardown).
    fn phase(&mut self, r: &Report) {
        let msg = r.message.as_deref().map(one_line);
        match (r.when.as_str(), r.outcome.as_str()) {
            ("call", "passed") => {
                self.outcome = if r.wasxfail {
                    Outcome::Xpassed
                } else {
                    Outcome::Passed
                };
            }
            ("call", "failed") => {
                let timeout = msg
                    .as_deref()
                    .is_some_and(|m| m.contains("from pytest-timeout"));
                self.outcome = if timeout {
                    Outcome::Hung
                } else {
                    Outcome::Failed
                };
                self.message = msg;
            }
            (_, "skipped") => {
                self.outcome = if r.wasxfail {
                    Outcome::Xfailed
                } else {
                    Outcome::Skipped
                };
                self.message = msg;
            }
            // setup or teardown: an error, unless the call already failed.
            (_, "failed") if !matches!(self.outcome, Outcome::Failed | Outcome::Hung) => {
                self.outcome = Outcome::Error;
                self.message = msg.map(|m| format!("error in {}: {m}", r.when));
            }
            _ => {}
        }
        if r.outcome == "failed" {
            if let Some(text) = &r.longrepr {
                self.failure_texts.push(text.clone());
            }
            self.captured(r);
        }
    }

    /// A failing report's captured output.
    fn captured(&mut self, r: &Report) {
        let d = &mut self.details;
        for (to, from) in [
            (&mut d.stdout, &r.stdout),
            (&mut d.stderr, &r.stderr),
            (&mut d.log, &r.log),
        ] {
            if let Some(s) = from {
                to.push_str(s);
            }
        }
    }

    fn end(mut self) -> (Classified, Details) {
        let subtests = self.subtests;
        if subtests.failed > 0 {
            let rollup = format!(
                "{} of {} subtests failed; first: {}",
                subtests.failed,
                subtests.passed + subtests.failed,
                self.first_failed_subtest.unwrap_or_default()
            );
            // pytest 9 fails the parent itself with "contains N failed subtest(s)".
            self.message = match self.message {
                Some(m) if !m.contains("failed subtest") => Some(format!("{m}; {rollup}")),
                _ => Some(rollup),
            };
            if matches!(self.outcome, Outcome::Passed | Outcome::Xpassed) {
                self.outcome = Outcome::Failed;
            }
        }
        self.details.failure = self.failure_texts.join("\n\n");
        let has_subtests = subtests.passed + subtests.failed > 0;
        (
            Classified {
                outcome: self.outcome,
                message: self.message,
                subtests: has_subtests.then_some(subtests),
            },
            self.details,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(when: &str, outcome: &str) -> Report {
        Report {
            id: "t".into(),
            when: when.into(),
            outcome: outcome.into(),
            duration: 0.1,
            wasxfail: false,
            subtest: None,
            message: (outcome != "passed").then(|| "AssertionError: boom".into()),
            longrepr: (outcome != "passed").then(|| "E  AssertionError: boom".into()),
            stdout: None,
            stderr: None,
            log: None,
        }
    }

    fn classify(reports: &[Report]) -> (Outcome, Option<String>) {
        let (c, _) = outcome_of(reports);
        (c.outcome, c.message)
    }

    #[test]
    fn phases_classify_like_pytest() {
        let ok = [
            report("setup", "passed"),
            report("call", "passed"),
            report("teardown", "passed"),
        ];
        assert_eq!(classify(&ok).0, Outcome::Passed);
        let fail = [
            report("setup", "passed"),
            report("call", "failed"),
            report("teardown", "passed"),
        ];
        assert_eq!(
            classify(&fail),
            (Outcome::Failed, Some("AssertionError: boom".into()))
        );
        let setup_error = [report("setup", "failed"), report("teardown", "passed")];
        assert_eq!(
            classify(&setup_error),
            (
                Outcome::Error,
                Some("error in setup: AssertionError: boom".into())
            )
        );
        let teardown_error = [
            report("setup", "passed"),
            report("call", "passed"),
            report("teardown", "failed"),
        ];
        assert_eq!(classify(&teardown_error).0, Outcome::Error);
        let fail_and_teardown = [
            report("setup", "passed"),
            report("call", "failed"),
            report("teardown", "failed"),
        ];
        assert_eq!(classify(&fail_and_teardown).0, Outcome::Failed);
        let skip = [report("setup", "skipped"), report("teardown", "passed")];
        assert_eq!(classify(&skip).0, Outcome::Skipped);
    }

    #[test]
    fn xfail_xpass_and_timeouts() {
        let mut xfail = report("call", "skipped");
        xfail.wasxfail = true;
        assert_eq!(
            classify(&[report("setup", "passed"), xfail]).0,
            Outcome::Xfailed
        );
        let mut xpass = report("call", "passed");
        xpass.wasxfail = true;
        assert_eq!(
            classify(&[report("setup", "passed"), xpass]).0,
            Outcome::Xpassed
        );
        let mut timeout = report("call", "failed");
        timeout.message = Some("Failed: Timeout (>2.0s) from pytest-timeout.".into());
        assert_eq!(
            classify(&[report("setup", "passed"), timeout]).0,
            Outcome::Hung
        );
    }

    #[test]
    fn failed_subtests_fail_the_parent() {
        let mut sub_ok = report("call", "passed");
        sub_ok.subtest = Some("[a]".into());
        let mut sub_bad = report("call", "failed");
        sub_bad.subtest = Some("[b]".into());
        let reports = [
            report("setup", "passed"),
            sub_ok.clone(),
            sub_bad,
            sub_ok,
            report("call", "passed"),
        ];
        let (c, d) = outcome_of(&reports);
        assert_eq!(c.outcome, Outcome::Failed);
        assert_eq!(
            c.message.as_deref(),
            Some("1 of 3 subtests failed; first: [b]: AssertionError: boom")
        );
        assert_eq!(
            c.subtests,
            Some(SubtestCounts {
                passed: 2,
                failed: 1
            })
        );
        assert!(d.failure.contains("subtest [b]:"));
    }
}
