//! Window geometry ([`BUCKETS`], [`Span`]: used by the flood detectors) and, test-only, the
//! reference model of the windows: one plain window per rule and source, as the engine counted
//! before the compact tables of `table/`. The property test in `table/tests.rs` checks the
//! tables' decisions against it on random streams.
//!
//! [`RateWindow`] sums packets or bytes over the last `window` with [`BUCKETS`] sub-buckets: the
//! total covers the current partial bucket plus the `BUCKETS - 1` before it, so it never counts
//! anything older than `window` and a burst split across a bucket boundary is still counted
//! whole. [`DistinctWindow`] counts distinct values (ports, addresses) last seen within `window`,
//! keeping at most `cap` of them so memory stays bounded.
//!
//! Time may jump (captures glued together, clocks reset). A jump forward clears stale buckets; a
//! jump backward by more than the window restarts the window instead of looping or overflowing.

/// Sub-buckets per window: the window's resolution is `window / BUCKETS`.
pub const BUCKETS: usize = 8;

/// A counter cell: `u32` for packets (memory), `u64` for bytes (range).
#[cfg(test)]
pub trait Cell: Copy + Default {
    fn add(self, n: u64) -> Self;
    fn get(self) -> u64;
}

#[cfg(test)]
impl Cell for u32 {
    fn add(self, n: u64) -> u32 {
        self.saturating_add(u32::try_from(n).unwrap_or(u32::MAX))
    }
    fn get(self) -> u64 {
        u64::from(self)
    }
}

#[cfg(test)]
impl Cell for u64 {
    fn add(self, n: u64) -> u64 {
        self.saturating_add(n)
    }
    fn get(self) -> u64 {
        self
    }
}

/// Per-window geometry, computed once per rule.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Window length in µs.
    pub window_us: u64,
    /// Sub-bucket width in µs (`window_us / BUCKETS`, at least 1).
    pub bucket_us: u64,
}

impl Span {
    pub fn new(window: std::time::Duration) -> Span {
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX).max(1);
        Span {
            window_us,
            bucket_us: (window_us / BUCKETS as u64).max(1),
        }
    }
}

/// Sum of a quantity over a sliding window.
#[cfg(test)]
#[derive(Clone, Debug, Default)]
pub struct RateWindow<C: Cell> {
    /// Absolute index (`now / bucket_us`) of the newest bucket; valid when `counts` is non-zero.
    head: u64,
    counts: [C; BUCKETS],
}

#[cfg(test)]
impl<C: Cell> RateWindow<C> {
    /// Adds `amount` at `now`; returns the window's total including it.
    pub fn add(&mut self, now_us: u64, span: Span, amount: u64) -> u64 {
        let b = now_us / span.bucket_us;
        let n = BUCKETS as u64;
        if b >= self.head.saturating_add(n) || b.saturating_add(n) <= self.head {
            // Far forward (everything is stale) or far backward (a clock reset): start over.
            self.counts = [C::default(); BUCKETS];
            self.head = b;
        } else if b > self.head {
            for i in self.head + 1..=b {
                self.counts[(i % n) as usize] = C::default();
            }
            self.head = b;
        }
        let cell = &mut self.counts[(b % n) as usize];
        *cell = cell.add(amount);
        self.sum()
    }

    /// The window's total as of `now` (no change).
    pub fn total_at(&self, now_us: u64, span: Span) -> u64 {
        let b = now_us / span.bucket_us;
        let n = BUCKETS as u64;
        if b >= self.head.saturating_add(n) || b.saturating_add(n) <= self.head {
            return 0;
        }
        let lo = self.head.saturating_sub(n - 1).max(b.saturating_sub(n - 1));
        let hi = self.head.min(b);
        (lo..=hi).fold(0u64, |acc, i| {
            acc.saturating_add(self.counts[(i % n) as usize].get())
        })
    }

    fn sum(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |a, c| a.saturating_add(c.get()))
    }
}

/// Distinct values kept inline before spilling to the heap: most sources touch a few ports or
/// addresses, and keeping those inline saves a cache miss per packet.
#[cfg(test)]
const INLINE: usize = 4;

/// Distinct values seen within a sliding window (at bucket resolution, like [`RateWindow`]),
/// exact up to `cap` values.
#[cfg(test)]
#[derive(Clone, Debug, Default)]
pub struct DistinctWindow {
    /// (value, bucket last seen); the first `n` are in use.
    inline: [(u32, u32); INLINE],
    n: u32,
    /// Values beyond the inline ones.
    spill: Vec<(u32, u32)>,
}

/// The bucket of `now` as a wrapping 32-bit number: ages are differences modulo 2^32, so
/// anything from "the future" (after a clock reset) has a huge age and counts as stale.
#[cfg(test)]
fn bucket32(now_us: u64, span: Span) -> u32 {
    (now_us / span.bucket_us) as u32
}

/// Seen within the window, or at most a window ahead (packets slightly out of order across
/// interfaces); anything further ahead is from before a clock reset and is stale.
#[cfg(test)]
fn live(seen: u32, now: u32) -> bool {
    now.wrapping_sub(seen) < BUCKETS as u32 || seen.wrapping_sub(now) < BUCKETS as u32
}

#[cfg(test)]
impl DistinctWindow {
    /// Records `value` at `now`; returns how many distinct values were seen within the window,
    /// at most `cap`. Values beyond `cap` are not stored: the count is already past any
    /// threshold the caller sized `cap` for.
    pub fn add(&mut self, now_us: u64, span: Span, value: u32, cap: usize) -> u64 {
        let b = bucket32(now_us, span);
        let n = self.n as usize;
        let mut found = false;
        let mut alive = 0usize;
        for e in self.inline[..n].iter_mut().chain(self.spill.iter_mut()) {
            if e.0 == value {
                e.1 = b;
                found = true;
            }
            alive += usize::from(live(e.1, b));
        }
        if !found && alive < cap {
            if alive < n + self.spill.len() {
                self.compact(b);
            }
            if (self.n as usize) < INLINE {
                self.inline[self.n as usize] = (value, b);
                self.n += 1;
            } else {
                self.spill.push((value, b));
            }
            alive += 1;
        }
        alive as u64
    }

