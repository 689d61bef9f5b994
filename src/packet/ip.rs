//! IPv4 / IPv6 fixed headers and the transport header (TCP, UDP, ICMP, ICMPv6), hand-parsed
//! with checked splits: the hot path of every packet. IPv6 extension headers go to
//! [`super::ipv6_ext`].
//!
//! Lax about the snaplen: addresses need the whole fixed IP header; ports and TCP flags are
//! reported when the bytes holding them were captured. Lengths in the IP header only ever
//! shrink the transport slice (Ethernet padding is not a TCP header), never fail the parse.

// Untrusted bytes: every read is a checked split or `get`, no arithmetic can overflow.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{PacketMeta, ParseError, Proto, ipv6_ext};

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

/// Parses an IPv4 packet (`ip` starts at the IPv4 header).
#[inline]
pub(super) fn parse_v4(ip: &[u8], wire_len: u32) -> Result<PacketMeta, ParseError> {
    let (h, _) = ip
        .split_first_chunk::<20>()
        .ok_or(ParseError::Truncated("ipv4"))?;
    if h[0] >> 4 != 4 {
        return Err(ParseError::Malformed("ipv4 version"));
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(ParseError::Malformed("ipv4 ihl"));
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    let proto = h[9];
    let mut meta = PacketMeta {
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        proto: proto_of(proto),
        tcp_flags: 0,
        src_port: None,
        dst_port: None,
        len: wire_len,
        fragment: frag_offset != 0,
    };
    if !meta.fragment {
        // total_length below the header length happens on TSO captures (0): ignore it then.
        let end = if total >= ihl { total } else { ip.len() };
        let l4 = ip.get(ihl..end.min(ip.len())).unwrap_or(&[]);
        transport(proto, l4, &mut meta);
    }
    Ok(meta)
}

/// Parses an IPv6 packet (`ip` starts at the IPv6 header).
#[inline]
pub(super) fn parse_v6(ip: &[u8], wire_len: u32) -> Result<PacketMeta, ParseError> {
    let (fixed, src, dst, rest) = split_v6(ip).ok_or(ParseError::Truncated("ipv6"))?;
    if fixed[0] >> 4 != 6 {
        return Err(ParseError::Malformed("ipv6 version"));
    }
    // Payload length 0 means a jumbogram (or a TSO capture): take what was captured.
    let payload_len = usize::from(u16::from_be_bytes([fixed[4], fixed[5]]));
    let payload = match payload_len {
        0 => rest,
        n => rest.get(..n).unwrap_or(rest),
    };
    let mut meta = PacketMeta {
        src: IpAddr::V6(Ipv6Addr::from(*src)),
        dst: IpAddr::V6(Ipv6Addr::from(*dst)),
        proto: Proto::Other(fixed[6]),
        tcp_flags: 0,
        src_port: None,
        dst_port: None,
        len: wire_len,
        fragment: false,
    };
    let next = fixed[6];
    if ipv6_ext::is_ext_header(next) {
        let walked = ipv6_ext::walk(next, payload);
        meta.proto = proto_of(walked.proto);
        meta.fragment = walked.non_first_fragment;
        if !walked.non_first_fragment {
            transport(walked.proto, walked.rest, &mut meta);
        }
    } else {
        meta.proto = proto_of(next);
        transport(next, payload, &mut meta);
    }
    Ok(meta)
}

/// The IPv6 fixed header as (first 8 bytes, source, destination, rest).
#[inline]
#[allow(clippy::type_complexity)]
fn split_v6(ip: &[u8]) -> Option<(&[u8; 8], &[u8; 16], &[u8; 16], &[u8])> {
    let (fixed, rest) = ip.split_first_chunk::<8>()?;
    let (src, rest) = rest.split_first_chunk::<16>()?;
    let (dst, rest) = rest.split_first_chunk::<16>()?;
    Some((fixed, src, dst, rest))
}

#[inline]
fn proto_of(n: u8) -> Proto {
    match n {
        PROTO_TCP => Proto::Tcp,
        PROTO_UDP => Proto::Udp,
        PROTO_ICMP => Proto::Icmp,
        PROTO_ICMPV6 => Proto::Icmpv6,
        other => Proto::Other(other),
    }
}

/// Fills ports and TCP flags from whatever part of the transport header `l4` holds.
#[inline]
fn transport(proto: u8, l4: &[u8], meta: &mut PacketMeta) {
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return;
    }
    if let Some((p, _)) = l4.split_first_chunk::<4>() {
        meta.src_port = Some(u16::from_be_bytes([p[0], p[1]]));
        meta.dst_port = Some(u16::from_be_bytes([p[2], p[3]]));
    }
    if proto == PROTO_TCP {
        meta.tcp_flags = l4.get(13).copied().unwrap_or(0);
    }
}
