//! `durations.json`: per test, its last durations and outcomes and a failure score that
//! decays with every run; the selection plugin's estimates and recency come from here.

use serde::{Deserialize, Serialize};

use crate::record::{Attempt, Outcome};

pub(crate) const KEEP: usize = 10;
/// The runs in which a quarantined test must have passed for its failure to be forgiven.
pub const FLAKY_WINDOW: usize = 5;
/// 2: outcomes as letters; 3: durations as whole microseconds (`us`). Files of schemas 1
/// (outcomes as words) and 2 (durations as seconds) are read as well.
const SCHEMA: u32 = 3;

#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub struct Durations {
    pub schema_version: u32,
    /// Measured time from starting a pytest process to its first event, seconds.
    #[serde(default)]
    pub startup_s: Option<f64>,
    /// How much of the workers' wall time the tests' own durations filled in the last run
    /// (their sum over wall × `-j`, at most 1): fixtures, forks and the machine's limits
    /// take the rest. A `--budget` plans with that share of the time it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
    /// By test id, in the order tests were first seen (a hash map that keeps its file's
    /// order: 100k ids are looked up at every start and end of a run).
    pub tests: indexmap::IndexMap<String, History, foldhash::fast::RandomState>,
}

#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
pub struct History {
    /// Seconds, oldest first, at most 10, to the microsecond. In the file, whole
    /// microseconds (`"us": [1235, 500000]`): integers cost a warm run a fraction of what
    /// decimals cost to write and read back, 100k tests by 10.
    #[serde(rename = "us", alias = "durations", with = "micros")]
    pub durations: Vec<f64>,
    /// Outcomes, oldest first, at most 10. In the file, a letter each, as pytest prints
    /// them (`"...F..s"`; see [`Outcome::letter`]): 100k tests' lists of words cost a
    /// warm run more to read and write than anything else in the file.
    #[serde(with = "letters")]
    pub outcomes: Vec<Outcome>,
    /// A failure adds 1; every run halves it.
    pub failure_score: f64,
}

impl History {
    /// Median of the recorded durations, in milliseconds.
    pub fn median_ms(&self) -> Option<u32> {
        self.quantile_ms(0.5)
    }

    /// The `q` quantile of the recorded durations (0.5: the median), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<u32> {
        quantile(&self.durations, q).map(|s| (s * 1000.0).round() as u32)
    }

    /// Whether it passed in one of its last [`FLAKY_WINDOW`] runs that did not skip it: a
    /// quarantined test's failure is forgiven only then. One that never passes is broken,
    /// not flaky, and fails the run every time.
    pub fn passed_lately(&self) -> bool {
        self.outcomes
            .iter()
            .rev()
            .filter(|o| **o != Outcome::Skipped)
            .take(FLAKY_WINDOW)
            .any(|o| matches!(o, Outcome::Passed | Outcome::Xfailed))
    }

    /// Whether its latest outcome is a failure (`--lf`, `--ff`, `--changed`).
    pub fn failed_last(&self) -> bool {
        self.outcomes.last().is_some_and(|o| o.is_failure())
    }

    pub fn recent_failures(&self) -> u8 {
        self.outcomes
            .iter()
            .rev()
            .take(5)
            .filter(|o| o.is_failure())
            .count() as u8
    }
}

