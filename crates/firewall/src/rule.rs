//! [`Rule`]: what a blocking entry matches (source and/or destination net, protocol, ports, TCP
//! flags) and what it does ([`Action`]). A rule that matches only a source and drops is a plain
//! ban, kept in the fast path (one rule per net, or one set entry with ipset); anything else is
//! a typed rule in our chain. Addresses and prefixes convert into a [`Rule`] directly, so
//! [`Batch::block`](super::Batch::block) takes either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::ban::Family;

/// What happens to a packet a [`Rule`] matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Silently discard it (`-j DROP`).
    #[default]
    Drop,
    /// Discard it and answer with ICMP port unreachable (`-j REJECT`).
    Reject,
    /// Log it to the kernel log (prefix `"<chain> "`, at most 10 a second, bursts of 20), then
    /// discard it: two iptables rules, `-j LOG` then `-j DROP`.
    LogAndDrop,
}

/// A transport protocol a [`Rule`] can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (ports and flags can be matched).
    Tcp,
    /// UDP (ports can be matched).
    Udp,
    /// ICMP for IPv4, ICMPv6 for IPv6.
    Icmp,
}

impl Protocol {
    /// The name iptables-save prints for this protocol in `family`.
    pub(crate) fn name(self, family: Family) -> &'static str {
        match (self, family) {
            (Protocol::Tcp, _) => "tcp",
            (Protocol::Udp, _) => "udp",
            (Protocol::Icmp, Family::V4) => "icmp",
            (Protocol::Icmp, Family::V6) => "ipv6-icmp",
        }
    }
}

/// A port or an inclusive range of ports (`--sport`/`--dport`).
///
/// ```
/// use autoblock_firewall::Ports;
/// assert_eq!(Ports::from(4500), Ports { first: 4500, last: 4500 });
/// assert_eq!(Ports::from(1000..=2000).to_string(), "1000:2000");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ports {
    /// The lowest port matched.
    pub first: u16,
    /// The highest port matched (equal to `first` for a single port).
    pub last: u16,
}

impl From<u16> for Ports {
    fn from(port: u16) -> Ports {
        Ports {
            first: port,
            last: port,
        }
    }
}

impl From<RangeInclusive<u16>> for Ports {
    fn from(range: RangeInclusive<u16>) -> Ports {
        Ports {
            first: *range.start(),
            last: *range.end(),
        }
    }
}

impl std::fmt::Display for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}:{}", self.first, self.last)
        }
    }
}

/// TCP flags to match (`--tcp-flags MASK SET`): of the flags in `mask`, exactly those in `set`
/// must be on.
///
/// ```
/// use autoblock_firewall::TcpFlags;
/// // A connection attempt: SYN on, ACK, RST and FIN off (iptables' `--syn`).
/// assert_eq!(TcpFlags::syn().to_string(), "FIN,SYN,RST,ACK SYN");
/// assert_eq!(TcpFlags::new(TcpFlags::ALL, 0).to_string(), "FIN,SYN,RST,PSH,ACK,URG NONE");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpFlags {
    /// The flags examined ([`TcpFlags::FIN`] | [`TcpFlags::SYN`] | ...).
    pub mask: u8,
    /// The flags, among `mask`, that must be set; the others in `mask` must be clear.
    pub set: u8,
}

const FLAG_NAMES: [(u8, &str); 6] = [
    (TcpFlags::FIN, "FIN"),
    (TcpFlags::SYN, "SYN"),
    (TcpFlags::RST, "RST"),
    (TcpFlags::PSH, "PSH"),
    (TcpFlags::ACK, "ACK"),
    (TcpFlags::URG, "URG"),
];

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// All six flags iptables can match.
    pub const ALL: u8 = 0x3f;

    /// Of the flags in `mask`, exactly those in `set` must be on.
    pub fn new(mask: u8, set: u8) -> TcpFlags {
        TcpFlags { mask, set }
    }

    /// SYN on, ACK, RST and FIN off: a new connection (iptables' `--syn`).
    pub fn syn() -> TcpFlags {
        TcpFlags::new(
            TcpFlags::FIN | TcpFlags::SYN | TcpFlags::RST | TcpFlags::ACK,
            TcpFlags::SYN,
        )
    }

    /// `FIN,SYN` style list in iptables-save order, or `NONE`.
    pub(crate) fn names(bits: u8) -> String {
        let names: Vec<&str> = FLAG_NAMES
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| *n)
            .collect();
        if names.is_empty() {
            "NONE".to_string()
        } else {
            names.join(",")
        }
    }

    /// Parses a list written by [`TcpFlags::names`] (also `ALL`).
    pub(crate) fn parse_names(text: &str) -> Option<u8> {
        match text {
            "NONE" => return Some(0),
            "ALL" => return Some(TcpFlags::ALL),
            _ => {}
        }
        text.split(',').try_fold(0u8, |acc, name| {
            FLAG_NAMES
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(b, _)| acc | b)
        })
    }
}

