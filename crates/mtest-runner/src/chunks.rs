//! Cutting the selected tests into chunks, one pytest process each.
//!
//! A chunk pays one pytest start-up, so it should hold 10–20 start-ups' worth of tests;
//! there should be at least one chunk per worker so `-j` has something to share; and a
//! test file is kept whole where possible, because a chunk collects every file it touches.

use crate::FastMap;

use crate::record::PlannedTest;

/// Chunk target: this many start-up costs of test time.
const STARTUPS_PER_CHUNK: u64 = 15;

/// A file whose run time is this many times its collection time may be cut into as many
/// chunks as its size asks for; otherwise into at most `jobs`, since every chunk that
/// holds part of a file collects all of it again.
const RUN_DWARFS_COLLECTION: u64 = 20;

/// Chunks per worker when no test has a history: enough to balance, few enough that the
/// start-ups stay small beside the run (a default estimate of a few ms or 50 ms is wrong
/// for most suites either way).
const COLD_CHUNKS_PER_JOB: u64 = 4;

/// How the tests' costs are known.
pub struct Costs<'a> {
    pub startup_ms: u32,
    /// Each file's measured collection time.
    pub collect_ms: &'a FastMap<String, u64>,
    /// No test has a duration history: the estimates are placeholders.
    pub cold: bool,
}

/// Returns chunks as lists of indices into `tests`, in dispatch order. Files appear in the
/// order of their first test in `tests` (the selection's priority order). `collect_ms`
/// is each file's measured collection time: a chunk pays it for every file it touches.
pub fn plan(tests: &[PlannedTest], order: &[usize], jobs: u32, costs: &Costs) -> Vec<Vec<usize>> {
    // Tests that crashed last time run first, each alone.
    let (alone, order): (Vec<usize>, Vec<usize>) = order.iter().partition(|&&i| tests[i].isolate);
    let mut chunks: Vec<Vec<usize>> = alone.into_iter().map(|i| vec![i]).collect();
    chunks.extend(plan_together(tests, &order, jobs, costs));
    chunks
}

/// What stays together in a chunk: an `xdist_group`'s tests (on one worker, in
/// order, as pytest-xdist's `--dist loadgroup` keeps them), else a file's.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Unit<'a> {
    File(&'a str),
    Group(&'a str),
}

fn unit_of(t: &PlannedTest) -> Unit<'_> {
    match &t.group {
        Some(g) => Unit::Group(g),
        None => Unit::File(&t.file),
    }
}

/// `order` with each file's tests together, files in the order of their first test (and
/// each `xdist_group`'s tests together, at its first test).
pub fn by_file(tests: &[PlannedTest], order: &[usize]) -> Vec<usize> {
    units(tests, order)
        .into_iter()
        .flat_map(|(_, members)| members)
        .collect()
}

/// The tests of `order` by unit (file or group), units in the order of their first test.
fn units<'t>(tests: &'t [PlannedTest], order: &[usize]) -> Vec<(Unit<'t>, Vec<usize>)> {
    let mut units: Vec<(Unit, Vec<usize>)> = Vec::new();
    let mut index: FastMap<Unit, usize> = FastMap::default();
    let mut last: Option<(Unit, usize)> = None;
    for &i in order {
        let unit = unit_of(&tests[i]);
        // Tests come file by file: one comparison, mostly, instead of a lookup.
        let slot = match last {
            Some((u, slot)) if u == unit => slot,
            _ => *index.entry(unit).or_insert_with(|| {
                units.push((unit, Vec::new()));
                units.len() - 1
            }),
        };
        last = Some((unit, slot));
        units[slot].1.push(i);
    }
    units
}

