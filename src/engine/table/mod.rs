//! Per-source state with a hard bound (pure): one compact record per tracked source, laid out
//! by [`Layout`] from the table's rules, in chunks that never move; an index of slot numbers
//! (with a fingerprint of the key's hash beside each, `index.rs`) finds a source's record by
//! its key.
//!
//! Invariants: at most `max_sources` records are live; a record unseen for longer than the
//! longest window (plus one time unit) is idle and evicted by [`SourceTable::sweep`]; when the
//! table is full and nothing is idle, new sources are *not* tracked and counted in
//! `untracked`, so a spoofed flood cannot grow memory. Slots handed out stay valid until the
//! next sweep. Nothing is allocated per packet except when a record's distinct set or heavy
//! cells grow (bounded: see `distinct.rs`, `cells.rs`).
//!
//! Files: `layout.rs` (the record, compiled from rules), `cells.rs` (packed rate cells),
//! `distinct.rs` (distinct-value sets), `count.rs` (a packet counted into a record),
//! `index.rs` (key hash → slot, one cache line per probe).

pub mod cells;
mod count;
pub mod distinct;
pub(crate) mod index;
pub mod layout;
pub(crate) mod ports;
pub(crate) mod prefetch;
mod set_index;
#[cfg(test)]
mod tests;

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use crate::engine::sources::SourceKey;
use crate::packet::PacketMeta;
use cells::HeavyPool;
use distinct::SetPool;
use index::Index;
use layout::{BitIndexed, Layout, flag, word};

/// Records per chunk of the arena (a chunk is allocated whole and never moves).
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;
/// Records a sweep evicts at a time ([`SourceTable::evict_all`]).
const EVICT_BLOCK: usize = 64;
/// No slot guessed for [`SourceTable::slot_hashed`].
pub const NO_GUESS: u32 = u32::MAX;
/// Records in use plus index up to this size stay in cache (see [`SourceTable::cache_resident`]).
const RESIDENT_BYTES: usize = 128 << 10;
/// `last_seen` is kept in units of 2^10 µs.
const SEEN_SHIFT: u32 = 10;

/// Where a tracked source's state lives; valid until the next [`SourceTable::sweep`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Slot(pub(crate) u32);

/// The table of one group of rules.
#[derive(Debug)]
pub struct SourceTable {
    pub layout: Layout,
    index: Index,
    hasher: RandomState,
    chunks: Vec<Box<[u64]>>,
    /// Slots allocated so far; freed ones are reused first.
    slots: u32,
    free: Vec<u32>,
    pub(crate) heavy: HeavyPool,
    pub(crate) sets: SetPool,
    max_sources: usize,
    last_sweep: u64,
    /// The earliest time (µs) a sweep can evict anything: the oldest source the last sweep
    /// kept turns idle then, and sources seen since are younger (their last-seen time is at
    /// least the time of the batch that saw them, which is at least the sweep's).
    evictable_at: u64,
    /// Cached bucket numbers per entry of `layout.scales` (bucket width µs, bucket start µs,
    /// bucket number), see [`bucket_in`]; window `w` uses entry `layout.scale[w]`.
    scales: BitIndexed<(u64, u64, u64)>,
    /// Packets from sources that could not be tracked because the table was full.
    pub untracked: u64,
    /// Packets of tracked sources with a destination port or address that a distinct window
    /// had to store and the set pool had no room for (the window's count may be low).
    pub untracked_distinct: u64,
    /// A source was turned away since the last sweep (batch mode sweeps between batches).
    full: bool,
    /// Sources evicted as idle, in all.
    pub evicted: u64,
}

/// The 128 address bits of a key, as (high, low) words, and whether it is IPv6.
fn key_words(key: SourceKey) -> (u64, u64, bool) {
    key.words()
}

