//! Durations on the command line: a whole number and a unit (`100ms`, `90s`, `10m`, `2h`,
//! `1d`), and back to the shortest such text for messages. Pure.

use std::time::Duration;

/// Units from largest to smallest: suffix and length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses `<whole number><unit>`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("expected a duration such as 90s, 10m, 2h or 1d, found `{text}`");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let ms = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, ms)| *ms)
        .ok_or_else(bad)?;
    let n: u64 = number.parse().map_err(|_| bad())?;
    n.checked_mul(ms).map(Duration::from_millis).ok_or_else(bad)
}

/// The largest unit that divides `d` exactly (`5s`, `10m`, `1500ms`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    for (name, unit) in UNITS {
        let unit = u128::from(unit);
        if ms >= unit && ms.is_multiple_of(unit) {
            return format!("{}{name}", ms / unit);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for text in ["100ms", "5s", "90s", "10m", "2h", "1d", "1500ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        for bad in ["", "10", "s", "1.5s", "10x", "-1s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
