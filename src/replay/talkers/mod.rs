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
//! entries at the current minimum, in slot order), so a replacement costs O(1) amortized when
//! many entries share the minimum (the long tail of one-packet sources), O(k) at worst; the
//! scan is one pass. The new source takes the replaced entry's slot.
//!
//! The entries live in a vector of slots, one cache line each, found through the source
//! table's index ([`Index`]: a cache line of 10 hash fingerprints and slots per bucket). A
//! batch is counted [`AHEAD`] packets at a time in three passes: prefetch each packet's index
//! line; read the slot its fingerprint guesses there and prefetch that entry; count. A
//! prefetch instruction retires at once, so a chunk's misses all overlap, and its lines are
//! still in L1 when it is counted. (Keyed by hashbrown, whose buckets' addresses are known only
//! after a look-up, the look-ahead had to be a full look-up: two dependent misses, as loads.)

use std::hash::BuildHasher;
use std::net::IpAddr;

use foldhash::fast::FixedState;

use crate::engine::table::index::Index;
use crate::engine::table::prefetch;
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

/// How many packets [`Talkers::add_batch`] prefetches before counting them: enough misses in
/// flight to overlap, few enough lines (two each) that they stay in L1.
const AHEAD: usize = 128;

/// How many replacements ahead [`Talkers::remove_smallest`] prefetches a candidate's entry,
/// and its index line (computed from the entry: fewer ahead).
const ENTRY_AHEAD: usize = 8;
const INDEX_AHEAD: usize = 4;

/// No slot guessed.
const NO_GUESS: u32 = u32::MAX;

/// HyperLogLog registers: 2^12 (4 KiB, standard error ~1.6%).
const HLL_BITS: u32 = 12;

pub struct Talkers {
    k: usize,
    /// The entries, by slot (at most `k`; a slot is never freed, only taken over).
    slots: Vec<Entry>,
    /// Each entry's address hash → its slot.
    index: Index,
    hasher: FixedState,
    /// Slots whose entries had the smallest count when last scanned.
    candidates: Vec<u32>,
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
        let k = k.max(1);
        Talkers {
            k,
            // Reserved once (pages are touched as entries arrive): no growth, and no old + new
            // copy at the peak. The index grows with the entries.
            slots: Vec::with_capacity(k),
            index: Index::new(),
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

    /// Counts a batch of packets: (source, length, time) each, [`AHEAD`] at a time: the index
    /// lines of a chunk are prefetched, then the entries they guess, then the chunk is counted.
    pub fn add_batch<'a>(
        &mut self,
        packets: impl Iterator<Item = (IpAddr, u32, Timestamp)> + Clone + 'a,
    ) {
        let mut hashes = [0u64; AHEAD];
        let mut guesses = [NO_GUESS; AHEAD];
        let mut ahead = packets.clone().map(|(addr, _, _)| addr);
        let mut packets = packets.peekable();
        while packets.peek().is_some() {
            let mut n = 0;
            for (h, addr) in hashes.iter_mut().zip(ahead.by_ref().take(AHEAD)) {
                *h = self.hash(addr);
                self.index.prefetch(*h);
                n += 1;
            }
            for (g, &h) in guesses.iter_mut().zip(&hashes[..n]) {
                *g = self.prefetch_guess(h);
            }
            let chunk = hashes
                .iter()
                .zip(&guesses)
                .zip(packets.by_ref().take(AHEAD));
            for ((&h, &g), (addr, len, ts)) in chunk {
                self.add_hashed(addr, len, ts, h, g);
            }
        }
    }

    /// Starts loading the entry a look-up of `hash` most likely finds; returns its slot.
    #[inline]
    fn prefetch_guess(&self, hash: u64) -> u32 {
        match self.index.guess(hash) {
            Some(s) if (s as usize) < self.slots.len() => {
                prefetch::line(&self.slots[s as usize]);
                s
            }
            _ => NO_GUESS,
        }
    }

    /// Counts one packet of `len` bytes from `addr` at `ts`.
    #[cfg(test)]
    pub fn add(&mut self, addr: IpAddr, len: u32, ts: Timestamp) {
        let h = self.hash(addr);
        self.add_hashed(addr, len, ts, h, NO_GUESS);
    }