fn plan_together(
    tests: &[PlannedTest],
    order: &[usize],
    jobs: u32,
    costs: &Costs,
) -> Vec<Vec<usize>> {
    if order.is_empty() {
        return Vec::new();
    }
    let files = units(tests, order);
    let cost = |i: usize| u64::from(tests[i].estimate_ms.max(1));
    let collect = |unit: &Unit| match unit {
        Unit::File(file) => costs.collect_ms.get(*file).copied().unwrap_or(0),
        Unit::Group(_) => 0,
    };
    let total: u64 = order.iter().map(|&i| cost(i)).sum::<u64>()
        + files.iter().map(|(f, _)| collect(f)).sum::<u64>();
    let jobs = u64::from(jobs.max(1));
    let target = chunk_target(total, jobs, costs);
    let mut cut = Cutter::default();
    for (unit, members) in files {
        let run_cost: u64 = members.iter().map(|&i| cost(i)).sum();
        let collect_cost = collect(&unit);
        let file_cost = run_cost + collect_cost;
        // A group is never split: its tests share one process.
        if file_cost > target && members.len() > 1 && matches!(unit, Unit::File(_)) {
            // Bigger than a chunk: split, each piece paying the file's collection again;
            // into at most `jobs` pieces unless its run time dwarfs its collection.
            let wanted = run_cost.div_ceil(target.max(1)).max(1);
            let pieces = if !costs.cold && run_cost >= RUN_DWARFS_COLLECTION * collect_cost {
                wanted
            } else {
                wanted.min(jobs)
            };
            let piece = run_cost.div_ceil(pieces).max(1);
            cut.end_chunk();
            for i in members {
                if cut.cost >= piece {
                    cut.end_chunk();
                }
                cut.add(i, cost(i));
            }
            cut.cost += collect_cost;
            continue;
        }
        // A whole file joins the current chunk if that overshoots the target by less than
        // stopping short would undershoot it.
        let overshoot = (cut.cost + file_cost).saturating_sub(target);
        let undershoot = target.saturating_sub(cut.cost);
        if overshoot > undershoot {
            cut.end_chunk();
        }
        cut.current.extend(members);
        cut.cost += file_cost;
    }
    cut.end_chunk();
    cut.chunks
}

/// A chunk's target cost: `total` cut into a multiple of the workers (so the last round
/// keeps every worker busy), of at most STARTUPS_PER_CHUNK start-ups each.
fn chunk_target(total: u64, jobs: u64, costs: &Costs) -> u64 {
    let max_chunk = STARTUPS_PER_CHUNK * u64::from(costs.startup_ms.max(100));
    let wanted = if costs.cold {
        jobs * COLD_CHUNKS_PER_JOB
    } else {
        total.div_ceil(max_chunk).div_ceil(jobs) * jobs
    };
    total.div_ceil(wanted).max(1)
}

/// The chunks cut so far, and the one being filled.
#[derive(Default)]
struct Cutter {
    chunks: Vec<Vec<usize>>,
    current: Vec<usize>,
    cost: u64,
}

impl Cutter {
    fn add(&mut self, test: usize, cost: u64) {
        self.current.push(test);
        self.cost += cost;
    }

    /// The chunk being filled, if it holds a test, is done.
    fn end_chunk(&mut self) {
        if !self.current.is_empty() {
            self.chunks.push(std::mem::take(&mut self.current));
        }
        self.cost = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warm(startup_ms: u32, collect_ms: &FastMap<String, u64>) -> Costs<'_> {
        Costs {
            startup_ms,
            collect_ms,
            cold: false,
        }
    }

    #[test]
    fn a_cold_suite_gets_a_few_chunks_per_worker_and_big_files_at_most_jobs_pieces() {
        let mut tests: Vec<_> = (0..20_000)
            .map(|i| t(&format!("f{}.py", i / 100), 50))
            .collect();
        tests.extend((0..45_000).map(|_| t("big.py", 50)));
        let order: Vec<usize> = (0..tests.len()).collect();
        let none = FastMap::default();
        let costs = Costs {
            startup_ms: 1000,
            collect_ms: &none,
            cold: true,
        };
        let chunks = plan(&tests, &order, 2, &costs);
        let big = chunks
            .iter()
            .filter(|c| c.iter().any(|&i| tests[i].file == "big.py"))
            .count();
        assert_eq!(big, 2);
        assert!(chunks.len() <= 12, "{}", chunks.len());
    }

    fn t(file: &str, ms: u32) -> PlannedTest {
        PlannedTest {
            id: format!("{file}::t"),
            file: file.into(),
            line: None,
            markers: vec![],
            tier: 1,
            estimate_ms: ms,
            timeout_s: None,
            quarantined: false,
            isolate: false,
            runs: 1,
            group: None,
        }
    }