impl SourceTable {
    pub fn new(layout: Layout, max_sources: usize) -> SourceTable {
        let rate_windows = layout.n_packets + layout.n_bytes;
        let mut scales = BitIndexed([(1, u64::MAX, 0); 32]);
        for (i, &width) in layout.scales.iter().enumerate() {
            scales[i] = (width, u64::MAX, 0);
        }
        let max_sources = max_sources.clamp(1, u32::MAX as usize - 1);
        SourceTable {
            index: Index::new(),
            hasher: RandomState::default(),
            chunks: Vec::new(),
            slots: 0,
            free: Vec::new(),
            heavy: HeavyPool::new(rate_windows),
            // Distinct sets may hold 8 bytes per tracked source on average (8 MB at least).
            sets: SetPool::new(max_sources.max(1 << 20)),
            max_sources,
            last_sweep: 0,
            evictable_at: 0,
            scales,
            untracked: 0,
            untracked_distinct: 0,
            full: false,
            evicted: 0,
            layout,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when the records handed out so far and the index fit in [`RESIDENT_BYTES`]: they
    /// stay in the cache between packets, and a batch needs no look-ahead passes.
    #[inline]
    pub fn cache_resident(&self) -> bool {
        self.index.memory_bytes() + self.slots as usize * self.layout.stride * 8 <= RESIDENT_BYTES
    }

    /// The packet classes any window of this table counts (bit `c` for class `c`): a packet
    /// of another class gets no record here.
    pub fn counted_classes(&self) -> u32 {
        self.layout.counted
    }

    /// Whether any window of this table admits packet `p` of class `c` (its protocol, flags
    /// and destination port; [`Layout::counts`]): a source gets a record only for such a
    /// packet.
    #[inline(always)]
    pub fn counts(&self, c: u8, p: &PacketMeta) -> bool {
        self.layout.counts(c, p)
    }

    /// A new bound (a reload). Raising it admits more sources at once; lowering it admits no
    /// new source above it, and the table shrinks to it as idle sources are swept.
    pub fn set_max_sources(&mut self, max_sources: usize) {
        self.max_sources = max_sources.clamp(1, u32::MAX as usize - 1);
        self.sets.budget_words = self.max_sources.max(1 << 20);
    }

    /// The words of `slot`'s record.
    #[inline]
    pub(crate) fn record(&self, slot: u32) -> &[u64] {
        record_in_ref(&self.chunks, self.layout.stride, slot)
    }

    #[inline]
    pub(crate) fn record_mut(&mut self, slot: u32) -> &mut [u64] {
        record_in(&mut self.chunks, self.layout.stride, slot)
    }

    fn find(&self, key: SourceKey, hash: u64) -> Option<u32> {
        self.index.find(hash, |s| self.holds(s, key))
    }

    /// Whether record `s` is in use and holds `key`.
    #[inline]
    fn holds(&self, s: u32, key: SourceKey) -> bool {
        let (hi, lo, v6) = key_words(key);
        let want = flag::LIVE | if v6 { flag::V6 } else { 0 };
        let r = self.record(s);
        r[word::KEY_LO] == lo
            && r[word::KEY_HI] == hi
            && r[word::META] & (flag::V6 | flag::LIVE) == want
    }

    /// The slot of `key`, creating it if there is room. Never sweeps (slots handed out earlier
    /// stay valid): when the table is full the source is untracked, and
    /// [`SourceTable::sweep_if_full`] sweeps before the next batch.
    #[cfg(test)]
    pub fn slot_deferred(&mut self, key: SourceKey, now_us: u64) -> Option<Slot> {
        let hash = self.hash(key);
        self.slot_hashed(key, hash, NO_GUESS, now_us)
    }

    /// The hash [`SourceTable::slot_hashed`] takes.
    #[inline]
    pub fn hash(&self, key: SourceKey) -> u64 {
        self.hasher.hash_one(key_words(key))
    }

    /// The hasher of [`SourceTable::hash`] (for [`crate::engine::digest::Digester`]: the same
    /// hash of `key.words()`).
    pub fn hasher(&self) -> RandomState {
        self.hasher.clone()
    }

    /// Starts loading the index line a look-up of `hash` will read first. A pass of these over
    /// a batch before the look-ups starts the batch's cache misses at once instead of one
    /// look-up after the other; [`SourceTable::prefetch`] then loads the records.
    #[inline]
    pub fn prefetch_index(&self, hash: u64) {
        self.index.prefetch(hash);
    }

    /// Starts loading the record a look-up of `hash` will most likely find (the first in its
    /// index line with the hash's fingerprint); returns its slot, the guess
    /// [`SourceTable::slot_hashed`] takes ([`NO_GUESS`] if none).
    #[inline]
    pub fn prefetch(&self, hash: u64) -> u32 {
        match self.index.guess(hash) {
            Some(s) if s < self.slots => {
                prefetch::all(self.record(s));
                s
            }
            _ => NO_GUESS,
        }
    }

    /// The slot a look-up of `hash` most likely finds ([`NO_GUESS`] if none): the first in
    /// its index line with the hash's fingerprint, for [`SourceTable::slot_hashed`].
    #[inline]
    pub fn guess(&self, hash: u64) -> u32 {
        self.index.guess(hash).unwrap_or(NO_GUESS)
    }

    /// [`SourceTable::slot_deferred`] with the key's hash already computed, and the slot
    /// [`SourceTable::prefetch`] guessed for it (checked first: a guess that does not hold the
    /// key costs a full look-up, never a wrong slot).
    #[inline(always)]
    pub fn slot_hashed(
        &mut self,
        key: SourceKey,
        hash: u64,
        guess: u32,
        now_us: u64,
    ) -> Option<Slot> {
        self.slot_with(key, hash, guess, now_us, false)
    }

    /// [`SourceTable::slot_hashed`]; with `sets_ahead`, also starts loading the distinct sets
    /// of a source it finds ([`SourceTable::prefetch_sets`]) while it holds the record: for
    /// the look-up pass, which counts each packet later.
    #[inline(always)]
    pub fn slot_with(
        &mut self,
        key: SourceKey,
        hash: u64,
        guess: u32,
        now_us: u64,
        sets_ahead: bool,
    ) -> Option<Slot> {
        let seen = now_us >> SEEN_SHIFT;
        let found = if guess < self.slots && self.holds(guess, key) {
            Some(guess)
        } else {
            self.find(key, hash)
        };
        if let Some(s) = found {
            let SourceTable {
                chunks,
                layout,
                sets,
                ..
            } = self;
            let r = record_in(chunks, layout.stride, s);
            r[word::TIMES] = (r[word::TIMES] & !0xffff_ffff) | (seen & 0xffff_ffff);
            if sets_ahead {
                prefetch_sets_in(layout, sets, r);
            }
            return Some(Slot(s));
        }
        if self.len() >= self.max_sources {
            self.untracked += 1;
            self.full = true;
            return None;
        }
        let s = self.alloc_slot();
        self.init_record(s, key, now_us);
        let hasher = &self.hasher;
        let chunks = &self.chunks;
        let stride = self.layout.stride;
        self.index.insert(hash, s, |slots, out| {
            // The records' first words (key and flags) for the whole block, then the hashes.
            for &t in slots {
                prefetch::ends(&record_in_ref(chunks, stride, t)[..=word::META]);
            }
            out.extend(
                slots
                    .iter()
                    .map(|&t| record_hash(hasher, record_in_ref(chunks, stride, t))),
            );
        });
        Some(Slot(s))
    }

    fn alloc_slot(&mut self) -> u32 {
        if let Some(s) = self.free.pop() {
            return s;
        }
        let s = self.slots;
        self.slots += 1;
        if (s as usize) >> CHUNK_BITS >= self.chunks.len() {
            self.chunks
                .push(vec![0u64; CHUNK * self.layout.stride].into_boxed_slice());
        }
        s
    }

    fn init_record(&mut self, s: u32, key: SourceKey, now_us: u64) {
        let (hi, lo, v6) = key_words(key);
        let first_distinct = self.layout.first_distinct();
        // The record borrowed once (beside the clocks' scales), not once per word written.
        let r = record_in(&mut self.chunks, self.layout.stride, s);
        r.fill(0);
        r[word::KEY_HI] = hi;
        r[word::KEY_LO] = lo;
        r[word::META] = flag::LIVE | if v6 { flag::V6 } else { 0 };
        set_time(r, 0, ((now_us >> SEEN_SHIFT) & 0xffff_ffff) as u32);
        let clocks = self.layout.clocks.len();
        for c in 0..clocks {
            set_time(r, c + 1, bucket_in(&mut self.scales[c], now_us));
        }
        for win in self.layout.windows.iter().skip(first_distinct) {
            r[win.offset] = distinct::empty((now_us / win.span.bucket_us) as u32);
        }
    }

    /// Sweeps idle keys if the table filled up since the last sweep (at most once per bucket
    /// of the shortest window).
    pub fn sweep_if_full(&mut self, now_us: u64) {
        if self.full && self.sweep_due(now_us) && self.may_evict(now_us) {
            self.full = false;
            self.sweep(now_us);
        }
    }

    /// Whether a sweep at `now_us` can evict anything. A table kept full by sources that are
    /// all active (a flood from spoofed addresses) scanned every record once per bucket of
    /// the shortest window, to evict nothing: 18% of a replay's samples with 100k sources
    /// (BENCHMARKS.md, session of 2026-12-03, fourteenth). A clock that went back always
    /// sweeps (sources "in the future" are evicted).
    fn may_evict(&self, now_us: u64) -> bool {
        now_us >= self.evictable_at || now_us < self.last_sweep
    }

    /// A full table sweeps at most once per bucket of the shortest window, so a table full of
    /// active sources does not turn every new packet into a full scan.
    fn sweep_due(&self, now_us: u64) -> bool {
        let min_bucket = self
            .layout
            .windows
            .iter()
            .map(|w| w.span.bucket_us)
            .min()
            .unwrap_or(1);
        now_us >= self.last_sweep.saturating_add(min_bucket) || now_us < self.last_sweep
    }

    /// Sweeps when a longest-window has passed since the last sweep, so memory is released
    /// after an attack even when the table never fills.
    pub fn maybe_sweep(&mut self, now_us: u64) {
        let due = now_us >= self.last_sweep.saturating_add(self.layout.idle_us)
            || now_us < self.last_sweep;
        if due && self.may_evict(now_us) {
            self.sweep(now_us);
        }
    }

    /// Evicts every record idle for longer than the longest window; returns how many.
    pub fn sweep(&mut self, now_us: u64) -> usize {
        self.last_sweep = now_us;
        let now = ((now_us >> SEEN_SHIFT) & 0xffff_ffff) as u32;
        // One unit more than the window, so rounding never evicts a source too early.
        let idle = (self.layout.idle_us >> SEEN_SHIFT).saturating_add(1);
        let limit = idle.min(u64::from(u32::MAX >> 1));
        let mut n = 0;
        let mut idle_slots = Vec::with_capacity(EVICT_BLOCK);
        // The age of the oldest source kept (at most `limit`).
        let mut oldest = 0;
        for s in 0..self.slots {
            let r = self.record(s);
            if r[word::META] & flag::LIVE == 0 {
                continue;
            }
            let seen = r[word::TIMES] as u32;
            // Idle, or "in the future" after a clock reset.
            let age = u64::from(now.wrapping_sub(seen));
            if age > limit {
                idle_slots.push(s);
                if idle_slots.len() == EVICT_BLOCK {
                    self.evict_all(&idle_slots);
                    idle_slots.clear();
                }
                n += 1;
            } else {
                oldest = oldest.max(age);
            }
        }
        self.evict_all(&idle_slots);
        self.evicted += n as u64;
        // The oldest one kept is evicted once its age passes `limit`; a source seen later,
        // later still.
        let at = (now_us >> SEEN_SHIFT) + (limit + 1 - oldest);
        self.evictable_at = at.saturating_mul(1 << SEEN_SHIFT);
        n
    }

    /// Evicts `slots` (at most [`EVICT_BLOCK`], in order), their index lines and distinct sets
    /// loaded ahead all at once: one at a time, each eviction waited for its index line and
    /// then its sets (a replay whose one sweep evicts a million sources: 0.31 -> 0.28 s,
    /// BENCHMARKS.md, session of 2026-12-03, fourteenth).
    fn evict_all(&mut self, slots: &[u32]) {
        let mut hashes = [0u64; EVICT_BLOCK];
        for (h, &s) in hashes.iter_mut().zip(slots) {
            *h = self.key_hash(s);
            self.index.prefetch(*h);
            self.prefetch_sets(s);
        }
        for (&h, &s) in hashes.iter().zip(slots) {
            self.evict(s, h);
        }
    }

    /// The hash of record `s`'s key.
    fn key_hash(&self, s: u32) -> u64 {
        record_hash(&self.hasher, self.record(s))
    }

    /// Evicts record `s`, whose key hashes to `hash`.
    fn evict(&mut self, s: u32, hash: u64) {
        let meta = self.record(s)[word::META];
        self.index.remove(hash, s);
        let heavy = (meta >> flag::HEAVY_SHIFT) as u32;
        if heavy != 0 {
            self.heavy.free(heavy);
        }
        let overflow = ((meta >> flag::OVERFLOW_SHIFT) & 0xffff) as u32;
        for (i, w) in (self.layout.first_distinct()..self.layout.windows.len()).enumerate() {
            if overflow & (1 << i) != 0 {
                let h = self.record(s)[self.layout.windows[w].offset] as u32;
                self.sets.free(h);
            }
        }
        self.record_mut(s).fill(0);
        self.free.push(s);
    }

    /// Starts loading each of `slot`'s distinct sets (reading the record, loaded by
    /// [`SourceTable::prefetch`], for their handles): called in the look-up pass as each
    /// record is found, so the sets' misses overlap the rest of the pass and arrive before
    /// counting.
    #[inline]
    pub fn prefetch_sets(&self, slot: u32) {
        prefetch_sets_in(&self.layout, &self.sets, self.record(slot));
    }

    /// The slot of `key` if tracked (no change).
    pub fn lookup(&self, key: SourceKey) -> Option<Slot> {
        self.find(key, self.hash(key)).map(Slot)
    }

    /// Rule `r`'s (index within the table) current value for `key` (for `explain`).
    pub fn rule_value(&self, key: SourceKey, r: usize, now_us: u64) -> u64 {
        match (self.lookup(key), self.layout.rules.get(r)) {
            (Some(slot), Some(rule)) => self.value(slot, rule.window, now_us),
            _ => 0,
        }
    }

    /// Approximate bytes held (index, records, side pools), for reports and the memory tests.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes()
            + self.chunks.len() * CHUNK * self.layout.stride * 8
            + self.free.capacity() * 4
            + self.heavy.memory_bytes()
            + self.sets.memory_bytes()
    }
}

/// The bucket number of `ts_us` in a `scales` entry (bucket width µs, start of the cached
/// bucket µs, its number): a division only when `ts_us` left the cached bucket.
#[inline]
pub(crate) fn bucket_in(s: &mut (u64, u64, u64), ts_us: u64) -> u32 {
    let width_us = s.0;
    if ts_us.wrapping_sub(s.1) >= width_us {
        let b = ts_us / width_us;
        s.1 = b * width_us;
        s.2 = b;
    }
    s.2 as u32
}

/// Starts loading the distinct sets of record `r` (the handles its overflowed windows hold).
#[inline(always)]
fn prefetch_sets_in(layout: &Layout, sets: &SetPool, r: &[u64]) {
    let mut overflow = ((r[word::META] >> flag::OVERFLOW_SHIFT) & 0xffff) as u32;
    let first = layout.first_distinct();
    while overflow != 0 {
        let i = overflow.trailing_zeros() as usize;
        overflow &= overflow - 1;
        if let Some(&h) = r.get(usize::from(layout.offset[first + i])) {
            sets.prefetch(h as u32);
        }
    }
}

/// Where record `s` sits: its chunk, and the range of its words there.
#[inline]
fn place_of(stride: usize, s: u32) -> (usize, std::ops::Range<usize>) {
    let b = (s as usize & (CHUNK - 1)) * stride;
    ((s >> CHUNK_BITS) as usize, b..b + stride)
}

/// The words of record `s` in `chunks` (for functions that also borrow other fields).
#[inline]
pub(crate) fn record_in(chunks: &mut [Box<[u64]>], stride: usize, s: u32) -> &mut [u64] {
    let (c, words) = place_of(stride, s);
    &mut chunks[c][words]
}

/// The hash of record `r`'s key, as [`SourceTable::hash`] makes it from the key.
#[inline]
fn record_hash(hasher: &RandomState, r: &[u64]) -> u64 {
    let v6 = r[word::META] & flag::V6 != 0;
    hasher.hash_one((r[word::KEY_HI], r[word::KEY_LO], v6))
}

/// [`record_in`] to read.
#[inline]
fn record_in_ref(chunks: &[Box<[u64]>], stride: usize, s: u32) -> &[u64] {
    let (c, words) = place_of(stride, s);
    &chunks[c][words]
}

/// Time field `i` of a record (0 = last seen, then the clocks), two per word.
#[inline]
pub(crate) fn time(r: &[u64], i: usize) -> u32 {
    (r[word::TIMES + i / 2] >> (32 * (i % 2))) as u32
}

#[inline]
pub(crate) fn set_time(r: &mut [u64], i: usize, v: u32) {
    let w = &mut r[word::TIMES + i / 2];
    let shift = 32 * (i % 2);
    *w = (*w & !(0xffff_ffffu64 << shift)) | u64::from(v) << shift;
}
