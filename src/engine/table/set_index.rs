//! Where each value of a long distinct set sits (pure): an open-addressing table of 16-bit
//! positions, twice as many slots as the set has entries, so a look-up is a hash and a probe
//! or two instead of a scan of the whole set (a busy client's set of server addresses, or a
//! server's set of client ports, holds dozens of values and is searched on every packet).
//!
//! The hash is a multiply by a random odd number chosen per pool ([`multiplier`]): values that
//! crowd one slot cannot be chosen ahead (a scanner picks its ports; with a fixed multiplier
//! it could make every probe walk the whole set).
//!
//! Invariants: every entry `i` of the set (its values `[..n]`) has exactly one slot holding
//! `i + 1`; every other slot holds 0; at most half the slots are used, so a probe always
//! reaches an empty slot. The table is rebuilt whenever entries move (a set grows into a new
//! block, or drops its stale entries); an entry appended at the end is inserted.

/// Slots per entry of the set.
const SLOTS_PER_ENTRY: usize = 2;

/// u32 words of a table for a set of `entries` (a power of two): two u16 slots a word.
pub const fn words(entries: usize) -> usize {
    entries * SLOTS_PER_ENTRY / 2
}

/// A random odd multiplier for a pool's tables.
pub fn multiplier() -> u32 {
    use std::hash::BuildHasher;
    foldhash::fast::RandomState::default().hash_one(0x5e7u64) as u32 | 1
}

/// The first slot probed for `value` in a table of `slots` (a power of two) slots: the top
/// bits of the value times the pool's multiplier `m`.
#[inline(always)]
fn home(value: u32, slots: usize, m: u32) -> usize {
    let bits = slots.trailing_zeros();
    ((value.wrapping_mul(m) as u64) << bits >> 32) as usize
}

#[inline(always)]
fn get(table: &[u32], j: usize) -> u32 {
    table
        .get(j / 2)
        .map_or(0, |w| (w >> (16 * (j % 2))) & 0xffff)
}

#[inline(always)]
fn put(table: &mut [u32], j: usize, v: u32) {
    if let Some(w) = table.get_mut(j / 2) {
        let shift = 16 * (j % 2);
        *w = (*w & !(0xffff << shift)) | (v & 0xffff) << shift;
    }
}

/// The position of `value` among `values` (the set's entries in use), through `table` (of a
/// pool with multiplier `m`).
#[inline(always)]
pub fn find(table: &[u32], m: u32, values: &[u32], value: u32) -> Option<usize> {
    let slots = table.len() * 2;
    let mut j = home(value, slots, m);
    // At most every slot: the bound holds even if the invariants did not.
    for _ in 0..slots {
        let p = get(table, j) as usize;
        if p == 0 {
            return None;
        }
        if values.get(p - 1) == Some(&value) {
            return Some(p - 1);
        }
        j = (j + 1) & (slots - 1);
    }
    None
}

/// Records that entry `i` holds `value` (not in the table yet).
#[inline]
pub fn insert(table: &mut [u32], m: u32, value: u32, i: usize) {
    let slots = table.len() * 2;
    let mut j = home(value, slots, m);
    for _ in 0..slots {
        if get(table, j) == 0 {
            put(table, j, i as u32 + 1);
            return;
        }
        j = (j + 1) & (slots - 1);
    }
}

/// Makes `table` describe exactly `values`.
pub fn rebuild(table: &mut [u32], m: u32, values: &[u32]) {
    table.fill(0);
    for (i, &v) in values.iter().enumerate() {
        insert(table, m, v, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed multiplier (Fibonacci hashing's), so the crowded values below are the same on
    /// every run.
    const M: u32 = 0x9E37_79B1;

    /// Multipliers differ from pool to pool (so crowding values cannot be chosen ahead) and
    /// are odd (a multiply by an odd number loses no bit of the value).
    #[test]
    fn multipliers_are_odd_and_vary() {
        let ms: Vec<u32> = (0..8).map(|_| multiplier()).collect();
        assert!(ms.iter().all(|m| m % 2 == 1));
        assert!(ms.windows(2).any(|w| w[0] != w[1]), "{ms:?}");
    }

    /// Checks every value of `values` is found at its position, and absent ones are not.
    fn check(table: &[u32], values: &[u32]) {
        for (k, &w) in values.iter().enumerate() {
            assert_eq!(
                find(table, M, values, w),
                Some(k),
                "{} entries: {w}",
                values.len()
            );
        }
        for absent in [u32::MAX, 0x8000_0001, 0x4000_0000] {
            assert_eq!(find(table, M, values, absent), None);
        }
    }

    /// Every value is found where it is and absent values are not, as a set fills up to its
    /// entries, for sets of 16 to 32,768 entries.
    #[test]
    fn finds_what_a_plain_scan_finds() {
        for entries in [16usize, 32, 128, 1024, 32_768] {
            let mut table = vec![0u32; words(entries)];
            let mut values = Vec::new();
            for i in 0..entries {
                // Sequential ports, then addresses that differ in their high bits.
                let v = if i % 2 == 0 {
                    i as u32
                } else {
                    (i as u32) << 15 | 1 << 30
                };
                insert(&mut table, M, v, i);
                values.push(v);
                if i.is_power_of_two() || i + 1 == entries {
                    check(&table, &values);
                }
            }
            let mut again = vec![7u32; words(entries)];
            rebuild(&mut again, M, &values);
            assert_eq!(again, table, "a rebuild is the same table");
        }
    }

    /// Values that all want the same slot (the last one, so probes wrap around) are found,
    /// and a probe for an absent value with the same home stops at the first empty slot.
    #[test]
    fn crowded_values_wrap_around() {
        let slots = words(16) * 2;
        let crowded: Vec<u32> = (0..u32::MAX)
            .filter(|&v| home(v, slots, M) == slots - 1)
            .take(17)
            .collect();
        let mut table = vec![0u32; words(16)];
        rebuild(&mut table, M, &crowded[..16]);
        check(&table, &crowded[..16]);
        assert_eq!(find(&table, M, &crowded[..16], crowded[16]), None);
    }

    /// Positions beyond the entries in use are not reported, even if the table still named
    /// them.
    #[test]
    fn only_entries_in_use_are_found() {
        let mut table = vec![0u32; words(16)];
        let values: Vec<u32> = (100..116).collect();
        rebuild(&mut table, M, &values);
        assert_eq!(find(&table, M, &values[..8], 110), None);
        assert_eq!(find(&table, M, &values[..8], 104), Some(4));
    }
}
