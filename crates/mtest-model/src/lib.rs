//! mtest's model: what the other crates share and nothing else. Records and their
//! outcomes (`record`), the events of a run (`run_event`), times (`clock`, `civil`),
//! shards and tiers, the configuration's types (`config`), the watchdog's decisions
//! (`watchdog`: pure), the exit codes. It depends on no other mtest crate.

pub(crate) mod civil;
pub mod clock;
pub mod config;
pub mod deps;
pub mod record;
pub mod run_event;
pub mod shard;
pub mod tiers;
pub mod watchdog;

/// A hash map for the per-test lookups of a run (test ids → index, counts): foldhash
/// instead of SipHash, whose DoS resistance buys nothing for ids read from our own files.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// A value a user gave (an option, a configuration key) that mtest cannot take: one line
/// naming it and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadValue(pub String);

/// mtest's exit codes, as documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    Failures,
    Usage,
    Internal,
    PytestBroken,
    NothingSelected,
    Interrupted,
    /// Passed through from an external subcommand.
    Code(u8),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failures => 1,
            Exit::Usage => 2,
            Exit::Internal => 3,
            Exit::PytestBroken => 4,
            Exit::NothingSelected => 5,
            Exit::Interrupted => 130,
            Exit::Code(c) => c,
        }
    }
}
