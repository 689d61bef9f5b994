//! Distinct-value windows (pure): the values a source sent to (ports, addresses) with the
//! bucket each was last seen in. One value sits inline in the record; a second live one moves
//! the window to a set from [`SetPool`], which grows by doubling up to the window's cap and
//! goes back inline once nothing in it is live.
//!
//! Semantics (those of the per-rule windows before, kept exactly): a value counts while it was
//! seen within the last 8 buckets (either side of the packet's bucket, for packets slightly
//! out of order); a value is admitted when it is already stored or fewer than `cap` values
//! are live; the count is the number of live admitted values, so it never exceeds `cap`.
//! A set that cannot grow because the pool's budget is spent leaves the value out and says so
//! (the caller reports the packet as not fully tracked): never a silent undercount.

/// An entry: value (low 32 bits), bucket last seen (high 32).
#[inline]
pub fn pack(value: u32, bucket: u32) -> u64 {
    u64::from(value) | u64::from(bucket) << 32
}

#[inline]
pub fn value_of(e: u64) -> u32 {
    e as u32
}

/// Seen within the window of bucket `b`: at most 7 buckets before it or after it.
#[inline]
pub fn live(e: u64, b: u32) -> bool {
    // |b - bucket| < BUCKETS, as one unsigned compare (the scan of a set vectorizes).
    const B: u32 = super::layout::BUCKETS;
    b.wrapping_sub((e >> 32) as u32).wrapping_add(B - 1) < 2 * B - 1
}

/// An empty inline entry as of bucket `b` (stale by construction).
pub fn empty(b: u32) -> u64 {
    pack(0, b.wrapping_sub(1 << 20))
}

/// Smallest set: 4 entries; class `c` holds `4 << c`.
const MIN_ENTRIES: usize = 4;
const CLASSES: usize = 14;

/// Outcome of adding a value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Added {
    /// Live values after the packet.
    pub count: u64,
    /// The value should have been stored but the pool was out of budget.
    pub short: bool,
}

impl Added {
    /// `count` live values, the packet's among them if it had to be stored.
    fn admitted(count: u64) -> Added {
        Added {
            count,
            short: false,
        }
    }
}

/// Sets of entries in size classes, within a budget of words.
#[derive(Debug)]
pub struct SetPool {
    /// Per class: blocks of `1 + (4 << c)` words (header: entries in use).
    slabs: Vec<Vec<u64>>,
    free: Vec<Vec<u32>>,
    /// Words allocated to sets in use, and the most allowed.
    pub used_words: usize,
    pub budget_words: usize,
}

/// A set's handle: class in the top 5 bits, block number below.
fn handle(class: usize, block: usize) -> u32 {
    (class as u32) << 27 | block as u32
}

fn split(h: u32) -> (usize, usize) {
    ((h >> 27) as usize, (h & ((1 << 27) - 1)) as usize)
}

fn block_words(class: usize) -> usize {
    1 + (MIN_ENTRIES << class)
}

/// A block's first word: entries in use (bits 0-15; at most `4 << 13`), and how many of them
/// were live at a bucket (bits 16-31, [`UNKNOWN`] if not known) and that bucket (bits 32-63),
/// so that packets within one bucket need not recount the set.
fn header(n: usize, alive: u64, b: u32) -> u64 {
    n as u64 | alive << 16 | u64::from(b) << 32
}

/// The live count of a header that knows none.
const UNKNOWN: u64 = 0xffff;

fn in_use(head: u64) -> usize {
    (head & 0xffff) as usize
}

/// Live values among `entries` at bucket `b`: the header's count if it is for `b`.
#[inline]
fn alive_at(head: u64, b: u32, entries: &[u64]) -> u64 {
    let known = (head >> 16) & 0xffff;
    if known != UNKNOWN && (head >> 32) as u32 == b {
        return known;
    }
    entries.iter().map(|&e| u64::from(live(e, b))).sum()
}

