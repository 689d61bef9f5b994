//! Unit tests of [`parse`] on the hand-built frames in `fixtures.rs`: every link type, VLAN
//! and QinQ, IPv6 extension headers, fragments, snaplen cuts, and the error cases.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::fixtures::*;
use super::*;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().expect("test address"))
}

/// Parses a whole fixture, wire length = captured length.
fn whole(linktype: i32, frame: &[u8]) -> Result<PacketMeta, ParseError> {
    parse(linktype, frame, u32::try_from(frame.len()).expect("small"))
}

fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8, len: u32) -> PacketMeta {
    PacketMeta {
        src,
        dst,
        proto: Proto::Tcp,
        tcp_flags: flags,
        src_port: Some(sport),
        dst_port: Some(dport),
        len,
        fragment: false,
    }
}

fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, len: u32) -> PacketMeta {
    PacketMeta {
        proto: Proto::Udp,
        tcp_flags: 0,
        ..tcp(src, dst, sport, dport, 0, len)
    }
}

fn portless(src: IpAddr, dst: IpAddr, proto: Proto, len: u32) -> PacketMeta {
    PacketMeta {
        proto,
        src_port: None,
        dst_port: None,
        ..tcp(src, dst, 0, 0, 0, len)
    }
}

const SYN_SRC: [u8; 4] = [192, 168, 1, 10];

fn syn_meta(len: u32) -> PacketMeta {
    let [a, b, c, d] = SYN_SRC;
    tcp(
        v4(a, b, c, d),
        v4(192, 168, 1, 1),
        54321,
        80,
        tcp_flag::SYN,
        len,
    )
}

#[test]
fn ethernet_ipv4_tcp_syn() {
    assert_eq!(whole(link::ETHERNET, &ETH_IPV4_TCP_SYN), Ok(syn_meta(74)));
}

#[test]
fn len_is_the_wire_length_not_the_captured_one() {
    let m = parse(link::ETHERNET, &ETH_IPV4_TCP_SYN, 1514).expect("parses");
    assert_eq!(m.len, 1514);
}

#[test]
fn syn_cut_inside_tcp_options_is_still_a_syn() {
    // 14 eth + 20 ip + 20 tcp + 6 of the 20 option bytes.
    let cut = &ETH_IPV4_TCP_SYN[..60];
    assert_eq!(parse(link::ETHERNET, cut, 74), Ok(syn_meta(74)));
}

#[test]
fn syn_cut_right_after_tcp_flags_byte_keeps_ports_and_flags() {
    // TCP bytes 0..=13: ports, seq, ack, data offset, flags.
    let cut = &ETH_IPV4_TCP_SYN[..14 + 20 + 14];
    assert_eq!(parse(link::ETHERNET, cut, 74), Ok(syn_meta(74)));
}

#[test]
fn syn_cut_before_tcp_flags_byte_keeps_ports_only() {
    let cut = &ETH_IPV4_TCP_SYN[..14 + 20 + 13];
    let m = parse(link::ETHERNET, cut, 74).expect("parses");
    assert_eq!((m.proto, m.tcp_flags), (Proto::Tcp, 0));
    assert_eq!((m.src_port, m.dst_port), (Some(54321), Some(80)));
}

#[test]
fn tcp_cut_inside_ports_has_no_ports() {
    let cut = &ETH_IPV4_TCP_SYN[..14 + 20 + 3];
    let [a, b, c, d] = SYN_SRC;
    assert_eq!(
        parse(link::ETHERNET, cut, 74),
        Ok(portless(v4(a, b, c, d), v4(192, 168, 1, 1), Proto::Tcp, 74))
    );
}

#[test]
fn ipv4_header_cut_is_truncated() {
    let cut = &ETH_IPV4_TCP_SYN[..14 + 19];
    assert_eq!(
        parse(link::ETHERNET, cut, 74),
        Err(ParseError::Truncated("ipv4"))
    );
}

#[test]
fn udp_ignores_ethernet_padding() {
    assert_eq!(
        whole(link::ETHERNET, &ETH_IPV4_UDP_PADDED),
        Ok(udp(v4(10, 0, 0, 5), v4(8, 8, 8, 8), 53000, 53, 60))
    );
}

#[test]
fn total_length_beyond_the_snaplen_is_fine() {
    let mut frame = ETH_IPV4_UDP_PADDED;
    frame[16..18].copy_from_slice(&1500u16.to_be_bytes());
    let m = whole(link::ETHERNET, &frame).expect("parses");
    assert_eq!((m.proto, m.dst_port), (Proto::Udp, Some(53)));
}

#[test]
fn vlan_tagged_tcp_rst() {
    assert_eq!(
        whole(link::ETHERNET, &ETH_VLAN_IPV4_TCP_RST),
        Ok(tcp(
            v4(172, 31, 15, 102),
            v4(10, 1, 2, 3),
            443,
            33000,
            tcp_flag::RST | tcp_flag::ACK,
            58
        ))
    );
}

