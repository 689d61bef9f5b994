//! Source keys (pure): an address, or a prefix when a rule aggregates; what the source tables
//! (`table/`), bans and offense history are keyed by.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A source as counted: an address, or a prefix when a rule aggregates (`aggregate_v4/_v6`).
#[derive(Copy, Clone, Debug, Eq, PartialOrd, Ord)]
pub struct SourceKey {
    /// Address bits, masked to `prefix`, as two halves (not a `u128`: its 16-byte alignment
    /// would pad every hash-table entry); IPv4 in the low 32 bits of `lo`.
    hi: u64,
    lo: u64,
    v6: bool,
    prefix: u8,
}

/// Field by field as derived, the low word first: it tells IPv4 keys apart (their high word is
/// 0), and keys are compared per packet (leaders, the ban cache).
impl PartialEq for SourceKey {
    #[inline]
    fn eq(&self, other: &SourceKey) -> bool {
        self.lo == other.lo
            && self.hi == other.hi
            && self.v6 == other.v6
            && self.prefix == other.prefix
    }
}

/// Hashes only what distinguishes keys, in as few words as possible (this runs per packet):
/// an IPv4 key is one word. Injective within each family; the hasher is seeded.
impl std::hash::Hash for SourceKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if self.v6 {
            state.write_u64(self.hi);
            state.write_u64(self.lo);
            state.write_u8(self.prefix);
        } else {
            state.write_u64(self.lo | (u64::from(self.prefix) << 32));
        }
    }
}

impl SourceKey {
    /// `0.0.0.0/0`: a placeholder for an unused entry.
    pub const UNSPECIFIED: SourceKey = SourceKey {
        hi: 0,
        lo: 0,
        v6: false,
        prefix: 0,
    };

    /// The key of `addr` under the given prefix lengths (clamped to the family's width).
    pub fn new(addr: IpAddr, prefix_v4: u8, prefix_v6: u8) -> SourceKey {
        Prefixes::new(prefix_v4, prefix_v6).key(addr)
    }

    pub fn from_net(net: IpNet) -> SourceKey {
        let net = net.trunc();
        match net {
            IpNet::V4(n) => SourceKey::new(IpAddr::V4(n.addr()), n.prefix_len(), 128),
            IpNet::V6(n) => SourceKey::new(IpAddr::V6(n.addr()), 32, n.prefix_len()),
        }
    }

    pub fn net(self) -> IpNet {
        if self.v6 {
            let bits = (u128::from(self.hi) << 64) | u128::from(self.lo);
            IpNet::V6(Ipv6Net::new_assert(bits.into(), self.prefix))
        } else {
            let a = std::net::Ipv4Addr::from(self.lo as u32);
            IpNet::V4(Ipv4Net::new_assert(a, self.prefix))
        }
    }

    /// The address bits as (high, low) words and the family: what a table record stores (the
    /// prefix length is the table's).
    pub fn words(self) -> (u64, u64, bool) {
        (self.hi, self.lo, self.v6)
    }

    /// True when the key is a whole single address (/32 or /128).
    pub fn is_host(self) -> bool {
        self.prefix == if self.v6 { 128 } else { 32 }
    }
}

/// The prefix lengths a source table keys addresses by, with their masks computed once
/// (a key is made several times per packet).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Prefixes {
    v4: u8,
    v6: u8,
    mask_v4: u32,
    mask_v6: u128,
}

impl Prefixes {
    /// Prefix lengths clamped to each family's width.
    pub fn new(v4: u8, v6: u8) -> Prefixes {
        let (v4, v6) = (v4.min(32), v6.min(128));
        Prefixes {
            v4,
            v6,
            mask_v4: u32::MAX.checked_shl(32 - u32::from(v4)).unwrap_or(0),
            mask_v6: u128::MAX.checked_shl(128 - u32::from(v6)).unwrap_or(0),
        }
    }

    /// The key of `addr`: its address masked to the family's prefix.
    #[inline]
    pub fn key(self, addr: IpAddr) -> SourceKey {
        match addr {
            IpAddr::V4(a) => SourceKey {
                hi: 0,
                lo: u64::from(u32::from(a) & self.mask_v4),
                v6: false,
                prefix: self.v4,
            },
            IpAddr::V6(a) => {
                let bits = u128::from(a) & self.mask_v6;
                SourceKey {
                    hi: (bits >> 64) as u64,
                    lo: bits as u64,
                    v6: true,
                    prefix: self.v6,
                }
            }
        }
    }
}

/// `203.0.113.7` for a host, `2001:db8::/64` for a prefix: how events name a target.
impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let net = self.net();
        if self.is_host() {
            write!(f, "{}", net.addr())
        } else {
            write!(f, "{net}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_aggregate_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(SourceKey::new(a, 32, 64), SourceKey::new(b, 32, 64));
        assert_ne!(SourceKey::new(a, 32, 64), SourceKey::new(c, 32, 64));
        assert_eq!(SourceKey::new(a, 32, 64).to_string(), "2001:db8:1:2::/64");
        let k = SourceKey::new("203.0.113.77".parse().unwrap(), 24, 128);
        assert_eq!(k.to_string(), "203.0.113.0/24");
        let h = SourceKey::new("203.0.113.77".parse().unwrap(), 32, 128);
        assert_eq!(h.to_string(), "203.0.113.77");
        assert_eq!(SourceKey::from_net(h.net()), h);
        assert_eq!(SourceKey::new(a, 0, 0).to_string(), "::/0");
    }

    #[test]
    fn prefixes_mask_like_truncated_nets_at_every_length() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        for len in 0..=140u8 {
            let p = Prefixes::new(len, len);
            let want4 = IpNet::new(v4, len.min(32)).unwrap().trunc();
            let want6 = IpNet::new(v6, len.min(128)).unwrap().trunc();
            assert_eq!(p.key(v4).net(), want4, "/{len}");
            assert_eq!(p.key(v6).net(), want6, "/{len}");
        }
    }
}