/// Where `value` is among `entries` (a set holds a value once), eight entries per step.
#[inline]
fn find(entries: &[u64], value: u32) -> Option<usize> {
    let mut chunks = entries.chunks_exact(8);
    for (k, chunk) in chunks.by_ref().enumerate() {
        let m = chunk
            .iter()
            .enumerate()
            .fold(0u32, |m, (i, &e)| m | u32::from(value_of(e) == value) << i);
        if m != 0 {
            return Some(k * 8 + m.trailing_zeros() as usize);
        }
    }
    let rest = chunks.remainder();
    let base = entries.len() - rest.len();
    rest.iter()
        .position(|&e| value_of(e) == value)
        .map(|i| base + i)
}

impl SetPool {
    pub fn new(budget_words: usize) -> SetPool {
        SetPool {
            slabs: vec![Vec::new(); CLASSES],
            free: vec![Vec::new(); CLASSES],
            used_words: 0,
            budget_words,
        }
    }

    fn alloc(&mut self, class: usize) -> Option<u32> {
        let words = block_words(class);
        if class >= CLASSES || self.used_words + words > self.budget_words {
            return None;
        }
        self.used_words += words;
        if let Some(b) = self.free[class].pop() {
            return Some(handle(class, b as usize));
        }
        let slab = &mut self.slabs[class];
        let b = slab.len() / words;
        if b >= 1 << 27 {
            self.used_words -= words;
            return None;
        }
        slab.resize(slab.len() + words, 0);
        Some(handle(class, b))
    }

    pub fn free(&mut self, h: u32) {
        let (class, b) = split(h);
        let words = block_words(class);
        if let Some(slab) = self.slabs.get_mut(class)
            && let Some(block) = slab.get_mut(b * words..(b + 1) * words)
        {
            block[0] = 0;
            self.free[class].push(b as u32);
            self.used_words -= words;
        }
    }

    fn block(&self, h: u32) -> &[u64] {
        let (class, b) = split(h);
        let words = block_words(class);
        &self.slabs[class][b * words..(b + 1) * words]
    }

    fn block_mut(&mut self, h: u32) -> &mut [u64] {
        let (class, b) = split(h);
        let words = block_words(class);
        &mut self.slabs[class][b * words..(b + 1) * words]
    }

    /// Starts loading set `h`'s block.
    #[inline]
    pub fn prefetch(&self, h: u32) {
        let (class, b) = split(h);
        let words = block_words(class);
        if let Some(block) = self
            .slabs
            .get(class)
            .and_then(|s| s.get(b * words..(b + 1) * words))
        {
            super::prefetch::ends(block);
        }
    }

    /// A new set holding `a` and `b`; `None` when out of budget.
    pub fn pair(&mut self, a: u64, b: u64) -> Option<u32> {
        let h = self.alloc(0)?;
        let block = self.block_mut(h);
        block[0] = header(2, UNKNOWN, 0);
        block[1] = a;
        block[2] = b;
        Some(h)
    }

    /// Adds `value` seen at bucket `b` to set `h` (capped at `cap` live values). Returns the
    /// outcome and the set's handle afterwards (`None`: nothing live is left besides `value`,
    /// which the caller keeps inline; the set was freed).
    pub fn add(&mut self, h: u32, value: u32, b: u32, cap: u64) -> (Added, Option<u32>) {
        let block = self.block_mut(h);
        let n = in_use(block[0]);
        let alive = alive_at(block[0], b, &block[1..=n]);
        let found = find(&block[1..=n], value).map(|i| (i, live(block[1 + i], b)));
        match found {
            Some((i, true)) => {
                block[1 + i] = pack(value, b);
                block[0] = header(n, alive, b);
                return (Added::admitted(alive), Some(h));
            }
            Some((i, false)) if alive < cap => {
                block[1 + i] = pack(value, b);
                block[0] = header(n, alive + 1, b);
                return (Added::admitted(alive + 1), Some(h));
            }
            _ => {}
        }
        if alive == 0 {
            self.free(h);
            return (Added::admitted(1), None);
        }
        if alive >= cap {
            block[0] = header(n, alive, b);
            return (Added::admitted(alive), Some(h));
        }
        let (class, _) = split(h);
        let capacity = MIN_ENTRIES << class;
        if n < capacity {
            block[1 + n] = pack(value, b);
            block[0] = header(n + 1, alive + 1, b);
            return (Added::admitted(alive + 1), Some(h));
        }
        if (alive as usize) < n {
            // Drop what went stale, then there is room.
            let mut w = 1;
            for r in 1..=n {
                if live(block[r], b) {
                    block[w] = block[r];
                    w += 1;
                }
            }
            block[w] = pack(value, b);
            block[0] = header(w, alive + 1, b);
            return (Added::admitted(alive + 1), Some(h));
        }
        self.grow(h, n, value, b, alive)
    }

