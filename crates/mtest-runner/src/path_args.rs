//! The path arguments of a chunk's pytest command.
//!
//! pytest collects a directory argument much faster than the same files listed one by one
//! (100 file arguments cost ~0.5 s more here), so a directory whose every collected file
//! is in the chunk is passed as the directory, and a chunk holding every collected file
//! passes no path at all: exactly the invocation that collected them.

use std::collections::{BTreeSet, HashMap};

/// `universe`: every file the collection found tests in. `chunk`: the chunk's files.
pub(crate) fn path_args(chunk: &[&str], universe: &BTreeSet<String>) -> Vec<String> {
    let chunk_set: BTreeSet<&str> = chunk.iter().copied().collect();
    if universe.iter().all(|f| chunk_set.contains(f.as_str())) {
        return Vec::new();
    }
    // Files under each directory: in the universe, and in this chunk.
    let mut total: HashMap<&str, usize> = HashMap::new();
    for f in universe {
        for dir in ancestors(f) {
            *total.entry(dir).or_default() += 1;
        }
    }
    let mut mine: HashMap<&str, usize> = HashMap::new();
    for f in &chunk_set {
        for dir in ancestors(f) {
            *mine.entry(dir).or_default() += 1;
        }
    }
    let complete = |dir: &str| mine.get(dir).is_some_and(|m| total.get(dir) == Some(m));
    let mut args: BTreeSet<String> = BTreeSet::new();
    for f in &chunk_set {
        // The highest complete ancestor, else the file itself.
        let top = ancestors(f).into_iter().rev().find(|d| complete(d));
        args.insert(top.unwrap_or(f).to_string());
    }
    args.into_iter().collect()
}

/// `a/b/c.py` → [`a/b`, `a`] (nearest first). Top-level files have none.
fn ancestors(file: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = file;
    while let Some(i) = rest.rfind('/') {
        rest = &rest[..i];
        if !rest.is_empty() {
            out.push(rest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[&str]) -> BTreeSet<String> {
        files.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn everything_means_no_paths() {
        let u = set(&["tests/a.py", "tests/b.py"]);
        assert!(path_args(&["tests/b.py", "tests/a.py"], &u).is_empty());
    }

    #[test]
    fn complete_directories_replace_their_files() {
        let u = set(&[
            "tests/unit/a.py",
            "tests/unit/b.py",
            "tests/int/c.py",
            "tests/int/d.py",
            "top.py",
        ]);
        assert_eq!(
            path_args(
                &["tests/unit/a.py", "tests/unit/b.py", "tests/int/c.py"],
                &u
            ),
            vec!["tests/int/c.py", "tests/unit"]
        );
        assert_eq!(
            path_args(
                &[
                    "tests/unit/a.py",
                    "tests/unit/b.py",
                    "tests/int/c.py",
                    "tests/int/d.py"
                ],
                &u
            ),
            vec!["tests"]
        );
        assert_eq!(path_args(&["top.py"], &u), vec!["top.py"]);
    }
}