    #[test]
    fn an_xdist_groups_tests_stay_together_and_are_never_split() {
        let grouped = |file: &str| PlannedTest {
            group: Some("g".into()),
            ..t(file, 500)
        };
        // a.py: a test, a grouped one; b.py: many tests, a grouped one; c.py.
        let mut tests = vec![t("a.py", 10), grouped("a.py")];
        tests.extend((0..20).map(|_| t("b.py", 100)));
        tests.push(grouped("b.py"));
        tests.push(t("c.py", 10));
        let order: Vec<usize> = (0..tests.len()).collect();
        let uncut = by_file(&tests, &order);
        let at = |i: usize| uncut.iter().position(|&x| x == i).unwrap();
        assert_eq!(
            at(22),
            at(1) + 1,
            "the group's tests are next to each other"
        );
        let collect_ms = FastMap::default();
        let chunks = plan(&tests, &order, 4, &warm(100, &collect_ms));
        let with_group: Vec<&Vec<usize>> = chunks
            .iter()
            .filter(|c| c.contains(&1) || c.contains(&22))
            .collect();
        assert_eq!(with_group.len(), 1, "{chunks:?}");
    }

    #[test]
    fn one_chunk_when_everything_fits_and_one_worker() {
        let tests: Vec<_> = (0..100)
            .map(|i| t(&format!("f{}.py", i / 10), 10))
            .collect();
        let order: Vec<usize> = (0..100).collect();
        assert_eq!(
            plan(&tests, &order, 1, &warm(1000, &FastMap::default())).len(),
            1
        );
    }

    #[test]
    fn at_least_one_chunk_per_worker_with_whole_files() {
        let tests: Vec<_> = (0..100)
            .map(|i| t(&format!("f{}.py", i / 10), 10))
            .collect();
        let order: Vec<usize> = (0..100).collect();
        let chunks = plan(&tests, &order, 2, &warm(1000, &FastMap::default()));
        assert_eq!(chunks.len(), 2);
        for chunk in &chunks {
            let files: std::collections::HashSet<_> =
                chunk.iter().map(|&i| tests[i].file.clone()).collect();
            assert_eq!(chunk.len(), files.len() * 10, "files are kept whole");
        }
    }

    #[test]
    fn long_suites_get_chunks_of_about_fifteen_startups() {
        // 5000 tests of unknown (50 ms) duration, start-up 1 s: ~300 per chunk.
        let tests: Vec<_> = (0..5000)
            .map(|i| t(&format!("f{}.py", i / 50), 50))
            .collect();
        let order: Vec<usize> = (0..5000).collect();
        let chunks = plan(&tests, &order, 1, &warm(1000, &FastMap::default()));
        assert_eq!(
            chunks.len(),
            17,
            "{:?}",
            chunks.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert!(
            chunks.iter().all(|c| c.len() <= 350),
            "{:?}",
            chunks.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let mut all: Vec<usize> = chunks.concat();
        all.sort();
        assert_eq!(all, order);
    }

    #[test]
    fn tests_that_crashed_last_time_run_first_each_alone() {
        let mut tests: Vec<_> = (0..20).map(|i| t(&format!("f{}.py", i / 10), 10)).collect();
        tests[13].isolate = true;
        tests[4].isolate = true;
        let order: Vec<usize> = (0..20).collect();
        let chunks = plan(&tests, &order, 1, &warm(1000, &FastMap::default()));
        assert_eq!(chunks[0], vec![4]);
        assert_eq!(chunks[1], vec![13]);
        assert_eq!(chunks[2].len(), 18);
    }

    #[test]
    fn a_file_expensive_to_collect_is_cut_into_at_most_jobs_pieces() {
        // 45,000 cases of 1 ms whose file takes 5 s to collect: 2 pieces at -j2, not 150.
        let tests: Vec<_> = (0..45_000).map(|_| t("big.py", 1)).collect();
        let order: Vec<usize> = (0..45_000).collect();
        let collect = FastMap::from_iter([("big.py".to_string(), 5_000)]);
        let chunks = plan(&tests, &order, 2, &warm(300, &collect));
        assert_eq!(
            chunks.len(),
            2,
            "{:?}",
            chunks.iter().map(Vec::len).collect::<Vec<_>>()
        );
        // Cheap to collect: cut by size.
        let cheap = FastMap::from_iter([("big.py".to_string(), 10)]);
        assert!(plan(&tests, &order, 2, &warm(300, &cheap)).len() > 2);
    }

    #[test]
    fn a_huge_file_is_split() {
        let tests: Vec<_> = (0..1000).map(|_| t("big.py", 100)).collect();
        let order: Vec<usize> = (0..1000).collect();
        let chunks = plan(&tests, &order, 4, &warm(1000, &FastMap::default()));
        assert!(chunks.len() >= 4);
    }
}
