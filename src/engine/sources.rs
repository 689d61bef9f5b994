//! Per-source state with a hard bound (pure): source key -> one sliding window per rule.
//!
//! Invariants: at most `max_sources` keys are tracked; a key unseen for longer than the longest
//! window of its rules is idle and evicted by [`SourceTable::sweep`]; when the table is full and
//! nothing is idle, new sources are *not* tracked and counted in `untracked`, so a spoofed flood
//! cannot grow memory. Per-rule state lives in flat arenas indexed by slot: nothing is allocated
//! per packet, and a freed slot is reused.

use std::collections::HashMap;
use std::net::IpAddr;

use foldhash::fast::RandomState;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::engine::window::{DistinctWindow, RateWindow, Span};

/// A source as counted: an address, or a prefix when a rule aggregates (`aggregate_v4/_v6`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceKey {
    /// Address bits, masked to `prefix`, as two halves (not a `u128`: its 16-byte alignment
    /// would pad every hash-table entry); IPv4 in the low 32 bits of `lo`.
    hi: u64,
    lo: u64,
    v6: bool,
    prefix: u8,
}

/// Hashes only what distinguishes keys, in as few words as possible (this runs per packet):
/// an IPv4 key is one word. Injective within each family; the hasher is seeded.
impl std::hash::Hash for SourceKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if self.v6 {
            state.write_u64(self.hi);
            state.write_u64(self.lo);
            state.write_u8(self.prefix);
        } else {
            state.write_u64(self.lo | (u64::from(self.prefix) << 32));
        }
    }
}

impl SourceKey {
    /// The key of `addr` under the given prefix lengths (clamped to the family's width).
    pub fn new(addr: IpAddr, prefix_v4: u8, prefix_v6: u8) -> SourceKey {
        match addr {
            IpAddr::V4(a) => {
                let p = prefix_v4.min(32);
                let mask = if p == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(p))
                };
                SourceKey {
                    hi: 0,
                    lo: u64::from(u32::from(a) & mask),
                    v6: false,
                    prefix: p,
                }
            }
            IpAddr::V6(a) => {
                let p = prefix_v6.min(128);
                let mask = if p == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(p))
                };
                let bits = u128::from(a) & mask;
                SourceKey {
                    hi: (bits >> 64) as u64,
                    lo: bits as u64,
                    v6: true,
                    prefix: p,
                }
            }
        }
    }

    pub fn from_net(net: IpNet) -> SourceKey {
        let net = net.trunc();
        match net {
            IpNet::V4(n) => SourceKey::new(IpAddr::V4(n.addr()), n.prefix_len(), 128),
            IpNet::V6(n) => SourceKey::new(IpAddr::V6(n.addr()), 32, n.prefix_len()),
        }
    }

    pub fn net(self) -> IpNet {
        if self.v6 {
            let bits = (u128::from(self.hi) << 64) | u128::from(self.lo);
            IpNet::V6(Ipv6Net::new_assert(bits.into(), self.prefix))
        } else {
            let a = std::net::Ipv4Addr::from(self.lo as u32);
            IpNet::V4(Ipv4Net::new_assert(a, self.prefix))
        }
    }

    /// True when the key is a whole single address (/32 or /128).
    pub fn is_host(self) -> bool {
        self.prefix == if self.v6 { 128 } else { 32 }
    }
}

/// `203.0.113.7` for a host, `2001:db8::/64` for a prefix: how events name a target.
impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let net = self.net();
        if self.is_host() {
            write!(f, "{}", net.addr())
        } else {
            write!(f, "{net}")
        }
    }
}

/// What a rule counts, and so which kind of window it keeps per source.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WindowKind {
    Packets,
    Bytes,
    /// Distinct values, stored up to `cap`.
    Distinct {
        cap: usize,
    },
}

/// Where rule `r`'s window lives: which arena, and its index within a slot's record there.
#[derive(Copy, Clone, Debug)]
enum Place {
    Packets(usize),
    Bytes(usize),
    Distinct(usize),
}

/// A tracked key: its slot, and when it was last seen (what eviction looks at).
#[derive(Copy, Clone, Debug)]
struct Entry {
    slot: u32,
    last_seen: u64,
}

