//! Per (detector, target) state with a hard bound (pure): one [`Entry`] per detector and
//! protected destination (or per detector in total), in a flat arena indexed through one hash
//! map. Beyond `cap` entries, idle ones (nothing within their window, no attack) are swept and
//! reused; when none is idle the new target is not tracked and counted in `untracked`.
//!
//! An entry is small (its window, about one cache line); the fingerprint counts ([`Cells`],
//! about 3 KB) are attached once the target gets a 64th of the detector's threshold within a
//! window, from a pool of spare ones: the long tail of destinations that get a packet now and
//! then (replies to clients, in replay without `--local`) costs one cache line, not six.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use super::attack::Attack;
use super::cell::{Cells, addr_key};
use crate::engine::sources::SourceKey;
use crate::engine::window::{BUCKETS, Span};
use std::net::IpAddr;

/// What one detector counts toward one target.
#[derive(Clone, Debug)]
pub struct Entry {
    pub detector: u16,
    pub target: SourceKey,
    /// The detector's metric (packets or bytes) over its window.
    pub window: Rate,
    /// Attached when the target gets busy ([`attach`]).
    pub cells: Option<Box<Cells>>,
    /// The attack in progress, if any.
    pub attack: Option<Box<Attack>>,
    /// Time of the last packet counted, in µs, and how long it stays interesting after.
    pub last_us: u64,
    pub idle_after_us: u64,
    /// Its SYN sources' sample for handshake evidence is full (or cannot be taken).
    pub sampled: bool,
}

/// A sum over a sliding window, in [`BUCKETS`] sub-buckets like `engine::window::RateWindow`
/// (same arithmetic: a burst split across a bucket boundary counts whole, time jumps restart
/// it), with a running total so that adding is O(1) rather than a sum of the sub-buckets.
#[derive(Clone, Debug, Default)]
pub struct Rate {
    /// Absolute index of the newest sub-bucket.
    head: u64,
    counts: [u64; BUCKETS],
    total: u64,
}

impl Rate {
    /// Adds `amount` in sub-bucket `b` (the absolute index: time / bucket width); returns the
    /// window's total including it.
    #[inline(always)]
    pub fn add(&mut self, b: u64, amount: u64) -> u64 {
        let n = BUCKETS as u64;
        if b == self.head {
            // The newest sub-bucket again (most packets): no window moves.
            let cell = &mut self.counts[(b % n) as usize];
            *cell = cell.saturating_add(amount);
            self.total = self.total.saturating_add(amount);
            return self.total;
        }
        if b >= self.head.saturating_add(n) || b.saturating_add(n) <= self.head {
            // Far forward (all stale) or far back (a clock reset): start over.
            *self = Rate {
                head: b,
                ..Rate::default()
            };
        } else if b > self.head {
            for i in self.head + 1..=b {
                let cell = &mut self.counts[(i % n) as usize];
                self.total -= *cell;
                *cell = 0;
            }
            self.head = b;
        }
        let cell = &mut self.counts[(b % n) as usize];
        *cell = cell.saturating_add(amount);
        self.total = self.total.saturating_add(amount);
        self.total
    }

    /// The window's total as of `now_us` (no change).
    pub fn total_at(&self, now_us: u64, span: Span) -> u64 {
        let n = BUCKETS as u64;
        let b = now_us / span.bucket_us;
        if b >= self.head.saturating_add(n) || b.saturating_add(n) <= self.head {
            return 0;
        }
        let lo = self.head.saturating_sub(n - 1).max(b.saturating_sub(n - 1));
        let hi = self.head.min(b);
        (lo..=hi).map(|i| self.counts[(i % n) as usize]).sum()
    }
}

/// The sub-bucket index of a time, remembered: packets come in time order, so most fall in
/// the bucket of the one before and need two comparisons instead of a 64-bit division.
#[derive(Clone, Copy, Debug, Default)]
pub struct BucketClock {
    start: u64,
    end: u64,
    index: u64,
}

impl BucketClock {
    #[inline(always)]
    pub fn bucket(&mut self, ts_us: u64, span: Span) -> u64 {
        if ts_us >= self.start && ts_us < self.end {
            return self.index;
        }
        let index = ts_us / span.bucket_us;
        let start = index.saturating_mul(span.bucket_us);
        *self = BucketClock {
            start,
            end: start.saturating_add(span.bucket_us),
            index,
        };
        index
    }
}

