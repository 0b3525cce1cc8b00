//! What the built-in plugins share: the WIT `types` interface, generated once (each
//! plugin's `generate!` maps `mtest:plugin/types` here with `with`), and the words the
//! reporters use for outcomes.

wit_bindgen::generate!({
    inline: "package mtest:shared; world shared { import mtest:plugin/types@0.1.0; }",
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
