//! `--report` and `--quarantine`: what the store says, for humans.

use std::path::Path;

use crate::store::quarantine::Quarantine;
use crate::store::{self, Gates, Loaded};
use crate::Exit;

pub fn report(root: &Path) -> Exit {
    let path = Gates::new(root).last_run().join("summary.md");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            print!("{text}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!(
                "error: no report to show: {}: {e}; run `mtest` first",
                path.display()
            );
            Exit::Usage
        }
    }
}

pub fn quarantine(root: &Path) -> Exit {
    let gates = Gates::new(root);
    let q = match store::read_json::<Quarantine>(&gates.quarantine()) {
        Ok(Loaded::Ok(q)) => q,
        Ok(Loaded::Missing) => Quarantine::default(),
        Ok(Loaded::Corrupt { why, aside }) => {
            eprintln!(
                "error: {} is corrupt ({why}); moved to {}",
                gates.quarantine().display(),
                aside.display()
            );
            return Exit::Usage;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    if q.tests.is_empty() {
        println!("No tests are quarantined.");
        return Exit::Ok;
    }
    println!("{} quarantined test(s):", q.tests.len());
    for (id, entry) in &q.tests {
        println!(
            "  {id}\n    since {} ({}: {})",
            entry.since, entry.by, entry.reason
        );
    }
    Exit::Ok
}
