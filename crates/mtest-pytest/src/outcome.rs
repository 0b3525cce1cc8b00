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
    let mut outcome = Outcome::Passed;
    let mut message: Option<String> = None;
    let mut details = Details::default();
    let mut subtests = SubtestCounts::default();
    let mut first_failed_subtest: Option<String> = None;
    let mut failure_texts: Vec<String> = Vec::new();
    for r in reports {
        let captured = |d: &mut Details| {
            if let Some(s) = &r.stdout {
                d.stdout.push_str(s);
            }
            if let Some(s) = &r.stderr {
                d.stderr.push_str(s);
            }
            if let Some(s) = &r.log {
                d.log.push_str(s);
            }
        };
        if let Some(desc) = &r.subtest {
            if r.outcome == "failed" {
                subtests.failed += 1;
                first_failed_subtest.get_or_insert_with(|| {
                    format!(
                        "{desc}: {}",
                        r.message.as_deref().map(one_line).unwrap_or_default()
                    )
                });
                if let Some(text) = &r.longrepr {
                    failure_texts.push(format!("subtest {desc}:\n{text}"));
                }
                captured(&mut details);
            } else if r.outcome == "passed" {
                subtests.passed += 1;
            }
            continue;
        }
        let msg = r.message.as_deref().map(one_line);
        match (r.when.as_str(), r.outcome.as_str()) {
            ("call", "passed") => {
                outcome = if r.wasxfail {
                    Outcome::Xpassed
                } else {
                    Outcome::Passed
                };
            }
            ("call", "failed") => {
                let timeout = msg
                    .as_deref()
                    .is_some_and(|m| m.contains("from pytest-timeout"));
                outcome = if timeout {
                    Outcome::Hung
                } else {
                    Outcome::Failed
                };
                message = msg;
            }
            (_, "skipped") => {
                outcome = if r.wasxfail {
                    Outcome::Xfailed
                } else {
                    Outcome::Skipped
                };
                message = msg;
            }
            // setup or teardown: an error, unless the call already failed.
            (_, "failed") if !matches!(outcome, Outcome::Failed | Outcome::Hung) => {
                outcome = Outcome::Error;
                message = msg.map(|m| format!("error in {}: {m}", r.when));
            }
            _ => {}
        }
        if r.outcome == "failed" {
            if let Some(text) = &r.longrepr {
                failure_texts.push(text.clone());
            }
            captured(&mut details);
        }
    }
    let has_subtests = subtests.passed + subtests.failed > 0;
    if subtests.failed > 0 {
        let rollup = format!(
            "{} of {} subtests failed; first: {}",
            subtests.failed,
            subtests.passed + subtests.failed,
            first_failed_subtest.unwrap_or_default()
        );
        // pytest 9 fails the parent itself with "contains N failed subtest(s)".
        message = match message {
            Some(m) if !m.contains("failed subtest") => Some(format!("{m}; {rollup}")),
            _ => Some(rollup),
        };
        if matches!(outcome, Outcome::Passed | Outcome::Xpassed) {
            outcome = Outcome::Failed;
        }
    }
    details.failure = failure_texts.join("\n\n");
    (
        Classified {
            outcome,
            message,
            subtests: has_subtests.then_some(subtests),
        },
        details,
    )
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
