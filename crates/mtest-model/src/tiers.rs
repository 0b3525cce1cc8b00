//! The 13-marker taxonomy and its four tiers (see the README's tier table).

/// Marker → tier, in the order the selection plugin sees the marker names.
pub const TAXONOMY: [(&str, u8); 13] = [
    ("smoke", 0),
    ("contract", 1),
    ("property", 1),
    ("regression", 1),
    ("fuzz", 1),
    ("integration", 1),
    ("concurrency", 2),
    ("conformance", 2),
    ("use_case", 2),
    ("perf", 3),
    ("stress", 3),
    ("e2e", 3),
    ("slow", 3),
];

/// Tier of a test from its markers: `smoke` makes it tier 0 whatever else it carries
/// (a smoke test is by definition one to run first); otherwise the highest tier among its
/// taxonomy markers (an `integration` + `slow` test is nightly); unmarked tests are tier 1.
pub fn tier_of<S: AsRef<str>>(markers: &[S]) -> u8 {
    let tiers: Vec<u8> = markers
        .iter()
        .filter_map(|m| {
            TAXONOMY
                .iter()
                .find(|(name, _)| *name == m.as_ref())
                .map(|(_, t)| *t)
        })
        .collect();
    if tiers.contains(&0) {
        0
    } else {
        tiers.into_iter().max().unwrap_or(1)
    }
}

/// Parses `--tier`: `2`, `0-2`, `1,3`, `0-1,3`. Returns a bit set of tiers 0..=3.
pub fn parse_tiers(spec: &str) -> Result<u8, crate::BadValue> {
    let bad = || {
        crate::BadValue(format!(
            "--tier {spec:?}: expected tiers 0-3 like `0`, `0-2` or `1,3`"
        ))
    };
    let mut set = 0u8;
    for part in spec.split(',').map(str::trim) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.trim(), hi.trim()),
            None => (part, part),
        };
        let lo: u8 = lo.parse().map_err(|_| bad())?;
        let hi: u8 = hi.parse().map_err(|_| bad())?;
        if lo > hi || hi > 3 {
            return Err(bad());
        }
        for t in lo..=hi {
            set |= 1 << t;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_follow_the_taxonomy() {
        assert_eq!(tier_of(&["smoke"]), 0);
        assert_eq!(tier_of(&["smoke", "slow"]), 0);
        assert_eq!(tier_of(&["integration", "slow"]), 3);
        assert_eq!(tier_of(&["use_case"]), 2);
        assert_eq!(tier_of(&["parametrize", "timeout"]), 1);
        assert_eq!(tier_of::<&str>(&[]), 1);
    }

    #[test]
    fn tier_specs_parse_or_say_what_is_expected() {
        assert_eq!(parse_tiers("0"), Ok(0b0001));
        assert_eq!(parse_tiers("0-2"), Ok(0b0111));
        assert_eq!(parse_tiers("1,3"), Ok(0b1010));
        assert_eq!(parse_tiers("0-1, 3"), Ok(0b1011));
        assert!(parse_tiers("4")
            .unwrap_err()
            .0
            .contains("expected tiers 0-3"));
        assert!(parse_tiers("2-1").is_err());
        assert!(parse_tiers("x").is_err());
    }
}
