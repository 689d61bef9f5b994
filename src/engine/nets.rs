//! A set of networks tested per packet (pure): our own addresses, checked for every packet
//! before it is counted. Addresses as plain integers and masks, no `IpNet` matching.
//!
//! Invariant: `contains(a)` is true exactly when some net given to [`NetSet::new`] contains `a`.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NetSet {
    /// (network bits, mask) per family.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl NetSet {
    pub(crate) fn new(nets: &[IpNet]) -> NetSet {
        let mut s = NetSet::default();
        for n in nets {
            match n.trunc() {
                IpNet::V4(n) => {
                    let mask = u32::from(n.netmask());
                    s.v4.push((u32::from(n.network()) & mask, mask));
                }
                IpNet::V6(n) => {
                    let mask = u128::from(n.netmask());
                    s.v6.push((u128::from(n.network()) & mask, mask));
                }
            }
        }
        s
    }

    #[inline]
    pub(crate) fn contains(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|&(n, m)| a & m == n)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|&(n, m)| a & m == n)
            }
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
}
