//! Martian sources (pure): addresses that cannot be the source of a packet that arrived from
//! the network, so a packet carrying one is spoofed or broken and is never counted (finding 9
//! of issue 11: a spoofed 127.0.0.53 got banned), and link-local sources, which are real
//! neighbours (the IPv6 gateway speaks from `fe80::`) and are counted but never banned.
//!
//! Decided from the IANA special-purpose registries (RFC 6890 and its updates) where they say
//! "Source: False", plus loopback (valid only inside the host, RFC 1122 §3.2.1.3 and RFC 4291
//! §2.5.3) and IPv4-mapped addresses (RFC 4291 §2.5.5.2: never on the wire):
//!
//! | range | RFC | treatment |
//! |---|---|---|
//! | `0.0.0.0/8` "this network" (incl. DHCP's 0.0.0.0) | 6890 / 1122 | martian |
//! | `127.0.0.0/8` loopback | 6890 / 1122 | martian |
//! | `224.0.0.0/4` multicast | 1112 / 5771 | martian |
//! | `240.0.0.0/4` reserved, incl. `255.255.255.255` | 6890 / 919 | martian |
//! | `169.254.0.0/16` link-local | 3927 | link-local: counted, never banned |
//! | `::/128` unspecified | 4291 | martian |
//! | `::1/128` loopback | 4291 | martian |
//! | `::ffff:0:0/96` IPv4-mapped | 4291 | martian |
//! | `ff00::/8` multicast | 4291 | martian |
//! | `fe80::/10` link-local | 4291 | link-local: counted, never banned |
//!
//! Not martian, on purpose: private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) and shared
//! address space (100.64/10) are real sources; the documentation and benchmarking ranges
//! (192.0.2/24, 198.51.100/24, 203.0.113/24, 198.18/15, 2001:db8::/32) are "Source: False" in
//! RFC 6890 but are what labs, tests and replays use, and a spoofer gains nothing by them. A
//! subnet's directed broadcast depends on the interfaces and is not decided here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A special-purpose range a source fell into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The range, as text (`127.0.0.0/8`).
    pub net: &'static str,
    /// What it is (`loopback`).
    pub name: &'static str,
}

/// What a packet's source address says before anything is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceCheck {
    /// An ordinary source: counted, and banned if it earns it.
    Ordinary,
    /// Cannot be the source of a packet from the network: never counted, never banned.
    Martian(Range),
    /// Valid on the local link only (a neighbour, the gateway): counted and reported, never
    /// banned (the firewall refuses link-local bans too).
    LinkLocal(Range),
}

impl SourceCheck {
    /// True when packets from this source are counted (ordinary and link-local sources).
    pub fn counted(self) -> bool {
        !matches!(self, SourceCheck::Martian(_))
    }

    /// True when this source may be banned (ordinary sources only).
    pub fn bannable(self) -> bool {
        matches!(self, SourceCheck::Ordinary)
    }
}

const fn r(net: &'static str, name: &'static str) -> Range {
    Range { net, name }
}

/// Classifies a packet's source address (see the module's table).
pub fn check_source(addr: IpAddr) -> SourceCheck {
    match addr {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

/// `check_source(addr).counted()`, without naming the range (this runs per packet).
#[inline]
pub fn counted(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !matches!(a.octets()[0], 0 | 127 | 224..=255),
        IpAddr::V6(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.to_ipv4_mapped().is_some()
                || a.segments()[0] >> 8 == 0xff)
        }
    }
}

fn check_v4(a: Ipv4Addr) -> SourceCheck {
    let [o0, o1, ..] = a.octets();
    match (o0, o1) {
        (0, _) => SourceCheck::Martian(r("0.0.0.0/8", "this network")),
        (127, _) => SourceCheck::Martian(r("127.0.0.0/8", "loopback")),
        (224..=239, _) => SourceCheck::Martian(r("224.0.0.0/4", "multicast")),
        (240..=255, _) => SourceCheck::Martian(r("240.0.0.0/4", "reserved or broadcast")),
        (169, 254) => SourceCheck::LinkLocal(r("169.254.0.0/16", "link-local")),
        _ => SourceCheck::Ordinary,
    }
}

