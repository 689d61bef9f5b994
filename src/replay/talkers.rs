//! Top talkers in bounded memory (pure): a Space-Saving summary of at most `k` sources, and a
//! HyperLogLog sketch of how many distinct sources there were.
//!
//! Space-Saving: a source already in the summary is counted exactly; a new source takes a free
//! entry while there is one (its count is then exact: `err == 0`), else it replaces an entry
//! with the smallest count `m` and starts at `m + 1` with `err = m` (its true count lies in
//! `count - err ..= count`). Every source with more than `packets / k` packets is in the
//! summary. Invariants: at most `k` entries whatever the stream; `err == 0` entries are exact
//! (packets, bytes, first and last seen); while nothing was ever replaced, the summary holds
//! every source and `distinct()` is exact; after that it is the sketch's estimate (~1.6%).
//!
//! Replacing finds a smallest entry through a list of candidates collected by one scan (all
//! entries at the current minimum), so a replacement costs O(1) amortized when many entries
//! share the minimum (the long tail of one-packet sources), O(k) at worst; the scan is one pass.
//! The entries live in the hash table's buckets, each on its own cache line (one line per
//! packet); a batch is looked up 128 packets at a time before those are counted, so the misses
//! overlap and the lines are still in L1 when they are counted.

use std::hash::BuildHasher;
use std::net::IpAddr;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

use crate::time::Timestamp;

/// One source in the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(align(64))]
pub struct Entry {
    pub addr: IpAddr,
    /// Packets counted for it: exact when `err` is 0, else an upper bound (the true count is
    /// at least `packets - err`).
    pub packets: u64,
    /// At most this many of `packets` may belong to sources it replaced.
    pub err: u64,
    pub bytes: u64,
    pub first: Timestamp,
    pub last: Timestamp,
}

/// How many packets [`Talkers::add_batch`] looks up before counting them: enough look-ups in
/// flight to overlap their misses, few enough (two lines each) that they stay in L1.
const AHEAD: usize = 128;

/// HyperLogLog registers: 2^12 (4 KiB, standard error ~1.6%).
const HLL_BITS: u32 = 12;

pub struct Talkers {
    k: usize,
    /// The entries themselves, in the hash table's buckets: one cache line per packet.
    table: HashTable<Entry>,
    hasher: FixedState,
    /// Sources that had the smallest count when last scanned.
    candidates: Vec<IpAddr>,
    /// That smallest count.
    min: u64,
    /// An entry was ever replaced: the summary no longer holds every source.
    pub replaced: bool,
    hll: Vec<u8>,
}

fn key(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)), false),
        IpAddr::V6(v) => (u128::from(v), true),
    }
}

impl Talkers {
    /// A summary of at most `k` sources (at least 1).
    pub fn new(k: usize) -> Talkers {
        Talkers {
            k: k.max(1),
            // Sized once: no growth, and no old + new copy at the peak.
            table: HashTable::with_capacity(k.max(1)),
            hasher: FixedState::with_seed(0x5eed),
            candidates: Vec::new(),
            min: 0,
            replaced: false,
            hll: vec![0; 1 << HLL_BITS],
        }
    }

    fn hash(&self, addr: IpAddr) -> u64 {
        self.hasher.hash_one(key(addr))
    }

