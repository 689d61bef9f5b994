//! Property tests: [`parse`] never panics on any bytes for any link type, and frames built by
//! etherparse's `PacketBuilder` round-trip their addresses, ports and flags.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::PacketBuilder;
use proptest::prelude::*;

use super::fixtures::{ETH_IPV4_TCP_SYN, ETH_IPV6_HBH_FRAG_FIRST_UDP, ETH_QINQ_IPV4_UDP};
use super::*;

const LINK_TYPES: [i32; 10] = [
    link::NULL,
    link::ETHERNET,
    link::RAW_OPENBSD,
    link::RAW,
    link::LOOP,
    link::LINUX_SLL,
    link::IPV4,
    link::IPV6,
    link::LINUX_SLL2,
    -1,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        wire_len in any::<u32>(),
    ) {
        for lt in LINK_TYPES {
            let _ = parse(lt, &bytes, wire_len);
        }
    }

    /// Random bytes rarely get past the link layer: keep a valid header prefix and randomise
    /// the rest, so the IP, extension-header and transport paths see garbage too.
    #[test]
    fn never_panics_behind_a_valid_prefix(
        which in 0usize..3,
        keep in 0usize..80,
        tail in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let base: &[u8] = match which {
            0 => &ETH_IPV4_TCP_SYN,
            1 => &ETH_QINQ_IPV4_UDP,
            _ => &ETH_IPV6_HBH_FRAG_FIRST_UDP,
        };
        let mut frame = base[..keep.min(base.len())].to_vec();
        frame.extend_from_slice(&tail);
        let _ = parse(link::ETHERNET, &frame, 0);
        if frame.len() > 14 {
            let _ = parse(link::RAW, &frame[14..], 0);
        }
    }

    #[test]
    fn ethernet_ipv4_tcp_round_trips(
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        sport in any::<u16>(),
        dport in any::<u16>(),
        flags in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1, 1024);
        if flags & 0x01 != 0 { b = b.fin(); }
        if flags & 0x02 != 0 { b = b.syn(); }
        if flags & 0x04 != 0 { b = b.rst(); }
        if flags & 0x08 != 0 { b = b.psh(); }
        if flags & 0x10 != 0 { b = b.ack(7); }
        if flags & 0x20 != 0 { b = b.urg(0); }
        if flags & 0x40 != 0 { b = b.ece(); }
        if flags & 0x80 != 0 { b = b.cwr(); }
        let mut frame = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut frame, &payload).expect("build frame");

        let m = parse(link::ETHERNET, &frame, 9000).expect("parses");
        prop_assert_eq!(m, PacketMeta {
            src: IpAddr::V4(Ipv4Addr::from(src)),
            dst: IpAddr::V4(Ipv4Addr::from(dst)),
            proto: Proto::Tcp,
            tcp_flags: flags,
            src_port: Some(sport),
            dst_port: Some(dport),
            len: 9000,
            fragment: false,
        });
    }

    #[test]
    fn ethernet_vlan_ipv6_udp_round_trips(
        src in any::<[u8; 16]>(),
        dst in any::<[u8; 16]>(),
        sport in any::<u16>(),
        dport in any::<u16>(),
        vlan in 0u16..4096,
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
            .single_vlan(etherparse::VlanId::try_new(vlan).expect("12 bits"))
            .ipv6(src, dst, 64)
            .udp(sport, dport);
        let mut frame = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut frame, &payload).expect("build frame");

        let m = parse(link::ETHERNET, &frame, 1).expect("parses");
        prop_assert_eq!(m.src, IpAddr::V6(Ipv6Addr::from(src)));
        prop_assert_eq!(m.dst, IpAddr::V6(Ipv6Addr::from(dst)));
        prop_assert_eq!((m.proto, m.src_port, m.dst_port), (Proto::Udp, Some(sport), Some(dport)));
    }
}