/// Source table for a group of rules that share one aggregation.
///
/// Layout: one arena per kind of window, slot-major (slot `s`'s packet windows are
/// `packets[s * n_packets ..][..n_packets]`), so the windows a packet touches sit together.
#[derive(Debug)]
pub struct SourceTable {
    map: HashMap<SourceKey, Entry, RandomState>,
    packets: Vec<RateWindow<u32>>,
    bytes: Vec<RateWindow<u64>>,
    distinct: Vec<DistinctWindow>,
    /// Windows per slot in each arena.
    n_packets: usize,
    n_bytes: usize,
    n_distinct: usize,
    places: Vec<Place>,
    caps: Vec<usize>,
    spans: Vec<Span>,
    /// Slots allocated so far; freed ones are reused first.
    slots: u32,
    free: Vec<u32>,
    max_sources: usize,
    /// A key idle for this long (the longest window) can be evicted.
    idle_us: u64,
    last_sweep: u64,
    /// Packets from sources that could not be tracked because the table was full.
    pub untracked: u64,
    /// A source was turned away since the last sweep (batch mode sweeps between batches).
    full: bool,
    /// Sources evicted as idle, in all.
    pub evicted: u64,
}

/// Where a tracked source's state lives; valid until the next [`SourceTable::sweep`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Slot(u32);

impl SourceTable {
    /// `rules`: for each rule of the group, its window kind and span.
    pub fn new(rules: &[(WindowKind, Span)], max_sources: usize) -> SourceTable {
        let idle_us = rules.iter().map(|r| r.1.window_us).max().unwrap_or(1);
        let (mut n_packets, mut n_bytes, mut n_distinct) = (0, 0, 0);
        let mut places = Vec::new();
        let mut caps = Vec::new();
        for (kind, _) in rules {
            let (place, cap) = match *kind {
                WindowKind::Packets => (Place::Packets(post_inc(&mut n_packets)), 0),
                WindowKind::Bytes => (Place::Bytes(post_inc(&mut n_bytes)), 0),
                WindowKind::Distinct { cap } => (Place::Distinct(post_inc(&mut n_distinct)), cap),
            };
            places.push(place);
            caps.push(cap);
        }
        SourceTable {
            map: HashMap::with_hasher(RandomState::default()),
            packets: Vec::new(),
            bytes: Vec::new(),
            distinct: Vec::new(),
            n_packets,
            n_bytes,
            n_distinct,
            places,
            caps,
            spans: rules.iter().map(|r| r.1).collect(),
            slots: 0,
            free: Vec::new(),
            max_sources: max_sources.max(1),
            idle_us,
            last_sweep: 0,
            untracked: 0,
            full: false,
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// A new bound (a reload). Raising it admits more sources at once; lowering it admits no
    /// new source above it, and the table shrinks to it as idle sources are swept.
    pub fn set_max_sources(&mut self, max_sources: usize) {
        self.max_sources = max_sources.max(1);
    }

    /// The slot of `key`, creating it if there is room (sweeping idle keys first when full).
    /// `None` when the table is full of active sources: the packet is counted as untracked.
    pub fn slot(&mut self, key: SourceKey, now_us: u64) -> Option<Slot> {
        if let Some(e) = self.map.get_mut(&key) {
            e.last_seen = now_us;
            return Some(Slot(e.slot));
        }
        if self.map.len() >= self.max_sources {
            if self.sweep_due(now_us) {
                self.sweep(now_us);
            }
            if self.map.len() >= self.max_sources {
                self.untracked += 1;
                return None;
            }
        }
        Some(self.insert(key, now_us))
    }

    /// Allocates a slot for a new key (a freed one first). The table is never larger than
    /// `max_sources` (at most u32::MAX) keys, so slot numbers cannot run out.
    fn insert(&mut self, key: SourceKey, now_us: u64) -> Slot {
        let s = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = self.slots;
                self.slots = s.saturating_add(1);
                self.packets
                    .resize_with(self.slots as usize * self.n_packets, Default::default);
                self.bytes
                    .resize_with(self.slots as usize * self.n_bytes, Default::default);
                self.distinct
                    .resize_with(self.slots as usize * self.n_distinct, Default::default);
                s
            }
        };
        self.map.insert(
            key,
            Entry {
                slot: s,
                last_seen: now_us,
            },
        );
        Slot(s)
    }

