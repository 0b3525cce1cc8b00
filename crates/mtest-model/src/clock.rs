//! Wall-clock timestamps (RFC 3339, UTC) and durations: given by users, from pytest or a
//! plugin (checked, never a panic), and shown to people.

use crate::BadValue;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-11-26T04:30:54.123Z`
pub fn rfc3339(t: SystemTime) -> String {
    let mut text = Vec::with_capacity(24);
    Stamp::at(t).write(&mut text);
    String::from_utf8(text).unwrap_or_default()
}

pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// A record's wall-clock time, to the millisecond: RFC 3339 text in `run.jsonl`
/// (`2026-11-26T04:30:54.123Z`), milliseconds since the Unix epoch for plugins. Kept as a
/// number, so the text is made only where it is written. A record whose text is not a
/// time (written by hand, or damaged) has none, and is written back with `""`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(Option<u64>);

impl Stamp {
    /// A time before the epoch is the epoch; one after the year 9999 is its last instant
    /// (a nonsense timestamp from pytest or a plugin, never a panic).
    pub fn at(t: SystemTime) -> Stamp {
        let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        Stamp(Some(
            u64::try_from(ms)
                .unwrap_or(u64::MAX)
                .min(crate::civil::LAST_MS),
        ))
    }

    pub fn now() -> Stamp {
        Stamp::at(SystemTime::now())
    }

    /// Milliseconds since the Unix epoch.
    pub fn ms(self) -> Option<u64> {
        self.0
    }

    fn parse(text: &str) -> Stamp {
        let ms = humantime::parse_rfc3339_weak(text)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_millis()).ok());
        Stamp(ms)
    }

    /// The RFC 3339 text, `2026-11-26T04:30:54.123Z`, into `out` (24 bytes; nothing
    /// without a time).
    pub(crate) fn write(self, out: &mut Vec<u8>) {
        let Some(ms) = self.0 else {
            return;
        };
        out.extend_from_slice(&crate::civil::rfc3339_millis(ms));
    }
}

impl serde::Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = Vec::with_capacity(32);
        self.write(&mut text);
        s.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

impl<'de> serde::Deserialize<'de> for Stamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Stamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Stamp::parse(&text))
    }
}

/// Parses `90s`, `5m`, `1h30m`, `2h`, `1m30s` (humantime's forms), or plain seconds (`45`).
pub fn parse_duration(spec: &str) -> Result<Duration, BadValue> {
    let spec = spec.trim();
    if let Ok(secs) = spec.parse::<f64>() {
        return checked_secs(secs).map_err(|e| BadValue(format!("{spec:?}: {e}")));
    }
    let d = humantime::parse_duration(spec).map_err(|_| {
        BadValue(format!(
            "{spec:?}: expected a duration like 90s, 5m or 1h30m"
        ))
    })?;
    checked_secs(d.as_secs_f64()).map_err(|e| BadValue(format!("{spec:?}: {e}")))
}

/// The longest duration mtest takes from a user: a year.
pub const MAX_SECS: f64 = 365.0 * 86_400.0;

/// A user-given number of seconds, checked: more than zero, at most a year.
pub fn checked_secs(secs: f64) -> Result<Duration, BadValue> {
    if !(secs.is_finite() && secs > 0.0) {
        return Err(BadValue(format!(
            "expected a number of seconds above 0, not {secs}"
        )));
    }
    if secs > MAX_SECS {
        return Err(BadValue(format!(
            "{secs} seconds is more than a year, the most mtest accepts"
        )));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| BadValue(format!("{secs} seconds: {e}")))
}

/// Seconds from pytest or a plugin as a duration that cannot panic: NaN and negatives are
/// zero, anything above a year is a year.
pub fn secs(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs.min(MAX_SECS)).unwrap_or(Duration::ZERO)
}

/// A Unix timestamp (seconds, as Python's `time.time()`) as a time; nonsense is the epoch.
pub fn epoch(t: f64) -> SystemTime {
    Duration::try_from_secs_f64(t)
        .ok()
        .and_then(|d| UNIX_EPOCH.checked_add(d))
        .unwrap_or(UNIX_EPOCH)
}

/// `4.2s`, `3m05s`, `1h02m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{}h{:02}m", (s / 3600.0) as u64, (s % 3600.0 / 60.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_131_454_123);
        assert_eq!(rfc3339(t), "2025-11-26T04:30:54.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn stamps_are_rfc3339_text_and_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_131_454_123);
        let stamp = Stamp::at(t);
        assert_eq!(stamp.ms(), Some(1_764_131_454_123));
        let text = serde_json::to_string(&stamp).unwrap();
        assert_eq!(text, r#""2025-11-26T04:30:54.123Z""#);
        assert_eq!(serde_json::from_str::<Stamp>(&text).unwrap(), stamp);
        // Older records (seconds only) and nonsense: read, never refused.
        let whole: Stamp = serde_json::from_str(r#""2025-11-26T04:30:54Z""#).unwrap();
        assert_eq!(whole.ms(), Some(1_764_131_454_000));
        let none: Stamp = serde_json::from_str(r#""not a time""#).unwrap();
        assert_eq!(none.ms(), None);
        assert_eq!(serde_json::to_string(&none).unwrap(), r#""""#);
        assert_eq!(Stamp::at(UNIX_EPOCH - Duration::from_secs(5)).ms(), Some(0));
        // Written as humantime writes it, every day of four centuries and a few instants.
        for day in 0..146_097u64 * 4 {
            for ms in [0, 1, 86_399_999, 45_296_789] {
                let t = UNIX_EPOCH + Duration::from_millis(day * 86_400_000 + ms);
                let mut text = Vec::new();
                Stamp::at(t).write(&mut text);
                assert_eq!(
                    String::from_utf8(text).unwrap(),
                    humantime::format_rfc3339_millis(t).to_string()
                );
            }
        }
        // Past the year 9999 (RFC 3339's last), nonsense from pytest: its last instant.
        // (The year 11476: within every system's SystemTime, Windows's ending in 30828.)
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        let mut text = Vec::new();
        Stamp::at(far).write(&mut text);
        assert_eq!(String::from_utf8(text).unwrap(), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_budgets() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e30").is_err());
        assert!(parse_duration("1e30s").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(parse_duration("-5").is_err());
    }

    #[test]
    fn seconds_from_anywhere_never_panic() {
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(-1.0), Duration::ZERO);
        assert_eq!(secs(1e30), Duration::from_secs(365 * 86_400));
        assert_eq!(secs(1.5), Duration::from_millis(1500));
        assert_eq!(epoch(f64::INFINITY), UNIX_EPOCH);
        assert_eq!(epoch(1e300), UNIX_EPOCH);
        assert!(checked_secs(1e30).is_err());
        assert!(checked_secs(0.0).is_err());
        assert!(checked_secs(f64::NAN).is_err());
        assert_eq!(checked_secs(2.0), Ok(Duration::from_secs(2)));
    }
}