    /// Moves set `h` (`n` entries, all live at bucket `b`) to the next class and adds `value`.
    fn grow(&mut self, h: u32, n: usize, value: u32, b: u32, alive: u64) -> (Added, Option<u32>) {
        let (class, from) = split(h);
        let Some(bigger) = self.alloc(class + 1) else {
            return (
                Added {
                    count: alive,
                    short: true,
                },
                Some(h),
            );
        };
        let (_, to) = split(bigger);
        let (small, large) = self.slabs.split_at_mut(class + 1);
        let (ws, wl) = (block_words(class), block_words(class + 1));
        large[0][to * wl + 1..to * wl + 1 + n]
            .copy_from_slice(&small[class][from * ws + 1..from * ws + 1 + n]);
        self.free(h);
        let block = self.block_mut(bigger);
        block[1 + n] = pack(value, b);
        block[0] = header(n + 1, alive + 1, b);
        (Added::admitted(alive + 1), Some(bigger))
    }

    /// Live values of set `h` as of bucket `b`.
    pub fn count(&self, h: u32, b: u32) -> u64 {
        let block = self.block(h);
        let n = in_use(block[0]);
        alive_at(block[0], b, &block[1..=n])
    }

    pub fn memory_bytes(&self) -> usize {
        self.slabs.iter().map(|s| s.capacity() * 8).sum::<usize>()
            + self.free.iter().map(|f| f.capacity() * 4).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(pool: &mut SetPool, values: std::ops::Range<u32>, b: u32, cap: u64) -> (u32, u64) {
        let mut h = pool
            .pair(pack(values.start, b), pack(values.start + 1, b))
            .unwrap();
        let mut count = 2;
        for v in values.start + 2..values.end {
            let (a, next) = pool.add(h, v, b, cap);
            h = next.unwrap();
            count = a.count;
        }
        (h, count)
    }

    /// The add of the pool before its header counted live values (the reference: one set,
    /// `cap`ped, in a block of `capacity` entries; `None` when it dissolves).
    fn reference_add(
        set: &mut Vec<u64>,
        capacity: &mut usize,
        value: u32,
        b: u32,
        cap: u64,
    ) -> Option<Added> {
        let alive = set.iter().filter(|e| live(**e, b)).count() as u64;
        let found = set.iter().position(|e| value_of(*e) == value);
        let ok = |count| Some(Added::admitted(count));
        match found.map(|i| (i, live(set[i], b))) {
            Some((i, true)) => {
                set[i] = pack(value, b);
                return ok(alive);
            }
            Some((i, false)) if alive < cap => {
                set[i] = pack(value, b);
                return ok(alive + 1);
            }
            _ => {}
        }
        if alive == 0 {
            return None;
        }
        if alive >= cap {
            return ok(alive);
        }
        if set.len() < *capacity {
            set.push(pack(value, b));
        } else if (alive as usize) < set.len() {
            set.retain(|e| live(*e, b));
            set.push(pack(value, b));
        } else {
            *capacity *= 2;
            set.push(pack(value, b));
        }
        ok(alive + 1)
    }

    #[test]
    fn counts_as_the_pool_that_recounted_every_packet() {
        let mut rng = 0x5e75u64;
        for round in 0..300 {
            let mut pool = SetPool::new(1 << 20);
            let cap = 2 + crate::test_rng::next(&mut rng) % 70;
            let values = 1 + crate::test_rng::next(&mut rng) % 150;
            let mut b = (crate::test_rng::next(&mut rng) >> 40) as u32;
            let (mut set, mut capacity) = (vec![pack(0, b), pack(1, b)], MIN_ENTRIES);
            let mut h = pool.pair(pack(0, b), pack(1, b));
            for _ in 0..2000 {
                let r = crate::test_rng::next(&mut rng) >> 33;
                // Mostly the same bucket; forward by one or more; now and then a packet from
                // up to 9 buckets back.
                b = match r % 64 {
                    0..=3 => b.wrapping_add(1 + (r >> 8) as u32 % 12),
                    4 => b.wrapping_sub((r >> 8) as u32 % 10),
                    _ => b,
                };
                let value = ((r >> 12) % values) as u32;
                let Some(hh) = h else { break };
                let (got, next) = pool.add(hh, value, b, cap);
                let want = reference_add(&mut set, &mut capacity, value, b, cap);
                assert_eq!(next.is_some(), want.is_some(), "round {round}");
                if let Some(w) = want {
                    assert_eq!(got, w, "round {round}: value {value} bucket {b}");
                    let n = next.map_or(0, |n| pool.count(n, b));
                    assert_eq!(n, set.iter().filter(|e| live(**e, b)).count() as u64);
                }
                h = next;
            }
        }
    }

    #[test]
    fn grows_to_the_cap_and_no_further() {
        let mut pool = SetPool::new(1 << 20);
        let (h, count) = filled(&mut pool, 0..500, 100, 121);
        assert_eq!(count, 121);
        assert_eq!(pool.count(h, 100), 121);
        // A stored value is still admitted; a new one is not.
        assert_eq!(pool.add(h, 5, 101, 121).0.count, 121);
        assert_eq!(pool.add(h, 9999, 101, 121).0.count, 121);
        // Class 5 holds 128 entries: the set never grew past what the cap needs.
        assert_eq!(split(h).0, 5);
    }

    #[test]
    fn values_expire_bucket_by_bucket() {
        let mut pool = SetPool::new(1 << 20);
        let mut h = pool.pair(pack(1, 10), pack(2, 11)).unwrap();
        h = pool.add(h, 3, 12, 100).1.unwrap();
        assert_eq!(pool.count(h, 12), 3);
        assert_eq!(pool.count(h, 17), 3, "bucket 10 is 7 back: still live");
        assert_eq!(pool.count(h, 18), 2, "bucket 10 is 8 back: gone");
        assert_eq!(pool.count(h, 19), 1);
        assert_eq!(pool.count(h, 20), 0);
        // Everything stale: the set is freed and the caller keeps the value inline.
        let (a, next) = pool.add(h, 4, 30, 100);
        assert_eq!((a.count, next), (1, None));
        assert_eq!(pool.used_words, 0);
    }

    #[test]
    fn a_stale_value_comes_back_only_under_the_cap() {
        let mut pool = SetPool::new(1 << 20);
        // cap 3: values 1, 2 at bucket 0, value 3 at bucket 5.
        let mut h = pool.pair(pack(1, 0), pack(2, 0)).unwrap();
        h = pool.add(h, 3, 5, 3).1.unwrap();
        // At bucket 9, 1 and 2 are stale; 1 comes back (1 live < 3).
        let (a, next) = pool.add(h, 1, 9, 3);
        assert_eq!(a.count, 2);
        h = next.unwrap();
        assert_eq!(pool.add(h, 7, 9, 3).0.count, 3);
        assert_eq!(pool.add(h, 8, 9, 3).0.count, 3, "at the cap: not admitted");
    }

    #[test]
    fn an_exhausted_budget_is_reported_not_hidden() {
        // Room for the 4-entry class only (5 words).
        let mut pool = SetPool::new(5);
        let (h, count) = filled(&mut pool, 0..4, 1, 100);
        assert_eq!(count, 4);
        let (a, next) = pool.add(h, 4, 1, 100);
        assert_eq!(
            a,
            Added {
                count: 4,
                short: true
            }
        );
        assert_eq!(next, Some(h));
        assert!(pool.pair(0, 0).is_none());
    }
}