    /// Like [`SourceTable::slot`] but never sweeps (slots handed out earlier stay valid): when
    /// the table is full the source is untracked, and [`SourceTable::sweep_if_full`] sweeps
    /// before the next batch.
    pub fn slot_deferred(&mut self, key: SourceKey, now_us: u64) -> Option<Slot> {
        if let Some(e) = self.map.get_mut(&key) {
            e.last_seen = now_us;
            return Some(Slot(e.slot));
        }
        if self.map.len() >= self.max_sources {
            self.untracked += 1;
            self.full = true;
            return None;
        }
        Some(self.insert(key, now_us))
    }

    /// Sweeps idle keys if the table filled up since the last sweep (at most once per bucket
    /// of the shortest window).
    pub fn sweep_if_full(&mut self, now_us: u64) {
        if self.full && self.sweep_due(now_us) {
            self.full = false;
            self.sweep(now_us);
        }
    }

    /// A full table sweeps at most once per bucket of the shortest window, so a table full of
    /// active sources does not turn every new packet into a full scan.
    fn sweep_due(&self, now_us: u64) -> bool {
        let min_bucket = self.spans.iter().map(|s| s.bucket_us).min().unwrap_or(1);
        now_us >= self.last_sweep.saturating_add(min_bucket) || now_us < self.last_sweep
    }

    /// Counts `amount` (packets or bytes) for rule `r` of the group; returns the window total.
    pub fn add_rate(&mut self, slot: Slot, r: usize, now_us: u64, amount: u64) -> u64 {
        let span = self.spans[r];
        let s = slot.0 as usize;
        match self.places[r] {
            Place::Packets(i) => self.packets[s * self.n_packets + i].add(now_us, span, amount),
            Place::Bytes(i) => self.bytes[s * self.n_bytes + i].add(now_us, span, amount),
            Place::Distinct(_) => 0,
        }
    }

    /// Records a distinct `value` for rule `r`; returns distinct values within the window.
    pub fn add_distinct(&mut self, slot: Slot, r: usize, now_us: u64, value: u32) -> u64 {
        let span = self.spans[r];
        match self.places[r] {
            Place::Distinct(i) => self.distinct[slot.0 as usize * self.n_distinct + i].add(
                now_us,
                span,
                value,
                self.caps[r],
            ),
            _ => 0,
        }
    }

    /// Rule `r`'s current value for `key` (for `explain`), without changing anything.
    pub fn value(&self, key: SourceKey, r: usize, now_us: u64) -> u64 {
        let Some(e) = self.map.get(&key) else {
            return 0;
        };
        let span = self.spans[r];
        let s = e.slot as usize;
        match self.places[r] {
            Place::Packets(i) => self.packets[s * self.n_packets + i].total_at(now_us, span),
            Place::Bytes(i) => self.bytes[s * self.n_bytes + i].total_at(now_us, span),
            Place::Distinct(i) => self.distinct[s * self.n_distinct + i].total_at(now_us, span),
        }
    }

    /// Sweeps when a longest-window has passed since the last sweep, so memory is released
    /// after an attack even when the table never fills.
    pub fn maybe_sweep(&mut self, now_us: u64) {
        if now_us >= self.last_sweep.saturating_add(self.idle_us) || now_us < self.last_sweep {
            self.sweep(now_us);
        }
    }

    /// Evicts every key idle for longer than the longest window; returns how many.
    pub fn sweep(&mut self, now_us: u64) -> usize {
        self.last_sweep = now_us;
        let cutoff = now_us.saturating_sub(self.idle_us);
        let before = self.map.len();
        let (np, nb, nd) = (self.n_packets, self.n_bytes, self.n_distinct);
        let (packets, bytes, distinct) = (&mut self.packets, &mut self.bytes, &mut self.distinct);
        let free = &mut self.free;
        self.map.retain(|_, e| {
            // Idle, or "in the future" after a clock reset.
            let keep = e.last_seen > cutoff && e.last_seen <= now_us;
            if !keep {
                let s = e.slot as usize;
                packets[s * np..(s + 1) * np].fill_with(Default::default);
                bytes[s * nb..(s + 1) * nb].fill_with(Default::default);
                distinct[s * nd..(s + 1) * nd]
                    .iter_mut()
                    .for_each(DistinctWindow::clear);
                free.push(e.slot);
            }
            keep
        });
        let n = before - self.map.len();
        self.evicted += n as u64;
        n
    }