/// The upper median.
pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// The value at `q` (0 to 1) of the sorted values, rounded to the nearest rank (0.5 gives
/// the upper median). Up to [`KEEP`] values (a test's history) are sorted on the stack:
/// this runs for every collected test at the start of a run.
pub(crate) fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mut kept = [0.0; KEEP];
    let mut many = Vec::new();
    let v = if n <= KEEP {
        kept[..n].copy_from_slice(values);
        &mut kept[..n]
    } else {
        many.extend_from_slice(values);
        &mut many[..]
    };
    v.sort_by(f64::total_cmp);
    let rank = ((n - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    Some(v[rank.min(n - 1)])
}

impl Durations {
    /// Whether test `id`'s latest outcome is a failure (`--lf`, `--ff`, `--changed`).
    pub fn failed_last(&self, id: &str) -> bool {
        self.tests.get(id).is_some_and(History::failed_last)
    }

    /// The history of each id, found with one id comparison where the ids come in the
    /// order this file keeps them (a run's collection, mostly: tests are added in the
    /// order they first ran), by the hash otherwise.
    pub fn histories<'a, 'i>(
        &'a self,
        ids: impl Iterator<Item = &'i str>,
    ) -> Vec<Option<&'a History>> {
        let mut next = 0;
        ids.map(|id| {
            if let Some((key, h)) = self.tests.get_index(next) {
                if key == id {
                    next += 1;
                    return Some(h);
                }
            }
            let (i, _, h) = self.tests.get_full(id)?;
            next = i + 1;
            Some(h)
        })
        .collect()
    }

    /// What one pytest process costs before its first test here; 1 s until measured.
    pub fn startup_ms(&self) -> u32 {
        self.startup_s
            .map_or(1000, |s| (s * 1000.0).round().clamp(50.0, 60_000.0) as u32)
    }

    /// Notes how much of `wall` × `jobs` the `tests`' own durations filled (a run of a
    /// few tests, or of under a second, says nothing and is not noted).
    pub fn note_throughput(&mut self, tests: &[Attempt], wall: std::time::Duration, jobs: u32) {
        let busy: f64 = tests.iter().map(|a| a.duration_s).sum();
        let capacity = wall.as_secs_f64() * f64::from(jobs.max(1));
        if tests.len() < 20 || capacity < 1.0 || !busy.is_finite() {
            return;
        }
        self.throughput = Some((busy / capacity).clamp(0.05, 1.0));
    }

    /// What a `--budget` may plan with of `ms` of wall time on the workers: the share the
    /// tests filled last time (all of it when unknown).
    pub fn usable_ms(&self, ms: u64) -> u64 {
        (ms as f64 * self.throughput.unwrap_or(1.0)) as u64
    }

    /// Folds this run's measured chunk start-ups in (median, smoothed with the old value).
    pub fn note_startup(&mut self, samples: &[std::time::Duration]) {
        let secs: Vec<f64> = samples.iter().map(|d| d.as_secs_f64()).collect();
        if let Some(m) = median(&secs) {
            self.startup_s = Some(match self.startup_s {
                Some(old) => (old + m) / 2.0,
                None => m,
            });
        }
    }

    /// Folds one run's records in. Tests that did not run keep their history untouched;
    /// hung and crashed tests add no duration (it measures the kill, not the test).
    pub fn update<'r>(&mut self, records: impl IntoIterator<Item = &'r Attempt>) {
        self.schema_version = SCHEMA;
        for r in records {
            // A known test (every test of a warm run) needs no copy of its id.
            let h = match self.tests.get_mut(&r.test_id) {
                Some(h) => h,
                None => self.tests.entry(r.test_id.clone()).or_default(),
            };
            h.failure_score /= 2.0;
            if r.outcome.is_failure() {
                h.failure_score += 1.0;
            }
            if h.failure_score < 0.01 {
                h.failure_score = 0.0;
            }
            if !matches!(
                r.outcome,
                Outcome::Hung | Outcome::Crashed | Outcome::Skipped
            ) {
                // Microseconds are plenty for an estimate, and short to write and read.
                h.durations.push((r.duration_s * 1e6).round() / 1e6);
                let excess = h.durations.len().saturating_sub(KEEP);
                h.durations.drain(..excess);
            }
            h.outcomes.push(r.outcome);
            let excess = h.outcomes.len().saturating_sub(KEEP);
            h.outcomes.drain(..excess);
        }
    }
}

