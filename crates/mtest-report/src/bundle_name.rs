//! File names for failure bundles. Any node id (`[../../x]`, unicode, 300 characters)
//! maps to one name that stays inside `failures/` and differs from every other id's.

/// `tests_test_x.py__test_a_1_-3f2a9c1b.txt`: a readable, filesystem-safe prefix of the id
/// plus 8 hex digits of its blake3 hash (which is what makes it unique).
pub(crate) fn bundle_name(test_id: &str, attempt: u32) -> String {
    let mut safe = String::new();
    for c in test_id.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            c
        } else {
            '_'
        };
        if !(c == '_' && safe.ends_with("__")) {
            safe.push(c);
        }
        if safe.len() >= 80 {
            break;
        }
    }
    // No leading dots: never `.`, `..` or a hidden file.
    let safe = safe.trim_start_matches(['.', '_']);
    let hash = blake3::hash(test_id.as_bytes()).to_hex();
    let attempt = if attempt > 1 {
        format!("-attempt{attempt}")
    } else {
        String::new()
    };
    format!("{safe}-{}{attempt}.txt", &hash[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_short_and_unique() {
        let ids = [
            "tests/test_x.py::test_a".to_string(),
            "tests/test_x.py::test_a[../../x]".to_string(),
            "tests/test_x.py::test_a[..\\..\\x]".to_string(),
            "tests/test_ü.py::test_ünïcödé[ß]".to_string(),
            format!("tests/test_long.py::test_{}", "x".repeat(300)),
            format!("tests/test_long.py::test_{}y", "x".repeat(300)),
            "../../etc/passwd".to_string(),
            "..".to_string(),
        ];
        let names: Vec<String> = ids.iter().map(|id| bundle_name(id, 1)).collect();
        for name in &names {
            assert!(!name.contains('/') && !name.contains('\\'), "{name}");
            assert!(!name.starts_with('.'), "{name}");
            assert!(name.len() <= 100, "{name}");
            assert!(name.is_ascii(), "{name}");
        }
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert!(
            names[0].starts_with("tests_test_x.py__test_a-"),
            "{}",
            names[0]
        );
        assert_ne!(bundle_name("t", 1), bundle_name("t", 2));
    }
}