#[derive(Debug)]
pub struct Table {
    index: HashMap<(SourceKey, u16), u32, RandomState>,
    /// The slots of recently seen (detector, destination address) pairs, direct-mapped: most
    /// packets skip the hash map (a flood has one target; a host has few addresses).
    recent: Box<[Recent; RECENT]>,
    pub entries: Vec<Entry>,
    free: Vec<u32>,
    /// Fingerprint counts of freed entries, for reuse. Boxed: they move between entries and
    /// this pool without copying 3 KB.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Cells>>,
    cap: usize,
    /// Packets for targets that could not be tracked (table full, nothing idle).
    pub untracked: u64,
    /// No sweep before this time (µs): a full table of busy targets is not rescanned per packet.
    next_sweep_us: u64,
}

/// Least time between two sweeps of a full table, in µs.
const SWEEP_EVERY_US: u64 = 100_000;
/// Slots of the `recent` cache (a power of two): as many as targets tracked, so that a table
/// full of reply clients (replay without `--local`) still mostly skips the hash map.
const RECENT: usize = 1024;

/// One `recent` cache line: detector, address key, slot (`u32::MAX`: empty).
#[derive(Clone, Copy, Debug)]
struct Recent {
    detector: u16,
    addr: u128,
    slot: u32,
}

const NO_RECENT: Recent = Recent {
    detector: 0,
    addr: 0,
    slot: u32::MAX,
};

#[inline(always)]
fn recent_index(detector: u16, addr: u128) -> usize {
    let x = (addr as u64) ^ ((addr >> 64) as u64) ^ (u64::from(detector) << 40);
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - RECENT.trailing_zeros())) as usize % RECENT
}

/// Gives entry `e` its fingerprint counts (a `spare` one, or new; empty).
#[cold]
#[inline(never)]
#[allow(clippy::vec_box)]
pub fn attach(e: &mut Entry, spare: &mut Vec<Box<Cells>>) {
    let mut cells = spare.pop().unwrap_or_default();
    cells.clear();
    e.cells = Some(cells);
}

impl Table {
    pub fn new(cap: usize) -> Table {
        Table {
            index: HashMap::with_hasher(RandomState::default()),
            recent: Box::new([NO_RECENT; RECENT]),
            entries: Vec::new(),
            free: Vec::new(),
            spare: Vec::new(),
            cap: cap.max(1),
            untracked: 0,
            next_sweep_us: 0,
        }
    }

