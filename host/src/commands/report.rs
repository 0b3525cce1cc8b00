//! `--report`: the last run's summary.md.

use std::path::Path;

use crate::store::Gates;
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
