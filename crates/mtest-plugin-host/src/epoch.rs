//! The engine's epoch, advanced every [`TICK`] while a plugin call is running (the CPU
//! deadline is counted in ticks), and not at all between calls: a run makes a few calls a
//! second, and a timer thread waking 200 times a second for nothing cost ~3% of mtest's
//! CPU on a big suite.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances during a call.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// The timer thread and the number of calls it is timing.
#[derive(Clone)]
pub(crate) struct Ticker {
    calls: Arc<AtomicUsize>,
    thread: Thread,
}

/// A call being timed; the ticker rests when the last one is dropped.
pub(crate) struct Busy<'t>(&'t Ticker);

impl Ticker {
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Ticker> {
        let calls = Arc::new(AtomicUsize::new(0));
        let (engine, counting) = (engine.clone(), calls.clone());
        let thread = std::thread::Builder::new()
            .name("mtest-epoch".into())
            .spawn(move || loop {
                if counting.load(Ordering::SeqCst) == 0 {
                    // An unpark between the load and here makes park return at once.
                    std::thread::park();
                    continue;
                }
                std::thread::sleep(TICK);
                engine.increment_epoch();
            })?;
        Ok(Ticker {
            calls,
            thread: thread.thread().clone(),
        })
    }

    /// Ticks until the guard is dropped.
    pub(crate) fn busy(&self) -> Busy<'_> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
        Busy(self)
    }

    /// Ticks for a call of at most `limit`.
    pub(crate) fn ticks(limit: Duration) -> u64 {
        (limit.as_millis() / TICK.as_millis()).max(1) as u64
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::SeqCst);
    }
}
