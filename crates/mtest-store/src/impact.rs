//! `.gates/impact.json`: what each test depended on when it last ran (`mtest --changed`).
//!
//! Written by mtest's host only, at the end of a run, atomically: a run killed half-way
//! leaves the previous file whole. A run replaces the records of the tests it ran and
//! keeps the others'. A record names the versions of the project's files it was made
//! against (path and checksum) and, for Python files, the blocks it ran; the checksum of
//! every block of a version is computed once, after the run that first recorded it
//! (`mtest_impact sums`), from the file on disk — unless the file changed since, and then
//! the version's blocks are unknown and any change to the file counts.
//!
//! ```text
//! {"version":1,
//!  "sources":[["src/pkg/v.py","5c2a…",{"<module>":"a1…","Version.__lt__":"9f…"}],
//!             ["tests/data.txt","77e0…",{}], ["src/pkg/old.py","d00d…",null]],
//!  "sets":[[[[0,"Version.__lt__"]],[1]]],       blocks as [source, name], then files
//!  "envs":["9c1f…"],
//!  "tests":{"tests/test_v.py::test_lt":[0,[0,3]]}}  a test's environment, its sets
//! ```
//!
//! A version's sums hold, beside its blocks, `<module>;` and `<module>;NAME` when its top
//! level binds names to literals (`mtest_impact.block_sums`): a change of those values
//! only reaches the tests that ran a block reading one of the names (`mtest_readers`,
//! [`Impact::literal_changes`]).
//!
//! The environment a test was recorded in (the interpreter, the installed distributions,
//! pytest's and mtest's configuration files and arguments: `mtest_impact`'s fingerprint)
//! is part of its record: a test recorded in another environment is impacted.
//!
//! What ran before the tests (collection: the imports, the class bodies, the decorators)
//! counts for every test of a module collected after it; its set is marked (`"before"`:
//! the sets' numbers). On Python 3.12+ the store also keeps, per file version, the lines
//! that ran before the tests in every run that recorded it, and its blocks' *early sums*
//! for those lines (`mtest_impact.early_sums`: the block with what did not run then
//! masked, where the holes are): a block whose early sum is as it was is no change to
//! what ran before the tests, though it changed (`"early"`: by source number, its lines
//! and its blocks' holes and early sums, `null` until they are computed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::deps::{Block, DepSet, Deps, Source};
use crate::{FastMap, StoreError};
use mtest_model::FastSet;

const VERSION: u32 = 1;

/// The checksums of a file version's blocks, by name.
pub type BlockSums = BTreeMap<Arc<str>, Arc<str>>;

/// What is known of a file version's blocks.
#[derive(Clone, Debug, PartialEq)]
enum Sums {
    /// Recorded in this run; computed at its end ([`Impact::set_sums`]).
    Pending,
    /// The file changed before its blocks could be computed, or it does not parse: the
    /// version counts as one block, the whole file.
    Unknown,
    Known(BlockSums),
}

#[derive(Default)]
pub struct Impact {
    sources: BTreeMap<Source, Sums>,
    tests: FastMap<String, Recorded>,
    early: BTreeMap<Source, Early>,
}

/// What ran of a file version before the tests (Python 3.12+): its lines, in every run
/// that recorded the version, and its blocks' early sums for those lines -- `None` until
/// they are computed ([`Impact::set_early_sums`]), empty where they cannot be (the file
/// changed first, or does not parse). A block without an early sum has no exemption.
#[derive(Clone, Debug, Default, PartialEq)]
struct Early {
    lines: BTreeSet<u32>,
    sums: Option<BTreeMap<Arc<str>, EarlySum>>,
}

/// A block's early sum: where its holes are (`mtest_impact`'s, kept as it gave them), and
/// the checksum of the block with them masked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlySum(pub serde_json::Value, pub Arc<str>);

/// The early sums `mtest_impact` computed: per path, per checksum, per block.
pub type EarlySums = BTreeMap<Arc<str>, BTreeMap<Arc<str>, BTreeMap<Arc<str>, EarlySum>>>;

/// The versions whose early sums are to be computed: per path, (checksum, lines).
pub type EarlyPending = BTreeMap<Arc<str>, Vec<(Arc<str>, Vec<u32>)>>;

/// What `mtest_impact check` is asked of the early sums: per path, per checksum, each
/// block's holes.
pub type EarlyHoles<'a> =
    BTreeMap<Arc<str>, BTreeMap<Arc<str>, BTreeMap<Arc<str>, &'a serde_json::Value>>>;

/// A test's record: the environment's fingerprint then, and its dependencies.
#[derive(Clone, Debug, PartialEq)]
struct Recorded {
    env: Arc<str>,
    deps: Deps,
}

/// What a project file is now, as `mtest_impact check` answers: its checksum ("" when it
/// is gone) and, when it is Python that parses, its blocks' checksums.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Now {
    pub sum: Option<Arc<str>>,
    #[serde(default)]
    pub blocks: Option<BlockSums>,
    /// Per recorded checksum, the blocks' early sums now at that version's holes.
    #[serde(default)]
    pub early: Option<BTreeMap<Arc<str>, BlockSums>>,
}

/// Why a recorded test is impacted by a change: the first changed thing it depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// It was recorded in another environment.
    Environment,
    /// A block of a Python file changed (or is gone).
    Block {
        path: Arc<str>,
        name: Arc<str>,
    },
    /// A file it depends on as a whole changed: a data file, or Python whose blocks are
    /// not known.
    File {
        path: Arc<str>,
    },
    Deleted {
        path: Arc<str>,
    },
    /// Literals a module's top level binds to names changed, and nothing else of it
    /// (`mtest_impact.literal_names`): the test ran a block that reads one of them.
    Literal {
        path: Arc<str>,
        names: Vec<Arc<str>>,
        reader: Block,
    },
}

/// Per module whose literals changed, the blocks that read them (path, name), or `None`
/// when they cannot be told (`mtest_readers`: the module is reached otherwise than by
/// the names in it).
pub type Readers = BTreeMap<Arc<str>, Option<Vec<(Arc<str>, Arc<str>)>>>;

