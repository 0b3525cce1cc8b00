//! What happens in a run, as the supervision loop tells it to the recorder: a test's
//! attempt recorded, a chunk ended, a warning, a turn of the loop.

use std::time::{Duration, Instant};

use crate::record::TestRecord;

/// What happens in a run, as the supervisor sees it: the one event type that the
/// recorder turns into `run.jsonl` lines, JUnit files, reporter calls and console output.
pub enum RunEvent {
    /// A test's outcome (one attempt).
    Record(Box<TestRecord>),
    /// A chunk (a worker's chunk, or a pytest process) ended.
    ChunkEnded {
        chunk: u32,
        /// Spawn to first test: pytest's fixed cost per chunk.
        startup: Option<Duration>,
        /// (Python, pytest) versions it reported.
        versions: Option<(String, String)>,
    },
    Warning(String),
    /// Every loop turn: the tests running now, and the estimated duration of the tests
    /// done so far (their first attempts), ms.
    Tick {
        running: Vec<Running>,
        done_estimate_ms: u64,
    },
}

/// A test running now.
pub struct Running {
    pub test_id: String,
    /// Its chunk (worker).
    pub worker: u32,
    pub started: Instant,
}
