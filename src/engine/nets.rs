//! A set of networks tested per packet (pure): our own addresses (for every packet, before it
//! is counted) and rules' `exempt` nets (for every packet a rule with them would count).
//! Addresses as plain integers: per family and prefix length, the sorted networks of that
//! length, so a test costs one search per prefix length present, not a step per net (an
//! `exempt` list of a cloud's few hundred ranges has a handful of lengths).
//!
//! Invariant: `contains(a)` is true exactly when some net given to [`NetSet::new`] contains `a`.

use std::net::IpAddr;
use std::ops::BitAnd;

use ipnet::IpNet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NetSet {
    v4: Family<u32>,
    v6: Family<u128>,
}

/// One family's nets: per prefix length present, its mask and the sorted, distinct network
/// addresses of that length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Family<T> {
    lengths: Vec<(T, Vec<T>)>,
}

/// Up to this many networks of one length are compared one by one (cheaper than a search).
const SCAN: usize = 8;

impl<T: Copy + Ord + BitAnd<Output = T>> Family<T> {
    fn add(&mut self, network: T, mask: T) {
        match self.lengths.iter_mut().find(|(m, _)| *m == mask) {
            Some((_, nets)) => {
                if let Err(i) = nets.binary_search(&network) {
                    nets.insert(i, network);
                }
            }
            None => self.lengths.push((mask, vec![network])),
        }
    }

    #[inline]
    fn contains(&self, a: T) -> bool {
        self.lengths.iter().any(|(m, nets)| {
            let n = a & *m;
            if nets.len() <= SCAN {
                nets.contains(&n)
            } else {
                nets.binary_search(&n).is_ok()
            }
        })
    }
}

impl NetSet {
    pub(crate) fn new(nets: &[IpNet]) -> NetSet {
        let mut s = NetSet::default();
        for n in nets {
            match n.trunc() {
                IpNet::V4(n) => {
                    let mask = u32::from(n.netmask());
                    s.v4.add(u32::from(n.network()) & mask, mask);
                }
                IpNet::V6(n) => {
                    let mask = u128::from(n.netmask());
                    s.v6.add(u128::from(n.network()) & mask, mask);
                }
            }
        }
        // Longer lists first: an address in a long list is found sooner.
        s.v4.lengths
            .sort_by_key(|(m, nets)| (std::cmp::Reverse(nets.len()), *m));
        s.v6.lengths
            .sort_by_key(|(m, nets)| (std::cmp::Reverse(nets.len()), *m));
        s
    }

    /// True when no net was given.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.lengths.is_empty() && self.v6.lengths.is_empty()
    }

    #[inline]
    pub(crate) fn contains(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_exactly_what_the_nets_contain() {
        let nets: Vec<IpNet> = ["10.1.2.3/32", "192.0.2.0/24", "2001:db8::/64", "::1/128"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let set = NetSet::new(&nets);
        for a in [
            "10.1.2.3",
            "10.1.2.4",
            "192.0.2.255",
            "192.0.3.0",
            "2001:db8::9",
            "2001:db8:0:1::9",
            "::1",
            "::2",
            "0.0.0.0",
        ] {
            let a: IpAddr = a.parse().unwrap();
            assert_eq!(set.contains(a), nets.iter().any(|n| n.contains(&a)), "{a}");
        }
        assert!(!NetSet::new(&[]).contains("10.1.2.3".parse().unwrap()));
        assert!(NetSet::new(&["0.0.0.0/0".parse().unwrap()]).contains("1.2.3.4".parse().unwrap()));
    }

    /// Random lists of up to 600 nets of mixed lengths (long runs of one length, so the
    /// searched path runs) against `IpNet::contains`, on addresses inside, at the edges of and
    /// outside the nets.
    #[test]
    fn long_lists_match_exactly_what_the_nets_contain() {
        let mut x = 7u64;
        for round in 0..40 {
            let count = 1 + (crate::test_rng::next(&mut x) % 600) as usize;
            let nets: Vec<IpNet> = (0..count)
                .map(|_| {
                    let r = crate::test_rng::next(&mut x);
                    let len = [8u8, 16, 24, 24, 24, 32, 20, 12][(r % 8) as usize];
                    if round % 3 == 0 && r >> 60 == 0 {
                        let a = std::net::Ipv6Addr::from(u128::from(r) << 64 | 0x20010db8);
                        IpNet::new(a.into(), 32 + len).unwrap().trunc()
                    } else {
                        let a = std::net::Ipv4Addr::from((r >> 8) as u32 & 0x0fff_ffff);
                        IpNet::new(a.into(), len).unwrap().trunc()
                    }
                })
                .collect();
            let set = NetSet::new(&nets);
            for n in &nets {
                let r = crate::test_rng::next(&mut x);
                let inside: Vec<IpAddr> = match n {
                    IpNet::V4(v) => {
                        let (lo, hi) = (u32::from(v.network()), u32::from(v.broadcast()));
                        [
                            lo,
                            hi,
                            hi.wrapping_add(1),
                            lo.wrapping_sub(1),
                            lo + (r as u32 & !u32::from(v.netmask())),
                        ]
                        .map(|a| IpAddr::from(std::net::Ipv4Addr::from(a)))
                        .to_vec()
                    }
                    IpNet::V6(v) => {
                        let (lo, hi) = (u128::from(v.network()), u128::from(v.broadcast()));
                        [lo, hi, hi.wrapping_add(1), lo.wrapping_sub(1)]
                            .map(|a| IpAddr::from(std::net::Ipv6Addr::from(a)))
                            .to_vec()
                    }
                };
                for a in inside {
                    assert_eq!(set.contains(a), nets.iter().any(|n| n.contains(&a)), "{a}");
                }
            }
            for _ in 0..200 {
                let a = IpAddr::from(std::net::Ipv4Addr::from(
                    crate::test_rng::next(&mut x) as u32 & 0x0fff_ffff,
                ));
                assert_eq!(set.contains(a), nets.iter().any(|n| n.contains(&a)), "{a}");
            }
        }
    }
}