/// The names of a module's top level whose literals changed, when nothing else of it did
/// (`mtest_impact.block_sums`: `<module>;` is the rest, `<module>;NAME` NAME's literals).
fn literal_change(then: &BlockSums, now: &BlockSums) -> Option<BTreeSet<Arc<str>>> {
    const REST: &str = "<module>;";
    if then.get(REST)? != now.get(REST)? {
        return None;
    }
    let literals = |sums: &BlockSums| -> BTreeSet<Arc<str>> {
        sums.keys()
            .filter_map(|k| {
                k.strip_prefix(REST)
                    .filter(|n| !n.is_empty())
                    .map(Arc::from)
            })
            .collect()
    };
    let names: BTreeSet<Arc<str>> = literals(then)
        .union(&literals(now))
        .filter(|n| then.get(&*format!("{REST}{n}")) != now.get(&*format!("{REST}{n}")))
        .cloned()
        .collect();
    (!names.is_empty()).then_some(names)
}

/// What a dependency set meets of the changes.
#[derive(Default)]
struct Met {
    /// The first change that reaches every test depending on the set.
    change: Option<Change>,
    /// The modules whose literals changed that the set's blocks hold.
    literals: Vec<Arc<str>>,
    /// The set's blocks that read a changed literal, with its module.
    reads: Vec<(Arc<str>, Block)>,
}

/// The changes `impacted` judges by: the modules whose literals changed (per version,
/// their names), and who reads them.
struct Literals<'a> {
    changed: FastMap<&'a Source, BTreeSet<Arc<str>>>,
    readers: FastMap<(&'a str, &'a str), Vec<Arc<str>>>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Block { path, name } => write!(f, "{path}: {name} changed"),
            Change::File { path } => write!(f, "{path} changed"),
            Change::Deleted { path } => write!(f, "{path} deleted"),
            Change::Literal {
                path,
                names,
                reader,
            } => write!(
                f,
                "{path}: {} changed (read by {}: {})",
                names.join(", "),
                reader.source.path,
                reader.name
            ),
            Change::Environment => write!(
                f,
                "the environment changed (Python, installed distributions, configuration)"
            ),
        }
    }
}

impl Impact {
    pub fn path(gates: &Path) -> std::path::PathBuf {
        gates.join("impact.json")
    }

