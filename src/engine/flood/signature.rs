//! From a fingerprint to a kernel rule (pure): the [`Signature`] that drops the attack toward
//! its target, or the [`Refusal`] saying why no signature may be set — when it would also
//! drop traffic we verifiably serve or use: packets from allowlisted sources, a port we listen
//! on or answer from with no dominant source port to tell the attack apart, or the answers of
//! a service we talk to ourselves. [`PortFacts`] holds those facts: listening sockets (read at
//! the edge) and the ports our own traffic used (seen in the capture).

use std::fmt;
use std::net::IpAddr;

use super::fingerprint::{Fingerprint, FpProto};
use crate::config::FloodFlags;

/// TCP flag bits as iptables names them, in its order.
const FLAG_NAMES: [(u8, &str); 6] = [
    (0x01, "FIN"),
    (0x02, "SYN"),
    (0x04, "RST"),
    (0x08, "PSH"),
    (0x10, "ACK"),
    (0x20, "URG"),
];

/// `(mask, set)` of `--tcp-flags` that matches exactly the packets of a flag word.
pub fn tcp_mask_set(word: FloodFlags) -> Option<(u8, u8)> {
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    match word {
        FloodFlags::Syn => Some((SYN | RST | ACK, SYN)),
        FloodFlags::Synack => Some((SYN | RST | ACK, SYN | ACK)),
        FloodFlags::Ack => Some((FIN | SYN | RST | ACK, ACK)),
        FloodFlags::Rst => Some((RST, RST)),
        FloodFlags::Fin => Some((FIN | SYN | RST, FIN)),
        FloodFlags::Any => None,
    }
}

fn flag_names(bits: u8) -> String {
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    names.join(",")
}

/// A DROP rule for one attack toward one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    pub dst: IpAddr,
    /// TCP, UDP or ICMP (ICMPv6 toward an IPv6 target).
    pub protocol: FpProto,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// TCP only.
    pub flags: Option<FloodFlags>,
}

/// The rule in iptables words, exactly as the firewall library writes the same rule
/// (`-d 10.10.10.10/32 -p udp --sport 4500 -j DROP`).
impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, icmp) = match self.dst {
            IpAddr::V4(_) => (32, "icmp"),
            IpAddr::V6(_) => (128, "ipv6-icmp"),
        };
        write!(f, "-d {}/{prefix}", self.dst)?;
        let proto = match self.protocol {
            FpProto::Icmp => icmp,
            other => other.as_str(),
        };
        write!(f, " -p {proto}")?;
        if let Some(p) = self.sport {
            write!(f, " --sport {p}")?;
        }
        if let Some(p) = self.dport {
            write!(f, " --dport {p}")?;
        }
        if let Some((mask, set)) = self.flags.and_then(tcp_mask_set) {
            write!(f, " --tcp-flags {} {}", flag_names(mask), flag_names(set))?;
        }
        f.write_str(" -j DROP")
    }
}

/// Why an attack is not mitigated as configured (it is reported, alert only).
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// No protocol carries 80% of the attack.
    NoProtocol,
    /// The attack's protocol has no ports or flags a rule could name.
    Protocol(FpProto),
    /// Fragments carry most of it: a rule cannot match packets without ports.
    Fragments(f64),
    /// Allowlisted sources sent this many of its packets.
    Allowlisted(u64),
    /// No dominant source port, toward a port we listen on or answer from (`None`: toward
    /// every port, and we serve some of this protocol).
    Serves(FpProto, Option<u16>),
    /// The rule names a source port whose service we use ourselves: its answers would be
    /// dropped too.
    Uses(FpProto, u16),
    /// `sources`: the sources look spoofed; banning them would hit bystanders.
    Spoofed { sources: u64, packets: u64 },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoProtocol => f.write_str(
                "no protocol carries 80% of the attack: a signature would drop everything toward the target",
            ),
            Refusal::Protocol(p) => write!(f, "protocol {} cannot be matched by a signature", p.as_str()),
            Refusal::Fragments(share) => write!(
                f,
                "fragments carry {:.0}% of the attack: a signature cannot match packets without ports",
                share * 100.0
            ),
            Refusal::Allowlisted(n) => write!(
                f,
                "{n} packets of the attack came from allowlisted sources: a signature would drop them too"
            ),
            Refusal::Serves(p, Some(port)) => write!(
                f,
                "no dominant source port, toward {} port {port}, which we serve",
                p.as_str()
            ),
            Refusal::Serves(p, None) => write!(
                f,
                "no dominant port, toward a target that serves {}",
                p.as_str()
            ),
            Refusal::Uses(p, port) => write!(
                f,
                "we talk to {} port {port} ourselves: its answers would be dropped too",
                p.as_str()
            ),
            Refusal::Spoofed { sources, packets } => write!(
                f,
                "the sources look spoofed ({sources} sources for {packets} packets): banning them would hit bystanders"
            ),
        }
    }
}

/// 65,536 bits, one per port (8 KB, allocated at the first port set).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PortBits(Option<Box<[u64; 1024]>>);

impl PortBits {
    #[inline]
    pub fn set(&mut self, port: u16) {
        let bits = self.0.get_or_insert_with(|| Box::new([0; 1024]));
        bits[usize::from(port / 64)] |= 1 << (port % 64);
    }

