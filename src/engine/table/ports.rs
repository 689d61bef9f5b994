//! A rule's destination ports as sorted, disjoint ranges (pure): `[80, 443, "8000-8100"]` is
//! three ranges, tested with one compare each, where the list of its 103 ports took a binary
//! search on every packet the rule's class admits.
//!
//! Invariant: the ranges are sorted, disjoint and not adjacent (each `lo <= hi`), and
//! `contains(p)` is true exactly when `p` was one of the ports given to [`PortSet::new`].

/// Up to this many ranges are compared one by one (cheaper than a search).
const SCAN: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSet {
    /// `(lo, hi)`, inclusive.
    ranges: Vec<(u16, u16)>,
}

impl PortSet {
    /// The set of `ports` (any order, repeats allowed).
    pub fn new(ports: &[u16]) -> PortSet {
        let mut sorted = ports.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut ranges: Vec<(u16, u16)> = Vec::new();
        for p in sorted {
            match ranges.last_mut() {
                Some((_, hi)) if u32::from(*hi) + 1 == u32::from(p) => *hi = p,
                _ => ranges.push((p, p)),
            }
        }
        PortSet { ranges }
    }

    #[inline(always)]
    pub fn contains(&self, port: u16) -> bool {
        if self.ranges.len() <= SCAN {
            self.ranges
                .iter()
                .any(|&(lo, hi)| port.wrapping_sub(lo) <= hi - lo)
        } else {
            let i = self.ranges.partition_point(|&(_, hi)| hi < port);
            self.ranges.get(i).is_some_and(|&(lo, _)| lo <= port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists of every shape (single ports, runs, the ends of the port space, more ranges than
    /// are scanned) hold exactly their ports, checked on all 65,536.
    #[test]
    fn a_set_holds_exactly_its_ports() {
        let mut x = 11u64;
        let mut lists: Vec<Vec<u16>> = vec![
            vec![],
            vec![0],
            vec![65535],
            vec![80, 443],
            vec![80, 80, 81, 82, 443],
            (8000..=8100).chain([80, 443]).collect(),
            vec![0, 1, 65534, 65535],
        ];
        for _ in 0..20 {
            let n = (crate::test_rng::next(&mut x) % 200) as usize;
            lists.push(
                (0..n)
                    .map(|_| (crate::test_rng::next(&mut x) >> 48) as u16 % 2048)
                    .collect(),
            );
        }
        for ports in &lists {
            let set = PortSet::new(ports);
            assert!(
                set.ranges
                    .windows(2)
                    .all(|w| u32::from(w[0].1) + 1 < u32::from(w[1].0))
            );
            for p in 0..=u16::MAX {
                assert_eq!(set.contains(p), ports.contains(&p), "{p} in {ports:?}");
            }
        }
        assert_eq!(
            PortSet::new(&(8000..=8100).chain([80, 443]).collect::<Vec<_>>()).ranges,
            [(80, 80), (443, 443), (8000, 8100)]
        );
    }
}