#[test]
fn qinq_three_stacked_tags() {
    assert_eq!(
        whole(link::ETHERNET, &ETH_QINQ_IPV4_UDP),
        Ok(udp(v4(198, 51, 100, 7), v4(203, 0, 113, 9), 123, 123, 54))
    );
}

#[test]
fn vlan_tag_cut_is_truncated() {
    assert_eq!(
        whole(link::ETHERNET, &ETH_QINQ_IPV4_UDP[..20]),
        Err(ParseError::Truncated("vlan tag"))
    );
}

#[test]
fn ethernet_ipv6_tcp_synack() {
    assert_eq!(
        whole(link::ETHERNET, &ETH_IPV6_TCP_SYNACK),
        Ok(tcp(
            v6("2001:db8::1"),
            v6("2001:db8::2"),
            443,
            50000,
            tcp_flag::SYN | tcp_flag::ACK,
            74
        ))
    );
}

#[test]
fn ipv6_hop_by_hop_and_first_fragment_reach_udp() {
    assert_eq!(
        whole(link::ETHERNET, &ETH_IPV6_HBH_FRAG_FIRST_UDP),
        Ok(udp(v6("2001:db8::53"), v6("2001:db8::99"), 53, 4242, 82))
    );
}

#[test]
fn ipv6_non_first_fragment_has_no_ports() {
    let want = PacketMeta {
        fragment: true,
        ..portless(v6("2001:db8::53"), v6("2001:db8::99"), Proto::Udp, 78)
    };
    assert_eq!(whole(link::ETHERNET, &ETH_IPV6_HBH_FRAG_NONFIRST), Ok(want));
}

#[test]
fn ipv6_extension_header_cut_reports_the_address() {
    // Cut in the middle of the fragment header: protocol is the cut header, no ports.
    let cut = &ETH_IPV6_HBH_FRAG_FIRST_UDP[..14 + 40 + 8 + 4];
    assert_eq!(
        parse(link::ETHERNET, cut, 82),
        Ok(portless(
            v6("2001:db8::53"),
            v6("2001:db8::99"),
            Proto::Other(44),
            82
        ))
    );
}

#[test]
fn ipv4_non_first_fragment_has_no_ports() {
    let want = PacketMeta {
        fragment: true,
        ..portless(v4(95, 214, 104, 15), v4(10, 10, 10, 10), Proto::Udp, 42)
    };
    assert_eq!(whole(link::ETHERNET, &ETH_IPV4_FRAG_NONFIRST), Ok(want));
}

#[test]
fn ipv4_first_fragment_is_parsed_normally() {
    let mut frame = ETH_IPV4_FRAG_NONFIRST;
    frame[20..22].copy_from_slice(&[0x20, 0x00]); // M=1, offset 0
    let m = whole(link::ETHERNET, &frame).expect("parses");
    assert!(!m.fragment);
    assert_eq!((m.src_port, m.dst_port), (Some(53), Some(0x1234)));
}

#[test]
fn icmp_and_icmpv6_have_no_ports() {
    assert_eq!(
        whole(link::ETHERNET, &ETH_IPV4_ICMP_ECHO),
        Ok(portless(
            v4(10, 0, 0, 128),
            v4(10, 0, 0, 7),
            Proto::Icmp,
            42
        ))
    );
    assert_eq!(
        whole(link::ETHERNET, &ETH_IPV6_ICMPV6_ECHO),
        Ok(portless(v6("fe80::1"), v6("ff02::1"), Proto::Icmpv6, 62))
    );
}

#[test]
fn other_ip_protocol_is_other() {
    let mut frame = ETH_IPV4_ICMP_ECHO;
    frame[23] = 47; // GRE
    assert_eq!(
        whole(link::ETHERNET, &frame).map(|m| (m.proto, m.src_port)),
        Ok((Proto::Other(47), None))
    );
}

#[test]
fn arp_is_not_ip() {
    assert_eq!(
        whole(link::ETHERNET, &ETH_ARP),
        Err(ParseError::NotIp(0x0806))
    );
}

#[test]
fn bad_ihl_is_malformed() {
    assert_eq!(
        whole(link::ETHERNET, &ETH_IPV4_BAD_IHL),
        Err(ParseError::Malformed("ipv4 ihl"))
    );
}

#[test]
fn version_mismatch_is_malformed() {
    let mut frame = ETH_IPV4_TCP_SYN;
    frame[14] = 0x65;
    assert_eq!(
        whole(link::ETHERNET, &frame),
        Err(ParseError::Malformed("ipv4 version"))
    );
    let mut frame = ETH_IPV6_TCP_SYNACK;
    frame[14] = 0x45;
    assert_eq!(
        whole(link::ETHERNET, &frame),
        Err(ParseError::Malformed("ipv6 version"))
    );
}

