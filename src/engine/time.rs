//! Points in time as plain numbers: capture time in replay, wall-clock time live.
//!
//! The pure core never reads the clock; it is handed a [`Timestamp`]. Timestamps from capture
//! files can be absurd (negative, or near 2^64 µs), so every conversion saturates and every
//! difference is checked: nothing here overflows or panics.

use std::fmt;
use std::time::Duration;

/// Microseconds since the Unix epoch. Saturates at 0 and at `u64::MAX`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From a `timeval`-like pair as libpcap reports it; `frac` is µs, or ns when `nanos`.
    pub fn from_parts(secs: i64, frac: i64, nanos: bool) -> Timestamp {
        if secs < 0 {
            return Timestamp(0);
        }
        let sub = if nanos { frac / 1000 } else { frac };
        let sub = u64::try_from(sub.clamp(0, 999_999)).unwrap_or(0);
        let micros = (secs as u64).saturating_mul(1_000_000).saturating_add(sub);
        Timestamp(micros)
    }

    /// From a duration since the Unix epoch (the wall clock, read at the edges).
    pub fn from_unix(d: Duration) -> Timestamp {
        Timestamp(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// From whole seconds since the epoch (saturating).
    pub fn from_secs(secs: u64) -> Timestamp {
        Timestamp(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub fn as_secs(self) -> u64 {
        self.0 / 1_000_000
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let add = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(add))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        let sub = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(sub))
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-24T10:00:00.123Z`. Years past 9999 are
/// printed as they are (capture files can hold them); nothing panics.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000;
        let millis = (self.0 % 1_000_000) / 1000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_millis() {
        let t = Timestamp(1_795_514_400_123_456);
        assert_eq!(t.to_string(), "2026-11-24T10:00:00.123Z");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn absurd_times_saturate() {
        assert_eq!(Timestamp::from_parts(-5, 10, false), Timestamp(0));
        let huge = Timestamp::from_parts(i64::MAX, 999_999, false);
        assert_eq!(huge, Timestamp(u64::MAX));
        let _ = huge.to_string();
        assert_eq!(huge.saturating_add(Duration::from_secs(10)), huge);
        assert_eq!(Timestamp(5).since(Timestamp(10)), Duration::ZERO);
    }

    #[test]
    fn nanosecond_parts() {
        assert_eq!(Timestamp::from_parts(1, 1_500, true), Timestamp(1_000_001));
    }
}
