//! mtest's policy: the selection and quarantine plugins asked, their answers used.

pub mod quarantine;
pub mod selection;

// The lower crates' modules, named `crate::…` here as in the host.
use mtest_model::{clock, config, record, shard, tiers, FastMap, FastSet};
use mtest_plugin_host as plugin_host;
use mtest_pytest as pytest;
use mtest_store as store;