    /// The store's records; a file that does not parse is reported in `warnings`, set
    /// aside, and mtest starts afresh (every test then has no record: all run).
    pub fn load(path: &Path, warnings: &mut Vec<String>) -> Impact {
        let file: File = crate::load_or_default(path, warnings);
        if file.version != VERSION && !file.tests.is_empty() {
            warnings.push(format!(
                "warning: {} is of another mtest (version {}); its records are not used",
                path.display(),
                file.version
            ));
            return Impact::default();
        }
        file.into_impact()
    }

    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        crate::atomic_write_json(path, &File::from_impact(self))
    }

    pub fn len(&self) -> usize {
        self.tests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// The tests that have a record.
    pub fn tests(&self) -> impl Iterator<Item = &str> {
        self.tests.keys().map(String::as_str)
    }

    pub fn deps(&self, test: &str) -> Option<&Deps> {
        self.tests.get(test).map(|r| &r.deps)
    }

    /// This run's records, made in environment `env`: each test that ran gets what its
    /// last attempt recorded; one that ran without a record (its worker crashed, a file
    /// could not be read) has none any more, so it runs next time.
    /// Says whether any record changed (a run of tests whose dependencies are what they
    /// were changes nothing, and the file need not be written again).
    pub fn learn(&mut self, ran: &[(String, Option<Deps>)], env: &str) -> bool {
        let env: Arc<str> = env.into();
        for source in sources_of(ran) {
            self.sources.entry(source.clone()).or_insert(Sums::Pending);
        }
        let mut changed = self.learn_lines(ran);
        for (test, deps) in ran {
            match deps {
                Some(deps) => {
                    let recorded = Recorded {
                        env: env.clone(),
                        deps: deps.clone(),
                    };
                    changed |= self.tests.get(test) != Some(&recorded);
                    self.tests.insert(test.clone(), recorded);
                }
                None => {
                    changed |= self.tests.remove(test).is_some();
                }
            }
        }
        changed
    }

    /// The lines that ran before the tests, joined to what is known of each version: a
    /// version whose lines grew has its early sums computed again. Says whether any grew.
    pub fn learn_lines(&mut self, ran: &[(String, Option<Deps>)]) -> bool {
        let mut grew = false;
        let mut seen: FastSet<*const DepSet> = FastSet::default();
        let sets = ran
            .iter()
            .filter_map(|(_, d)| d.as_ref())
            .flat_map(|d| &d.0);
        for set in sets.filter(|s| seen.insert(Arc::as_ptr(s))) {
            for (source, lines) in set.before.iter().flat_map(|b| b.iter()) {
                let early = self.early.entry(source.clone()).or_default();
                let known = early.lines.len();
                early.lines.extend(lines.iter());
                if early.lines.len() != known {
                    early.sums = None;
                    grew = true;
                }
            }
        }
        grew
    }

    /// The versions whose early sums are to be computed, with their lines: path →
    /// [(checksum, lines)].
    pub fn early_pending(&self) -> EarlyPending {
        let mut pending = EarlyPending::new();
        for (source, early) in &self.early {
            if early.sums.is_none() && source.path.ends_with(".py") {
                let lines = early.lines.iter().copied().collect();
                pending
                    .entry(source.path.clone())
                    .or_default()
                    .push((source.sum.clone(), lines));
            }
        }
        pending
    }

    /// The early sums computed ([`Impact::early_pending`]); a pending version left
    /// unanswered (its file changed, or does not parse) has none.
    pub fn set_early_sums(&mut self, answer: &EarlySums) {
        for (source, early) in self.early.iter_mut() {
            if early.sums.is_none() {
                let found = answer.get(&source.path).and_then(|v| v.get(&source.sum));
                early.sums = Some(found.cloned().unwrap_or_default());
            }
        }
    }

    /// What `mtest_impact check` is asked of the early sums: per path, per checksum, the
    /// holes of each block that has one.
    pub fn early_request(&self) -> EarlyHoles<'_> {
        let mut request = EarlyHoles::new();
        for (source, early) in &self.early {
            let Some(sums) = early.sums.as_ref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let holes = sums
                .iter()
                .map(|(n, EarlySum(h, _))| (n.clone(), h))
                .collect();
            request
                .entry(source.path.clone())
                .or_default()
                .insert(source.sum.clone(), holes);
        }
        request
    }

    /// The shards' stores as one (`mtest merge`): each test's record from the shard that
    /// ran it (`parts`: a shard's store and the tests it ran), else from any shard that has
    /// one. A test a shard ran without a record has none.
    pub fn merged(parts: &[(&Impact, Vec<&str>)]) -> Impact {
        let mut merged = Impact::default();
        let mut ran_by: FastMap<&str, usize> = FastMap::default();
        for (i, (_, ran)) in parts.iter().enumerate() {
            ran_by.extend(ran.iter().map(|t| (*t, i)));
        }
        for (i, (part, _)) in parts.iter().enumerate() {
            for (test, recorded) in &part.tests {
                let owner = ran_by.get(test.as_str()).copied();
                if owner == Some(i) || (owner.is_none() && !merged.tests.contains_key(test)) {
                    merged.tests.insert(test.clone(), recorded.clone());
                }
            }
        }
        // The versions the records name, with their blocks where any shard knows them.
        let ran: Vec<(String, Option<Deps>)> = merged
            .tests
            .values()
            .map(|r| (String::new(), Some(r.deps.clone())))
            .collect();
        for source in sources_of(&ran) {
            let known = parts.iter().find_map(|(p, _)| match p.sources.get(source) {
                Some(Sums::Known(blocks)) => Some(Sums::Known(blocks.clone())),
                _ => None,
            });
            merged
                .sources
                .insert(source.clone(), known.unwrap_or(Sums::Unknown));
            // The lines of every shard; early sums from a shard that computed them for
            // all of them (else they are computed by the next run that meets the version).
            let early: Vec<&Early> = parts
                .iter()
                .filter_map(|(p, _)| p.early.get(source))
                .collect();
            if !early.is_empty() {
                let lines: BTreeSet<u32> = early.iter().flat_map(|e| &e.lines).copied().collect();
                let sums = early
                    .iter()
                    .find(|e| e.lines == lines && e.sums.is_some())
                    .and_then(|e| e.sums.clone());
                merged.early.insert(source.clone(), Early { lines, sums });
            }
        }
        merged
    }

    /// The Python file versions `records` name that the store does not know yet, whose
    /// blocks are to be computed ([`Impact::set_sums`]): path → checksum.
    pub fn new_sources(&self, ran: &[(String, Option<Deps>)]) -> BTreeMap<Arc<str>, Arc<str>> {
        sources_of(ran)
            .into_iter()
            .filter(|s| s.path.ends_with(".py") && !self.sources.contains_key(*s))
            .map(|s| (s.path.clone(), s.sum.clone()))
            .collect()
    }

    /// The recorded tests that depend on what `changes` names — per path, the names of
    /// its blocks that changed, or `None` for the whole file — each with the first such
    /// block (`path: name`) or file.
    pub fn depending_on(
        &self,
        changes: &BTreeMap<String, Option<Vec<String>>>,
    ) -> FastMap<&str, String> {
        let mut found = FastMap::default();
        if changes.is_empty() {
            return found;
        }
        let hit = |path: &str, name: Option<&str>| match (changes.get(path)?, name) {
            (None, _) | (Some(_), None) => Some(path.to_string()),
            (Some(names), Some(name)) => names
                .iter()
                .any(|n| n == name)
                .then(|| format!("{path}: {name}")),
        };
        for (test, recorded) in &self.tests {
            let first = recorded.deps.0.iter().find_map(|s| {
                let mut blocks = s.blocks.iter();
                blocks
                    .find_map(|b| hit(&b.source.path, Some(&b.name)))
                    .or_else(|| s.files.iter().find_map(|f| hit(&f.path, None)))
            });
            if let Some(first) = first {
                found.insert(test.as_str(), first);
            }
        }
        found
    }

    /// The blocks of the file versions first recorded in this run, by version (path and
    /// checksum: a file changed during the run has two, of which the file on disk is at
    /// most one): from `mtest_impact sums`, or from `--changed`'s check, which computed
    /// them for each file that differs from its records. Every other pending version's
    /// blocks are unknown from now on; a data file has none.
    pub fn set_sums(&mut self, answer: &BTreeMap<Source, BlockSums>) {
        for (source, sums) in self.sources.iter_mut() {
            if *sums != Sums::Pending {
                continue;
            }
            *sums = if !source.path.ends_with(".py") {
                Sums::Known(BlockSums::new())
            } else {
                match answer.get(source) {
                    Some(blocks) => Sums::Known(blocks.clone()),
                    None => Sums::Unknown,
                }
            };
        }
    }

    /// What `mtest_impact check` is asked: every recorded file, with its recorded
    /// checksums.
    pub fn check_request(&self) -> BTreeMap<Arc<str>, Vec<Arc<str>>> {
        let mut request: BTreeMap<Arc<str>, Vec<Arc<str>>> = BTreeMap::new();
        for source in self.sources.keys() {
            request
                .entry(source.path.clone())
                .or_default()
                .push(source.sum.clone());
        }
        request
    }

    /// The modules whose top level changed in the literals it binds to names only, and
    /// those names (what `mtest_impact readers` is asked about).
    pub fn literal_changes(
        &self,
        now: &BTreeMap<Arc<str>, Now>,
    ) -> BTreeMap<Arc<str>, BTreeSet<Arc<str>>> {
        let mut found: BTreeMap<Arc<str>, BTreeSet<Arc<str>>> = BTreeMap::new();
        for (source, sums) in &self.sources {
            if let Some(names) = self.literal_names(source, sums, now) {
                found.entry(source.path.clone()).or_default().extend(names);
            }
        }
        found
    }

    fn literal_names(
        &self,
        source: &Source,
        sums: &Sums,
        now: &BTreeMap<Arc<str>, Now>,
    ) -> Option<BTreeSet<Arc<str>>> {
        let (Sums::Known(then), Some(current)) = (sums, now.get(&source.path)) else {
            return None;
        };
        match current.sum.as_deref() {
            Some(sum) if !sum.is_empty() && sum != &*source.sum => {}
            _ => return None,
        }
        literal_change(then, current.blocks.as_ref()?)
    }

    /// Each recorded test that a change reaches, with the first change it depends on;
    /// `now`: every recorded file as it is now (a file missing from it counts as
    /// changed); `env`: the environment's fingerprint now; `readers`: who reads the
    /// literals that changed (see [`Impact::literal_changes`]; a module missing from it
    /// counts as its top level changed).
    pub fn impacted(
        &self,
        now: &BTreeMap<Arc<str>, Now>,
        env: &str,
        readers: &Readers,
    ) -> FastMap<&str, Change> {
        let literals = self.literals(now, readers);
        let mut by_set: FastMap<*const DepSet, Met> = FastMap::default();
        let mut impacted = FastMap::default();
        for (test, recorded) in &self.tests {
            if &*recorded.env != env {
                impacted.insert(test.as_str(), Change::Environment);
                continue;
            }
            for set in &recorded.deps.0 {
                by_set
                    .entry(Arc::as_ptr(set))
                    .or_insert_with(|| self.meet(set, now, &literals));
            }
            let sets = recorded.deps.0.iter();
            let mets: Vec<&Met> = sets.map(|set| &by_set[&Arc::as_ptr(set)]).collect();
            if let Some(change) = first_met(&mets, &literals) {
                impacted.insert(test.as_str(), change);
            }
        }
        impacted
    }

    fn literals<'a>(&'a self, now: &BTreeMap<Arc<str>, Now>, readers: &'a Readers) -> Literals<'a> {
        let changed = self
            .sources
            .iter()
            .filter(|(source, _)| matches!(readers.get(&source.path), Some(Some(_))))
            .filter_map(|(source, sums)| Some((source, self.literal_names(source, sums, now)?)))
            .collect();
        let mut by_reader: FastMap<(&str, &str), Vec<Arc<str>>> = FastMap::default();
        for (module, blocks) in readers {
            for (path, name) in blocks.iter().flatten() {
                by_reader
                    .entry((path, name))
                    .or_default()
                    .push(module.clone());
            }
        }
        Literals {
            changed,
            readers: by_reader,
        }
    }

    fn meet(&self, set: &DepSet, now: &BTreeMap<Arc<str>, Now>, literals: &Literals) -> Met {
        let mut met = Met::default();
        for b in &set.blocks {
            if let Some(modules) = literals.readers.get(&(&*b.source.path, &*b.name)) {
                met.reads
                    .extend(modules.iter().map(|m| (m.clone(), b.clone())));
            }
            if met.change.is_some() {
                continue;
            }
            let Some(change) = self.block_change(&b.source, Some(&b.name), now) else {
                continue;
            };
            let block_only = matches!(change, Change::Block { .. });
            if set.before.is_some() && block_only && self.ran_the_same(b, now) {
                continue;
            }
            if block_only && &*b.name == "<module>" && literals.changed.contains_key(&b.source) {
                met.literals.push(b.source.path.clone());
                continue;
            }
            met.change = Some(change);
        }
        if met.change.is_none() {
            met.change = set
                .files
                .iter()
                .find_map(|f| self.block_change(f, None, now));
        }
        met
    }

    /// Whether what ran of `block` before the tests would run the same now: its early
    /// sum now is the one recorded.
    fn ran_the_same(&self, block: &Block, now: &BTreeMap<Arc<str>, Now>) -> bool {
        let then = self
            .early
            .get(&block.source)
            .and_then(|e| e.sums.as_ref()?.get(&block.name));
        let current = now
            .get(&block.source.path)
            .and_then(|n| n.early.as_ref()?.get(&block.source.sum)?.get(&block.name));
        matches!((then, current), (Some(EarlySum(_, a)), Some(b)) if a == b)
    }

    /// Whether block `name` of `source` (`None`: the whole file) is not what it was.
    fn block_change(
        &self,
        source: &Source,
        name: Option<&Arc<str>>,
        now: &BTreeMap<Arc<str>, Now>,
    ) -> Option<Change> {
        let path = source.path.clone();
        let file = || Some(Change::File { path: path.clone() });
        let Some(current) = now.get(&source.path) else {
            return file(); // not checked: never assumed unchanged
        };
        match current.sum.as_deref() {
            Some(sum) if sum == &*source.sum => return None,
            Some("") => return Some(Change::Deleted { path }),
            _ => {}
        }
        let (Some(name), Some(Sums::Known(then)), Some(blocks)) =
            (name, self.sources.get(source), current.blocks.as_ref())
        else {
            return file();
        };
        (then.get(name).is_none() || then.get(name) != blocks.get(name)).then(|| Change::Block {
            path,
            name: name.clone(),
        })
    }
}

