//! `--resume`: the interrupted run's state, what it recorded, and what it still owes.

use super::*;

/// What this invocation runs.
pub(super) struct LeftToRun {
    /// First runs, then the attempts owed (a resumed run's).
    pub(super) tests: Vec<PlannedTest>,
    pub(super) first_runs: usize,
    /// An owed test's id → the attempt it runs as.
    pub(super) owed: FastMap<String, u32>,
    /// The plan moved out of the state into `tests` (a fresh run): it goes back at the end.
    pub(super) moved: bool,
}

/// A fresh run's work is its whole plan: the tests move into it, and back into the state
/// at the end (100k of them are ~20 MB, not to be held twice). A resumed run works on
/// those not yet recorded (and may drop some its collection no longer has), then on the
/// attempts its recorded tests are still owed (a failure's retry, the next run of a
/// repeated test).
pub(super) fn left_to_run(
    state: &mut RunState,
    earlier: &[TestRecord],
    retries: u32,
    resume: bool,
) -> LeftToRun {
    let owed = owed_attempts(&state.tests, earlier, retries);
    let moved = !resume;
    let mut tests: Vec<PlannedTest> = if moved {
        std::mem::take(&mut state.tests)
    } else {
        let recorded: FastSet<&str> = earlier.iter().map(|r| r.test_id.as_str()).collect();
        state
            .tests
            .iter()
            .filter(|t| !recorded.contains(t.id.as_str()))
            .cloned()
            .collect()
    };
    let first_runs = tests.len();
    tests.extend(owed.iter().map(|(t, _)| t.clone()));
    LeftToRun {
        tests,
        first_runs,
        owed: owed.into_iter().map(|(t, a)| (t.id, a)).collect(),
        moved,
    }
}

/// The attempts a resumed run still owes its recorded tests, by their last record: a
/// failure's retry (`--retries`), the next run of a repeated test.
pub(super) fn owed_attempts(
    planned: &[PlannedTest],
    earlier: &[TestRecord],
    retries: u32,
) -> Vec<(PlannedTest, u32)> {
    let mut last: FastMap<&str, &TestRecord> = FastMap::default();
    for r in earlier {
        let e = last.entry(r.test_id.as_str()).or_insert(r);
        if r.attempt >= e.attempt {
            *e = r;
        }
    }
    planned
        .iter()
        .filter_map(|t| {
            let r = last.get(t.id.as_str())?;
            let again = if t.runs > 1 {
                r.attempt < t.runs
            } else {
                r.outcome.is_failure() && r.attempt <= retries
            };
            again.then(|| (t.clone(), r.attempt + 1))
        })
        .collect()
}

/// The interrupted run to resume and what it already recorded.
pub(super) fn resume_state(gates: &Gates) -> Result<(RunState, Vec<TestRecord>)> {
    let state = match state::read(&gates.state()) {
        Ok(Loaded::Ok(s)) => s,
        Ok(Loaded::Missing) => {
            return Err(usage(format!(
                "nothing to resume: {} does not exist",
                gates.state().display()
            )))
        }
        Ok(Loaded::Corrupt { why, aside }) => {
            return Err(usage(format!(
                "cannot resume: {} is corrupt ({why}); moved to {}; start a new run with `mtest`",
                gates.state().display(),
                aside.display()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    if state.status == Status::Complete {
        return Err(Stop(
            Exit::NothingSelected,
            format!(
                "nothing to resume: run {} completed; start a new run with `mtest`",
                state.run_id
            ),
        ));
    }
    let recorded = run_log::read(&gates.run_log())?;
    if recorded.rejected > 0 {
        eprintln!(
            "warning: {} line(s) of {} did not parse (a torn write?); moved to run.jsonl.rejected",
            recorded.rejected,
            gates.run_log().display()
        );
    }
    std::fs::create_dir_all(gates.chunks()).map_err(|e| Stop(Exit::Internal, e.to_string()))?;
    let earlier = recorded
        .records
        .into_iter()
        .filter(|r| r.run_id == state.run_id)
        .collect();
    Ok((state, earlier))
}

/// The next free chunk number in `chunks/` (a resumed run keeps the earlier chunks' files).
pub(super) fn next_chunk_id(chunks_dir: &Path) -> u32 {
    let Ok(entries) = std::fs::read_dir(chunks_dir) else {
        return 1;
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("chunk-")?
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .max()
        .map_or(1, |n| n + 1)
}
