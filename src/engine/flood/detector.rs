//! `[[flood]]` detectors compiled for matching (pure): which packets a detector counts, in a
//! few comparisons, and the packet classes (protocol, TCP flag word) the fingerprint counts.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Flood, FloodAction, FloodFlags, FloodMetric, FloodScope, Fragments, Protocol};
use crate::engine::window::Span;
use crate::packet::{PacketMeta, Proto, tcp_flag};

/// Protocol classes, as indexes: what detectors are listed under and cells count.
pub const TCP: usize = 0;
pub const UDP: usize = 1;
pub const ICMP: usize = 2;
pub const OTHER: usize = 3;
pub const CLASSES: usize = 4;

/// The protocol class of a packet.
#[inline]
pub fn proto_class(p: Proto) -> usize {
    match p {
        Proto::Tcp => TCP,
        Proto::Udp => UDP,
        Proto::Icmp | Proto::Icmpv6 => ICMP,
        Proto::Other(_) => OTHER,
    }
}

/// TCP flag words in class order (the index is what cells count); `None` is the class of
/// combinations no word names (e.g. no flags at all, or URG alone).
pub const FLAG_WORDS: [Option<FloodFlags>; 6] = [
    Some(FloodFlags::Syn),
    Some(FloodFlags::Synack),
    Some(FloodFlags::Ack),
    Some(FloodFlags::Rst),
    Some(FloodFlags::Fin),
    None,
];

/// The word class of a TCP packet's flags: RST first, then SYN-ACK, SYN, FIN, ACK (one
/// load from [`FLAG_CLASSES`]).
#[inline]
pub fn flag_class(flags: u8) -> usize {
    usize::from(FLAG_CLASSES[usize::from(flags)])
}

/// [`flag_class`] of every flags byte.
const FLAG_CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = flag_class_of(i as u8);
        i += 1;
    }
    t
};

/// [`flag_class`] worked out: what [`FLAG_CLASSES`] is made of.
const fn flag_class_of(flags: u8) -> u8 {
    if flags & tcp_flag::RST != 0 {
        3
    } else if flags & tcp_flag::SYN != 0 {
        if flags & tcp_flag::ACK != 0 { 1 } else { 0 }
    } else if flags & tcp_flag::FIN != 0 {
        4
    } else if flags & tcp_flag::ACK != 0 {
        2
    } else {
        5
    }
}

/// Routes: TCP by flag class (0-5), then UDP, ICMP and other (6-8), then non-first fragments
/// by protocol class (9-12). Each detector is listed under the routes it takes, so a packet
/// tries only detectors that want its protocol, flags and fragment-ness (a bare ACK under
/// the shipped detectors tries none).
pub const ROUTES: usize = 13;

/// The route of a packet (see [`ROUTES`]).
#[inline]
pub fn route(p: &PacketMeta) -> usize {
    let class = proto_class(p.proto);
    if p.fragment {
        9 + class
    } else if class == TCP {
        flag_class(p.tcp_flags)
    } else {
        5 + class
    }
}

/// The class index of a flag word (`Any` has none).
pub fn class_of_word(word: FloodFlags) -> Option<usize> {
    FLAG_WORDS.iter().position(|w| *w == Some(word))
}