fn check_v6(a: Ipv6Addr) -> SourceCheck {
    let s = a.segments();
    if a.is_unspecified() {
        SourceCheck::Martian(r("::/128", "unspecified"))
    } else if a.is_loopback() {
        SourceCheck::Martian(r("::1/128", "loopback"))
    } else if a.to_ipv4_mapped().is_some() {
        SourceCheck::Martian(r("::ffff:0:0/96", "IPv4-mapped"))
    } else if s[0] >> 8 == 0xff {
        SourceCheck::Martian(r("ff00::/8", "multicast"))
    } else if s[0] & 0xffc0 == 0xfe80 {
        SourceCheck::LinkLocal(r("fe80::/10", "link-local"))
    } else {
        SourceCheck::Ordinary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> SourceCheck {
        check_source(text.parse().unwrap())
    }

    #[test]
    fn counted_is_check_source_counted() {
        let mut seed = 7u64;
        let mut addrs: Vec<IpAddr> = ["0.0.0.0", "127.0.0.1", "126.255.255.255", "128.0.0.0"]
            .iter()
            .chain(&[
                "223.255.255.255",
                "224.0.0.0",
                "169.254.1.1",
                "::",
                "::1",
                "::2",
            ])
            .chain(&[
                "::ffff:1.2.3.4",
                "::fffe:1.2.3.4",
                "ff00::",
                "feff::1",
                "fe80::1",
            ])
            .map(|a| a.parse().unwrap())
            .collect();
        for _ in 0..20_000 {
            let x = crate::test_rng::next(&mut seed);
            addrs.push(IpAddr::V4(Ipv4Addr::from(x as u32)));
            let hi = if x & 1 == 0 {
                0xff00 << 48
            } else {
                x & (0xffff << 48)
            };
            let v6 =
                u128::from(hi | (x >> 16)) << 64 | u128::from(crate::test_rng::next(&mut seed));
            addrs.push(IpAddr::V6(Ipv6Addr::from(v6)));
            addrs.push(IpAddr::V6(Ipv4Addr::from(x as u32).to_ipv6_mapped()));
        }
        for a in addrs {
            assert_eq!(counted(a), check_source(a).counted(), "{a}");
        }
    }

    #[test]
    fn martians_link_local_and_ordinary_sources() {
        for martian in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.0.0.53",
            "127.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "ff02::1",
            "ff05::1:3",
        ] {
            let c = check(martian);
            assert!(matches!(c, SourceCheck::Martian(_)), "{martian}: {c:?}");
            assert!(!c.counted() && !c.bannable());
        }
        for link in ["169.254.169.254", "169.254.0.1", "fe80::1", "febf:ffff::1"] {
            let c = check(link);
            assert!(matches!(c, SourceCheck::LinkLocal(_)), "{link}: {c:?}");
            assert!(c.counted() && !c.bannable());
        }
        for ordinary in [
            "1.1.1.1",
            "10.0.0.1",
            "100.64.0.1",
            "126.255.255.255",
            "128.0.0.1",
            "169.253.255.255",
            "169.255.0.1",
            "192.0.2.7",
            "198.51.100.7",
            "203.0.113.7",
            "223.255.255.255",
            "2001:db8::1",
            "2a00:1450::1",
            "fc00::1",
            "fec0::1",
            "::2",
            "64:ff9b::1.2.3.4",
        ] {
            assert_eq!(check(ordinary), SourceCheck::Ordinary, "{ordinary}");
        }
        assert_eq!(
            check("127.0.0.53"),
            SourceCheck::Martian(Range {
                net: "127.0.0.0/8",
                name: "loopback"
            })
        );
    }
}
