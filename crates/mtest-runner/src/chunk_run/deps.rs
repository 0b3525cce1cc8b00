//! A chunk's dependency declarations (`source`, `block`, `deps` events, numbered in its
//! event file from 0): what a test's `finish` names by number, resolved into its
//! [`Deps`]. A number not declared, or declared out of order, leaves the test without a
//! record (mtest runs it next time), never with a wrong one.

use std::sync::Arc;

use crate::deps::{Block, DepSet, Deps, Lines, Source};

#[derive(Default)]
pub(super) struct Declared {
    sources: Vec<Source>,
    /// The lines of each source that ran before the tests, where they were declared.
    early: Lines,
    blocks: Vec<Block>,
    /// `None` for a set that named a number not declared.
    sets: Vec<Option<Arc<DepSet>>>,
    /// A declaration came out of order: nothing after it can be trusted.
    broken: bool,
}

impl Declared {
    pub(super) fn source(&mut self, n: u32, path: String, sum: String, early: Vec<u32>) {
        if self.next(n, self.sources.len()) {
            let source = Source {
                path: path.into(),
                sum: sum.into(),
            };
            if !early.is_empty() {
                self.early.insert(source.clone(), early.into());
            }
            self.sources.push(source);
        }
    }

    pub(super) fn block(&mut self, n: u32, source: u32, name: String) {
        if !self.next(n, self.blocks.len()) {
            return;
        }
        match self.sources.get(source as usize) {
            Some(source) => self.blocks.push(Block {
                source: source.clone(),
                name: name.into(),
            }),
            None => self.broken = true,
        }
    }

    /// `before`: the set of what ran before the tests, given the lines of its sources that
    /// ran then.
    pub(super) fn set(&mut self, n: u32, blocks: &[u32], files: &[u32], before: bool) {
        if !self.next(n, self.sets.len()) {
            return;
        }
        let blocks: Option<Vec<Block>> = blocks
            .iter()
            .map(|&b| self.blocks.get(b as usize).cloned())
            .collect();
        let files: Option<Vec<Source>> = files
            .iter()
            .map(|&f| self.sources.get(f as usize).cloned())
            .collect();
        let set = blocks.zip(files).map(|(blocks, files)| {
            let before = before.then(|| {
                let sources = blocks.iter().map(|b| &b.source).chain(&files);
                let lines = sources.filter_map(|s| Some((s.clone(), self.early.get(s)?.clone())));
                Arc::new(lines.collect())
            });
            Arc::new(DepSet {
                blocks,
                files,
                before,
            })
        });
        self.sets.push(set);
    }

    /// A test's sets by number, or `None` if any is unknown.
    pub(super) fn deps(&self, numbers: &[u32]) -> Option<Deps> {
        if self.broken || numbers.is_empty() {
            return None;
        }
        numbers
            .iter()
            .map(|&n| self.sets.get(n as usize).cloned().flatten())
            .collect::<Option<Vec<_>>>()
            .map(Deps)
    }

    fn next(&mut self, n: u32, len: usize) -> bool {
        if n as usize != len {
            self.broken = true;
        }
        !self.broken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> Declared {
        let mut d = Declared::default();
        d.source(0, "src/a.py".into(), "s0".into(), vec![1, 3]);
        d.source(1, "data.txt".into(), "".into(), vec![]);
        d.block(0, 0, "f".into());
        d.block(1, 0, "<module>".into());
        d.set(0, &[0], &[1], false);
        d.set(1, &[0, 1], &[], true);
        d
    }

    #[test]
    fn a_finish_names_sets_that_resolve_to_blocks_and_files() {
        let d = declared();
        let deps = d.deps(&[0, 1]).expect("declared");
        assert_eq!(deps.0.len(), 2);
        assert_eq!(&*deps.0[0].blocks[0].name, "f");
        assert_eq!(&*deps.0[0].blocks[0].source.path, "src/a.py");
        assert_eq!(&*deps.0[0].files[0].path, "data.txt");
        assert_eq!(deps.0[1].blocks.len(), 2);
        assert!(deps.0[0].before.is_none(), "what the test ran");
        let before = deps.0[1]
            .before
            .as_ref()
            .expect("what ran before the tests");
        let lines: Vec<(&str, &[u32])> = before.iter().map(|(s, l)| (&*s.path, &**l)).collect();
        assert_eq!(
            lines,
            [("src/a.py", &[1, 3][..])],
            "with its sources' lines"
        );
    }

    #[test]
    fn an_unknown_number_or_a_declaration_out_of_order_leaves_no_record() {
        let d = declared();
        assert_eq!(d.deps(&[0, 2]), None);
        assert_eq!(d.deps(&[]), None);
        let mut d = declared();
        d.set(2, &[7], &[], false);
        assert_eq!(d.deps(&[2]), None, "a set naming an undeclared block");
        assert!(d.deps(&[0]).is_some(), "the sets before it stand");
        let mut d = declared();
        d.source(5, "b.py".into(), "s".into(), vec![]);
        assert_eq!(d.deps(&[0]), None, "out of order: nothing is trusted");
    }
}
