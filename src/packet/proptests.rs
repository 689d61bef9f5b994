//! Property tests: [`parse`] never panics on any bytes for any link type, and frames built by
//! etherparse's `PacketBuilder` round-trip their addresses, ports and flags.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{IpNumber, Ipv6ExtensionsSlice, PacketBuilder};
use proptest::prelude::*;

use super::fixtures::{ETH_IPV4_TCP_SYN, ETH_IPV6_HBH_FRAG_FIRST_UDP, ETH_QINQ_IPV4_UDP};
use super::*;

/// One generated IPv6 extension header: (kind, length field, fragment offset, filler byte).
type Ext = (u8, u8, u16, u8);

/// Serialises a chain of extension headers ending in `last` (a transport protocol).
fn ext_chain(exts: &[Ext], last: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &(kind, len, offset, fill)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(last, |e| e.0);
        match kind {
            44 => {
                out.extend_from_slice(&[next, 0]);
                out.extend_from_slice(&(offset << 3 | 1).to_be_bytes());
                out.extend_from_slice(&[fill; 4]);
            }
            51 => {
                out.extend_from_slice(&[next, len, 0, 0]);
                out.resize(out.len() + (usize::from(len) + 2) * 4 - 4, fill);
            }
            _ => {
                out.extend_from_slice(&[next, len]);
                out.resize(out.len() + (usize::from(len) + 1) * 8 - 2, fill);
            }
        }
    }
    out
}

fn ext_strategy() -> impl Strategy<Value = Ext> {
    (
        prop_oneof![Just(43u8), Just(44), Just(51), Just(60)],
        0u8..4,
        prop_oneof![Just(0u16), 1u16..8192],
        any::<u8>(),
    )
        .prop_map(|(k, len, off, fill)| (k, if k == 51 { len.max(1) } else { len }, off, fill))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        wire_len in any::<u32>(),
    ) {
        // Every supported link type, and one that is not.
        for lt in link::ALL.into_iter().chain([-1]) {
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

    /// The hand-written IPv6 extension walk agrees with etherparse's lax walker on well-formed
    /// chains cut anywhere, and stops at the first non-first fragment header.
    #[test]
    fn ipv6_ext_walk_agrees_with_etherparse(
        hbh in any::<bool>(),
        exts in proptest::collection::vec(ext_strategy(), 0..5),
        last in prop_oneof![Just(6u8), Just(17), Just(58), Just(50)],
        tail in proptest::collection::vec(any::<u8>(), 0..24),
        cut in any::<proptest::sample::Index>(),
    ) {
        let mut exts = exts;
        if hbh {
            exts.insert(0, (0, 0, 0, 1));
        }
        let Some(&(first, ..)) = exts.first() else { return Ok(()) };
        let mut bytes = ext_chain(&exts, last);
        let chain_len = bytes.len();
        bytes.extend_from_slice(&tail);
        let bytes = &bytes[..cut.index(bytes.len() + 1)];
        let got = ipv6_ext::walk(first, bytes);

        // The oracle for fragments: the first fragment header with a non-zero offset that
        // was captured whole, before any cut header.
        let mut at = 0;
        let mut non_first = None;
        for (i, &(kind, _, offset, _)) in exts.iter().enumerate() {
            let len = ext_chain(&exts[i..=i], 0).len();
            if at + len > bytes.len() {
                break;
            }
            if kind == 44 && offset != 0 {
                non_first = Some(exts.get(i + 1).map_or(last, |e| e.0));
                break;
            }
            at += len;
        }
        if let Some(proto) = non_first {
            prop_assert_eq!((got.proto, got.rest, got.non_first_fragment), (proto, &[][..], true));
        } else {
            let (_, next, rest, err) = Ipv6ExtensionsSlice::from_slice_lax(IpNumber(first), bytes);
            prop_assert_eq!(got.proto, next.0);
            prop_assert!(!got.non_first_fragment);
            if err.is_none() {
                prop_assert_eq!(got.rest, rest);
                prop_assert_eq!(rest.len(), bytes.len().saturating_sub(chain_len));
            } else {
                prop_assert!(got.rest.is_empty());
            }
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
