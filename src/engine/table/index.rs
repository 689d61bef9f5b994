//! The source table's index (pure): a key's hash → its record's slot, with 16 bits of the
//! hash kept beside each slot, in buckets of one cache line (10 entries, line-aligned), so a
//! look-up reads one line of the index and then only the record whose fingerprint matches
//! (another record's, for 1 in 65,536 entries compared).
//!
//! (hashbrown's table keeps its tag bytes and its slots in two arrays: two lines per probe,
//! one after the other, before the record.)
//!
//! Invariants: an entry is empty, removed (a tombstone), or a slot with the high 16 bits of
//! its key's hash; a key's entry sits in its home line (`hash & mask`) or in a later one
//! (wrapping), and every line between holds no empty entry, so a probe stops at the first
//! line with one. Live
//! entries plus tombstones stay at most 4/5 of the entries (the index grows, or is rebuilt
//! without tombstones, before that), so every probe ends.

use super::count::bits;

/// Entries per line.
const WAYS: usize = 10;
/// Entries a rebuild moves at a time (their records and new lines loaded ahead together).
pub const REBUILD_BLOCK: usize = 64;
/// Slot fields: 0 is an empty entry, `TOMB` a removed one, anything else a slot + 1 (no live
/// slot + 1 is `u32::MAX`: the table's bound is below it).
const EMPTY: u32 = 0;
const TOMB: u32 = u32::MAX;

/// One bucket: a cache line of 10 entries, fingerprints first (60 bytes, padded to 64).
#[derive(Copy, Clone, Debug)]
#[repr(C, align(64))]
struct Line {
    fp: [u16; WAYS],
    slot: [u32; WAYS],
}

const EMPTY_LINE: Line = Line {
    fp: [0; WAYS],
    slot: [EMPTY; WAYS],
};

impl Line {
    /// Bit `i` set where `fp[i] == fp`.
    #[inline]
    fn matches(&self, fp: u16) -> u32 {
        // One loop over the whole array: the compiler compares 8 of the 10 in one vector
        // instruction (split in two slices, it compared most of them one by one).
        let mut m = 0u32;
        for (i, &f) in self.fp.iter().enumerate() {
            m |= u32::from(f == fp) << i;
        }
        m
    }

    /// Whether some entry was never used (then the probe sequences through it end here).
    /// Empty entries are filled first to last (a tombstone is reused, never emptied), so the
    /// empty ones are a suffix of the line and the last one tells.
    #[inline]
    fn open(&self) -> bool {
        self.slot[WAYS - 1] == EMPTY
    }
}

#[derive(Debug)]
pub struct Index {
    lines: Vec<Line>,
    /// Live entries.
    len: usize,
    /// Live entries and tombstones.
    used: usize,
}

#[inline]
fn fingerprint(hash: u64) -> u16 {
    (hash >> 48) as u16
}

impl Default for Index {
    fn default() -> Index {
        Index::new()
    }
}

