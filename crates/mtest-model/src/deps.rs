//! What a test depends on, as its worker recorded it (`mtest_impact`): the blocks of the
//! project's Python code it ran and the project's other files it opened, each with the
//! checksum its file had then. A block is one code object's own source (a function's or
//! method's body, a class's body, a module's top level), named by its qualified name.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A project file as it was when it was recorded: its path (relative to the root, with
/// `/`) and its checksum then.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source {
    pub path: Arc<str>,
    pub sum: Arc<str>,
}

/// One block of a source: `Version.__lt__`, `parse.<locals>.inner`, `<module>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block {
    pub source: Source,
    pub name: Arc<str>,
}

/// A set of dependencies, shared by the tests that have it (every test of a module shares
/// what its collection ran).
#[derive(Clone, Debug, Default)]
pub struct DepSet {
    pub blocks: Vec<Block>,
    pub files: Vec<Source>,
    /// `Some` for what ran before the tests (collection), not what a test ran: a change to
    /// a block of it that leaves what ran of it then as it was does not reach its tests
    /// (see the store). With the lines of each source that ran then, where a worker knew
    /// them (Python 3.12+), on their way to the store, which keeps them per file version:
    /// they are no part of the set's identity.
    pub before: Option<Arc<Lines>>,
}

/// The lines of each source that ran before the tests.
pub type Lines = BTreeMap<Source, Arc<[u32]>>;

impl PartialEq for DepSet {
    fn eq(&self, other: &Self) -> bool {
        self.blocks == other.blocks
            && self.files == other.files
            && self.before.is_some() == other.before.is_some()
    }
}

impl Eq for DepSet {}

impl Hash for DepSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.blocks.hash(state);
        self.files.hash(state);
        self.before.is_some().hash(state);
    }
}

/// A test's dependencies: the union of its sets (what it ran with its fixtures, and what
/// ran before the tests up to its module's collection).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deps(pub Vec<Arc<DepSet>>);