    /// The slot of `(detector, target)`, created if needed; `None` when full.
    #[inline]
    pub fn slot(
        &mut self,
        detector: u16,
        target: SourceKey,
        now_us: u64,
        idle_after_us: u64,
    ) -> Option<usize> {
        if let Some(&i) = self.index.get(&(target, detector)) {
            return Some(i as usize);
        }
        if self.index.len() >= self.cap {
            if now_us < self.next_sweep_us {
                self.untracked += 1;
                return None;
            }
            self.sweep(now_us);
            self.next_sweep_us = now_us.saturating_add(SWEEP_EVERY_US);
            if self.index.len() >= self.cap {
                self.untracked += 1;
                return None;
            }
        }
        let entry = Entry {
            detector,
            target,
            window: Rate::default(),
            cells: None,
            attack: None,
            last_us: now_us,
            idle_after_us,
            sampled: false,
        };
        let i = match self.free.pop() {
            Some(i) => {
                let old = std::mem::replace(&mut self.entries[i as usize], entry);
                self.spare.extend(old.cells);
                i
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert((target, detector), i);
        Some(i as usize)
    }

    /// The slot of `(detector, dst)`, through the `recent` cache; created if needed; `None`
    /// when full.
    #[inline(always)]
    pub fn slot_of_addr(
        &mut self,
        detector: u16,
        dst: IpAddr,
        now_us: u64,
        idle_after_us: u64,
    ) -> Option<usize> {
        let addr = addr_key(dst);
        let i = recent_index(detector, addr);
        let r = self.recent[i];
        if r.slot != u32::MAX && r.detector == detector && r.addr == addr {
            return Some(r.slot as usize);
        }
        self.slot_not_recent(i, detector, addr, dst, now_us, idle_after_us)
    }

    /// [`Table::slot_of_addr`] past the `recent` cache, whose line `i` `addr` (the key of
    /// `dst`) maps to (out of line: the table key is made only here, not for every packet).
    #[inline(never)]
    fn slot_not_recent(
        &mut self,
        i: usize,
        detector: u16,
        addr: u128,
        dst: IpAddr,
        now_us: u64,
        idle_after_us: u64,
    ) -> Option<usize> {
        // Canonical, as the cache's key is: `::ffff:a.b.c.d` is a.b.c.d's entry whether the
        // cache remembers it or not.
        let key = SourceKey::new(dst.to_canonical(), 32, 128);
        let slot = self.slot(detector, key, now_us, idle_after_us)?;
        self.recent[i] = Recent {
            detector,
            addr,
            slot: slot as u32,
        };
        Some(slot)
    }

    /// The entries, and the spare fingerprint counts for [`attach`].
    #[inline]
    #[allow(clippy::vec_box)]
    pub fn parts(&mut self) -> (&mut [Entry], &mut Vec<Box<Cells>>) {
        (&mut self.entries, &mut self.spare)
    }

    /// The slot of `(detector, target)` if tracked.
    pub fn find(&self, detector: u16, target: SourceKey) -> Option<usize> {
        self.index.get(&(target, detector)).map(|&i| i as usize)
    }

    /// Frees every entry without an attack that saw nothing within its window (and forgets
    /// the `recent` cache: freed slots are reused).
    pub fn sweep(&mut self, now_us: u64) {
        self.recent.fill(NO_RECENT);
        let entries = &self.entries;
        let free = &mut self.free;
        self.index.retain(|_, i| {
            let e = &entries[*i as usize];
            let idle = e.attack.is_none()
                && (e.last_us.saturating_add(e.idle_after_us) < now_us || e.last_us > now_us);
            if idle {
                free.push(*i);
            }
            !idle
        });
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Bytes held (entries, index, attacks).
    pub fn memory_bytes(&self) -> usize {
        let attacks: usize = self
            .entries
            .iter()
            .map(|e| {
                usize::from(e.attack.is_some()) * std::mem::size_of::<Attack>()
                    + usize::from(e.cells.is_some()) * std::mem::size_of::<Cells>()
            })
            .sum::<usize>()
            + self.spare.len() * std::mem::size_of::<Cells>();
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.index.capacity() * (std::mem::size_of::<((SourceKey, u16), u32)>() + 1)
            + self.free.capacity() * 4
            + RECENT * std::mem::size_of::<Recent>()
            + attacks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::window::RateWindow;
    use std::time::Duration;

    /// An IPv4 destination and its IPv4-mapped IPv6 form share one entry, with the `recent`
    /// cache holding either form or neither (they share the cache's key).
    #[test]
    fn a_mapped_destination_is_its_ipv4_entry_whether_cached_or_not() {
        let v4: IpAddr = "10.10.10.10".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.10.10.10".parse().unwrap();
        for (first, second) in [(v4, mapped), (mapped, v4)] {
            let mut t = Table::new(16);
            let a = t.slot_of_addr(0, first, 1, 1_000_000);
            let cached = t.slot_of_addr(0, second, 2, 1_000_000);
            t.recent.fill(NO_RECENT);
            let uncached = t.slot_of_addr(0, second, 3, 1_000_000);
            assert_eq!((a, cached, uncached), (Some(0), Some(0), Some(0)));
            assert_eq!(t.find(0, SourceKey::new(v4, 32, 128)), Some(0));
            assert_eq!(t.index.len(), 1);
        }
    }

    /// The running total agrees with the engine's window on every step of a rough walk
    /// through time (forward, in-window back steps, gaps, a reset).
    #[test]
    fn rate_agrees_with_the_engine_window() {
        let span = Span::new(Duration::from_millis(800));
        let mut ours = Rate::default();
        let mut theirs = RateWindow::<u64>::default();
        let mut t: u64 = 5_000_000;
        let mut x: u64 = 12345;
        for step in 0..20_000u64 {
            crate::test_rng::next(&mut x);
            t = match x >> 60 {
                0 => t.saturating_sub(x % 300_000),
                1 => t + 3_000_000,
                2 if step % 1000 == 0 => 1_000_000,
                _ => t + x % 40_000,
            };
            let amount = 1 + x % 1500;
            assert_eq!(
                ours.add(t / span.bucket_us, amount),
                theirs.add(t, span, amount),
                "step {step}"
            );
            let later = t + x % 900_000;
            assert_eq!(ours.total_at(later, span), theirs.total_at(later, span));
        }
    }
}