/// `durations` as whole microseconds; seconds as decimals (schemas 1 and 2, under the name
/// `durations`) are read too: serde_json writes every `f64` with a `.` or an exponent, so an
/// integer in the file is always microseconds.
mod micros {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(secs: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(secs.iter().map(|d| (d * 1e6).round().max(0.0) as u64))
    }

    /// One duration: an integer is microseconds, a decimal seconds.
    struct Secs(f64);

    impl<'de> Deserialize<'de> for Secs {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Number;
            impl Visitor<'_> for Number {
                type Value = Secs;

                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a duration (microseconds, or seconds with a fraction)")
                }

                fn visit_u64<E: Error>(self, us: u64) -> Result<Secs, E> {
                    Ok(Secs(us as f64 / 1e6))
                }

                fn visit_f64<E: Error>(self, secs: f64) -> Result<Secs, E> {
                    Ok(Secs(secs))
                }
            }
            d.deserialize_any(Number)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Vec<f64>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of durations")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<f64>, A::Error> {
                // serde_json gives no hint; a history holds up to KEEP: one allocation, not four.
                let mut secs = Vec::with_capacity(seq.size_hint().unwrap_or(super::KEEP));
                while let Some(Secs(d)) = seq.next_element()? {
                    secs.push(d);
                }
                Ok(secs)
            }
        }
        d.deserialize_seq(List)
    }
}

/// `outcomes` as a string of letters; a list of words (schema 1) is read too.
mod letters {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    use crate::record::Outcome;