    /// Drops stale values, refilling the inline slots from the spill.
    fn compact(&mut self, b: u32) {
        let mut w = 0;
        for i in 0..self.n as usize {
            if live(self.inline[i].1, b) {
                self.inline[w] = self.inline[i];
                w += 1;
            }
        }
        self.spill.retain(|e| live(e.1, b));
        while w < INLINE {
            let Some(e) = self.spill.pop() else { break };
            self.inline[w] = e;
            w += 1;
        }
        self.n = w as u32;
    }

    /// Distinct values within the window as of `now` (no change).
    pub fn total_at(&self, now_us: u64, span: Span) -> u64 {
        let b = bucket32(now_us, span);
        self.inline[..self.n as usize]
            .iter()
            .chain(self.spill.iter())
            .filter(|e| live(e.1, b))
            .count() as u64
    }

    /// Bytes held on the heap (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.spill.capacity() * std::mem::size_of::<(u32, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SEC: u64 = 1_000_000;

    fn one_second() -> Span {
        Span::new(Duration::from_secs(1))
    }

    #[test]
    fn exactly_the_threshold_then_one_more() {
        let span = one_second();
        let mut w = RateWindow::<u32>::default();
        let threshold = 100;
        let mut last = 0;
        for i in 0..threshold {
            last = w.add(10 * SEC + i * 1000, span, 1);
        }
        assert_eq!(last, threshold, "exactly the threshold: not over it");
        assert!(
            w.add(10 * SEC + 200_000, span, 1) > threshold,
            "one more is over"
        );
    }

    #[test]
    fn burst_across_a_second_boundary_is_caught() {
        // 60 packets in the last 100 ms of second 4 and 60 in the first 100 ms of second 5:
        // a fixed 1 s window would see 60 + 60 separately; the sliding one sees 120.
        let span = one_second();
        let mut w = RateWindow::<u32>::default();
        let mut total = 0;
        for i in 0..60 {
            total = w.add(4 * SEC + 900_000 + i * 1000, span, 1);
        }
        assert_eq!(total, 60);
        for i in 0..60 {
            total = w.add(5 * SEC + i * 1000, span, 1);
        }
        assert_eq!(total, 120);
    }

    #[test]
    fn old_packets_slide_out() {
        let span = one_second();
        let mut w = RateWindow::<u32>::default();
        w.add(SEC, span, 50);
        assert_eq!(w.total_at(SEC + 500_000, span), 50);
        // Never counts anything older than the window.
        assert_eq!(w.total_at(2 * SEC + 1, span), 0);
        assert_eq!(w.add(2 * SEC + 1, span, 1), 1);
    }

    #[test]
    fn bytes_do_not_overflow() {
        let span = one_second();
        let mut w = RateWindow::<u64>::default();
        w.add(SEC, span, u64::MAX - 1);
        assert_eq!(w.add(SEC, span, 10), u64::MAX);
        let mut p = RateWindow::<u32>::default();
        assert_eq!(p.add(SEC, span, u64::MAX), u64::from(u32::MAX));
    }

    #[test]
    fn time_jumps_do_not_loop_or_keep_stale_state() {
        let span = one_second();
        let mut w = RateWindow::<u32>::default();
        w.add(SEC, span, 10);
        // Ten years forward: one step, stale state gone.
        assert_eq!(w.add(10 * 365 * 86_400 * SEC, span, 1), 1);
        // Near 2^64 µs and back down: no overflow, the window restarts.
        assert_eq!(w.add(u64::MAX - 5, span, 2), 2);
        assert_eq!(w.add(SEC, span, 3), 3);
        // A small step back within the window still counts in the right bucket.
        w.add(SEC + 600_000, span, 1);
        assert_eq!(w.add(SEC + 300_000, span, 1), 5);
    }

    #[test]
    fn distinct_counts_values_once_and_forgets_old_ones() {
        let span = Span::new(Duration::from_secs(10));
        let mut d = DistinctWindow::default();
        for port in 0..50u32 {
            d.add(SEC, span, port, 1000);
        }
        assert_eq!(d.add(2 * SEC, span, 7, 1000), 50, "a repeat is not new");
        assert_eq!(d.add(3 * SEC, span, 50, 1000), 51);
        // 11.5 s later only the values touched at 2 s and 3 s are gone too... none left but the new one.
        assert_eq!(d.add(14 * SEC, span, 99, 1000), 1);
        assert_eq!(d.total_at(14 * SEC, span), 1);
    }

    #[test]
    fn distinct_is_capped() {
        let span = Span::new(Duration::from_secs(10));
        let mut d = DistinctWindow::default();
        let mut n = 0;
        for port in 0..10_000u32 {
            n = d.add(SEC, span, port, 101);
        }
        assert_eq!(n, 101);
        assert!(d.heap_bytes() <= 256 * 16);
    }

    #[test]
    fn distinct_survives_clock_reset() {
        let span = Span::new(Duration::from_secs(10));
        let mut d = DistinctWindow::default();
        d.add(u64::MAX / 2, span, 1, 10);
        d.add(u64::MAX / 2, span, 2, 10);
        assert_eq!(
            d.add(SEC, span, 3, 10),
            1,
            "entries from the future are dropped"
        );
    }
}