/// Networks as masked integers, for a per-packet membership test without `IpNet`'s matching
/// (IPv4-mapped IPv6 addresses are tested as IPv4).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nets {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Nets {
    pub fn new(nets: &[ipnet::IpNet]) -> Nets {
        let mut out = Nets::default();
        for n in nets {
            match n {
                ipnet::IpNet::V4(n) => {
                    let mask = u32::from(n.netmask());
                    out.v4.push((u32::from(n.network()) & mask, mask));
                }
                ipnet::IpNet::V6(n) => {
                    let mask = u128::from(n.netmask());
                    out.v6.push((u128::from(n.network()) & mask, mask));
                }
            }
        }
        out
    }

    /// The allowlist as the fingerprint counts it (a source in it and not [`martian`]): a
    /// network whose every address is martian (within 127.0.0.0/8, or `::`/`::1`) never
    /// makes a source count, so it is left out. The shipped list is only such networks: then
    /// the list is empty and no packet's source is tested against it.
    pub fn allowlist(nets: &[ipnet::IpNet]) -> Nets {
        let all_martian = |n: &&ipnet::IpNet| match n {
            ipnet::IpNet::V4(n) => n.prefix_len() >= 8 && n.network().octets()[0] == 127,
            ipnet::IpNet::V6(n) => u128::from(n.broadcast()) <= 1,
        };
        let kept: Vec<ipnet::IpNet> = nets.iter().filter(|n| !all_martian(n)).copied().collect();
        Nets::new(&kept)
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    #[inline]
    pub fn contains(&self, a: std::net::IpAddr) -> bool {
        match a.to_canonical() {
            std::net::IpAddr::V4(v) => {
                let x = u32::from(v);
                self.v4.iter().any(|(net, mask)| x & mask == *net)
            }
            std::net::IpAddr::V6(v) => {
                let x = u128::from(v);
                self.v6.iter().any(|(net, mask)| x & mask == *net)
            }
        }
    }
}

/// A source no real packet on the wire carries (loopback, unspecified): spoofed.
pub fn martian(a: std::net::IpAddr) -> bool {
    a.is_loopback() || a.is_unspecified() || a.to_canonical().is_loopback()
}

/// A set of ports: a short sorted list, or a bitmap when long (ranges).
#[derive(Clone, Debug, PartialEq)]
enum PortSet {
    Few(Vec<u16>),
    Many(Box<[u64; 1024]>),
}

impl PortSet {
    fn new(ports: &[u16]) -> PortSet {
        if ports.len() <= 16 {
            return PortSet::Few(ports.to_vec());
        }
        let mut bits = Box::new([0u64; 1024]);
        for &p in ports {
            bits[usize::from(p / 64)] |= 1 << (p % 64);
        }
        PortSet::Many(bits)
    }

    #[inline]
    fn contains(&self, port: u16) -> bool {
        match self {
            PortSet::Few(v) => v.contains(&port),
            PortSet::Many(bits) => bits[usize::from(port / 64)] & (1 << (port % 64)) != 0,
        }
    }
}

/// One detector, ready to match packets.
#[derive(Clone, Debug)]
pub struct Detector {
    pub name: Arc<str>,
    /// As configured (a reload keeps the counters of an unchanged detector).
    pub config: Flood,
    /// Protocol classes it counts ([`proto_class`] indexes).
    pub classes: [bool; CLASSES],
    /// The flag class it counts (TCP only); `None` for every packet.
    flags: Option<usize>,
    sports: Option<PortSet>,
    dports: Option<PortSet>,
    fragments: Fragments,
    /// True when a packet without a transport header can match (no port or flag filter).
    headerless: bool,
    /// No port filter: every packet passes [`Detector::ports_match`].
    any_port: bool,
    pub metric: FloodMetric,
    pub threshold: u64,
    pub window: Duration,
    pub span: Span,
    pub action: FloodAction,
    pub ban: Duration,
    pub scope: FloodScope,
    /// Counts SYNs only: whether its sources complete handshakes tells real from spoofed.
    pub syn_only: bool,
    /// A target's fingerprint counts start when its window reaches this (a 64th of the
    /// threshold): the fingerprint of the window that crossed leaves out at most that many of
    /// its first packets.
    pub attach_at: u64,
}

impl Detector {
    pub fn new(f: &Flood) -> Detector {
        let classes = match f.protocol {
            Protocol::Tcp => [true, false, false, false],
            Protocol::Udp => [false, true, false, false],
            Protocol::Icmp => [false, false, true, false],
            Protocol::Any => [true; CLASSES],
        };
        Detector {
            name: Arc::from(f.name.as_str()),
            config: f.clone(),
            classes,
            flags: f.tcp_flags.and_then(class_of_word),
            sports: f.src_ports.as_deref().map(PortSet::new),
            dports: f.dst_ports.as_deref().map(PortSet::new),
            fragments: f.fragments,
            headerless: f.src_ports.is_none() && f.dst_ports.is_none() && f.tcp_flags.is_none(),
            any_port: f.src_ports.is_none() && f.dst_ports.is_none(),
            metric: f.metric,
            threshold: f.threshold,
            window: f.window,
            span: Span::new(f.window),
            action: f.action,
            ban: f.ban,
            scope: f.scope,
            syn_only: f.tcp_flags == Some(FloodFlags::Syn),
            attach_at: (f.threshold / 64).max(1),
        }
    }