impl std::fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            TcpFlags::names(self.mask),
            TcpFlags::names(self.set)
        )
    }
}

/// What a blocking entry matches, and what it does with the packets.
///
/// Build one from an address or prefix (a plain ban: drop everything from that source), or
/// from [`Rule::new`] with the matches you need. A rule must name a source or a destination
/// (both of one family); ports need [`Protocol::Tcp`] or [`Protocol::Udp`], flags need TCP.
/// Checks happen at [`Firewall::commit`](super::Firewall::commit), which refuses a rule that
/// breaks them and says why.
///
/// A rule is identified by what it matches: blocking the same match again with another
/// action replaces the entry, and [`Batch::unblock`](super::Batch::unblock) removes it
/// whatever its action.
///
/// ```
/// use autoblock_firewall::{Action, Ipv4Net, Protocol, Rule, TcpFlags};
/// use std::net::Ipv4Addr;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
///
/// // A plain ban.
/// let ban = Rule::from(Ipv4Addr::new(203, 0, 113, 7));
/// assert!(ban.is_source_ban());
///
/// // A flood signature: UDP from port 4500 to one address of ours.
/// let ike = Rule::new()
///     .dst(Ipv4Addr::new(10, 10, 10, 10))
///     .protocol(Protocol::Udp)
///     .sport(4500);
/// assert_eq!(ike.to_string(), "-d 10.10.10.10/32 -p udp --sport 4500 -j DROP");
///
/// // New TCP connections from a network to a port range, refused with a reset-like answer.
/// let scan = Rule::new()
///     .src("198.51.100.0/24".parse::<Ipv4Net>()?)
///     .protocol(Protocol::Tcp)
///     .dport(1000..=2000)
///     .tcp_flags(TcpFlags::syn())
///     .action(Action::Reject);
/// assert!(!scan.is_source_ban());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct Rule {
    /// Source address or prefix.
    pub src: Option<IpNet>,
    /// Destination address or prefix.
    pub dst: Option<IpNet>,
    /// Transport protocol.
    pub protocol: Option<Protocol>,
    /// Source port(s) (TCP or UDP).
    pub sport: Option<Ports>,
    /// Destination port(s) (TCP or UDP).
    pub dport: Option<Ports>,
    /// TCP flags (TCP only).
    pub tcp_flags: Option<TcpFlags>,
    /// What happens to matching packets.
    pub action: Action,
}

impl Rule {
    /// A rule that matches nothing yet and drops; add matches with the methods below.
    pub fn new() -> Rule {
        Rule::default()
    }

    /// Matches packets from `net` (an address or a prefix).
    pub fn src(mut self, net: impl Into<Net>) -> Rule {
        self.src = Some(net.into().0);
        self
    }

    /// Matches packets to `net` (an address or a prefix).
    pub fn dst(mut self, net: impl Into<Net>) -> Rule {
        self.dst = Some(net.into().0);
        self
    }

    /// Matches one transport protocol.
    pub fn protocol(mut self, protocol: Protocol) -> Rule {
        self.protocol = Some(protocol);
        self
    }

    /// Matches a source port or range (needs TCP or UDP).
    pub fn sport(mut self, ports: impl Into<Ports>) -> Rule {
        self.sport = Some(ports.into());
        self
    }

    /// Matches a destination port or range (needs TCP or UDP).
    pub fn dport(mut self, ports: impl Into<Ports>) -> Rule {
        self.dport = Some(ports.into());
        self
    }

    /// Matches TCP flags (needs TCP).
    pub fn tcp_flags(mut self, flags: TcpFlags) -> Rule {
        self.tcp_flags = Some(flags);
        self
    }

    /// Sets what happens to matching packets ([`Action::Drop`] unless set).
    pub fn action(mut self, action: Action) -> Rule {
        self.action = action;
        self
    }

