//! Bounded heavy hitters (pure): [`TopK`] keeps the `N` most frequent values of a stream with
//! Space-Saving counters, each with its error bound, so memory is fixed however many distinct
//! values arrive; [`merge`] adds up several of them (the sub-buckets of a window).
//!
//! Every count is an upper bound and `count - err` a lower bound of the value's true count. A
//! value that entered a summary before it filled up has `err == 0` and an exact count; a value
//! absent from a summary that never evicted one never occurred in it. So a window's count of a value
//! is exact whenever every sub-bucket is one of those two cases — always so for a value that
//! dominates from the start of each sub-bucket — and a share computed from lower bounds never
//! claims dominance that is not there.

/// The `N` heaviest values seen, with Space-Saving counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopK<K: Copy + Eq + Default, const N: usize> {
    keys: [K; N],
    counts: [u32; N],
    errs: [u32; N],
    len: u8,
    /// A value was replaced: an absent value may have occurred.
    evicted: bool,
}

impl<K: Copy + Eq + Default, const N: usize> Default for TopK<K, N> {
    fn default() -> Self {
        TopK {
            keys: [K::default(); N],
            counts: [0; N],
            errs: [0; N],
            len: 0,
            evicted: false,
        }
    }
}

impl<K: Copy + Eq + Default, const N: usize> TopK<K, N> {
    /// Counts one occurrence of `key`. When the summary is full and `key` is new, it replaces
    /// the smallest counter and inherits its count as its error; the value it replaced is
    /// returned (callers that count distinct values keep it elsewhere).
    #[inline]
    pub fn add(&mut self, key: K) -> Option<K> {
        let len = usize::from(self.len);
        if len == N {
            // Full, the common case under load: every slot holds a value, so all are compared
            // at once, without a bound or an early exit (the values kept are distinct).
            let mut hit = N;
            for i in 0..N {
                if self.keys[i] == key {
                    hit = i;
                }
            }
            if let Some(c) = self.counts.get_mut(hit) {
                *c = c.saturating_add(1);
                return None;
            }
            return Some(self.replace_smallest(key));
        }
        if let Some(i) = self.keys[..len].iter().position(|k| *k == key) {
            self.counts[i] = self.counts[i].saturating_add(1);
            return None;
        }
        self.keys[len] = key;
        self.counts[len] = 1;
        self.errs[len] = 0;
        self.len += 1;
        None
    }

    /// Puts `key` (absent) in place of the smallest counter, which it inherits as its error;
    /// returns the value it replaced.
    #[inline]
    fn replace_smallest(&mut self, key: K) -> K {
        let mut m = 0;
        for i in 1..N {
            if self.counts[i] < self.counts[m] {
                m = i;
            }
        }
        self.evicted = true;
        let old = std::mem::replace(&mut self.keys[m], key);
        self.errs[m] = self.counts[m];
        self.counts[m] = self.counts[m].saturating_add(1);
        old
    }

    /// True when a value was evicted: the summary no longer holds every value seen.
    pub fn evicted(&self) -> bool {
        self.evicted
    }

    /// The most a value absent from this summary may have occurred in it.
    pub fn absent_bound(&self) -> u32 {
        if self.evicted {
            self.counts.iter().copied().min().unwrap_or(0)
        } else {
            0
        }
    }

    /// `(key, count, err)` of every value kept.
    pub fn entries(&self) -> impl Iterator<Item = (K, u32, u32)> + '_ {
        (0..usize::from(self.len)).map(|i| (self.keys[i], self.counts[i], self.errs[i]))
    }

    /// `(count, err)` of `key`, when kept.
    pub fn get(&self, key: K) -> Option<(u32, u32)> {
        let len = usize::from(self.len);
        let i = self.keys[..len].iter().position(|k| *k == key)?;
        Some((self.counts[i], self.errs[i]))
    }
}

/// One value's count over several summaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally<K> {
    pub key: K,
    /// Occurrences certainly seen.
    pub lower: u64,
    /// Occurrences possibly seen.
    pub upper: u64,
}

impl<K> Tally<K> {
    /// True when the count is known exactly.
    pub fn exact(&self) -> bool {
        self.lower == self.upper
    }
}