    /// True when packets of route `r` can count for this detector (protocol, flags and
    /// fragments decided; the ports are left to [`Detector::ports_match`]).
    pub fn takes(&self, r: usize) -> bool {
        match r {
            0..=5 => {
                self.classes[TCP]
                    && self.fragments != Fragments::Only
                    && self.flags.is_none_or(|c| c == r)
            }
            6..=8 => {
                self.classes[r - 5] && self.fragments != Fragments::Only && self.flags.is_none()
            }
            _ => {
                self.classes.get(r - 9).copied().unwrap_or(false)
                    && self.fragments != Fragments::Exclude
                    && self.headerless
            }
        }
    }

    /// True when `p` (of a route this detector takes) passes its port filters.
    #[inline]
    pub fn ports_match(&self, p: &PacketMeta) -> bool {
        self.any_port || self.ports_filter_match(p)
    }

    /// [`Detector::ports_match`] with a port filter (out of line: inlined, the compiler
    /// prepared the bitmap indexes of both ports for every packet of a route, filter or not).
    #[inline(never)]
    fn ports_filter_match(&self, p: &PacketMeta) -> bool {
        let port_ok = |set: &Option<PortSet>, port: Option<u16>| match (set, port) {
            (None, _) => true,
            (Some(s), Some(port)) => s.contains(port),
            (Some(_), None) => false,
        };
        port_ok(&self.sports, p.src_port) && port_ok(&self.dports, p.dst_port)
    }

