//! Raw frame bytes -> [`PacketMeta`]: the one place that reads untrusted packet bytes. Never
//! panics on any input; returns a plain [`ParseError`].
//!
//! Layout: `linklayer.rs` strips the link-layer header, `ip.rs` reads IPv4/IPv6 and the
//! transport header, `ipv6_ext.rs` walks IPv6 extension headers. All hand-written for speed;
//! etherparse builds frames for and cross-checks the parser in the tests (its 0.21 extension
//! header iterator reads out of bounds on cut chains, see `ipv6_ext.rs`).
//! Every read is a checked split or `get`; there is no indexing by untrusted offsets, no
//! `unwrap`, no allocation. Parsing is lax about the snaplen: whatever header bytes were
//! captured are reported, missing ones become `None`/0.

#[cfg(test)]
mod fixtures;
mod ip;
mod ipv6_ext;
mod linklayer;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

/// libpcap link types (DLT_*/LINKTYPE_*) that [`parse`] understands.
pub mod link {
    /// BSD loopback: a 4-byte address family in host byte order.
    pub const NULL: i32 = 0;
    /// Ethernet II, with VLAN tags.
    pub const ETHERNET: i32 = 1;
    /// Raw IP as OpenBSD numbers it.
    pub const RAW_OPENBSD: i32 = 12;
    /// Raw IP, version from the first nibble.
    pub const RAW: i32 = 101;
    /// Linux "cooked" capture (`any` device).
    pub const LINUX_SLL: i32 = 113;
    /// Raw IPv4.
    pub const IPV4: i32 = 228;
    /// Raw IPv6.
    pub const IPV6: i32 = 229;
    /// Linux "cooked" capture v2.
    pub const LINUX_SLL2: i32 = 276;
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    pub const LOOP: i32 = 108;

    /// Every link type `parse` reads (tests and the fuzz target iterate over it).
    pub const ALL: [i32; 9] = [
        NULL,
        ETHERNET,
        RAW_OPENBSD,
        RAW,
        LOOP,
        LINUX_SLL,
        IPV4,
        IPV6,
        LINUX_SLL2,
    ];
}

/// Transport protocol, as far as the policy engine cares.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1).
    Icmp,
    /// ICMPv6 (58).
    Icmpv6,
    /// Any other IP protocol number (GRE, ESP, ...).
    Other(u8),
}

/// TCP flag bits as on the wire (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40 CWR=0x80).
pub mod tcp_flag {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers: a connection attempt (without ACK).
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
}

/// What the pipeline needs from one packet: small, `Copy`, no borrowed bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Source address: who gets counted and, maybe, blocked.
    pub src: IpAddr,
    /// Destination address: for the `dst_addrs` (sweep) metric.
    pub dst: IpAddr,
    /// Transport protocol.
    pub proto: Proto,
    /// TCP flag bits; 0 for other protocols and for non-first fragments.
    pub tcp_flags: u8,
    /// Ports are `None` for non-first fragments, ICMP, or a header cut by the snaplen.
    pub src_port: Option<u16>,
    /// Destination port: for rules on ports and the `dst_ports` (scan) metric.
    pub dst_port: Option<u16>,
    /// Bytes on the wire (the frame's original length), for the `bytes` metric.
    pub len: u32,
    /// A non-first IP fragment: counted against its source, but carries no L4 header.
    pub fragment: bool,
}

/// Why a frame yielded no [`PacketMeta`]. Not an error of the tool: such frames are counted as
/// `unparsed` and skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A link type not in [`link::ALL`].
    #[error("link type {0} is not supported")]
    UnsupportedLinkType(i32),
    /// An ethertype or address family other than IPv4/IPv6 (ARP, LLDP, ...).
    #[error("not an IP packet (ethertype/family {0:#06x})")]
    NotIp(u32),
    /// The frame ends inside this header.
    #[error("frame too short for its {0} header")]
    Truncated(&'static str),
    /// This header's fields contradict each other (e.g. an IPv4 IHL below 5).
    #[error("malformed {0} header")]
    Malformed(&'static str),
}

/// Parses one captured frame of link type `linktype`. `wire_len` is the frame's length on the
/// wire (libpcap's `len`), which may exceed `frame.len()` when the snaplen cut it.
///
/// A non-first IP fragment yields `fragment: true` with the IP protocol and no ports. A
/// transport header cut by the snaplen still yields whatever of ports (bytes 0-3) and TCP
/// flags (byte 13) was captured.
#[inline]
pub fn parse(linktype: i32, frame: &[u8], wire_len: u32) -> Result<PacketMeta, ParseError> {
    match linklayer::strip(linktype, frame)? {
        linklayer::Net::V4(ip) => ip::parse_v4(ip, wire_len),
        linklayer::Net::V6(ip) => ip::parse_v6(ip, wire_len),
    }
}
