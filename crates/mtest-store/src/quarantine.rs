//! `quarantine.json`: which tests are quarantined, since when and why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub struct Quarantine {
    pub schema_version: u32,
    pub tests: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Entry {
    /// RFC 3339.
    pub since: String,
    pub reason: String,
    /// `policy` (the quarantine plugin) or `manual` (`mtest quarantine add`).
    pub by: String,
}

impl Quarantine {
    pub fn contains(&self, test_id: &str) -> bool {
        self.tests.contains_key(test_id)
    }
}
