//! `mtest --quarantine`, `mtest quarantine release ID`, `mtest quarantine add ID`.

use std::path::Path;

use crate::clock;
use crate::store::durations::Durations;
use crate::store::quarantine::{Entry, Quarantine};
use crate::store::{self, lock, Gates, Loaded};
use crate::Exit;

use super::Stop;

fn load(gates: &Gates) -> Result<Quarantine, Stop> {
    match store::read_json::<Quarantine>(&gates.quarantine())? {
        Loaded::Ok(q) => Ok(q),
        Loaded::Missing => Ok(Quarantine::default()),
        Loaded::Corrupt { why, aside } => Err(Stop::usage(format!(
            "{} is corrupt ({why}); moved to {}",
            gates.quarantine().display(),
            aside.display()
        ))),
    }
}

/// The table: test, since, by whom and why, failures among its last 5 runs, and passes in
/// a row (the built-in policy releases a test after 3).
pub fn show(root: &Path) -> Exit {
    let gates = Gates::new(root);
    let q = match load(&gates) {
        Ok(q) => q,
        Err(stop) => return stop.report(),
    };
    if q.tests.is_empty() {
        println!("No tests are quarantined.");
        return Exit::Ok;
    }
    let durations = match store::read_json::<Durations>(&gates.durations()) {
        Ok(Loaded::Ok(d)) => d,
        _ => Durations::default(),
    };
    let rows: Vec<[String; 5]> = q
        .tests
        .iter()
        .map(|(id, e)| {
            let (failures, streak) = match durations.tests.get(id) {
                Some(h) => {
                    let runs = h.outcomes.len().min(5);
                    let streak = h
                        .outcomes
                        .iter()
                        .rev()
                        .filter(|o| **o != crate::record::Outcome::Skipped)
                        .take_while(|o| !o.is_failure())
                        .count();
                    (format!("{}/{runs}", h.recent_failures()), streak)
                }
                None => ("-".into(), 0),
            };
            let needed = 3usize.saturating_sub(streak);
            [
                id.clone(),
                e.since.clone(),
                failures,
                format!("{streak} (needs {needed} more)"),
                format!("{}: {}", e.by, e.reason),
            ]
        })
        .collect();
    let header = ["TEST", "SINCE", "FAILURES", "PASSES IN A ROW", "WHY"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let print = |cells: [&str; 5]| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    };
    print(header);
    for r in &rows {
        print([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    Exit::Ok
}

fn change(root: &Path, edit: impl FnOnce(&mut Quarantine) -> Result<String, Stop>) -> Exit {
    let changed = || -> Result<String, Stop> {
        let gates = Gates::new(root);
        let _lock = lock::acquire(&gates.dir)?;
        let mut q = load(&gates)?;
        let message = edit(&mut q)?;
        q.schema_version = 1;
        store::atomic_write_json(&gates.quarantine(), &q)?;
        Ok(message)
    };
    match changed() {
        Ok(message) => {
            println!("{message}");
            Exit::Ok
        }
        Err(stop) => stop.report(),
    }
}

pub fn release(root: &Path, test_id: &str) -> Exit {
    change(root, |q| match q.tests.remove(test_id) {
        Some(_) => Ok(format!("released {test_id} from quarantine")),
        None => Err(Stop::usage(format!(
            "{test_id} is not quarantined; `mtest --quarantine` lists the ones that are"
        ))),
    })
}

pub fn add(root: &Path, test_id: &str, reason: &str) -> Exit {
    change(root, |q| {
        if q.contains(test_id) {
            return Err(Stop::usage(format!("{test_id} is already quarantined")));
        }
        let entry = Entry {
            since: clock::now(),
            reason: reason.to_string(),
            by: "manual".into(),
        };
        q.tests.insert(test_id.to_string(), entry);
        Ok(format!(
            "quarantined {test_id}: its failures no longer fail runs (it still runs)"
        ))
    })
}