impl Index {
    pub fn new() -> Index {
        Index {
            lines: vec![EMPTY_LINE; 2],
            len: 0,
            used: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Entries held (live or not).
    pub fn capacity(&self) -> usize {
        self.lines.len() * WAYS
    }

    pub fn memory_bytes(&self) -> usize {
        self.lines.capacity() * std::mem::size_of::<Line>()
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & (self.lines.len() - 1)
    }

    /// Starts loading the home line of `hash`.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        super::prefetch::line(&self.lines[self.home(hash)]);
    }

    /// The first slot in `hash`'s home line whose fingerprint matches (a guess, to load its
    /// record ahead of the look-up).
    #[inline]
    pub fn guess(&self, hash: u64) -> Option<u32> {
        let line = &self.lines[self.home(hash)];
        let m = line.matches(fingerprint(hash));
        let s = line.slot[(m.trailing_zeros() as usize).min(WAYS - 1)];
        (m != 0 && s != EMPTY && s != TOMB).then(|| s - 1)
    }

    /// The slot whose entry matches `hash`'s fingerprint and for which `is_key` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let fp = fingerprint(hash);
        let mask = self.lines.len() - 1;
        let mut i = self.home(hash);
        for _ in 0..self.lines.len() {
            let line = &self.lines[i];
            for w in bits(line.matches(fp)) {
                let s = line.slot[w];
                if s != EMPTY && s != TOMB && is_key(s - 1) {
                    return Some(s - 1);
                }
            }
            if line.open() {
                return None;
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Adds `slot` under `hash` (the caller knows its key is not in the index). When the
    /// index grows, `rehash` appends the hashes of a block of slots already in it (up to
    /// [`REBUILD_BLOCK`] at a time, in order) to its vector.
    pub fn insert(&mut self, hash: u64, slot: u32, mut rehash: impl FnMut(&[u32], &mut Vec<u64>)) {
        if (self.used + 1) * 5 > self.capacity() * 4 {
            // Grow, unless tombstones are most of what fills it: then rebuild at this size.
            let lines = if (self.len + 1) * 2 > self.capacity() {
                self.lines.len() * 2
            } else {
                self.lines.len()
            };
            self.rebuild(lines, &mut rehash);
        }
        self.place(hash, slot);
    }

    /// Puts `slot` in the first free entry of `hash`'s probe sequence.
    fn place(&mut self, hash: u64, slot: u32) {
        let mask = self.lines.len() - 1;
        let mut i = self.home(hash);
        loop {
            let line = &mut self.lines[i];
            if let Some(w) = line.slot.iter().position(|&s| s == EMPTY || s == TOMB) {
                if line.slot[w] == EMPTY {
                    self.used += 1;
                }
                line.fp[w] = fingerprint(hash);
                line.slot[w] = slot + 1;
                self.len += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// Moves every live entry into `lines` new lines, a block at a time: the block's records
    /// are hashed together (the caller loads them ahead, rather than one miss after another)
    /// and the new lines they go to are loaded ahead too. One at a time, each entry cost a
    /// record miss and a line miss: ~8% of the engine thread's time on a replay that reaches
    /// 200k sources (BENCHMARKS.md, session of 2026-12-03, fourteenth).
    fn rebuild(&mut self, lines: usize, rehash: &mut impl FnMut(&[u32], &mut Vec<u64>)) {
        let old = std::mem::replace(&mut self.lines, vec![EMPTY_LINE; lines]);
        self.len = 0;
        self.used = 0;
        let mut slots = Vec::with_capacity(REBUILD_BLOCK);
        let mut hashes = Vec::with_capacity(REBUILD_BLOCK);
        for line in &old {
            for &s in &line.slot {
                if s != EMPTY && s != TOMB {
                    slots.push(s - 1);
                }
            }
            // A line holds at most WAYS: the block stays within REBUILD_BLOCK.
            if slots.len() + WAYS > REBUILD_BLOCK {
                self.move_block(&mut slots, &mut hashes, rehash);
            }
        }
        self.move_block(&mut slots, &mut hashes, rehash);
    }

    /// [`Index::rebuild`]'s step: hashes `slots` (through `rehash`), loads their new lines
    /// ahead, places them, and empties both vectors.
    fn move_block(
        &mut self,
        slots: &mut Vec<u32>,
        hashes: &mut Vec<u64>,
        rehash: &mut impl FnMut(&[u32], &mut Vec<u64>),
    ) {
        rehash(slots, hashes);
        for &h in hashes.iter() {
            self.prefetch(h);
        }
        for (&h, &s) in hashes.iter().zip(slots.iter()) {
            self.place(h, s);
        }
        slots.clear();
        hashes.clear();
    }

    /// Removes `slot`'s entry (found under `hash`); false if it was not there.
    pub fn remove(&mut self, hash: u64, slot: u32) -> bool {
        let mask = self.lines.len() - 1;
        let mut i = self.home(hash);
        for _ in 0..self.lines.len() {
            let line = &mut self.lines[i];
            if let Some(w) = line.slot.iter().position(|&s| s == slot + 1) {
                line.slot[w] = TOMB;
                self.len -= 1;
                return true;
            }
            if line.open() {
                return false;
            }
            i = (i + 1) & mask;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rehash for [`Index::insert`] from a hash of each slot.
    fn each(f: impl Fn(u32) -> u64) -> impl FnMut(&[u32], &mut Vec<u64>) {
        move |slots, out| out.extend(slots.iter().map(|&s| f(s)))
    }

    /// Hashes that all share one home line and, for odd `i`, one fingerprint.
    fn crowded(i: u32) -> u64 {
        (u64::from(i % 2) << 56) | 5
    }

    #[test]
    fn finds_what_was_inserted_and_nothing_else() {
        let mut ix = Index::new();
        let hash = |s: u32| u64::from(s).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for s in 0..10_000 {
            ix.insert(hash(s), s, each(hash));
        }
        assert_eq!(ix.len(), 10_000);
        for s in 0..10_000 {
            assert_eq!(ix.find(hash(s), |t| t == s), Some(s));
        }
        assert_eq!(ix.find(hash(10_001), |t| t == 10_001), None);
        // Bound: at most 4/5 full, so 10,000 entries take 2^11 lines of 10 (128 KiB).
        assert_eq!(ix.capacity(), (1 << 11) * 10);
        assert_eq!(ix.memory_bytes(), (1 << 11) * 64);
        assert_eq!(std::mem::size_of::<Line>(), 64);
    }

    #[test]
    fn a_rebuild_rehashes_each_live_slot_once_in_bounded_blocks() {
        let mut ix = Index::new();
        let hash = |s: u32| u64::from(s).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let seen = std::cell::RefCell::new(Vec::new());
        let mut largest = 0;
        for s in 0..5_000 {
            // Remove every third slot as it goes, so rebuilds also meet tombstones.
            if s % 3 == 2 {
                assert!(ix.remove(hash(s - 1), s - 1));
            }
            let before = ix.capacity();
            seen.borrow_mut().clear();
            ix.insert(hash(s), s, |block, out| {
                largest = largest.max(block.len());
                seen.borrow_mut().extend_from_slice(block);
                out.extend(block.iter().map(|&t| hash(t)));
            });
            let mut moved = seen.borrow().clone();
            if moved.is_empty() {
                continue;
            }
            // Every entry live before the insert, once each, and nothing else.
            moved.sort_unstable();
            let live: Vec<u32> = (0..s).filter(|t| t % 3 != 1).collect();
            assert_eq!(moved, live, "rebuild at {s} (capacity {before})");
        }
        assert!(
            largest <= REBUILD_BLOCK && largest > 1,
            "blocks of {largest}"
        );
        for s in 0..5_000 {
            // The last one inserted was never removed.
            let want = (s % 3 != 1 || s == 4_999).then_some(s);
            assert_eq!(ix.find(hash(s), |t| t == s), want, "slot {s}");
        }
    }

    #[test]
    fn a_crowded_line_spills_into_the_next_and_is_still_found() {
        let mut ix = Index::new();
        for s in 0..12 {
            ix.insert(crowded(s), s, each(crowded));
        }
        assert_eq!(
            ix.capacity(),
            20,
            "two lines: 10 in the home line, 2 spilled"
        );
        // Same fingerprint for every odd slot: the key test tells them apart.
        for s in 0..12 {
            assert_eq!(ix.find(crowded(s), |t| t == s), Some(s), "slot {s}");
        }
        assert_eq!(
            ix.guess(crowded(3)),
            Some(1),
            "the first match in the home line"
        );
        // Removing one in the home line leaves the spilled ones reachable.
        assert!(ix.remove(crowded(2), 2));
        assert!(!ix.remove(crowded(2), 2));
        assert_eq!(ix.find(crowded(2), |t| t == 2), None);
        for s in (0..12).filter(|&s| s != 2) {
            assert_eq!(ix.find(crowded(s), |t| t == s), Some(s), "slot {s}");
        }
        // Empty entries are a suffix of each line (what `open` relies on).
        for line in &ix.lines {
            let first_empty = line.slot.iter().position(|&s| s == EMPTY).unwrap_or(WAYS);
            assert!(line.slot[first_empty..].iter().all(|&s| s == EMPTY));
        }
        // The tombstone is reused.
        ix.insert(crowded(20), 20, each(crowded));
        assert_eq!(ix.find(crowded(20), |t| t == 20), Some(20));
        assert_eq!(ix.len(), 12);
    }

    #[test]
    fn churn_rebuilds_without_growing() {
        let mut ix = Index::new();
        let hash = |s: u32| u64::from(s).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for round in 0..50u32 {
            for s in round * 100..round * 100 + 100 {
                ix.insert(hash(s), s, each(hash));
            }
            if round > 0 {
                for s in (round - 1) * 100..round * 100 {
                    assert!(ix.remove(hash(s), s));
                }
            }
        }
        assert_eq!(ix.len(), 100);
        // At most 200 live at once need 640 entries at most; 5,000 inserts with their
        // tombstones kept would have needed 10,240.
        assert!(ix.capacity() <= 640, "capacity {}", ix.capacity());
        for s in 4900..5000 {
            assert_eq!(ix.find(hash(s), |t| t == s), Some(s));
        }
        assert_eq!(ix.find(hash(4899), |t| t == 4899), None);
    }
}
