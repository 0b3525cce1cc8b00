//! The supervisor loop: keeps `-j` chunks running, feeds their records to the sink as
//! they finish, re-queues what a dying chunk never reached, and handles Ctrl-C.
//!
//! Everything happens on this one thread (chunks are spawned here too, which matters:
//! `PR_SET_PDEATHSIG` fires when the spawning *thread* ends).

pub mod chunk_run;
pub mod chunks;
pub mod path_args;
pub mod platform;

use std::collections::VecDeque;
use std::time::Duration;

use chunk_run::{ChunkRun, Ended, RunContext};

use crate::record::TestRecord;

/// What the supervisor tells the rest of mtest as the run goes.
pub enum Progress<'a> {
    Record(TestRecord),
    ChunkEnded(&'a Ended),
    Warning(String),
    /// Called every loop turn: running chunks, queued chunks.
    Tick {
        running: usize,
        queued: usize,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub enum Finish {
    Completed,
    /// Stopped by --fail-fast after a failing chunk.
    FailedFast,
    Interrupted,
    /// pytest could not run: its text.
    Broken(String),
}

pub struct Options {
    pub jobs: u32,
    pub fail_fast: bool,
    /// Number of the first chunk (a resumed run continues the numbering).
    pub first_chunk: u32,
}

const POLL: Duration = Duration::from_millis(5);

pub fn run(
    ctx: &RunContext,
    chunks: Vec<Vec<usize>>,
    options: &Options,
    sink: &mut dyn FnMut(Progress),
) -> Finish {
    let mut queue: VecDeque<Vec<usize>> = chunks.into();
    let mut running: Vec<ChunkRun> = Vec::new();
    let mut next_id = options.first_chunk.max(1);
    let mut stopping: Option<Finish> = None;
    let mut interrupts_seen = 0;
    let mut out = Vec::new();
    let mut warnings = Vec::new();

    loop {
        let interrupts = platform::interrupts();
        if interrupts > interrupts_seen {
            interrupts_seen = interrupts;
            if interrupts == 1 {
                sink(Progress::Warning(
                    "interrupted: stopping the running chunks (Ctrl-C again to kill them at once)"
                        .into(),
                ));
                running.iter_mut().for_each(ChunkRun::interrupt);
            } else {
                running.iter_mut().for_each(ChunkRun::kill);
            }
            stopping = Some(Finish::Interrupted);
        }

        while stopping.is_none() && running.len() < options.jobs.max(1) as usize {
            let Some(tests) = queue.pop_front() else {
                break;
            };
            match ChunkRun::spawn(ctx, next_id, tests) {
                Ok(chunk) => running.push(chunk),
                Err(e) => {
                    stopping = Some(Finish::Broken(e));
                    break;
                }
            }
            next_id += 1;
        }

        let pids: Vec<i32> = running.iter().map(ChunkRun::pid).collect();
        let mut i = 0;
        while i < running.len() {
            running[i].poll(ctx, &mut out);
            let ended = running[i].try_end(ctx, &pids, &mut out, &mut warnings);
            let chunk_failed = out.iter().any(|r| r.outcome.is_failure() && !r.quarantined);
            for record in out.drain(..) {
                sink(Progress::Record(record));
            }
            for warning in warnings.drain(..) {
                sink(Progress::Warning(warning));
            }
            if let Some(ended) = ended {
                running.swap_remove(i);
                sink(Progress::ChunkEnded(&ended));
                if let Some(text) = ended.broken {
                    if stopping.is_none() || stopping == Some(Finish::FailedFast) {
                        stopping = Some(Finish::Broken(text));
                    }
                    running.iter_mut().for_each(ChunkRun::kill);
                    continue;
                }
                // What a dead chunk never reached runs next, before the rest.
                for tests in ended.requeue.into_iter().rev() {
                    queue.push_front(tests);
                }
                if options.fail_fast && chunk_failed && stopping.is_none() {
                    stopping = Some(Finish::FailedFast);
                }
                continue;
            }
            if options.fail_fast && chunk_failed && stopping.is_none() {
                // The failing chunk finishes; no new one starts.
                stopping = Some(Finish::FailedFast);
            }
            i += 1;
        }

        sink(Progress::Tick {
            running: running.len(),
            queued: queue.len(),
        });
        if running.is_empty() && (queue.is_empty() || stopping.is_some()) {
            return stopping.unwrap_or(Finish::Completed);
        }
        std::thread::sleep(POLL);
    }
}