    /// True for a plain ban: a source and nothing else, dropped.
    pub fn is_source_ban(&self) -> bool {
        self.src.is_some()
            && *self
                == Rule {
                    src: self.src,
                    ..Rule::default()
                }
    }

    /// The rule's identity: its matches, with the action left out.
    pub(crate) fn key(&self) -> Rule {
        Rule {
            action: Action::Drop,
            ..*self
        }
    }

    /// The family of its addresses (`None` when it names none, or both families).
    pub(crate) fn family(&self) -> Option<Family> {
        match (
            self.src.map(|n| Family::of(&n)),
            self.dst.map(|n| Family::of(&n)),
        ) {
            (Some(a), Some(b)) if a != b => None,
            (Some(f), _) | (None, Some(f)) => Some(f),
            (None, None) => None,
        }
    }
}

/// iptables-like words for messages: `-s NET -d NET -p PROTO --sport P --dport P --tcp-flags M S
/// -j DROP|REJECT|LOG,DROP`.
impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let family = self.family().unwrap_or(Family::V4);
        let mut words: Vec<String> = Vec::new();
        if let Some(n) = self.src {
            words.push(format!("-s {n}"));
        }
        if let Some(n) = self.dst {
            words.push(format!("-d {n}"));
        }
        if let Some(p) = self.protocol {
            words.push(format!("-p {}", p.name(family)));
        }
        if let Some(p) = self.sport {
            words.push(format!("--sport {p}"));
        }
        if let Some(p) = self.dport {
            words.push(format!("--dport {p}"));
        }
        if let Some(t) = self.tcp_flags {
            words.push(format!("--tcp-flags {t}"));
        }
        words.push(
            match self.action {
                Action::Drop => "-j DROP",
                Action::Reject => "-j REJECT",
                Action::LogAndDrop => "-j LOG,DROP",
            }
            .to_string(),
        );
        f.write_str(&words.join(" "))
    }
}

/// An address or a prefix, from any of the standard types: what [`Rule::src`], [`Rule::dst`]
/// and the conversions into [`Rule`] accept. Prefixes keep their host bits here;
/// [`Firewall::commit`](super::Firewall::commit) refuses them rather than widening silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Net(pub IpNet);

macro_rules! net_from {
    ($($t:ty => $e:expr),* $(,)?) => {$(
        impl From<$t> for Net {
            fn from(v: $t) -> Net {
                let f: fn($t) -> IpNet = $e;
                Net(f(v))
            }
        }
        /// A plain ban on this address or prefix.
        impl From<$t> for Rule {
            fn from(v: $t) -> Rule {
                Rule::new().src(v)
            }
        }
    )*};
}

net_from! {
    IpNet => |n| n,
    Ipv4Net => IpNet::V4,
    Ipv6Net => IpNet::V6,
    IpAddr => IpNet::from,
    Ipv4Addr => |a| IpNet::V4(Ipv4Net::from(a)),
    Ipv6Addr => |a| IpNet::V6(Ipv6Net::from(a)),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_make_plain_bans() {
        let r = Rule::from(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(r.src, Some("192.0.2.1/32".parse().unwrap()));
        assert!(r.is_source_ban());
        assert!(Rule::from("2001:db8::/32".parse::<IpNet>().unwrap()).is_source_ban());
        assert!(!Rule::new().is_source_ban());
        assert!(!r.action(Action::Reject).is_source_ban());
        assert!(!r.protocol(Protocol::Tcp).is_source_ban());
        assert_eq!(r.action(Action::LogAndDrop).key(), r);
    }

    #[test]
    fn families() {
        let v4 = Rule::new().dst(Ipv4Addr::LOCALHOST);
        assert_eq!(v4.family(), Some(Family::V4));
        assert_eq!(v4.src(Ipv6Addr::LOCALHOST).family(), None);
        assert_eq!(Rule::new().family(), None);
    }

    #[test]
    fn flag_names_round_trip() {
        for bits in 0..=TcpFlags::ALL {
            assert_eq!(TcpFlags::parse_names(&TcpFlags::names(bits)), Some(bits));
        }
        assert_eq!(TcpFlags::parse_names("ALL"), Some(TcpFlags::ALL));
        assert_eq!(TcpFlags::parse_names("SYN,XMAS"), None);
    }
}
