//! What the built-in plugins share: the WIT `types` interface, generated once (each
//! plugin's `generate!` maps `mtest:plugin/types` here with `with`), and the words the
//! reporters use for outcomes.

wit_bindgen::generate!({
    inline: "package mtest:shared; world shared { import mtest:plugin/types@0.2.0; }",
    path: "../../wit",
    generate_all,
});

pub use mtest::plugin::types;
use types::Outcome;

/// Every outcome, in the order summaries list them.
pub const OUTCOMES: [Outcome; 8] = [
    Outcome::Passed,
    Outcome::Failed,
    Outcome::Error,
    Outcome::Skipped,
    Outcome::Xfailed,
    Outcome::Xpassed,
    Outcome::Hung,
    Outcome::Crashed,
];

/// `passed`, `failed`, …: the outcome as run.jsonl spells it.
pub fn name(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Error => "error",
        Outcome::Skipped => "skipped",
        Outcome::Xfailed => "xfailed",
        Outcome::Xpassed => "xpassed",
        Outcome::Hung => "hung",
        Outcome::Crashed => "crashed",
    }
}

/// Failed, error, hung or crashed: what fails a run.
pub fn is_failure(o: Outcome) -> bool {
    matches!(
        o,
        Outcome::Failed | Outcome::Error | Outcome::Hung | Outcome::Crashed
    )
}

/// Text for a Markdown table cell: no `|`, no line breaks.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The slowest `N` of a run, longest first: `(seconds, what)`.
pub struct Slowest<T, const N: usize> {
    items: Vec<(f64, T)>,
}

impl<T, const N: usize> Default for Slowest<T, N> {
    fn default() -> Self {
        Slowest { items: Vec::new() }
    }
}

impl<T, const N: usize> Slowest<T, N> {
    /// Offers one; `what` is made only when it is kept.
    pub fn offer(&mut self, secs: f64, what: impl FnOnce() -> T) {
        if self.items.len() < N || self.items.last().is_some_and(|(d, _)| secs > *d) {
            self.items.push((secs, what()));
            self.items.sort_by(|a, b| b.0.total_cmp(&a.0));
            self.items.truncate(N);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(f64, T)> {
        self.items.iter()
    }
}

impl<const N: usize> Slowest<String, N> {
    /// A Markdown section `heading` with a `| test | duration |` table; nothing when empty.
    pub fn markdown(&self, heading: &str) -> String {
        if self.items.is_empty() {
            return String::new();
        }
        let mut md = format!("\n{heading}\n\n| test | duration |\n|---|---:|\n");
        for (d, id) in &self.items {
            md.push_str(&format!("| `{}` | {d:.3}s |\n", cell(id)));
        }
        md
    }
}