/// The first change a test meets through its sets: one that reaches it whatever it ran,
/// else a changed literal that a block it ran reads.
fn first_met(mets: &[&Met], literals: &Literals) -> Option<Change> {
    if let Some(change) = mets.iter().find_map(|m| m.change.clone()) {
        return Some(change);
    }
    let held: BTreeSet<&Arc<str>> = mets.iter().flat_map(|m| &m.literals).collect();
    let (path, reader) = mets
        .iter()
        .flat_map(|m| &m.reads)
        .find(|(module, _)| held.contains(module))?;
    let names = literals
        .changed
        .iter()
        .filter(|(source, _)| &source.path == path)
        .flat_map(|(_, names)| names.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Some(Change::Literal {
        path: path.clone(),
        names,
        reader: reader.clone(),
    })
}

/// Every source `ran` names, each once: the tests of a chunk share their sets (one `Arc`
/// each), so each set is looked at once, not once a test.
fn sources_of(ran: &[(String, Option<Deps>)]) -> mtest_model::FastSet<&Source> {
    let mut seen: mtest_model::FastSet<*const DepSet> = Default::default();
    let mut sources = mtest_model::FastSet::default();
    for set in ran
        .iter()
        .filter_map(|(_, d)| d.as_ref())
        .flat_map(|d| &d.0)
    {
        if seen.insert(Arc::as_ptr(set)) {
            sources.extend(set.blocks.iter().map(|b| &b.source).chain(&set.files));
        }
    }
    sources
}

/// A stored set: its blocks as (source number, name), then its files' source numbers.
type StoredSet = (Vec<(u32, Arc<str>)>, Vec<u32>);

/// The file as stored: sources and sets by number.
#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    sources: Vec<(Arc<str>, Arc<str>, Option<BlockSums>)>,
    sets: Vec<StoredSet>,
    /// The sets of what ran before the tests, by number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    before: Vec<u32>,
    /// What ran of a source before the tests, by its number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    early: BTreeMap<u32, StoredEarly>,
    envs: Vec<Arc<str>>,
    /// A test's environment and sets, by number.
    tests: BTreeMap<String, (u32, Vec<u32>)>,
}

