//! Human durations in `rules.toml`: `"100ms"`, `"90s"`, `"10m"`, `"2h"`, `"1d"`, decimals such as
//! `"1.5s"`; and back to the shortest such text for summaries. Exact to the nanosecond: no floats,
//! so `format` then `parse` returns the same `Duration`.

use std::fmt;
use std::time::Duration;

const NANOS_PER_MS: u128 = 1_000_000;
const NANOS_PER_S: u128 = 1_000 * NANOS_PER_MS;

/// Units from largest to smallest: suffix and length in nanoseconds.
const UNITS: [(&str, u128); 5] = [
    ("d", 86_400 * NANOS_PER_S),
    ("h", 3_600 * NANOS_PER_S),
    ("m", 60 * NANOS_PER_S),
    ("s", NANOS_PER_S),
    ("ms", NANOS_PER_MS),
];

/// Most fractional digits accepted ("1.123456789s" is a nanosecond-exact value).
const MAX_FRACTION_DIGITS: usize = 9;

/// A text that is not a duration; the message quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not `<number><unit>`.
    #[error("expected a duration such as 90s, 10m, 2h or 1d, found `{0}`")]
    Malformed(String),
    /// Finer than a nanosecond.
    #[error("`{0}` has more than 9 decimal places")]
    TooPrecise(String),
    /// Beyond what a `Duration` holds.
    #[error("`{0}` is too large")]
    TooLarge(String),
}

/// Parses `<number><unit>` with unit `ms`, `s`, `m`, `h` or `d`; the number may have decimals.
/// Surrounding whitespace is ignored; a fraction below one nanosecond is dropped.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(text.to_owned());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(malformed)?;
    let (number, suffix) = trimmed.split_at(split);
    let unit = UNITS
        .iter()
        .find(|(name, _)| *name == suffix)
        .map(|&(_, nanos)| nanos)
        .ok_or_else(malformed)?;
    let (int_text, frac_text) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_text.is_empty() || !digits_ok(int_text) || !digits_ok(frac_text) {
        return Err(malformed());
    }
    if number.ends_with('.') {
        return Err(malformed());
    }
    if frac_text.len() > MAX_FRACTION_DIGITS {
        return Err(DurationError::TooPrecise(text.to_owned()));
    }
    let too_large = || DurationError::TooLarge(text.to_owned());
    let int: u128 = int_text.parse().map_err(|_| too_large())?;
    let frac: u128 = if frac_text.is_empty() {
        0
    } else {
        frac_text.parse().map_err(|_| malformed())?
    };
    let scale = 10u128.pow(frac_text.len() as u32);
    let nanos = int
        .checked_mul(unit)
        .and_then(|n| n.checked_add(frac * unit / scale))
        .ok_or_else(too_large)?;
    let secs = u64::try_from(nanos / NANOS_PER_S).map_err(|_| too_large())?;
    Ok(Duration::new(secs, (nanos % NANOS_PER_S) as u32))
}

/// The shortest text `parse` reads back as `d`: a whole number of the largest unit that fits
/// ("10m", "100ms"), unless a decimal of at least one unit is shorter ("1.5s" over "1500ms").
pub fn format(d: Duration) -> String {
    Formatted(d).to_string()
}

/// `Display` adapter for [`format()`], handy in `format!` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formatted(pub Duration);

impl fmt::Display for Formatted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        let whole = UNITS
            .iter()
            .find(|(_, unit)| nanos.is_multiple_of(*unit))
            .map(|(name, unit)| format!("{}{name}", nanos / unit));
        let shortest_decimal = UNITS
            .iter()
            .filter(|(_, unit)| nanos >= *unit)
            .filter_map(|(name, unit)| decimal(nanos, *unit).map(|n| format!("{n}{name}")))
            .min_by_key(String::len);
        let best = match (whole, shortest_decimal) {
            (Some(w), Some(d)) if d.len() < w.len() => d,
            (Some(w), _) => w,
            (None, Some(d)) => d,
            // Below a millisecond and not whole: seconds with up to nine decimals are exact.
            (None, None) => format!("{}s", decimal(nanos, NANOS_PER_S).unwrap_or_default()),
        };
        f.write_str(&best)
    }
}

/// `nanos / unit` as an exact decimal with at most nine fractional digits, if there is one.
fn decimal(nanos: u128, unit: u128) -> Option<String> {
    let int = nanos / unit;
    let mut rem = nanos % unit;
    let mut frac = String::new();
    while rem != 0 {
        if frac.len() == MAX_FRACTION_DIGITS {
            return None;
        }
        rem *= 10;
        frac.push(char::from(b'0' + (rem / unit) as u8));
        rem %= unit;
    }
    if frac.is_empty() {
        Some(int.to_string())
    } else {
        Some(format!("{int}.{frac}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("100ms"), Ok(ms(100)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse("0.25h"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1.000000001s"), Ok(Duration::new(1, 1)));
    }

    #[test]
    fn rejects_malformed_with_a_clear_message() {
        for bad in [
            "10x", "", "s", "10", "1.s", ".5s", "1..5s", "-1s", "10 m", "1e3s", "5M",
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!("expected a duration such as 90s, 10m, 2h or 1d, found `{bad}`")
            );
        }
        assert!(matches!(
            parse("1.0000000001s"),
            Err(DurationError::TooPrecise(_))
        ));
        assert!(matches!(
            parse("99999999999999999999999999d"),
            Err(DurationError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_shortest() {
        let cases = [
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(90), "90s"),
            (ms(100), "100ms"),
            (ms(1500), "1.5s"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_secs(36 * 3600), "36h"),
            (Duration::from_secs(10), "10s"),
            (Duration::ZERO, "0s"),
            (Duration::new(1, 1), "1.000000001s"),
            (Duration::from_nanos(1), "0.000000001s"),
        ];
        for (d, want) in cases {
            assert_eq!(format(d), want, "{d:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in 0u64..10_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            proptest::prop_assert_eq!(parse(&format(d)), Ok(d));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,20}") {
            let _ = parse(&text);
        }
    }
}
