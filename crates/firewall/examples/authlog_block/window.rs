//! Failures per address in a sliding window. Pure: time is passed in (`Instant` of arrival).
//!
//! Each address keeps at most its last `limit` failure times, so memory is bounded by
//! `addresses x limit`, and [`Failures::prune`] forgets addresses whose newest failure left the
//! window.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Counts failures; says when an address reaches `limit` within `window`.
pub struct Failures {
    limit: usize,
    window: Duration,
    seen: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Failures {
    /// `limit` is at least 1.
    pub fn new(limit: usize, window: Duration) -> Failures {
        Failures {
            limit: limit.max(1),
            window,
            seen: HashMap::new(),
        }
    }

    /// Records a failure of `addr` at `now`. Returns true when it is the `limit`-th within
    /// `window`; the address's history is then cleared, so it takes another `limit` failures to
    /// trigger again.
    pub fn record(&mut self, addr: IpAddr, now: Instant) -> bool {
        let times = self.seen.entry(addr).or_default();
        times.push_back(now);
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.window)
            || times.len() > self.limit
        {
            times.pop_front();
        }
        if times.len() >= self.limit {
            self.seen.remove(&addr);
            true
        } else {
            false
        }
    }

    /// Forgets addresses with no failure within `window` before `now`.
    pub fn prune(&mut self, now: Instant) {
        self.seen.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) <= self.window)
        });
    }

    /// Addresses currently tracked.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn limit_within_window_triggers_once() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut f = Failures::new(3, s(60));
        assert!(!f.record(A, t0));
        assert!(!f.record(B, t0));
        assert!(!f.record(A, t0 + s(10)));
        assert!(f.record(A, t0 + s(20)));
        // Cleared: the next two do not trigger again.
        assert!(!f.record(A, t0 + s(21)));
        assert!(!f.record(A, t0 + s(22)));
        assert!(!f.record(B, t0 + s(30)));
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut f = Failures::new(3, s(60));
        f.record(A, t0);
        f.record(A, t0 + s(30));
        assert!(
            !f.record(A, t0 + s(61)),
            "the first one is out of the window"
        );
        assert!(f.record(A, t0 + s(62)));
        f.record(B, t0);
        f.prune(t0 + s(59));
        assert_eq!(f.tracked(), 1);
        f.prune(t0 + s(61));
        assert_eq!(f.tracked(), 0);
    }
}