#[test]
fn empty_input_is_truncated_for_every_link_type() {
    for lt in link::ALL {
        assert!(
            matches!(parse(lt, &[], 0), Err(ParseError::Truncated(_))),
            "link type {lt}"
        );
    }
}

#[test]
fn unknown_link_type_is_unsupported() {
    assert_eq!(
        whole(147, &ETH_IPV4_TCP_SYN),
        Err(ParseError::UnsupportedLinkType(147))
    );
}

#[test]
fn linux_sll_ipv4_tcp_ack() {
    assert_eq!(
        whole(link::LINUX_SLL, &SLL_IPV4_TCP_ACK),
        Ok(tcp(
            v4(10, 0, 0, 8),
            v4(212, 199, 202, 69),
            40000,
            80,
            tcp_flag::ACK,
            56
        ))
    );
}

#[test]
fn linux_sll2_ipv6_udp() {
    assert_eq!(
        whole(link::LINUX_SLL2, &SLL2_IPV6_UDP),
        Ok(udp(v6("::1"), v6("::1"), 5353, 5353, 68))
    );
}

#[test]
fn raw_ip_takes_the_version_from_the_first_nibble() {
    for lt in [link::RAW, link::RAW_OPENBSD] {
        assert_eq!(whole(lt, &ETH_IPV4_TCP_SYN[14..]), Ok(syn_meta(60)));
        let m = whole(lt, &ETH_IPV6_TCP_SYNACK[14..]).expect("parses");
        assert_eq!(m.src, v6("2001:db8::1"));
    }
    assert_eq!(
        whole(link::RAW, &[0x50, 0, 0, 0]),
        Err(ParseError::Malformed("raw ip version"))
    );
}

#[test]
fn linktype_ipv4_and_ipv6() {
    assert_eq!(whole(link::IPV4, &ETH_IPV4_TCP_SYN[14..]), Ok(syn_meta(60)));
    let m = whole(link::IPV6, &ETH_IPV6_ICMPV6_ECHO[14..]).expect("parses");
    assert_eq!((m.src, m.proto), (v6("fe80::1"), Proto::Icmpv6));
    // DLT 229 does not guess: IPv4 bytes are malformed IPv6.
    assert_eq!(
        whole(link::IPV6, &ETH_IPV4_TCP_SYN[14..]),
        Err(ParseError::Malformed("ipv6 version"))
    );
}

#[test]
fn bsd_null_accepts_both_byte_orders() {
    assert_eq!(
        whole(link::NULL, &NULL_LE_IPV4_UDP),
        Ok(udp(v4(172, 16, 1, 117), v4(10, 0, 0, 138), 1024, 53, 32))
    );
    assert_eq!(
        whole(link::NULL, &NULL_BE_IPV6_TCP_FIN),
        Ok(tcp(
            v6("::1"),
            v6("::1"),
            8080,
            57344,
            tcp_flag::FIN | tcp_flag::ACK,
            64
        ))
    );
}

#[test]
fn bsd_null_every_inet6_family() {
    for fam in [10u32, 24, 28, 30] {
        for bytes in [fam.to_le_bytes(), fam.to_be_bytes()] {
            let mut frame = NULL_BE_IPV6_TCP_FIN;
            frame[..4].copy_from_slice(&bytes);
            assert!(whole(link::NULL, &frame).is_ok(), "family {fam} {bytes:?}");
        }
    }
    let mut frame = NULL_LE_IPV4_UDP;
    frame[..4].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(whole(link::NULL, &frame), Err(ParseError::NotIp(7)));
}

#[test]
fn dlt_loop_is_network_order() {
    assert_eq!(
        whole(link::LOOP, &LOOP_IPV4_ICMP),
        Ok(portless(
            v4(127, 0, 0, 1),
            v4(127, 0, 0, 1),
            Proto::Icmp,
            32
        ))
    );
    // Little-endian AF_INET is not AF_INET for DLT_LOOP.
    let mut frame = LOOP_IPV4_ICMP;
    frame[..4].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(
        whole(link::LOOP, &frame),
        Err(ParseError::NotIp(0x0200_0000))
    );
}

/// Found by the fuzz target: a chain of fragment headers that ends in a misplaced hop-by-hop
/// header made etherparse 0.21's extension iterator read out of bounds.
const NULL_IPV6_FRAG_CHAIN_FUZZ: [u8; 63] = [
    0, 0, 0, 30, 96, 1, 0, 0, 0, 0, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44,
    44, 44, 0, 20, 6, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 80, 17,
    1, 0, 0, 0, 0, 249, 0,
];

#[test]
fn a_fragment_chain_ending_in_hop_by_hop_parses_as_other_without_ports() {
    let m = whole(link::NULL, &NULL_IPV6_FRAG_CHAIN_FUZZ).expect("parses");
    assert_eq!(
        (m.proto, m.src_port, m.fragment),
        (Proto::Other(0), None, false)
    );
}