    pub fn get(&self, port: u16) -> bool {
        self.0
            .as_ref()
            .is_some_and(|b| b[usize::from(port / 64)] & (1 << (port % 64)) != 0)
    }

    pub fn any(&self) -> bool {
        self.0.as_ref().is_some_and(|b| b.iter().any(|w| *w != 0))
    }

    pub fn clear(&mut self) {
        if let Some(b) = &mut self.0 {
            b.fill(0);
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |_| 8192)
    }
}

/// What the host verifiably serves and uses, per protocol (index 0 TCP, 1 UDP).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PortFacts {
    /// Listening sockets (a host fact, read at the edge).
    pub listening: [PortBits; 2],
    /// Remote ports of the host's established TCP connections (a host fact, read at the
    /// edge): services we talk to (and our clients' ports).
    pub established: PortBits,
    /// Local ports our own packets left from, this period and the one before.
    pub answered_from: [[PortBits; 2]; 2],
    /// Remote ports our own packets went to, this period and the one before.
    pub talked_to: [[PortBits; 2]; 2],
}

fn index(p: FpProto) -> Option<usize> {
    match p {
        FpProto::Tcp => Some(0),
        FpProto::Udp => Some(1),
        _ => None,
    }
}

impl PortFacts {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.listening
            .iter()
            .chain([&self.established])
            .chain(self.answered_from.iter().flatten())
            .chain(self.talked_to.iter().flatten())
            .map(PortBits::bytes)
            .sum()
    }

    /// Notes one of our own packets (from a protected address).
    #[inline]
    pub fn outbound(&mut self, proto: FpProto, sport: Option<u16>, dport: Option<u16>) {
        if let Some(i) = index(proto) {
            if let Some(p) = sport {
                self.answered_from[0][i].set(p);
            }
            if let Some(p) = dport {
                self.talked_to[0][i].set(p);
            }
        }
    }

    /// Starts a new period: what is older than two periods is forgotten.
    pub fn age(&mut self) {
        for gens in [&mut self.answered_from, &mut self.talked_to] {
            gens.swap(0, 1);
            for b in &mut gens[0] {
                b.clear();
            }
        }
    }

    fn serves(&self, proto: FpProto, port: u16) -> bool {
        index(proto).is_some_and(|i| {
            self.listening[i].get(port)
                || self.answered_from[0][i].get(port)
                || self.answered_from[1][i].get(port)
        })
    }

    fn serves_any(&self, proto: FpProto) -> bool {
        index(proto).is_some_and(|i| {
            self.listening[i].any()
                || self.answered_from[0][i].any()
                || self.answered_from[1][i].any()
        })
    }

    fn uses(&self, proto: FpProto, port: u16) -> bool {
        index(proto).is_some_and(|i| {
            self.talked_to[0][i].get(port)
                || self.talked_to[1][i].get(port)
                || (proto == FpProto::Tcp && self.established.get(port))
        })
    }
}

/// True when allowlisted sources send enough of the attack's packets to be real traffic a
/// signature would drop. A spoofed flood (one packet per random source) hits an allowlisted
/// range by chance in proportion to its size (a /8 gets 0.4% of a flood spoofed from all of
/// IPv4): below 1% of such a flood those packets are the spoofer's, not an allowlisted host's.
/// (Loopback and unspecified sources never count: on the wire they are spoofed by definition.)
fn allowlisted_traffic(fp: &Fingerprint) -> bool {
    fp.allowlisted > 0 && (!fp.one_packet_each() || fp.allowlisted * 100 >= fp.packets)
}

/// The signature for `fp` toward `dst`, or why there may be none.
pub fn signature(fp: &Fingerprint, dst: IpAddr, facts: &PortFacts) -> Result<Signature, Refusal> {
    let protocol = fp.dominant_protocol().ok_or(Refusal::NoProtocol)?;
    if fp.fragments * 5.0 >= 4.0 {
        return Err(Refusal::Fragments(fp.fragments));
    }
    if protocol == FpProto::Other {
        return Err(Refusal::Protocol(protocol));
    }
    if allowlisted_traffic(fp) {
        return Err(Refusal::Allowlisted(fp.allowlisted));
    }
    let sig = Signature {
        dst,
        protocol,
        sport: fp.dominant_src_port().filter(|_| protocol != FpProto::Icmp),
        dport: fp.dominant_dst_port().filter(|_| protocol != FpProto::Icmp),
        flags: fp.dominant_flags().filter(|_| protocol == FpProto::Tcp),
    };
    if protocol == FpProto::Icmp {
        return Ok(sig);
    }
    match (sig.sport, sig.dport) {
        (None, Some(q)) if facts.serves(protocol, q) => {
            return Err(Refusal::Serves(protocol, Some(q)));
        }
        (None, None) if facts.serves_any(protocol) => return Err(Refusal::Serves(protocol, None)),
        (Some(p), _) if sig.flags != Some(FloodFlags::Syn) && facts.uses(protocol, p) => {
            return Err(Refusal::Uses(protocol, p));
        }
        _ => {}
    }
    Ok(sig)
}