    /// Counts a batch of packets: (source, length, time) each, [`AHEAD`] at a time: the
    /// sources of a chunk are all looked up before any is counted, so their misses overlap,
    /// and the chunk's lines are still in L1 when it is counted (a look-up of the whole
    /// 4096-packet batch first loaded ~700 KB, and counting missed L1 again on every line).
    pub fn add_batch<'a>(
        &mut self,
        packets: impl Iterator<Item = (IpAddr, u32, Timestamp)> + Clone + 'a,
    ) {
        let mut hashes = [0u64; AHEAD];
        let mut acc = 0u64;
        let mut ahead = packets.clone().map(|(addr, _, _)| addr);
        let mut packets = packets.peekable();
        while packets.peek().is_some() {
            for (h, addr) in hashes.iter_mut().zip(ahead.by_ref().take(AHEAD)) {
                *h = self.touch(addr, &mut acc);
            }
            for (&h, (addr, len, ts)) in hashes.iter().zip(packets.by_ref().take(AHEAD)) {
                self.add_hashed(addr, len, ts, h);
            }
        }
        std::hint::black_box(acc);
    }

    /// Looks `addr` up (loading its lines) and returns its hash.
    #[inline]
    fn touch(&self, addr: IpAddr, acc: &mut u64) -> u64 {
        let h = self.hash(addr);
        if let Some(e) = self.table.find(h, |e| e.addr == addr) {
            *acc = acc.wrapping_add(e.packets);
        }
        h
    }

    /// Counts one packet of `len` bytes from `addr` at `ts`.
    #[cfg(test)]
    pub fn add(&mut self, addr: IpAddr, len: u32, ts: Timestamp) {
        let h = self.hash(addr);
        self.add_hashed(addr, len, ts, h);
    }

    #[inline]
    fn add_hashed(&mut self, addr: IpAddr, len: u32, ts: Timestamp, hash: u64) {
        let reg = (hash >> (64 - HLL_BITS)) as usize;
        let rank = ((hash << HLL_BITS) | (1 << (HLL_BITS - 1))).leading_zeros() as u8 + 1;
        if self.hll[reg] < rank {
            self.hll[reg] = rank;
        }
        if let Some(e) = self.table.find_mut(hash, |e| e.addr == addr) {
            e.packets += 1;
            e.bytes += u64::from(len);
            e.last = ts;
            return;
        }
        let mut fresh = Entry {
            addr,
            packets: 1,
            err: 0,
            bytes: u64::from(len),
            first: ts,
            last: ts,
        };
        if self.table.len() >= self.k {
            let m = self.remove_smallest();
            fresh.packets = m + 1;
            fresh.err = m;
            self.replaced = true;
        }
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, fresh, |e| hasher.hash_one(key(e.addr)));
    }

    /// Removes an entry with the smallest count; returns that count.
    fn remove_smallest(&mut self) -> u64 {
        loop {
            while let Some(a) = self.candidates.pop() {
                let h = self.hash(a);
                let min = self.min;
                if let Ok(e) = self
                    .table
                    .find_entry(h, |e| e.addr == a && e.packets == min)
                {
                    e.remove();
                    return min;
                }
            }
            self.rescan();
        }
    }

    /// Collects the entries with the smallest count, in the table's order, in one pass over it
    /// (a pass for the minimum and one for its entries read the 4 MB table twice).
    fn rescan(&mut self) {
        let mut min = u64::MAX;
        self.candidates.clear();
        for e in self.table.iter() {
            if e.packets < min {
                min = e.packets;
                self.candidates.clear();
            }
            if e.packets == min {
                self.candidates.push(e.addr);
            }
        }
        self.min = if min == u64::MAX { 0 } else { min };
    }

    /// Distinct sources: exact while nothing was replaced, else estimated.
    pub fn distinct(&self) -> (u64, bool) {
        if !self.replaced {
            return (self.table.len() as u64, true);
        }
        let m = self.hll.len() as f64;
        let sum: f64 = self.hll.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let zeros = self.hll.iter().filter(|&&r| r == 0).count();
        let est = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        (est.round() as u64, false)
    }

    /// The `n` entries with the most packets, most first (ties by address). Chosen among
    /// references, not copies: 8 bytes per entry while the report is made, not 64 (3.5 MiB
    /// at the peak of a replay with the summary full).
    pub fn top(&self, n: usize) -> Vec<Entry> {
        let mut all: Vec<&Entry> = self.table.iter().collect();
        let order = |a: &&Entry, b: &&Entry| b.packets.cmp(&a.packets).then(a.addr.cmp(&b.addr));
        if all.len() > n {
            all.select_nth_unstable_by(n, order);
            all.truncate(n);
        }
        all.sort_by(order);
        all.into_iter().copied().collect()
    }

    /// Every entry (for the offenders' own traffic).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + Clone {
        self.table.iter()
    }

    pub fn memory_bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<Entry>() + 1)
            + self.candidates.capacity() * std::mem::size_of::<IpAddr>()
            + self.hll.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn exact_while_it_has_room() {
        let mut t = Talkers::new(100);
        for i in 0..1000u32 {
            t.add(v4(i % 50), 100, Timestamp(u64::from(i)));
        }
        assert_eq!(t.distinct(), (50, true));
        let top = t.top(3);
        assert_eq!(top.len(), 3);
        assert!(
            top.iter()
                .all(|e| e.packets == 20 && e.err == 0 && e.bytes == 2000)
        );
        assert_eq!(top[0].addr, v4(0));
        assert_eq!((top[0].first, top[0].last), (Timestamp(0), Timestamp(950)));
    }

    #[test]
    fn bounded_whatever_the_stream_and_heavy_hitters_found() {
        let k = 64;
        let mut t = Talkers::new(k);
        let mut truth = std::collections::HashMap::new();
        let mut x: u64 = 1;
        for i in 0..200_000u32 {
            crate::test_rng::next(&mut x);
            // Three heavy hitters (10%, 5%, 2%), the rest spread over 100k sources.
            let r = (x >> 33) % 1000;
            let a = match r {
                0..100 => v4(1_000_001),
                100..150 => v4(1_000_002),
                150..170 => v4(1_000_003),
                _ => v4((x >> 13) as u32 % 100_000),
            };
            *truth.entry(a).or_insert(0u64) += 1;
            t.add(a, 60, Timestamp(u64::from(i)));
        }
        assert!(t.entries().count() <= k, "bound: {}", t.entries().count());
        assert!(t.memory_bytes() < 64 * 1024);
        let top = t.top(3);
        let heavy: Vec<IpAddr> = top.iter().map(|e| e.addr).collect();
        assert_eq!(heavy, [v4(1_000_001), v4(1_000_002), v4(1_000_003)]);
        for e in t.entries() {
            let real = truth[&e.addr];
            // The Space-Saving guarantee: count - err <= true <= count.
            assert!(
                e.packets - e.err <= real && real <= e.packets,
                "{e:?} real {real}"
            );
        }
        let (n, exact) = t.distinct();
        assert!(!exact);
        let real = truth.len() as f64;
        assert!(
            (n as f64 - real).abs() / real < 0.05,
            "estimate {n}, real {real}"
        );
    }

    #[test]
    fn error_zero_entries_are_exact() {
        let mut t = Talkers::new(4);
        // a, b enter first (exact); then churn of one-shot sources through the other two.
        for i in 0..100u32 {
            t.add(v4(1), 10, Timestamp(u64::from(i)));
            t.add(v4(2), 10, Timestamp(u64::from(i)));
            t.add(v4(100 + i), 10, Timestamp(u64::from(i)));
        }
        let exact: Vec<Entry> = t.entries().filter(|e| e.err == 0).copied().collect();
        assert!(
            exact
                .iter()
                .any(|e| e.addr == v4(1) && e.packets == 100 && e.bytes == 1000)
        );
        assert!(exact.iter().any(|e| e.addr == v4(2) && e.packets == 100));
        assert!(t.replaced);
        assert_eq!(t.entries().count(), 4);
    }

    /// A churning stream: `n` packets over `sources` sources, a few of them heavy.
    fn churn(n: u32, sources: u32) -> Vec<(IpAddr, u32, Timestamp)> {
        let mut x: u64 = 7;
        (0..n)
            .map(|i| {
                crate::test_rng::next(&mut x);
                let a = match (x >> 33) % 10 {
                    0 => v4(1_000_000 + (x >> 40) as u32 % 3),
                    _ => v4((x >> 13) as u32 % sources),
                };
                (a, 40 + i % 1000, Timestamp(u64::from(i)))
            })
            .collect()
    }

    fn sorted(t: &Talkers) -> Vec<Entry> {
        let mut all: Vec<Entry> = t.entries().copied().collect();
        all.sort_by_key(|e| e.addr);
        all
    }

    #[test]
    fn batches_count_exactly_as_one_packet_at_a_time() {
        let stream = churn(50_000, 3_000);
        let mut one = Talkers::new(500);
        for &(a, len, ts) in &stream {
            one.add(a, len, ts);
        }
        let mut batched = Talkers::new(500);
        // Batches shorter than, as long as and longer than the look-ahead, and empty ones.
        let mut rest = &stream[..];
        for size in [0, 1, AHEAD - 1, AHEAD, AHEAD + 1, 4096].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*size).min(rest.len()));
            batched.add_batch(batch.iter().copied());
            rest = tail;
        }
        assert!(one.replaced && batched.replaced);
        assert_eq!(sorted(&one), sorted(&batched));
        assert_eq!(one.top(10), batched.top(10));
        assert_eq!(one.distinct(), batched.distinct());
        assert_eq!(batched.entries().count(), 500);
    }

    #[test]
    fn rescan_lists_every_smallest_entry_in_table_order() {
        let mut t = Talkers::new(300);
        for (a, len, ts) in churn(20_000, 2_000) {
            t.add(a, len, ts);
        }
        t.rescan();
        let min = t.entries().map(|e| e.packets).min().unwrap();
        let expected: Vec<IpAddr> = t
            .entries()
            .filter(|e| e.packets == min)
            .map(|e| e.addr)
            .collect();
        assert_eq!(t.min, min);
        assert!(!expected.is_empty());
        assert_eq!(t.candidates, expected);
    }

    #[test]
    fn ipv4_and_ipv6_are_kept_apart() {
        let mut t = Talkers::new(10);
        t.add("10.0.0.1".parse().unwrap(), 1, Timestamp(1));
        t.add("::a00:1".parse().unwrap(), 1, Timestamp(1));
        assert_eq!(t.distinct(), (2, true));
    }
}