    pub(crate) fn serialize<S: Serializer>(outcomes: &[Outcome], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&outcomes.iter().map(|o| o.letter()).collect::<String>())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Outcome>, D::Error> {
        struct Letters;
        impl<'de> Visitor<'de> for Letters {
            type Value = Vec<Outcome>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("outcome letters, or a list of outcomes")
            }

            fn visit_str<E: Error>(self, text: &str) -> Result<Self::Value, E> {
                text.chars()
                    .map(|c| {
                        Outcome::from_letter(c)
                            .ok_or_else(|| E::custom(format!("unknown outcome letter {c:?}")))
                    })
                    .collect()
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut outcomes = Vec::new();
                while let Some(o) = seq.next_element()? {
                    outcomes.push(o);
                }
                Ok(outcomes)
            }
        }
        d.deserialize_any(Letters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_plans_with_the_share_of_the_workers_time_the_tests_filled() {
        let tests: Vec<Attempt> = (0..40)
            .map(|i| Attempt {
                test_id: format!("t::{i}"),
                outcome: Outcome::Passed,
                duration_s: 0.5,
                tier: 1,
            })
            .collect();
        let mut d = Durations::default();
        assert_eq!(d.usable_ms(10_000), 10_000, "unknown: all of it");
        // 20 s of tests on 2 workers in 20 s of wall: half of their time.
        d.note_throughput(&tests, std::time::Duration::from_secs(20), 2);
        assert_eq!(d.usable_ms(10_000), 5_000);
        // Too few tests, or too short a run, say nothing.
        d.note_throughput(&tests[..5], std::time::Duration::from_secs(20), 2);
        d.note_throughput(&tests, std::time::Duration::from_millis(100), 2);
        assert_eq!(d.usable_ms(10_000), 5_000);
    }

    fn with(ids: &[&str]) -> Durations {
        let mut d = Durations::default();
        for (n, id) in ids.iter().enumerate() {
            d.tests.insert(
                id.to_string(),
                History {
                    durations: vec![n as f64],
                    ..History::default()
                },
            );
        }
        d
    }

    #[test]
    fn histories_are_found_in_the_files_order_out_of_it_and_missing() {
        let d = with(&["a", "b", "c", "d"]);
        let found = |ids: &[&str]| -> Vec<Option<f64>> {
            d.histories(ids.iter().copied())
                .into_iter()
                .map(|h| h.map(|h| h.durations[0]))
                .collect()
        };
        assert_eq!(
            found(&["a", "b", "c", "d"]),
            [Some(0.0), Some(1.0), Some(2.0), Some(3.0)]
        );
        assert_eq!(
            found(&["c", "x", "a", "b", "d", "d"]),
            [Some(2.0), None, Some(0.0), Some(1.0), Some(3.0), Some(3.0)]
        );
        assert_eq!(found(&[]), []);
        assert_eq!(Durations::default().histories(["a"].into_iter()), [None]);
    }

    #[test]
    fn outcomes_are_written_as_letters_and_durations_as_microseconds_and_older_forms_are_read() {
        let mut d = Durations::default();
        let attempt = |outcome, duration_s| Attempt {
            test_id: "t.py::a".into(),
            outcome,
            duration_s,
            tier: 1,
        };
        d.update([&attempt(Outcome::Passed, 0.001_234_56)]);
        d.update([&attempt(Outcome::Failed, 0.5)]);
        d.update([&attempt(Outcome::Crashed, 0.0)]);
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(
            text,
            r#"{"schema_version":3,"startup_s":null,"tests":{"t.py::a":{"us":[1235,500000],"outcomes":".FC","failure_score":1.5}}}"#
        );
        let back: Durations = serde_json::from_str(&text).unwrap();
        assert_eq!(back.tests["t.py::a"], d.tests["t.py::a"]);

        let old = r#"{"schema_version":1,"tests":{"t.py::a":{"durations":[0.5],"outcomes":["passed","xfailed","hung"],"failure_score":0.0}}}"#;
        let old: Durations = serde_json::from_str(old).unwrap();
        assert_eq!(
            old.tests["t.py::a"].outcomes,
            [Outcome::Passed, Outcome::Xfailed, Outcome::Hung]
        );
        assert_eq!(old.tests["t.py::a"].durations, [0.5]);
        let two = r#"{"schema_version":2,"tests":{"t.py::a":{"durations":[0.001235,2.0,1e-6],"outcomes":".F.","failure_score":0.5}}}"#;
        let two: Durations = serde_json::from_str(two).unwrap();
        assert_eq!(two.tests["t.py::a"].durations, [0.001235, 2.0, 0.000001]);
        let bad = r#"{"schema_version":2,"tests":{"t.py::a":{"durations":[],"outcomes":".?","failure_score":0.0}}}"#;
        let err = serde_json::from_str::<Durations>(bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown outcome letter '?'"), "{err}");
    }

    #[test]
    fn every_outcome_has_its_own_letter() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_letter(o.letter()), Some(o));
        }
    }

    #[test]
    fn median_is_the_upper_middle_of_any_number_of_values() {
        for n in 0..=KEEP + 3 {
            let values: Vec<f64> = (0..n).map(|i| ((i * 7) % 5) as f64 / 100.0).collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(median(&values), sorted.get(n / 2).copied(), "{values:?}");
            let h = History {
                durations: values.clone(),
                ..History::default()
            };
            let ms = sorted.get(n / 2).map(|s| (s * 1000.0).round() as u32);
            assert_eq!(h.median_ms(), ms, "{values:?}");
            assert_eq!(quantile(&values, 0.0), sorted.first().copied());
            assert_eq!(quantile(&values, 1.0), sorted.last().copied());
        }
    }

    #[test]
    fn the_upper_quartile_is_at_the_nearest_rank() {
        let six = [0.6, 0.1, 0.5, 0.2, 0.4, 0.3];
        assert_eq!(quantile(&six, 0.75), Some(0.5)); // rank round(5 × 0.75) = 4
        assert_eq!(quantile(&six, 0.5), Some(0.4));
        assert_eq!(quantile(&[0.2], 0.75), Some(0.2));
        let h = History {
            durations: six.to_vec(),
            ..History::default()
        };
        assert_eq!(h.quantile_ms(0.75), Some(500));
    }
}