type StoredEarly = (Vec<u32>, Option<BTreeMap<Arc<str>, EarlySum>>);

impl Default for File {
    fn default() -> Self {
        File {
            version: VERSION,
            sources: Vec::new(),
            sets: Vec::new(),
            before: Vec::new(),
            early: BTreeMap::new(),
            envs: Vec::new(),
            tests: BTreeMap::new(),
        }
    }
}

impl File {
    fn from_impact(impact: &Impact) -> File {
        let mut file = File::default();
        let mut sources: FastMap<Source, u32> = FastMap::default();
        // By content: each chunk of a run declares its own copy of the sets its tests
        // share; by pointer first, so that each copy is hashed once, not once a test.
        let mut sets: FastMap<&DepSet, u32> = FastMap::default();
        let mut by_pointer: FastMap<*const DepSet, u32> = FastMap::default();
        let mut envs: FastMap<Arc<str>, u32> = FastMap::default();
        for (test, recorded) in &impact.tests {
            let env = *envs.entry(recorded.env.clone()).or_insert_with(|| {
                file.envs.push(recorded.env.clone());
                file.envs.len() as u32 - 1
            });
            let mut numbers = Vec::with_capacity(recorded.deps.0.len());
            for set in &recorded.deps.0 {
                if let Some(&number) = by_pointer.get(&Arc::as_ptr(set)) {
                    numbers.push(number);
                    continue;
                }
                let number = *sets.entry(&**set).or_insert_with(|| {
                    let mut source = |s: &Source| -> u32 {
                        *sources.entry(s.clone()).or_insert_with(|| {
                            let sums = match impact.sources.get(s) {
                                Some(Sums::Known(blocks)) => Some(blocks.clone()),
                                _ => None,
                            };
                            file.sources.push((s.path.clone(), s.sum.clone(), sums));
                            let number = file.sources.len() as u32 - 1;
                            if let Some(early) = impact.early.get(s) {
                                let lines = early.lines.iter().copied().collect();
                                file.early.insert(number, (lines, early.sums.clone()));
                            }
                            number
                        })
                    };
                    let blocks = set
                        .blocks
                        .iter()
                        .map(|b| (source(&b.source), b.name.clone()))
                        .collect();
                    let files = set.files.iter().map(&mut source).collect();
                    file.sets.push((blocks, files));
                    let number = file.sets.len() as u32 - 1;
                    if set.before.is_some() {
                        file.before.push(number);
                    }
                    number
                });
                by_pointer.insert(Arc::as_ptr(set), number);
                numbers.push(number);
            }
            file.tests.insert(test.clone(), (env, numbers));
        }
        file
    }

    /// A number that points nowhere drops the test's record (it runs next time).
    fn into_impact(self) -> Impact {
        let mut impact = Impact::default();
        let sources: Vec<Source> = self
            .sources
            .into_iter()
            .map(|(path, sum, blocks)| {
                let source = Source { path, sum };
                let sums = blocks.map_or(Sums::Unknown, Sums::Known);
                impact.sources.insert(source.clone(), sums);
                source
            })
            .collect();
        for (number, (lines, sums)) in self.early {
            if let Some(source) = sources.get(number as usize) {
                let lines = lines.into_iter().collect();
                impact.early.insert(source.clone(), Early { lines, sums });
            }
        }
        let before: FastSet<u32> = self.before.into_iter().collect();
        let sets: Vec<Option<Arc<DepSet>>> = self
            .sets
            .into_iter()
            .zip(0u32..)
            .map(|((blocks, files), number)| {
                let blocks = blocks
                    .into_iter()
                    .map(|(s, name)| {
                        let source = sources.get(s as usize)?.clone();
                        Some(Block { source, name })
                    })
                    .collect::<Option<Vec<_>>>()?;
                let files = files
                    .into_iter()
                    .map(|s| sources.get(s as usize).cloned())
                    .collect::<Option<Vec<_>>>()?;
                let before = before.contains(&number).then(Default::default);
                Some(Arc::new(DepSet {
                    blocks,
                    files,
                    before,
                }))
            })
            .collect();
        for (test, (env, numbers)) in self.tests {
            let deps = numbers
                .iter()
                .map(|&n| sets.get(n as usize).cloned().flatten())
                .collect::<Option<Vec<_>>>();
            let env = self.envs.get(env as usize).cloned();
            if let (Some(deps), Some(env)) = (deps.filter(|d| !d.is_empty()), env) {
                let deps = Deps(deps);
                impact.tests.insert(test, Recorded { env, deps });
            }
        }
        impact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &str, sum: &str) -> Source {
        Source {
            path: path.into(),
            sum: sum.into(),
        }
    }

