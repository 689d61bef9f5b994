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
//!
//! A set of 32 entries or more also holds a table of where each value sits ([`set_index`]),
//! so a value is found in a probe or two at any threshold; it takes a third of the set's words
//! (one u32 per entry), so a spent budget holds two thirds as many long sets as plain ones.

use super::set_index;

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
    live_at((e >> 32) as u32, b)
}

/// [`live`] for a value last seen at bucket `seen`.
#[inline]
fn live_at(seen: u32, b: u32) -> bool {
    // |b - seen| < BUCKETS, as one unsigned compare (the scan of a set vectorizes).
    const B: u32 = super::layout::BUCKETS;
    b.wrapping_sub(seen).wrapping_add(B - 1) < 2 * B - 1
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

/// Sets of values in size classes, within a budget of words.
///
/// A block of class `c` ([`block_len`] u32s) is a header of two ([`header`]), then the
/// `4 << c` values, then the bucket each was last seen in (same order), then, from class 3 (32
/// entries) up, the [`set_index`] table of where each value sits: a short set is scanned, a
/// long one looked up (a scanner's set at its cap, 2 × threshold + 1 values, was scanned whole
/// on every packet).
#[derive(Debug)]
pub struct SetPool {
    /// Per class: blocks of [`block_len`] u32s.
    slabs: Vec<Vec<u32>>,
    free: Vec<Vec<u32>>,
    /// Words (u64) allocated to sets in use, and the most allowed.
    pub used_words: usize,
    pub budget_words: usize,
    /// The long sets' tables' hash multiplier ([`set_index::multiplier`]).
    mult: u32,
}

/// A set's handle: class in the top 5 bits, block number below.
fn handle(class: usize, block: usize) -> u32 {
    (class as u32) << 27 | block as u32
}

fn split(h: u32) -> (usize, usize) {
    ((h >> 27) as usize, (h & ((1 << 27) - 1)) as usize)
}

/// Entries of a class-`class` block.
const fn entries(class: usize) -> usize {
    MIN_ENTRIES << class
}

/// Whether a class's blocks end with a table of where each value sits ([`set_index`]): sets
/// of up to 16 entries are scanned (as cheap as a look-up at that length), longer ones
/// looked up.
const fn indexed(class: usize) -> bool {
    class >= INDEXED
}

/// The first class with a table: 32 entries.
const INDEXED: usize = 3;

/// A class-`class` block's length in u32s: the header's two, a value and a bucket per entry,
/// then the table if it has one. Looked up: it places a set on every packet.
#[inline(always)]
fn block_len(class: usize) -> usize {
    BLOCK_LEN[class % 16]
}

/// [`block_len`] of each class (16 rather than [`CLASSES`], so an index needs no check).
const BLOCK_LEN: [usize; 16] = {
    let mut lens = [0; 16];
    let mut class = 0;
    while class < CLASSES {
        let e = entries(class);
        let table = if indexed(class) {
            set_index::words(e)
        } else {
            0
        };
        lens[class] = 2 + 2 * e + table;
        class += 1;
    }
    lens
};

/// A class-`class` block's size in u64 words (the budget's unit; every length is even).
fn block_words(class: usize) -> usize {
    block_len(class) / 2
}

/// A block's two header u32s: entries in use (bits 0-15 of the first; at most `4 << 13`) and
/// how many of them were live at a bucket (bits 16-31, [`UNKNOWN`] if not known), and that
/// bucket (the second), so that packets within one bucket need not recount the set.
fn header(n: usize, alive: u64, b: u32) -> [u32; 2] {
    [n as u32 | (alive as u32) << 16, b]
}

/// The live count of a header that knows none.
const UNKNOWN: u64 = 0xffff;

#[inline(always)]
fn set_header(head: &mut [u32], h: [u32; 2]) {
    if let [a, b] = head {
        (*a, *b) = (h[0], h[1]);
    }
}

fn in_use(head: &[u32]) -> usize {
    head.first().map_or(0, |h| (h & 0xffff) as usize)
}

/// Live values among those last seen at `buckets`, as of bucket `b`: the header's count if
/// it is for `b`.
#[inline]
fn alive_at(head: [u32; 2], b: u32, buckets: &[u32]) -> u64 {
    let known = u64::from(head[0] >> 16);
    if known != UNKNOWN && head[1] == b {
        return known;
    }
    u64::from(
        buckets
            .iter()
            .map(|&s| u32::from(live_at(s, b)))
            .sum::<u32>(),
    )
}

/// Where `value` is among `values` (the entries in use; a set holds a value once): a short
/// set scanned, a longer one looked up in the table at `tail[entries(class)..]`.
#[inline(always)]
fn find(class: usize, values: &[u32], tail: &[u32], m: u32, value: u32) -> Option<usize> {
    if !indexed(class) {
        return values.iter().position(|&v| v == value);
    }
    set_index::find(table(class, tail), m, values, value)
}

/// A block's parts: header, values (`entries(class)` of them), and the tail: the buckets (as
/// many, same order), then the table of a long set ([`table`]). The table is split off only
/// where it is used: every packet of a set places its parts.
fn parts(block: &mut [u32], class: usize) -> (&mut [u32], &mut [u32], &mut [u32]) {
    let (head, rest) = block.split_at_mut(2);
    let (values, tail) = rest.split_at_mut(entries(class));
    (head, values, tail)
}

/// The table in a block's tail (empty for a short set).
fn table(class: usize, tail: &[u32]) -> &[u32] {
    tail.get(entries(class)..).unwrap_or_default()
}

fn table_mut(class: usize, tail: &mut [u32]) -> &mut [u32] {
    tail.get_mut(entries(class)..).unwrap_or_default()
}

impl SetPool {
    pub fn new(budget_words: usize) -> SetPool {
        SetPool {
            slabs: vec![Vec::new(); CLASSES],
            free: vec![Vec::new(); CLASSES],
            used_words: 0,
            budget_words,
            mult: set_index::multiplier(),
        }
    }

    fn alloc(&mut self, class: usize) -> Option<u32> {
        if class >= CLASSES {
            return None;
        }
        let words = block_words(class);
        if self.used_words + words > self.budget_words {
            return None;
        }
        self.used_words += words;
        if let Some(b) = self.free[class].pop() {
            return Some(handle(class, b as usize));
        }
        let len = block_len(class);
        let slab = &mut self.slabs[class];
        let b = slab.len() / len;
        if b >= 1 << 27 {
            self.used_words -= words;
            return None;
        }
        slab.resize(slab.len() + len, 0);
        Some(handle(class, b))
    }

    pub fn free(&mut self, h: u32) {
        let (class, b) = split(h);
        if class >= CLASSES {
            return;
        }
        let len = block_len(class);
        if let Some(slab) = self.slabs.get_mut(class)
            && let Some(block) = slab.get_mut(b * len..(b + 1) * len)
        {
            block[0] = 0;
            self.free[class].push(b as u32);
            self.used_words -= block_words(class);
        }
    }

    fn block(&self, h: u32) -> &[u32] {
        let (class, b) = split(h);
        let len = block_len(class);
        &self.slabs[class][b * len..(b + 1) * len]
    }

    fn block_mut(&mut self, h: u32) -> &mut [u32] {
        let (class, b) = split(h);
        let len = block_len(class);
        &mut self.slabs[class][b * len..(b + 1) * len]
    }

    /// Starts loading set `h`'s block.
    #[inline]
    pub fn prefetch(&self, h: u32) {
        let (class, b) = split(h);
        if class >= CLASSES {
            return;
        }
        let len = block_len(class);
        if let Some(block) = self
            .slabs
            .get(class)
            .and_then(|s| s.get(b * len..(b + 1) * len))
        {
            super::prefetch::ends(block);
        }
    }

    /// A new set holding the packed entries `a` and `b`; `None` when out of budget.
    pub fn pair(&mut self, a: u64, b: u64) -> Option<u32> {
        let h = self.alloc(0)?;
        let (head, values, buckets) = parts(self.block_mut(h), 0);
        set_header(head, header(2, UNKNOWN, 0));
        values[..2].copy_from_slice(&[value_of(a), value_of(b)]);
        buckets[..2].copy_from_slice(&[(a >> 32) as u32, (b >> 32) as u32]);
        Some(h)
    }

    /// Adds `value` seen at bucket `b` to set `h` (capped at `cap` live values). Returns the
    /// outcome and the set's handle afterwards (`None`: nothing live is left besides `value`,
    /// which the caller keeps inline; the set was freed). Inlined into the engine's counting
    /// (out of line it cost a call and the parts' bounds checks on every packet of a set).
    #[inline(always)]
    pub fn add(&mut self, h: u32, value: u32, b: u32, cap: u64) -> (Added, Option<u32>) {
        let (class, block) = split(h);
        let known = match class {
            0 => self.add_stored::<0, 4, 10>(block, value, b),
            1 => self.add_stored::<1, 8, 18>(block, value, b),
            _ => None,
        };
        match known {
            Some(alive) => (Added::admitted(alive), Some(h)),
            None => self.add_any(h, value, b, cap),
        }
    }

    /// [`SetPool::add`] of a value a short set (class `C`, 0 or 1: its `E` entries and its
    /// blocks of `L` u32s, checked when compiled) holds live: its bucket becomes `b`, and the
    /// set's live count is the answer (the cap cannot turn it away). `None` for anything else,
    /// left to [`SetPool::add_any`]. On fixed-size blocks, the look-up and the count are a few
    /// vector compares with no bounds checks: most packets of a set take this path.
    #[inline(always)]
    fn add_stored<const C: usize, const E: usize, const L: usize>(
        &mut self,
        block: usize,
        value: u32,
        b: u32,
    ) -> Option<u64> {
        const { assert!(E == entries(C) && L == BLOCK_LEN[C] && !indexed(C) && E <= 16) };
        let words = self.slabs.get_mut(C)?.get_mut(block * L..block * L + L)?;
        let words: &mut [u32; L] = words.try_into().ok()?;
        let n = (words[0] & 0xffff) as usize;
        let in_use = (1u32 << n.min(E)) - 1;
        let (mut found, mut live) = (0u32, 0u32);
        for i in 0..E {
            found |= u32::from(words[2 + i] == value) << i;
            live |= u32::from(live_at(words[2 + E + i], b)) << i;
        }
        let hit = found & live & in_use;
        if hit == 0 {
            return None;
        }
        words[2 + E + (hit.trailing_zeros() as usize % E)] = b;
        let alive = u64::from((live & in_use).count_ones());
        set_header(&mut words[..2], header(n, alive, b));
        Some(alive)
    }

    /// [`SetPool::add`] in every case.
    #[inline(always)]
    fn add_any(&mut self, h: u32, value: u32, b: u32, cap: u64) -> (Added, Option<u32>) {
        let class = split(h).0;
        let mult = self.mult;
        let (head, values, buckets) = parts(self.block_mut(h), class);
        let n = in_use(head);
        let alive = alive_at([head[0], head[1]], b, &buckets[..n]);
        let found = find(class, &values[..n], buckets, mult, value);
        let found = found.map(|i| (i, live_at(buckets[i], b)));
        match found {
            Some((i, true)) => {
                buckets[i] = b;
                set_header(head, header(n, alive, b));
                return (Added::admitted(alive), Some(h));
            }
            Some((i, false)) if alive < cap => {
                buckets[i] = b;
                set_header(head, header(n, alive + 1, b));
                return (Added::admitted(alive + 1), Some(h));
            }
            _ => {}
        }
        if alive == 0 {
            self.free(h);
            return (Added::admitted(1), None);
        }
        if alive >= cap {
            set_header(head, header(n, alive, b));
            return (Added::admitted(alive), Some(h));
        }
        if n < entries(class) {
            values[n] = value;
            buckets[n] = b;
            if indexed(class) {
                set_index::insert(table_mut(class, buckets), mult, value, n);
            }
            set_header(head, header(n + 1, alive + 1, b));
            return (Added::admitted(alive + 1), Some(h));
        }
        if (alive as usize) < n {
            // Drop what went stale, then there is room.
            let mut w = 0;
            for r in 0..n {
                if live_at(buckets[r], b) {
                    values[w] = values[r];
                    buckets[w] = buckets[r];
                    w += 1;
                }
            }
            values[w] = value;
            buckets[w] = b;
            if indexed(class) {
                set_index::rebuild(table_mut(class, buckets), mult, &values[..=w]);
            }
            set_header(head, header(w + 1, alive + 1, b));
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
        let (ls, ll) = (block_len(class), block_len(class + 1));
        let (_, old_values, old_buckets) =
            parts(&mut small[class][from * ls..(from + 1) * ls], class);
        let (head, values, buckets) = parts(&mut large[0][to * ll..(to + 1) * ll], class + 1);
        values[..n].copy_from_slice(&old_values[..n]);
        buckets[..n].copy_from_slice(&old_buckets[..n]);
        values[n] = value;
        buckets[n] = b;
        // A reused block's table still describes its last set.
        if indexed(class + 1) {
            set_index::rebuild(table_mut(class + 1, buckets), self.mult, &values[..=n]);
        }
        set_header(head, header(n + 1, alive + 1, b));
        self.free(h);
        (Added::admitted(alive + 1), Some(bigger))
    }

    /// Live values of set `h` as of bucket `b`.
    pub fn count(&self, h: u32, b: u32) -> u64 {
        let block = self.block(h);
        let n = in_use(block);
        let e = entries(split(h).0);
        alive_at([block[0], block[1]], b, &block[2 + e..2 + e + n])
    }

    pub fn memory_bytes(&self) -> usize {
        self.slabs.iter().map(|s| s.capacity() * 4).sum::<usize>()
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

    /// A set grown through every class up to 2,048 entries (each growth rebuilds the table
    /// of where its values sit) finds each of its values: adding one again counts nothing
    /// new; then the older half goes stale, and the set keeps finding the newer half and
    /// admitting new values in the room the stale ones leave.
    #[test]
    fn long_sets_find_every_value_they_hold() {
        let mut pool = SetPool::new(1 << 20);
        let (mut h, count) = filled(&mut pool, 0..2000, 100, 5000);
        assert_eq!(count, 2000);
        assert_eq!(split(h).0, 9, "2,048 entries");
        for v in (0..2000).rev() {
            let (a, next) = pool.add(h, v, 100, 5000);
            assert_eq!(a.count, 2000, "value {v} was not found");
            h = next.unwrap();
        }
        // Values 1000.. seen again 7 buckets later; 0..1000 go stale one bucket after.
        for v in 1000..2000 {
            h = pool.add(h, v, 107, 5000).1.unwrap();
        }
        for v in (1000..2000).step_by(7) {
            assert_eq!(pool.add(h, v, 108, 5000).0.count, 1000, "value {v}");
        }
        for (k, v) in (5000..5100).enumerate() {
            let (a, next) = pool.add(h, v, 108, 5000);
            assert_eq!(a.count, 1001 + k as u64);
            h = next.unwrap();
        }
        assert_eq!(split(h).0, 9, "the stale half made room: no growth");
        for v in (1000..2000).chain(5000..5100) {
            assert_eq!(pool.add(h, v, 108, 5000).0.count, 1100, "value {v}");
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
