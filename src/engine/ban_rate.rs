//! The new-ban rate limit (`max_new_bans_per_sec`), on passed-in time (pure).
//!
//! governor's GCRA with a fake clock that the engine moves forward with `now`, so replay and
//! live capture limit the same way. Steps are clamped (a capture that jumps years ahead simply
//! refills the bucket) so the clock can never overflow.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::time::Timestamp;

/// Longest single step of the fake clock; anything longer refills the bucket anyway.
const MAX_STEP: Duration = Duration::from_secs(3600);
/// Restart the fake clock before its nanosecond counter could overflow (~584 years).
const MAX_TOTAL: Duration = Duration::from_secs(100 * 365 * 86_400);

type Limiter =
    RateLimiter<NotKeyed, InMemoryState, FakeRelativeClock, NoOpMiddleware<governor::nanos::Nanos>>;

pub struct BanRate {
    quota: Quota,
    clock: FakeRelativeClock,
    limiter: Limiter,
    last: Option<Timestamp>,
    total: Duration,
}

impl BanRate {
    /// `per_sec` new bans per second, with a burst of the same size; 0 is treated as 1.
    pub fn new(per_sec: u32) -> BanRate {
        BanRate::with_burst(per_sec, per_sec)
    }

    /// `per_sec` new bans per second, with a burst of `burst` (at least `per_sec`); 0 is
    /// treated as 1.
    pub fn with_burst(per_sec: u32, burst: u32) -> BanRate {
        let rate = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN).max(rate);
        let quota = Quota::per_second(rate).allow_burst(burst);
        let clock = FakeRelativeClock::default();
        BanRate {
            quota,
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            last: None,
            total: Duration::ZERO,
        }
    }

    /// True when one more new ban fits within the rate at `now`.
    pub fn allow(&mut self, now: Timestamp) -> bool {
        // Time going back (a clock step, glued captures) is a new reference point: the
        // bucket keeps what it had and refills from there as time moves on.
        let step = match self.last {
            Some(last) => now.since(last).min(MAX_STEP),
            None => Duration::ZERO,
        };
        self.last = Some(now);
        self.total += step;
        if self.total > MAX_TOTAL {
            self.clock = FakeRelativeClock::default();
            self.limiter = RateLimiter::direct_with_clock(self.quota, self.clock.clone());
            self.total = Duration::ZERO;
        } else if !step.is_zero() {
            self.clock.advance(step);
        }
        self.limiter.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_rate_and_refills_with_time() {
        let mut r = BanRate::new(10);
        let t = Timestamp::from_secs(1000);
        let ok = (0..50).filter(|_| r.allow(t)).count();
        assert_eq!(ok, 10, "a burst of the per-second size");
        let later = t.saturating_add(Duration::from_millis(500));
        let ok = (0..50).filter(|_| r.allow(later)).count();
        assert_eq!(ok, 5, "half a second refills half");
    }

    #[test]
    fn a_larger_burst_refills_at_the_same_rate() {
        let mut r = BanRate::with_burst(10, 100);
        let t = Timestamp::from_secs(1000);
        assert_eq!((0..500).filter(|_| r.allow(t)).count(), 100);
        let later = t.saturating_add(Duration::from_millis(500));
        assert_eq!((0..50).filter(|_| r.allow(later)).count(), 5);
    }

    #[test]
    fn huge_jumps_and_time_going_back_are_safe() {
        let mut r = BanRate::new(2);
        for t in [0, u64::MAX, 5, u64::MAX / 2, u64::MAX] {
            r.allow(Timestamp(t));
        }
        for i in 0..200_000u64 {
            r.allow(Timestamp(i * 3_600_000_000 * 24 * 365));
        }
    }
}

#[cfg(test)]
mod clock_step_tests {
    use super::*;
    #[test]
    fn refills_after_time_goes_back() {
        let mut r = BanRate::new(2);
        let t = Timestamp::from_secs(10_000);
        assert_eq!((0..10).filter(|_| r.allow(t)).count(), 2);
        // One hour back, then 100 s of time passing: should refill.
        let mut ok = 0;
        for s in 0..100 {
            ok += usize::from(r.allow(Timestamp::from_secs(6_400 + s)));
        }
        assert!(
            ok >= 50,
            "only {ok} allowed in 100 s after the clock went back"
        );
    }
}
