//! Which records each reporter is sent (the WIT `wanted`). Every reporter gets the records
//! a run is judged by: failures, records of quarantined tests, and later attempts of a test
//! that failed earlier (its retry). Beyond those, only what it asked for: every record, those
//! among the slowest so far, or those whose span is a visible share of the run so far. A
//! 100k-test run that passes hands a summary writer a hundred records, not 100k.

use crate::plugin_host::session::{ChunkSpan, Wanted};
use crate::record::TestRecord;
use crate::shard::Shard;

/// A chunk: the shard that ran it (none outside a sharded run), its number in that shard.
type ChunkKey = (Option<Shard>, u32);
/// Earliest start, latest finish: ms since the Unix epoch.
type Span = (u64, u64);

/// What the run has shown so far, from every record whatever the reporters want.
#[derive(Default)]
pub(crate) struct RunSoFar {
    /// Tests that failed at least once: their later attempts go to every reporter.
    failed: crate::FastSet<String>,
    /// The earliest start and the latest finish so far, ms since the Unix epoch.
    span: Option<Span>,
    /// Every chunk's span, in the order chunks first reported.
    chunks: Vec<(ChunkKey, Span)>,
    chunk_index: crate::FastMap<ChunkKey, usize>,
}

impl RunSoFar {
    /// Notes one record; true if every reporter gets it.
    pub(crate) fn note(&mut self, r: &TestRecord) -> bool {
        if let Some((start, end)) = times(r) {
            let (t0, t1) = self.span.get_or_insert((start, end));
            (*t0, *t1) = ((*t0).min(start), (*t1).max(end));
            let key = (r.shard, r.chunk);
            let at = match self.chunks.last() {
                Some((last, _)) if *last == key => self.chunks.len() - 1,
                _ => *self.chunk_index.entry(key).or_insert_with(|| {
                    self.chunks.push((key, (start, end)));
                    self.chunks.len() - 1
                }),
            };
            let (c0, c1) = &mut self.chunks[at].1;
            (*c0, *c1) = ((*c0).min(start), (*c1).max(end));
        }
        if r.outcome.is_failure() {
            if !self.failed.contains(r.test_id.as_str()) {
                self.failed.insert(r.test_id.clone());
            }
            return true;
        }
        r.quarantined || (!self.failed.is_empty() && self.failed.contains(r.test_id.as_str()))
    }

    /// The run so far in milliseconds (at least 1), once a record had times.
    fn span_ms(&self) -> Option<f64> {
        self.span
            .map(|(t0, t1)| (t1.saturating_sub(t0)).max(1) as f64)
    }

    pub(crate) fn chunk_spans(&self) -> Vec<ChunkSpan> {
        self.chunks
            .iter()
            .map(|((shard, chunk), (start, end))| ChunkSpan {
                shard: shard.map(|s| s.to_string()),
                chunk: *chunk,
                started_ms: *start,
                finished_ms: *end,
            })
            .collect()
    }
}

/// A record's (start, finish), when it has both.
fn times(r: &TestRecord) -> Option<Span> {
    let start = r.started_at.ms()?;
    Some((start, r.finished_at.ms()?.max(start)))
}

/// One reporter's `wanted`, with what it needs to remember.
pub(crate) struct Filter {
    every: bool,
    /// The longest durations so far, shortest first, at most `slowest`.
    longest: Vec<f64>,
    slowest: usize,
    min_share: Option<f64>,
}

impl Filter {
    pub(crate) fn new(wanted: &Wanted) -> Filter {
        Filter {
            every: wanted.every,
            longest: Vec::new(),
            // A reporter's own list of the slowest is small; a plugin cannot make the host
            // keep an unbounded one.
            slowest: (wanted.slowest as usize).min(10_000),
            min_share: wanted.min_share.filter(|s| s.is_finite()),
        }
    }

    /// Whether this reporter is sent `r`; `must` says every reporter is. Every record goes
    /// through here, so the longest so far are those of the whole run.
    pub(crate) fn wants(&mut self, r: &TestRecord, must: bool, so_far: &RunSoFar) -> bool {
        let slow = self.offer(r.duration_s);
        must || self.every || slow || self.wide(r, so_far)
    }

    /// True if `secs` is among the longest so far (kept while there are fewer than
    /// `slowest`, or longer than the shortest of them, as a plugin's own top list does).
    fn offer(&mut self, secs: f64) -> bool {
        if self.slowest == 0 {
            return false;
        }
        if self.longest.len() == self.slowest {
            if secs.total_cmp(&self.longest[0]).is_le() {
                return false;
            }
            self.longest.remove(0);
        }
        let at = self.longest.partition_point(|d| d.total_cmp(&secs).is_lt());
        self.longest.insert(at, secs);
        true
    }

