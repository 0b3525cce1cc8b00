//! What the built-in plugins share: the WIT `types` interface, generated once (each
//! plugin's `generate!` maps `mtest:plugin/types` here with `with`), and the words the
//! reporters use for outcomes.

wit_bindgen::generate!({
    inline: "package mtest:shared; world shared { import mtest:plugin/types@0.6.0; }",
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

#[path = "../../../crates/mtest-model/src/civil.rs"]
mod civil;

/// Milliseconds since the Unix epoch as RFC 3339 text, `2026-11-26T17:29:05.123Z`, the
/// form `run.jsonl` writes (the host's own code for it); `""` for no time.
pub fn rfc3339(ms: Option<u64>) -> String {
    ms.map(|ms| String::from_utf8_lossy(&civil::rfc3339_millis(ms)).into_owned())
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_matches_run_jsonl() {
        assert_eq!(
            super::rfc3339(Some(1_764_131_454_123)),
            "2025-11-26T04:30:54.123Z"
        );
        assert_eq!(super::rfc3339(Some(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(Some(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(super::rfc3339(None), "");
    }
}