    /// Approximate bytes held (map + arenas), for reports and the memory-bound tests.
    pub fn memory_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(SourceKey, Entry)>() + 1;
        self.map.capacity() * entry
            + self.free.capacity() * 4
            + self.packets.capacity() * std::mem::size_of::<RateWindow<u32>>()
            + self.bytes.capacity() * std::mem::size_of::<RateWindow<u64>>()
            + self.distinct.capacity() * std::mem::size_of::<DistinctWindow>()
            + self
                .distinct
                .iter()
                .map(DistinctWindow::heap_bytes)
                .sum::<usize>()
    }
}

fn post_inc(n: &mut usize) -> usize {
    *n += 1;
    *n - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn table(max: usize) -> SourceTable {
        let span = Span::new(Duration::from_secs(1));
        SourceTable::new(
            &[
                (WindowKind::Packets, span),
                (WindowKind::Distinct { cap: 11 }, span),
            ],
            max,
        )
    }

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn keys_aggregate_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(SourceKey::new(a, 32, 64), SourceKey::new(b, 32, 64));
        assert_ne!(SourceKey::new(a, 32, 64), SourceKey::new(c, 32, 64));
        assert_eq!(SourceKey::new(a, 32, 64).to_string(), "2001:db8:1:2::/64");
        let k = SourceKey::new("203.0.113.77".parse().unwrap(), 24, 128);
        assert_eq!(k.to_string(), "203.0.113.0/24");
        let h = SourceKey::new("203.0.113.77".parse().unwrap(), 32, 128);
        assert_eq!(h.to_string(), "203.0.113.77");
        assert_eq!(SourceKey::from_net(h.net()), h);
        assert_eq!(SourceKey::new(a, 0, 0).to_string(), "::/0");
    }

    #[test]
    fn counts_per_slot() {
        let mut t = table(10);
        let s = t.slot(SourceKey::new(v4(1), 32, 128), 5).unwrap();
        t.add_rate(s, 0, 5, 1);
        assert_eq!(t.add_rate(s, 0, 6, 1), 2);
        assert_eq!(t.add_distinct(s, 1, 6, 80), 1);
        assert_eq!(t.add_distinct(s, 1, 7, 443), 2);
        assert_eq!(t.value(SourceKey::new(v4(1), 32, 128), 0, 7), 2);
    }

    #[test]
    fn full_table_does_not_grow_and_reports_untracked() {
        let mut t = table(100);
        for i in 0..100 {
            assert!(t.slot(SourceKey::new(v4(i), 32, 128), 1000).is_some());
        }
        let mem = t.memory_bytes();
        // A spoofed flood of 10k new sources within the window: none tracked, memory flat.
        for i in 100..10_100 {
            assert!(
                t.slot(SourceKey::new(v4(i), 32, 128), 1000 + u64::from(i))
                    .is_none()
            );
        }
        assert_eq!(t.len(), 100);
        assert_eq!(t.untracked, 10_000);
        assert_eq!(t.memory_bytes(), mem);
    }

    #[test]
    fn idle_sources_are_evicted_and_slots_reused() {
        let mut t = table(100);
        for i in 0..100 {
            let s = t.slot(SourceKey::new(v4(i), 32, 128), 0).unwrap();
            t.add_rate(s, 0, 0, 5);
        }
        let slots_before = t.slots;
        // 2 s later the old ones are idle: new sources take their slots, with fresh windows.
        for i in 100..200 {
            let s = t.slot(SourceKey::new(v4(i), 32, 128), 2_000_000).unwrap();
            assert_eq!(t.add_rate(s, 0, 2_000_000, 1), 1);
        }
        assert_eq!(t.len(), 100);
        assert_eq!(t.slots, slots_before);
        assert_eq!(t.evicted, 100);
        assert_eq!(t.untracked, 0);
    }
}
