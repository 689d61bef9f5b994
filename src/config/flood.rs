//! The typed `[[flood]]` detector: all sources together, per protected destination (or in
//! total), over a sliding window; what it counts, when it crosses, and what it does then.
//! Validation is in `flood_validate.rs`; the detectors themselves in `engine::flood`.

use std::time::Duration;

use super::Protocol;

/// One validated `[[flood]]` detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Flood {
    /// Unique among rules and detectors; appears in events and kernel rule comments.
    pub name: String,
    /// Which packets count.
    pub protocol: Protocol,
    /// Only packets from these source ports count; `None` means all.
    pub src_ports: Option<Vec<u16>>,
    /// Only packets to these destination ports count; `None` means all.
    pub dst_ports: Option<Vec<u16>>,
    /// TCP packets of this kind only; `None` for every packet of the protocol.
    pub tcp_flags: Option<FloodFlags>,
    /// What happens to non-first IP fragments.
    pub fragments: Fragments,
    /// What is counted.
    pub metric: FloodMetric,
    /// The detector crosses when the count within `window` exceeds this.
    pub threshold: u64,
    /// The sliding window the count covers.
    pub window: Duration,
    /// What happens when it crosses.
    pub action: FloodAction,
    /// How long an attack (and its mitigation) stays after it was last seen over threshold;
    /// also the length of a `sources` ban.
    pub ban: Duration,
    /// One count per destination, or one for all of them.
    pub scope: FloodScope,
}

/// Which TCP packets a `[[flood]]` detector counts, in the words of its `tcp_flags` key. The
/// same words name the dominant flags in an attack's fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloodFlags {
    /// SYN set, ACK and RST clear: connection attempts (ECE/CWR may be set).
    Syn,
    /// SYN and ACK set, RST clear: handshake answers (SYN-ACK reflection).
    Synack,
    /// ACK set, SYN, RST and FIN clear (PSH allowed): data or bare acknowledgements.
    Ack,
    /// RST set.
    Rst,
    /// FIN set, SYN and RST clear.
    Fin,
    /// Every TCP packet.
    Any,
}

impl FloodFlags {
    /// The word used in `rules.toml` and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            FloodFlags::Syn => "syn",
            FloodFlags::Synack => "synack",
            FloodFlags::Ack => "ack",
            FloodFlags::Rst => "rst",
            FloodFlags::Fin => "fin",
            FloodFlags::Any => "any",
        }
    }
}

/// What a `[[flood]]` detector does with non-first IP fragments (no ports, no flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragments {
    /// Counted when nothing but the protocol is filtered (a port or flag filter cannot match
    /// a packet without its transport header).
    Include,
    /// Never counted.
    Exclude,
    /// Only fragments are counted (fragment floods).
    Only,
}

impl Fragments {
    /// The word used in `rules.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fragments::Include => "include",
            Fragments::Exclude => "exclude",
            Fragments::Only => "only",
        }
    }
}

/// What a `[[flood]]` detector counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodMetric {
    /// Packets.
    Packets,
    /// Bytes on the wire.
    Bytes,
}

impl FloodMetric {
    /// The word used in `rules.toml` and events.
    pub fn as_str(self) -> &'static str {
        match self {
            FloodMetric::Packets => "packets",
            FloodMetric::Bytes => "bytes",
        }
    }
}

/// What happens when a `[[flood]]` detector crosses its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodAction {
    /// A DROP rule in our chain for the attack's fingerprint toward the target.
    Signature,
    /// The sources carrying the attack are banned (never when they look spoofed).
    Sources,
    /// Events only.
    Alert,
}

impl FloodAction {
    /// The word used in `rules.toml` and events.
    pub fn as_str(self) -> &'static str {
        match self {
            FloodAction::Signature => "signature",
            FloodAction::Sources => "sources",
            FloodAction::Alert => "alert",
        }
    }
}

/// Whose traffic a `[[flood]]` detector adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodScope {
    /// One count per protected destination address.
    Destination,
    /// One count for every protected destination together.
    Total,
}

impl FloodScope {
    /// The word used in `rules.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            FloodScope::Destination => "destination",
            FloodScope::Total => "total",
        }
    }
}