    /// True when `p` counts for this detector.
    #[cfg(test)]
    pub fn matches(&self, p: &PacketMeta) -> bool {
        self.takes(route(p)) && self.ports_match(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tcp_flag::{ACK, FIN, RST, SYN};

    fn flood(toml_body: &str) -> Flood {
        let text = format!(
            "[[flood]]\nname = \"f\"\nmetric = \"packets\"\nthreshold = 1\nwindow = \"1s\"\n{toml_body}"
        );
        let c = crate::config::parse_str(&text, std::path::Path::new("t.toml")).expect("valid");
        c.floods[0].clone()
    }

    fn pkt(proto: Proto, flags: u8, sport: Option<u16>, dport: Option<u16>) -> PacketMeta {
        PacketMeta {
            src: "192.0.2.1".parse().unwrap(),
            dst: "10.10.10.10".parse().unwrap(),
            proto,
            tcp_flags: flags,
            src_port: sport,
            dst_port: dport,
            len: 60,
            fragment: false,
        }
    }

    #[test]
    fn flag_classes_follow_the_rule_words() {
        assert_eq!(flag_class(SYN), 0);
        assert_eq!(
            flag_class(SYN | 0x40 | 0x80),
            0,
            "ECE and CWR do not matter"
        );
        assert_eq!(flag_class(SYN | ACK), 1);
        assert_eq!(flag_class(ACK), 2);
        assert_eq!(flag_class(ACK | 0x08), 2, "PSH-ACK is ack");
        assert_eq!(flag_class(RST | ACK), 3);
        assert_eq!(flag_class(FIN | ACK), 4);
        assert_eq!(flag_class(0), 5);
        for f in 0..=255u8 {
            assert_eq!(flag_class(f), usize::from(flag_class_of(f)), "{f:#x}");
        }
        assert_eq!(FLAG_WORDS[5], None);
        for w in [FloodFlags::Syn, FloodFlags::Rst] {
            assert_eq!(FLAG_WORDS[class_of_word(w).unwrap()], Some(w));
        }
    }

    #[test]
    fn filters_ports_flags_and_fragments() {
        let d = Detector::new(&flood(
            "protocol = \"udp\"\nsrc_ports = [123, \"1000-1100\"]",
        ));
        assert_eq!(d.classes, [false, true, false, false]);
        assert!(d.matches(&pkt(Proto::Udp, 0, Some(123), Some(5000))));
        assert!(d.matches(&pkt(Proto::Udp, 0, Some(1050), None)));
        assert!(!d.matches(&pkt(Proto::Udp, 0, Some(124), Some(5000))));
        assert!(!d.matches(&pkt(Proto::Udp, 0, None, None)), "cut header");
        let mut frag = pkt(Proto::Udp, 0, None, None);
        frag.fragment = true;
        assert!(!d.matches(&frag), "a fragment has no source port");

        let syn = Detector::new(&flood("protocol = \"tcp\"\ntcp_flags = \"syn\""));
        assert!(syn.matches(&pkt(Proto::Tcp, SYN, Some(1), Some(2))));
        assert!(!syn.matches(&pkt(Proto::Tcp, SYN | ACK, Some(1), Some(2))));

        let any = Detector::new(&flood("protocol = \"any\""));
        assert!(
            any.matches(&frag),
            "fragments count when nothing else is filtered"
        );
        let only = Detector::new(&flood("fragments = \"only\""));
        assert!(only.matches(&frag));
        assert!(!only.matches(&pkt(Proto::Udp, 0, Some(1), Some(2))));
        let none = Detector::new(&flood("fragments = \"exclude\""));
        assert!(!none.matches(&frag));
    }

    #[test]
    fn nets_match_like_ipnet() {
        let list: Vec<ipnet::IpNet> = [
            "127.0.0.0/8",
            "192.0.2.0/24",
            "2001:db8::/32",
            "10.1.2.3/32",
        ]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
        let nets = Nets::new(&list);
        for a in [
            "127.1.2.3",
            "192.0.2.255",
            "2001:db8::5",
            "10.1.2.3",
            "::ffff:192.0.2.1",
        ] {
            assert!(nets.contains(a.parse().unwrap()), "{a}");
        }
        for a in ["128.0.0.1", "192.0.3.0", "2001:db9::", "10.1.2.4", "::1"] {
            assert!(!nets.contains(a.parse().unwrap()), "{a}");
        }
        assert!(Nets::new(&[]).is_empty());
    }

    /// Leaving out the networks of martians only changes nothing: a source counts as
    /// allowlisted exactly when it did with the whole list.
    #[test]
    fn the_allowlist_leaves_out_only_martian_networks() {
        let parse = |list: &[&str]| -> Vec<ipnet::IpNet> {
            list.iter().map(|n| n.parse().unwrap()).collect()
        };
        assert!(
            Nets::allowlist(&parse(&[
                "127.0.0.0/8",
                "::1/128",
                "127.1.0.0/16",
                "::/127"
            ]))
            .is_empty()
        );
        let list = parse(&[
            "127.0.0.0/8",
            "::1/128",
            "0.0.0.0/32",
            "126.0.0.0/7",
            "::/120",
            "192.0.2.0/24",
            "2001:db8::/32",
        ]);
        let (all, kept) = (Nets::new(&list), Nets::allowlist(&list));
        assert_eq!(kept.v4.len() + kept.v6.len(), 5);
        for a in [
            "127.0.0.1",
            "127.255.0.9",
            "126.1.2.3",
            "0.0.0.0",
            "::ffff:0.0.0.0",
            "::ffff:127.0.0.1",
            "::1",
            "::",
            "::2",
            "192.0.2.7",
            "::ffff:192.0.2.7",
            "2001:db8::9",
            "198.51.100.1",
        ] {
            let a: std::net::IpAddr = a.parse().unwrap();
            let counts = |n: &Nets| n.contains(a) && !martian(a);
            assert_eq!(counts(&all), counts(&kept), "{a}");
        }
    }

    #[test]
    fn long_port_lists_use_a_bitmap() {
        let d = Detector::new(&flood("protocol = \"tcp\"\ndst_ports = [\"1024-65535\"]"));
        assert!(matches!(d.dports, Some(PortSet::Many(_))));
        assert!(d.matches(&pkt(Proto::Tcp, SYN, Some(1), Some(65535))));
        assert!(!d.matches(&pkt(Proto::Tcp, SYN, Some(1), Some(80))));
    }
}