    fn set(blocks: Vec<Block>, files: Vec<Source>) -> Arc<DepSet> {
        Arc::new(DepSet {
            blocks,
            files,
            before: None,
        })
    }

    /// A set of what ran before the tests, with the lines of each source that ran then.
    fn before(blocks: Vec<Block>, lines: &[(&Source, &[u32])]) -> Arc<DepSet> {
        let lines = lines.iter().map(|(s, l)| ((*s).clone(), l.to_vec().into()));
        Arc::new(DepSet {
            blocks,
            files: vec![],
            before: Some(Arc::new(lines.collect())),
        })
    }

    fn block(s: &Source, name: &str) -> Block {
        Block {
            source: s.clone(),
            name: name.into(),
        }
    }

    fn record(id: &str, deps: Option<Deps>) -> (String, Option<Deps>) {
        (id.to_string(), deps)
    }

    fn sums(pairs: &[(&str, &str)]) -> BlockSums {
        pairs
            .iter()
            .map(|(n, s)| ((*n).into(), (*s).into()))
            .collect()
    }

    fn now(entries: &[(&str, &str, Option<BlockSums>)]) -> BTreeMap<Arc<str>, Now> {
        entries
            .iter()
            .map(|(p, s, b)| {
                (
                    (*p).into(),
                    Now {
                        sum: Some((*s).into()),
                        blocks: b.clone(),
                        early: None,
                    },
                )
            })
            .collect()
    }

    /// Two tests: `a` ran v.py's `f`, `b` ran `g` and read data.txt; both share the
    /// early set (v.py's top level).
    fn recorded() -> Impact {
        let v = source("src/v.py", "v1");
        let data = source("data.txt", "d1");
        let early = set(vec![block(&v, "<module>")], vec![]);
        let a = set(vec![block(&v, "f")], vec![]);
        let b = set(vec![block(&v, "g")], vec![data]);
        learnt(&v, a, b, early)
    }

    /// Tests `a` and `b` with their own sets and a shared early one, v.py's blocks known.
    fn learnt(v: &Source, a: Arc<DepSet>, b: Arc<DepSet>, early: Arc<DepSet>) -> Impact {
        let mut impact = Impact::default();
        impact.learn(
            &[
                record("t.py::a", Some(Deps(vec![a, early.clone()]))),
                record("t.py::b", Some(Deps(vec![b, early]))),
            ],
            "env1",
        );
        let mut answer = BTreeMap::new();
        answer.insert(
            v.clone(),
            sums(&[("<module>", "m"), ("f", "F"), ("g", "G")]),
        );
        impact.set_sums(&answer);
        impact
    }