/// Every value kept by any of `parts`, with its bounds over all of them, heaviest (by lower
/// bound) first; equal ones in key order, so ties always come out the same way.
pub fn merge<'a, K, const N: usize>(
    parts: impl Iterator<Item = &'a TopK<K, N>> + Clone,
) -> Vec<Tally<K>>
where
    K: Copy + Eq + Default + Ord + 'a,
{
    let mut out: Vec<Tally<K>> = Vec::new();
    for part in parts.clone() {
        for (key, _, _) in part.entries() {
            if out.iter().all(|t| t.key != key) {
                out.push(Tally {
                    key,
                    lower: 0,
                    upper: 0,
                });
            }
        }
    }
    for t in &mut out {
        for part in parts.clone() {
            match part.get(t.key) {
                Some((count, err)) => {
                    t.lower += u64::from(count - err.min(count));
                    t.upper += u64::from(count);
                }
                None => t.upper += u64::from(part.absent_bound()),
            }
        }
    }
    out.sort_by(|a, b| b.lower.cmp(&a.lower).then(a.key.cmp(&b.key)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_until_full() {
        let mut t = TopK::<u16, 4>::default();
        for k in [7, 7, 8, 9, 7, 10] {
            assert_eq!(t.add(k), None);
        }
        assert_eq!(t.get(7), Some((3, 0)));
        assert_eq!(t.get(10), Some((1, 0)));
        assert!(!t.evicted());
        // A fifth value evicts a smallest counter and inherits its count as error.
        assert_eq!(t.add(11), Some(8));
        assert_eq!(t.get(11), Some((2, 1)));
        assert_eq!(t.get(7), Some((3, 0)), "the heavy one stays, exact");
        assert!(t.evicted());
    }

    /// Space-Saving as first written: a search bounded by the length, then the smallest
    /// counter replaced (the reference for the full summary's fixed-size search).
    fn reference_add<const N: usize>(r: &mut Vec<(u16, u32, u32)>, key: u16) -> Option<u16> {
        if let Some(e) = r.iter_mut().find(|e| e.0 == key) {
            e.1 += 1;
            return None;
        }
        if r.len() < N {
            r.push((key, 1, 0));
            return None;
        }
        let mut m = 0;
        for i in 1..N {
            if r[i].1 < r[m].1 {
                m = i;
            }
        }
        let old = r[m].0;
        r[m] = (key, r[m].1 + 1, r[m].1);
        Some(old)
    }

    #[test]
    fn adds_as_the_reference_with_the_default_value_among_the_keys() {
        let mut x = 11u64;
        for round in 0..300 {
            // Small alphabets that include 0 (the value of unused slots), so a full summary
            // and one still filling both meet values they hold, values they do not and 0.
            let alphabet = 2 + round % 9;
            let mut t = TopK::<u16, 4>::default();
            let mut r = Vec::new();
            for _ in 0..(1 + round * 3) {
                let key = (crate::test_rng::next(&mut x) % alphabet) as u16;
                assert_eq!(t.add(key), reference_add::<4>(&mut r, key), "round {round}");
                let mut got: Vec<_> = t.entries().collect();
                let mut want = r.clone();
                got.sort_unstable();
                want.sort_unstable();
                assert_eq!(got, want, "round {round}");
            }
        }
    }

    #[test]
    fn a_dominant_value_survives_any_number_of_others() {
        let mut t = TopK::<u16, 4>::default();
        for i in 0..100_000u32 {
            if i % 5 == 0 {
                t.add((i % 60_000) as u16 + 5000);
            } else {
                t.add(4500);
            }
        }
        let (count, err) = t.get(4500).expect("kept");
        assert_eq!((count, err), (80_000, 0));
    }

    #[test]
    fn merge_bounds_hold_and_ties_are_ordered() {
        let mut a = TopK::<u16, 2>::default();
        let mut b = TopK::<u16, 2>::default();
        for k in [1, 1, 2] {
            a.add(k);
        }
        for k in [2, 2, 3, 3] {
            b.add(k);
        }
        let m = merge([a, b].iter());
        // 2 is 1 + 2 = 3 exactly; 1 and 3 are 2 each, exact (neither summary overflowed).
        assert_eq!(
            m,
            vec![
                Tally {
                    key: 2,
                    lower: 3,
                    upper: 3
                },
                Tally {
                    key: 1,
                    lower: 2,
                    upper: 2
                },
                Tally {
                    key: 3,
                    lower: 2,
                    upper: 2
                },
            ]
        );
        // A summary that evicted a value may hide up to its smallest count of any absent one.
        b.add(4);
        let m = merge([a, b].iter());
        let one = m.iter().find(|t| t.key == 1).expect("1");
        assert_eq!((one.lower, one.upper), (2, 4));
        assert!(!one.exact());
    }
}