    fn wide(&self, r: &TestRecord, so_far: &RunSoFar) -> bool {
        let (Some(share), Some(run_ms), Some((start, end))) =
            (self.min_share, so_far.span_ms(), times(r))
        else {
            return false;
        };
        (end - start) as f64 >= share * run_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Outcome;

    fn rec(id: &str, outcome: Outcome, secs: f64, start: u64, end: u64) -> TestRecord {
        let mut r: TestRecord = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "run_id": "r", "test_id": id, "outcome": outcome,
            "duration_s": secs, "tier": 1, "markers": [], "file": "t.py", "line": null,
            "chunk": 1, "attempt": 1, "quarantined": false, "started_at": "",
            "finished_at": "", "message": null, "bundle": null
        }))
        .unwrap();
        r.started_at = stamp(start);
        r.finished_at = stamp(end);
        r
    }

    fn stamp(ms: u64) -> crate::clock::Stamp {
        crate::clock::Stamp::at(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
    }

    fn wanted(every: bool, slowest: u32, min_share: Option<f64>) -> Filter {
        Filter::new(&Wanted {
            every,
            slowest,
            min_share,
        })
    }

    #[test]
    fn failures_quarantined_tests_and_retries_go_to_every_reporter() {
        let mut so_far = RunSoFar::default();
        assert!(!so_far.note(&rec("a", Outcome::Passed, 0.1, 0, 1)));
        assert!(so_far.note(&rec("b", Outcome::Failed, 0.1, 1, 2)));
        assert!(so_far.note(&rec("c", Outcome::Crashed, 0.1, 2, 3)));
        // b's retry passed: every reporter learns b was flaky.
        assert!(so_far.note(&rec("b", Outcome::Passed, 0.1, 3, 4)));
        let mut q = rec("d", Outcome::Passed, 0.1, 4, 5);
        q.quarantined = true;
        assert!(so_far.note(&q));
        assert!(!so_far.note(&rec("e", Outcome::Skipped, 0.1, 5, 6)));
    }

    #[test]
    fn the_runs_slowest_are_all_sent_and_few_others() {
        let mut so_far = RunSoFar::default();
        let mut f = wanted(false, 3, None);
        let mut every = wanted(true, 0, None);
        let mut sent = Vec::new();
        // Durations that rise and fall: 0.5, 0.1, 0.9, 0.2, 0.7, 0.3, 0.8, 0.05, 1.0, 0.6.
        let secs = [0.5, 0.1, 0.9, 0.2, 0.7, 0.3, 0.8, 0.05, 1.0, 0.6];
        for (i, s) in secs.iter().enumerate() {
            let r = rec(
                &format!("t{i}"),
                Outcome::Passed,
                *s,
                i as u64,
                i as u64 + 1,
            );
            let must = so_far.note(&r);
            assert!(every.wants(&r, must, &so_far));
            if f.wants(&r, must, &so_far) {
                sent.push(*s);
            }
        }
        // The first three, then each that beat the third longest so far.
        assert_eq!(sent, vec![0.5, 0.1, 0.9, 0.2, 0.7, 0.8, 1.0]);
        let mut top: Vec<f64> = sent.clone();
        top.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(top[..3], [1.0, 0.9, 0.8]);
        // Equal to the shortest kept is not longer: not sent.
        let r = rec("tie", Outcome::Passed, 0.8, 20, 21);
        let must = so_far.note(&r);
        assert!(!f.wants(&r, must, &so_far));
    }

    #[test]
    fn spans_a_visible_share_of_the_run_so_far_are_sent() {
        let mut so_far = RunSoFar::default();
        let mut f = wanted(false, 0, Some(0.1));
        let mut send = |id: &str, start: u64, end: u64| {
            let r = rec(id, Outcome::Passed, 0.0, start, end);
            let must = so_far.note(&r);
            f.wants(&r, must, &so_far)
        };
        assert!(send("first", 0, 10)); // the whole run so far
        assert!(send("wide", 10, 100)); // 90 of 100 ms
        assert!(!send("thin", 100, 105)); // 5 of 105 ms
        assert!(send("tenth", 105, 117)); // 12 of 117 ms
    }

    #[test]
    fn chunk_spans_come_from_every_record_in_first_seen_order() {
        let mut so_far = RunSoFar::default();
        let mut r = rec("a", Outcome::Passed, 0.0, 100, 110);
        r.chunk = 2;
        so_far.note(&r);
        let mut r = rec("b", Outcome::Passed, 0.0, 90, 95);
        r.chunk = 1;
        so_far.note(&r);
        let mut r = rec("c", Outcome::Passed, 0.0, 120, 130);
        r.chunk = 2;
        so_far.note(&r);
        let mut r = rec("d", Outcome::Passed, 0.0, 140, 150);
        r.chunk = 2;
        r.shard = Some("2/3".parse().unwrap());
        so_far.note(&r);
        // A record without times counts for nothing here.
        let mut r = rec("e", Outcome::Error, 0.0, 0, 0);
        r.started_at = crate::clock::Stamp::default();
        so_far.note(&r);
        let spans: Vec<_> = so_far
            .chunk_spans()
            .into_iter()
            .map(|c| (c.shard, c.chunk, c.started_ms, c.finished_ms))
            .collect();
        assert_eq!(
            spans,
            vec![
                (None, 2, 100, 130),
                (None, 1, 90, 95),
                (Some("2/3".into()), 2, 140, 150)
            ]
        );
    }
}
