//! RFC 3339 text of a UTC instant given in milliseconds since the Unix epoch. One file,
//! used by the host (`clock`) and, by path, by the built-in plugins (`plugins/shared`), so
//! `run.jsonl` and a failure bundle write a time the same way. No dependencies.

/// The last instant RFC 3339 can write: 9999-12-31T23:59:59.999Z.
pub(crate) const LAST_MS: u64 = 253_402_300_799_999;

/// `2026-11-26T04:30:54.123Z`. A later instant than [`LAST_MS`] is written as that one.
pub(crate) fn rfc3339_millis(ms: u64) -> [u8; 24] {
    let ms = ms.min(LAST_MS);
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's civil_from_days).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    let digit = |v: u64| b'0' + (v % 10) as u8;
    let (h, min, s, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    [
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        b'-',
        digit(m / 10),
        digit(m),
        b'-',
        digit(d / 10),
        digit(d),
        b'T',
        digit(h / 10),
        digit(h),
        b':',
        digit(min / 10),
        digit(min),
        b':',
        digit(s / 10),
        digit(s),
        b'.',
        digit(milli / 100),
        digit(milli / 10),
        digit(milli),
        b'Z',
    ]
}
