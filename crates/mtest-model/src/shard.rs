//! `--shard K/N`: one machine's part of a run spread over N machines. The selection plugin
//! partitions the tests (every shard computes the same partition from the same inputs);
//! `mtest merge` puts the shards' `.gates/` back together as one run.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shard `index` (1 to `count`) of `count`. Written `K/N`, in `state.json` and in
/// `run.jsonl` records too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = crate::BadValue;

    fn from_str(s: &str) -> Result<Self, crate::BadValue> {
        let bad = || {
            crate::BadValue(format!(
                "--shard {s:?}: expected K/N with 1 <= K <= N, e.g. 2/4"
            ))
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a shard's `state.json` says about the partition it ran, for `mtest merge`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ShardPlan {
    pub shard: Shard,
    /// A digest of everything the partition depends on (the tests of the chosen tiers,
    /// their estimates and keys, the selector, N): shards of one run have the same.
    pub plan: String,
    /// Tests of the chosen tiers, in all shards together.
    pub eligible: usize,
    /// Of those, the tests the selector gave this shard (selected, or left out by the
    /// budget).
    pub own: usize,
}

/// The `key` of a test in the selection request: a hash of its node id, the same on every
/// machine whatever the collection order.
pub fn key(test_id: &str) -> u64 {
    let hash = blake3::hash(test_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_of_n_parses_and_prints_and_refuses_nonsense() {
        let s: Shard = "2/4".parse().unwrap();
        assert_eq!(s, Shard { index: 2, count: 4 });
        assert_eq!(s.to_string(), "2/4");
        for bad in ["0/4", "5/4", "2", "a/b", "2/0", "-1/3"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.0.contains("expected K/N"), "{bad}: {err}");
        }
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"2/4\"");
        assert_eq!(serde_json::from_str::<Shard>("\"3/4\"").unwrap().index, 3);
    }

    #[test]
    fn a_key_depends_on_the_node_id_alone() {
        assert_eq!(
            key("tests/test_a.py::test_x"),
            key("tests/test_a.py::test_x")
        );
        assert_ne!(
            key("tests/test_a.py::test_x"),
            key("tests/test_a.py::test_y")
        );
    }
}