    /// The slot holding `addr` (hash `hash`), trying `guess` first.
    #[inline]
    fn find(&self, addr: IpAddr, hash: u64, guess: u32) -> Option<u32> {
        let holds = |s: u32| self.slots.get(s as usize).is_some_and(|e| e.addr == addr);
        if holds(guess) {
            return Some(guess);
        }
        self.index.find(hash, holds)
    }

    #[inline]
    fn add_hashed(&mut self, addr: IpAddr, len: u32, ts: Timestamp, hash: u64, guess: u32) {
        let reg = (hash >> (64 - HLL_BITS)) as usize;
        let rank = ((hash << HLL_BITS) | (1 << (HLL_BITS - 1))).leading_zeros() as u8 + 1;
        if self.hll[reg] < rank {
            self.hll[reg] = rank;
        }
        if let Some(s) = self.find(addr, hash, guess) {
            let e = &mut self.slots[s as usize];
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
        let slot = if self.slots.len() < self.k {
            self.slots.push(fresh);
            self.slots.len() - 1
        } else {
            let (s, m) = self.remove_smallest();
            fresh.packets = m + 1;
            fresh.err = m;
            self.replaced = true;
            self.slots[s] = fresh;
            s
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        // Slots are below `k`, itself below u32::MAX (a replay keeps far fewer).
        self.index.insert(hash, slot as u32, |block, out| {
            for &s in block {
                if let Some(e) = slots.get(s as usize) {
                    prefetch::line(e);
                }
            }
            out.extend(
                block
                    .iter()
                    .map(|&s| hasher.hash_one(key(slots[s as usize].addr))),
            );
        });
    }

    /// Takes an entry with the smallest count out of the index; returns its slot and count.
    fn remove_smallest(&mut self) -> (usize, u64) {
        loop {
            while let Some(s) = self.candidates.pop() {
                self.prefetch_candidates();
                let e = &self.slots[s as usize];
                // Counts only grow and a new entry starts above the minimum: a candidate's
                // slot at the minimum still holds a smallest entry.
                if e.packets == self.min {
                    let h = self.hash(e.addr);
                    self.index.remove(h, s);
                    return (s as usize, self.min);
                }
            }
            self.rescan();
        }
    }

    /// Starts loading what the next replacements read: the entry of the candidate
    /// [`ENTRY_AHEAD`] from the end of the list, the index line of the one [`INDEX_AHEAD`] from
    /// the end (its entry loaded by an earlier call). Taken as loads when their turn comes,
    /// the two were dependent misses per replacement (perf, mixed file: 45% of `add_batch`).
    #[inline]
    fn prefetch_candidates(&self) {
        let ahead = |d: usize| {
            let n = self.candidates.len().checked_sub(d)?;
            self.slots.get(*self.candidates.get(n)? as usize)
        };
        if let Some(e) = ahead(ENTRY_AHEAD) {
            prefetch::line(e);
        }
        if let Some(e) = ahead(INDEX_AHEAD) {
            self.index.prefetch(self.hash(e.addr));
        }
    }

    /// Collects the slots of the entries with the smallest count, in slot order, in one pass.
    fn rescan(&mut self) {
        let mut min = u64::MAX;
        self.candidates.clear();
        for (s, e) in self.slots.iter().enumerate() {
            if e.packets < min {
                min = e.packets;
                self.candidates.clear();
            }
            if e.packets == min {
                self.candidates.push(s as u32);
            }
        }
        self.min = if min == u64::MAX { 0 } else { min };
    }

    /// Distinct sources: exact while nothing was replaced, else estimated.
    pub fn distinct(&self) -> (u64, bool) {
        if !self.replaced {
            return (self.slots.len() as u64, true);
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
        let mut all: Vec<&Entry> = self.slots.iter().collect();
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
        self.slots.iter()
    }

    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Entry>()
            + self.index.memory_bytes()
            + self.candidates.capacity() * std::mem::size_of::<u32>()
            + self.hll.len()
    }
}

#[cfg(test)]
mod tests;