    fn impacted(impact: &Impact, now: &BTreeMap<Arc<str>, Now>) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = impact
            .impacted(now, "env1", &Readers::new())
            .into_iter()
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect();
        found.sort();
        found
    }

    /// `a` ran `f` in its test; `b` depends on `f` only as what ran before the tests
    /// (lines 2 and 3 of v.py), where `f`'s early sum is "E".
    fn recorded_before() -> Impact {
        let v = source("src/v.py", "v1");
        let early = before(vec![block(&v, "f")], &[(&v, &[2, 3])]);
        let a = set(vec![block(&v, "f")], vec![]);
        let b = set(vec![block(&v, "g")], vec![]);
        let mut impact = learnt(&v, a, b, early);
        let pending = impact.early_pending();
        assert_eq!(
            pending.get("src/v.py"),
            Some(&vec![("v1".into(), vec![2, 3])])
        );
        impact.set_early_sums(&early_answer("v1", "E"));
        impact
    }

    fn early_answer(sum: &str, early: &str) -> EarlySums {
        let holes = serde_json::json!([["body", 1]]);
        let blocks = BTreeMap::from([("f".into(), EarlySum(holes, early.into()))]);
        let versions = BTreeMap::from([(sum.into(), blocks)]);
        BTreeMap::from([("src/v.py".into(), versions)])
    }

    /// v.py at "v2", `f` changed, its early sum now `early`.
    fn f_changed(early: Option<&str>) -> BTreeMap<Arc<str>, Now> {
        let mut now = now(&[(
            "src/v.py",
            "v2",
            Some(sums(&[("<module>", "m"), ("f", "F2"), ("g", "G")])),
        )]);
        if let Some(early) = early {
            let blocks = BTreeMap::from([("f".into(), early.into())]);
            now.get_mut("src/v.py").expect("v.py").early =
                Some(BTreeMap::from([("v1".into(), blocks)]));
        }
        now
    }

    #[test]
    fn a_change_where_nothing_ran_before_the_tests_reaches_only_the_tests_that_ran_it() {
        let impact = recorded_before();
        let f = ("t.py::a".to_string(), "src/v.py: f changed".to_string());
        assert_eq!(impacted(&impact, &f_changed(Some("E"))), vec![f.clone()]);
        let b = ("t.py::b".to_string(), "src/v.py: f changed".to_string());
        assert_eq!(
            impacted(&impact, &f_changed(Some("E2"))),
            vec![f.clone(), b.clone()],
            "what ran before the tests changed"
        );
        assert_eq!(
            impacted(&impact, &f_changed(None)),
            vec![f, b],
            "no early sum now: a change"
        );
    }

    #[test]
    fn more_lines_that_ran_before_the_tests_take_the_early_sums_away_until_computed_again() {
        let mut impact = recorded_before();
        let v = source("src/v.py", "v1");
        let early = before(vec![block(&v, "f")], &[(&v, &[2, 3])]);
        let b = set(vec![block(&v, "g")], vec![]);
        let changed = impact.learn(
            &[record("t.py::b", Some(Deps(vec![b.clone(), early])))],
            "env1",
        );
        assert!(
            !changed && impact.early_pending().is_empty(),
            "the same lines"
        );
        let more = before(vec![block(&v, "f")], &[(&v, &[2, 3, 4])]);
        assert!(impact.learn(&[record("t.py::b", Some(Deps(vec![b, more])))], "env1"));
        assert_eq!(
            impact.early_pending().get("src/v.py"),
            Some(&vec![("v1".into(), vec![2, 3, 4])])
        );
        assert_eq!(impacted(&impact, &f_changed(Some("E"))).len(), 2);
        impact.set_early_sums(&BTreeMap::new()); // the file changed: none
        assert_eq!(impacted(&impact, &f_changed(Some("E"))).len(), 2);
        assert!(impact.early_pending().is_empty());
    }

    #[test]
    fn what_ran_before_the_tests_round_trips_and_merges() {
        let impact = recorded_before();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("impact.json");
        impact.save(&path).expect("saved");
        let mut warnings = Vec::new();
        let back = Impact::load(&path, &mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(back.early, impact.early);
        assert_eq!(back.deps("t.py::b"), impact.deps("t.py::b"));
        assert!(back.deps("t.py::b").expect("b").0[1].before.is_some());
        let f = ("t.py::a".to_string(), "src/v.py: f changed".to_string());
        assert_eq!(impacted(&back, &f_changed(Some("E"))), vec![f]);
        // Two shards that saw other lines: the union, early sums to compute again.
        let mut other = Impact::default();
        let v = source("src/v.py", "v1");
        let early = before(vec![block(&v, "f")], &[(&v, &[5])]);
        let c = set(vec![block(&v, "g")], vec![]);
        other.learn(&[record("t.py::c", Some(Deps(vec![c, early])))], "env1");
        let merged = Impact::merged(&[
            (&back, vec!["t.py::a", "t.py::b"]),
            (&other, vec!["t.py::c"]),
        ]);
        assert_eq!(
            merged.early_pending().get("src/v.py"),
            Some(&vec![("v1".into(), vec![2, 3, 5])])
        );
        let alone = Impact::merged(&[(&back, vec!["t.py::a", "t.py::b"])]);
        assert!(
            alone.early_pending().is_empty(),
            "one shard: its early sums stand"
        );
    }

    #[test]
    fn nothing_changed_impacts_nothing() {
        let impact = recorded();
        let now = now(&[("src/v.py", "v1", None), ("data.txt", "d1", None)]);
        assert_eq!(impacted(&impact, &now), vec![]);
    }

    #[test]
    fn a_changed_block_impacts_the_tests_that_ran_it_only() {
        let impact = recorded();
        let blocks = sums(&[("<module>", "m"), ("f", "F2"), ("g", "G")]);
        let now = now(&[("src/v.py", "v2", Some(blocks)), ("data.txt", "d1", None)]);
        assert_eq!(
            impacted(&impact, &now),
            vec![("t.py::a".into(), "src/v.py: f changed".into())]
        );
    }

    #[test]
    fn top_level_code_impacts_every_test_after_it_and_a_gone_block_counts() {
        let impact = recorded();
        let blocks = sums(&[("<module>", "m2"), ("g", "G")]);
        let now = now(&[("src/v.py", "v2", Some(blocks)), ("data.txt", "d1", None)]);
        assert_eq!(
            impacted(&impact, &now),
            vec![
                ("t.py::a".into(), "src/v.py: f changed".into()),
                ("t.py::b".into(), "src/v.py: <module> changed".into()),
            ]
        );
    }

    #[test]
    fn a_changed_literal_reaches_the_tests_that_ran_a_block_reading_it() {
        let v = source("src/v.py", "v1");
        let early = set(vec![block(&v, "<module>")], vec![]);
        let (a, b) = (
            set(vec![block(&v, "f")], vec![]),
            set(vec![block(&v, "g")], vec![]),
        );
        let mut impact = learnt(&v, a, b, early);
        let then = [("<module>", "m"), ("<module>;", "R"), ("<module>;N", "n1")];
        let then = sums(
            &[
                then.as_slice(),
                &[("<module>;M", "m1"), ("f", "F"), ("g", "G")],
            ]
            .concat(),
        );
        impact.sources.insert(v.clone(), Sums::Known(then.clone()));
        let mut blocks = then.clone();
        blocks.insert("<module>".into(), "m2".into());
        blocks.insert("<module>;N".into(), "n2".into());
        let now = now(&[("src/v.py", "v2", Some(blocks.clone()))]);
        let names: BTreeSet<Arc<str>> = ["N".into()].into();
        assert_eq!(
            impact.literal_changes(&now),
            [("src/v.py".into(), names)].into()
        );
        let by = |readers: Readers| {
            let mut found: Vec<(String, String)> = impact
                .impacted(&now, "env1", &readers)
                .into_iter()
                .map(|(t, c)| (t.to_string(), c.to_string()))
                .collect();
            found.sort();
            found
        };
        let f_reads: Readers = [(
            "src/v.py".into(),
            Some(vec![("src/v.py".into(), "f".into())]),
        )]
        .into();
        assert_eq!(
            by(f_reads),
            vec![(
                "t.py::a".into(),
                "src/v.py: N changed (read by src/v.py: f)".into()
            )]
        );
        let whole = vec![
            ("t.py::a".into(), "src/v.py: <module> changed".into()),
            ("t.py::b".into(), "src/v.py: <module> changed".into()),
        ];
        assert_eq!(
            by([("src/v.py".into(), None)].into()),
            whole,
            "readers not known"
        );
        assert_eq!(by(Readers::new()), whole, "readers not asked");
        // Something else of the top level changed too: no literal change.
        blocks.insert("<module>;".into(), "R2".into());
        let now = super::tests::now(&[("src/v.py", "v2", Some(blocks))]);
        assert!(impact.literal_changes(&now).is_empty());
    }

    #[test]
    fn a_data_file_a_deleted_file_and_an_unparsable_one_are_changes() {
        let impact = recorded();
        let now_data = now(&[("src/v.py", "v1", None), ("data.txt", "d2", None)]);
        assert_eq!(
            impacted(&impact, &now_data),
            vec![("t.py::b".into(), "data.txt changed".into())]
        );
        let gone = now(&[("src/v.py", "", None), ("data.txt", "d1", None)]);
        assert_eq!(impacted(&impact, &gone).len(), 2);
        assert!(impacted(&impact, &gone)[0].1.contains("deleted"));
        let broken = now(&[("src/v.py", "v3", None), ("data.txt", "d1", None)]);
        assert_eq!(
            impacted(&impact, &broken).len(),
            2,
            "blocks unknown now: all"
        );
        let unchecked = now(&[("data.txt", "d1", None)]);
        assert_eq!(
            impacted(&impact, &unchecked).len(),
            2,
            "not checked: changed"
        );
    }

    #[test]
    fn a_version_whose_blocks_are_unknown_counts_as_a_whole_file() {
        let mut impact = recorded();
        let w = source("src/w.py", "w1");
        let set = set(vec![block(&w, "h")], vec![]);
        let records = [record("t.py::c", Some(Deps(vec![set])))];
        assert_eq!(impact.new_sources(&records).len(), 1);
        impact.learn(&records, "env1");
        impact.set_sums(&BTreeMap::new()); // the file changed before its sums were taken
        let blocks = sums(&[("h", "H")]);
        let n = now(&[
            ("src/v.py", "v1", None),
            ("data.txt", "d1", None),
            ("src/w.py", "w2", Some(blocks)),
        ]);
        assert_eq!(
            impacted(&impact, &n),
            vec![("t.py::c".into(), "src/w.py changed".into())]
        );
    }

    #[test]
    fn blocks_are_known_of_the_version_they_were_computed_for_only() {
        // A file changed during the run: tests recorded two versions of it; the answer
        // knows the blocks of the one on disk, and the other's are unknown.
        let mut impact = Impact::default();
        let (w1, w2) = (source("src/w.py", "w1"), source("src/w.py", "w2"));
        let records = [
            record(
                "t.py::a",
                Some(Deps(vec![set(vec![block(&w1, "f")], vec![])])),
            ),
            record(
                "t.py::b",
                Some(Deps(vec![set(vec![block(&w2, "g")], vec![])])),
            ),
        ];
        impact.learn(&records, "env1");
        let mut answer = BTreeMap::new();
        answer.insert(w2.clone(), sums(&[("f", "F2"), ("g", "G")]));
        impact.set_sums(&answer);
        // Now w3 changes only `f`, whose checksum in w2 was F2: a is reached through its
        // unknown version (the whole file), b is not (its `g` is as in w2).
        let n = now(&[("src/w.py", "w3", Some(sums(&[("f", "F3"), ("g", "G")])))]);
        assert_eq!(
            impacted(&impact, &n),
            vec![("t.py::a".into(), "src/w.py changed".into())]
        );
    }

    #[test]
    fn a_test_recorded_in_another_environment_is_impacted() {
        let mut impact = recorded();
        let v = source("src/v.py", "v1");
        let set = set(vec![block(&v, "f")], vec![]);
        impact.learn(&[record("t.py::a", Some(Deps(vec![set])))], "env2");
        let n = now(&[("src/v.py", "v1", None), ("data.txt", "d1", None)]);
        let found: Vec<String> = impact
            .impacted(&n, "env1", &Readers::new())
            .into_iter()
            .map(|(t, c)| format!("{t}: {c}"))
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("t.py::a: the environment changed"));
    }

    #[test]
    fn shards_merge_each_test_from_the_shard_that_ran_it() {
        let old = recorded();
        let mut one = recorded();
        let v2 = source("src/v.py", "v2");
        let fresh = set(vec![block(&v2, "f")], vec![]);
        one.learn(
            &[record("t.py::a", Some(Deps(vec![fresh.clone()])))],
            "env1",
        );
        let mut two = recorded();
        two.learn(&[record("t.py::b", None)], "env1");
        let merged = Impact::merged(&[
            (&one, vec!["t.py::a"]),
            (&two, vec!["t.py::b"]),
            (&old, vec![]),
        ]);
        assert_eq!(merged.deps("t.py::a"), Some(&Deps(vec![fresh])));
        assert_eq!(
            merged.deps("t.py::b"),
            None,
            "ran without a record in its shard"
        );
        assert_eq!(merged.len(), 1);
    }

    #[test]
    fn learning_what_is_already_recorded_changes_nothing() {
        let mut impact = recorded();
        let again = impact.deps("t.py::a").cloned();
        assert!(!impact.learn(&[record("t.py::a", again.clone())], "env1"));
        assert!(impact.learn(&[record("t.py::a", again)], "env2"));
        assert!(impact.learn(&[record("t.py::b", None)], "env2"));
    }

    #[test]
    fn a_test_run_without_a_record_loses_its_old_one() {
        let mut impact = recorded();
        impact.learn(&[record("t.py::a", None)], "env1");
        assert!(impact.deps("t.py::a").is_none());
        assert!(impact.deps("t.py::b").is_some());
    }

    #[test]
    fn the_file_round_trips_and_shares_sets() {
        let impact = recorded();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = Impact::path(dir.path());
        impact.save(&path).expect("saved");
        let text = std::fs::read_to_string(&path).expect("read");
        let file: File = serde_json::from_str(&text).expect("parses");
        assert_eq!(file.sets.len(), 3, "the early set is stored once: {text}");
        let mut warnings = Vec::new();
        let back = Impact::load(&path, &mut warnings);
        assert!(warnings.is_empty());
        assert_eq!(back.len(), 2);
        assert_eq!(back.deps("t.py::a"), impact.deps("t.py::a"));
        let blocks = sums(&[("<module>", "m"), ("f", "F2"), ("g", "G")]);
        let n = now(&[("src/v.py", "v2", Some(blocks)), ("data.txt", "d1", None)]);
        assert_eq!(impacted(&back, &n), impacted(&impact, &n));
    }

    #[test]
    fn a_corrupt_file_is_set_aside_and_every_test_has_no_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = Impact::path(dir.path());
        std::fs::write(&path, "{not json").expect("write");
        let mut warnings = Vec::new();
        let impact = Impact::load(&path, &mut warnings);
        assert!(impact.is_empty());
        assert!(warnings[0].contains("corrupt"), "{warnings:?}");
        assert!(!path.exists(), "set aside");
    }
}
