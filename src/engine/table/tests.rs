//! Unit tests of the source table: exact values at thresholds for every cell width and at
//! escalation, shared clocks and shared windows, distinct sets at T and T+1 as values expire,
//! pool exhaustion, the bound on sources, eviction, the layout's compact per-window copies;
//! and a property test comparing the table's decisions with the straightforward per-rule
//! windows (`engine/window.rs`) on random streams.

use std::net::IpAddr;

use proptest::prelude::*;

use super::layout::{BitIndexed, Kind, Layout, classify};
use super::{Slot, SourceTable};
use crate::config::{Metric, Protocol, Rule, TcpFlagsFilter};
use crate::engine::rules::fold;
use crate::engine::sources::SourceKey;
use crate::engine::window::{DistinctWindow, RateWindow, Span as RefSpan};
use crate::packet::{PacketMeta, Proto, tcp_flag};

const MS: u64 = 1000;
const SEC: u64 = 1_000_000;

/// The engine tests' rule, named `r`, counting replies too.
fn rule(metric: Metric, threshold: u64, window_ms: u64) -> Rule {
    Rule {
        skip_replies: false,
        ..crate::engine::tests::rule("r", metric, threshold, window_ms)
    }
}

fn table(rules: &[Rule], max: usize) -> SourceTable {
    let refs: Vec<&Rule> = rules.iter().collect();
    SourceTable::new(Layout::compile(&refs), max)
}

fn pkt(src: &str, dst: &str, proto: Proto, flags: u8, dport: Option<u16>, len: u32) -> PacketMeta {
    PacketMeta {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto,
        tcp_flags: flags,
        src_port: dport.map(|_| 40000),
        dst_port: dport,
        len,
        fragment: false,
    }
}

fn syn_to(port: u16) -> PacketMeta {
    pkt(
        "203.0.113.7",
        "10.0.0.1",
        Proto::Tcp,
        tcp_flag::SYN,
        Some(port),
        60,
    )
}

fn key(p: &PacketMeta) -> SourceKey {
    SourceKey::new(p.src, 32, 128)
}

/// The `i`-th test address, 10.0.0.0 + `i`.
fn nth_addr(i: u32) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
}

/// The key of [`nth_addr`] `i`.
fn nth_key(i: u32) -> SourceKey {
    SourceKey::new(nth_addr(i), 32, 128)
}

/// Counts `p` at `ts`; returns what fired.
fn count(t: &mut SourceTable, p: &PacketMeta, ts: u64) -> Vec<(usize, u64)> {
    let slot = t.slot_deferred(key(p), ts).unwrap();
    let mut fired = Vec::new();
    t.count(slot, p, classify(p), ts, &mut fired);
    fired
}

fn slot(t: &SourceTable, p: &PacketMeta) -> Slot {
    t.lookup(key(p)).unwrap()
}

#[test]
fn threshold_and_one_more_at_every_packet_cell_width() {
    // In one bucket: 254 and 255 fit a packed cell, 256 escalates to heavy cells.
    for threshold in [1, 100, 254, 255, 256, 300, 2040, 5000] {
        let mut t = table(&[rule(Metric::Packets, threshold, 1000)], 10);
        let p = syn_to(80);
        for _ in 0..threshold {
            assert!(count(&mut t, &p, 10 * SEC).is_empty(), "T={threshold}");
        }
        assert_eq!(
            count(&mut t, &p, 10 * SEC),
            [(0, threshold + 1)],
            "T={threshold}"
        );
        assert_eq!(t.value(slot(&t, &p), 0, 10 * SEC), threshold + 1);
    }
}

#[test]
fn threshold_and_one_more_spread_over_buckets_and_across_escalation() {
    // 250 per bucket over 8 buckets (packed), then one bucket goes over 255 (heavy), then
    // the window slides past it and the record settles back into packed cells.
    let mut t = table(&[rule(Metric::Packets, 2000, 1000)], 10);
    let p = syn_to(80);
    let mut fired = Vec::new();
    for b in 0..8u64 {
        for _ in 0..250 {
            fired = count(&mut t, &p, 10 * SEC + b * 125 * MS);
        }
    }
    assert_eq!(fired, [], "2000 is the threshold: not over");
    assert_eq!(count(&mut t, &p, 10 * SEC + 7 * 125 * MS), [(0, 2001)]);
    for _ in 0..5 {
        count(&mut t, &p, 10 * SEC + 7 * 125 * MS);
    }
    assert!(t.heavy.live == 1, "a 256th packet in one bucket escalates");
    // One bucket later the oldest 250 slide out: 2006 - 250 + 1, under the threshold.
    assert_eq!(count(&mut t, &p, 11 * SEC), []);
    assert_eq!(t.value(slot(&t, &p), 0, 11 * SEC), 1757);
    // Much later everything fits again.
    count(&mut t, &p, 20 * SEC);
    assert_eq!(t.heavy.live, 0, "settled back into packed cells");
    assert_eq!(t.value(slot(&t, &p), 0, 20 * SEC), 1);
}

#[test]
fn threshold_and_one_more_for_bytes_at_the_u16_cell_boundary() {
    for threshold in [65_534u64, 65_535, 65_536, 1_000_000] {
        let mut t = table(&[rule(Metric::Bytes, threshold, 1000)], 10);
        let mut p = syn_to(80);
        // Exactly the threshold in one bucket, in pieces of at most 1500.
        let mut left = threshold;
        while left > 0 {
            p.len = left.min(1500) as u32;
            left -= u64::from(p.len);
            assert!(count(&mut t, &p, 5 * SEC).is_empty(), "T={threshold}");
        }
        p.len = 1;
        assert_eq!(
            count(&mut t, &p, 5 * SEC),
            [(0, threshold + 1)],
            "T={threshold}"
        );
    }
}

#[test]
fn a_burst_across_a_bucket_boundary_is_caught_with_a_shared_clock() {
    // Two rules on one 1 s clock: UDP packets and SYNs. The SYN rule's packets move the
    // shared clock between the two halves of the UDP burst.
    let mut udp = rule(Metric::Packets, 100, 1000);
    udp.protocol = Protocol::Udp;
    let mut syn = rule(Metric::Packets, 1000, 1000);
    syn.protocol = Protocol::Tcp;
    syn.tcp_flags = Some(TcpFlagsFilter::Syn);
    let mut t = table(&[udp, syn], 10);
    let u = pkt("203.0.113.7", "10.0.0.1", Proto::Udp, 0, Some(53), 80);
    let s = syn_to(80);
    for i in 0..50 {
        assert!(count(&mut t, &u, 4 * SEC + 900 * MS + i * MS).is_empty());
    }
    count(&mut t, &s, 5 * SEC + 10 * MS);
    count(&mut t, &s, 5 * SEC + 300 * MS);
    let mut fired = Vec::new();
    for i in 0..51 {
        fired = count(&mut t, &u, 5 * SEC + 400 * MS + i * MS);
    }
    assert_eq!(fired, [(0, 101)], "50 + 51 within one second");
}

#[test]
fn rules_sharing_a_window_keep_their_own_thresholds() {
    let mut a = rule(Metric::Packets, 1000, 1000);
    a.tcp_flags = Some(TcpFlagsFilter::Syn);
    a.protocol = Protocol::Tcp;
    let mut b = a.clone();
    b.threshold = 28;
    let t0 = table(&[a.clone(), b.clone()], 10);
    assert_eq!(t0.layout.windows.len(), 1, "one window for both");
    let mut t = t0;
    let p = syn_to(443);
    for _ in 0..28 {
        assert!(count(&mut t, &p, SEC).is_empty());
    }
    assert_eq!(count(&mut t, &p, SEC), [(1, 29)]);
    for _ in 0..971 {
        count(&mut t, &p, SEC);
    }
    assert_eq!(count(&mut t, &p, SEC), [(0, 1000 + 1), (1, 1001)]);
}

#[test]
fn the_compact_copies_agree_with_the_windows() {
    let mut slow = rule(Metric::Packets, 50, 1000);
    slow.protocol = Protocol::Udp;
    let rules = [
        rule(Metric::Packets, 10, 100),
        rule(Metric::DstAddrs, 7, 10_000),
        rule(Metric::Bytes, 9000, 1000),
        slow,
        rule(Metric::DstPorts, 5, 10_000),
        rule(Metric::DstPorts, 9, 3000),
        rule(Metric::Packets, 30, 100),
    ];
    let refs: Vec<&Rule> = rules.iter().collect();
    let mut l = Layout::compile(&refs);
    let (mut addrs_mask, mut clocks) = (0, 0);
    for (w, win) in l.windows.iter().enumerate() {
        assert_eq!(usize::from(l.offset[w]), win.offset, "window {w}");
        assert_eq!(l.scales[usize::from(l.scale[w])], win.span.bucket_us);
        let lowest = win.rules.iter().map(|&r| l.rules[r].report).min();
        assert_eq!(l.min_report[w], lowest.unwrap());
        match win.rules[..] {
            [r] => assert_eq!(usize::from(l.single[w]), r, "window {w}"),
            _ => assert_eq!(l.single[w], super::layout::SEVERAL, "window {w}"),
        }
        match win.kind {
            Kind::Distinct { addrs, cap } => {
                assert_eq!(l.cap[w], cap);
                addrs_mask |= u32::from(addrs) << w;
            }
            _ => {
                assert_eq!(usize::from(l.scale[w]), win.clock);
                assert_ne!(l.clock_windows[win.clock] & 1 << w, 0);
                clocks |= 1 << win.clock;
            }
        }
    }
    assert_eq!(l.addrs_mask, addrs_mask);
    assert_eq!(clocks, 0b11, "100 ms and 1 s");
    assert_eq!(l.scales.len(), 4, "the clocks, then 10 s and 3 s");
    // Rules 0 and 6 share a window: its level is the lower of theirs, as they change.
    let w = l.rules[6].window;
    assert_eq!(l.single[w], super::layout::SEVERAL);
    assert_eq!(l.min_report[w], 10);
    l.set_report(0, 40);
    assert_eq!(l.min_report[w], 10, "rule 0 is capped at its threshold");
    l.set_report(6, 3);
    assert_eq!(l.min_report[w], 3);
    l.set_report(6, 30);
    assert_eq!(l.min_report[w], 10);
}

#[test]
fn bit_indexed_arrays_wrap_at_32() {
    let mut a = BitIndexed([0u8; 32]);
    a[31] = 7;
    a[33] = 9;
    assert_eq!((a[31], a[63], a[1], a[0]), (7, 7, 9, 0));
}

#[test]
fn distinct_at_t_and_t_plus_one_as_values_expire_bucket_by_bucket() {
    // T = 10 over 8 s (1 s buckets): 11 ports, one per bucket from bucket 0.
    let mut t = table(&[rule(Metric::DstPorts, 10, 8000)], 10);
    let mut fired = Vec::new();
    for port in 0..10u16 {
        fired = count(&mut t, &syn_to(port), u64::from(port) * SEC / 2);
    }
    assert_eq!(fired, [], "10 distinct ports is the threshold");
    assert_eq!(count(&mut t, &syn_to(10), 5 * SEC), [(0, 11)]);
    // Ports 0 and 1 were seen in bucket 0: at bucket 8 they are gone.
    assert_eq!(t.value(slot(&t, &syn_to(0)), 0, 7 * SEC + 999 * MS), 11);
    assert_eq!(t.value(slot(&t, &syn_to(0)), 0, 8 * SEC), 9);
    assert!(count(&mut t, &syn_to(11), 8 * SEC).is_empty(), "9 + 1 = 10");
    assert_eq!(count(&mut t, &syn_to(12), 8 * SEC), [(0, 11)]);
    // A repeat is not new.
    assert_eq!(count(&mut t, &syn_to(12), 8 * SEC), [(0, 11)]);
    // Bucket by bucket, values expire: ports 2,3 (bucket 1), 4,5 (bucket 2) ...
    assert_eq!(t.value(slot(&t, &syn_to(0)), 0, 9 * SEC), 9);
    assert_eq!(t.value(slot(&t, &syn_to(0)), 0, 10 * SEC), 7);
    // The cap is 2T+1 = 21.
    for port in 100..200u16 {
        fired = count(&mut t, &syn_to(port), 10 * SEC);
    }
    assert_eq!(fired, [(0, 21)]);
}

/// The shipped port-scan threshold (60): the set outgrows 16 values and is looked up through
/// its table (`set_index`). Exactly 60 ports do not fire, the 61st does; a port seen again is
/// found (the count does not move); when the older half expires the count drops by exactly
/// that half, a stale port comes back as one, and the cap (121) holds.
#[test]
fn a_looked_up_set_is_exact_at_t_and_t_plus_one() {
    let mut t = table(&[rule(Metric::DstPorts, 60, 8000)], 10);
    let mut fired = Vec::new();
    // Ports 1000..1030 in bucket 0, 1030..1060 in bucket 4 (1 s buckets).
    for port in 1000..1060u16 {
        let at = if port < 1030 { 0 } else { 4 * SEC };
        fired = count(&mut t, &syn_to(port), at);
    }
    assert_eq!(fired, [], "60 distinct ports is the threshold");
    for port in (1030..1060u16).rev() {
        assert_eq!(
            count(&mut t, &syn_to(port), 4 * SEC),
            [],
            "port {port} again"
        );
    }
    assert_eq!(count(&mut t, &syn_to(7), 4 * SEC), [(0, 61)]);
    assert_eq!(
        count(&mut t, &syn_to(7), 4 * SEC),
        [(0, 61)],
        "a repeat is not new"
    );
    // Bucket 0 leaves the window at bucket 8: ports 1000..1030 go, 31 stay.
    assert_eq!(t.value(slot(&t, &syn_to(7)), 0, 7 * SEC), 61);
    assert_eq!(t.value(slot(&t, &syn_to(7)), 0, 8 * SEC), 31);
    assert_eq!(
        count(&mut t, &syn_to(1000), 8 * SEC),
        [],
        "stale, back as one: 32"
    );
    assert_eq!(t.value(slot(&t, &syn_to(7)), 0, 8 * SEC), 32);
    for port in 2000..2200u16 {
        fired = count(&mut t, &syn_to(port), 8 * SEC);
    }
    assert_eq!(fired, [(0, 121)]);
    assert_eq!(
        count(&mut t, &syn_to(1001), 8 * SEC),
        [(0, 121)],
        "beyond the cap"
    );
    assert_eq!(count(&mut t, &syn_to(2000), 8 * SEC), [(0, 121)]);
}

#[test]
fn distinct_addresses_count_like_ports() {
    let mut t = table(&[rule(Metric::DstAddrs, 3, 10_000)], 10);
    let mut fired = Vec::new();
    for d in ["10.0.0.1", "10.0.0.2", "2001:db8::1", "10.0.0.1"] {
        fired = count(
            &mut t,
            &pkt("192.0.2.9", d, Proto::Udp, 0, Some(53), 80),
            SEC,
        );
    }
    assert_eq!(fired, []);
    let p = pkt("192.0.2.9", "10.0.0.4", Proto::Icmp, 0, None, 80);
    assert_eq!(count(&mut t, &p, SEC), [(0, 4)]);
}

#[test]
fn an_exhausted_set_pool_is_reported_as_untracked() {
    let mut t = table(&[rule(Metric::DstPorts, 1000, 10_000)], 10);
    t.sets.budget_words = 5;
    for port in 0..4 {
        count(&mut t, &syn_to(port), SEC);
    }
    assert_eq!(t.untracked_distinct, 0);
    count(&mut t, &syn_to(4), SEC);
    assert_eq!(
        t.untracked_distinct, 1,
        "the fifth value had no room: said so"
    );
    assert_eq!(t.untracked, 0, "the source itself is tracked");
}

#[test]
fn a_packet_short_in_two_distinct_windows_is_one_untracked_packet() {
    let rules = [
        rule(Metric::DstPorts, 1000, 10_000),
        rule(Metric::DstAddrs, 1000, 10_000),
    ];
    let mut t = table(&rules, 10);
    t.sets.budget_words = 0;
    count(&mut t, &syn_to(1), SEC);
    assert_eq!(t.untracked_distinct, 0, "one value each: inline");
    // A second port and a second address, each needing a set the pool cannot give.
    let mut p = syn_to(2);
    p.dst = "10.0.0.9".parse().unwrap();
    count(&mut t, &p, SEC);
    assert_eq!((t.untracked_distinct, t.untracked), (1, 0));
}

#[test]
fn full_table_does_not_grow_and_reports_untracked() {
    let mut t = table(&[rule(Metric::Packets, 10, 1000)], 100);
    for i in 0..100 {
        assert!(t.slot_deferred(nth_key(i), 1000).is_some());
    }
    let mem = t.memory_bytes();
    for i in 100..10_100 {
        assert!(t.slot_deferred(nth_key(i), 2000).is_none());
    }
    assert_eq!((t.len(), t.untracked), (100, 10_000));
    assert_eq!(t.memory_bytes(), mem);
    // Idle ones go, and their slots are reused with fresh windows.
    t.sweep_if_full(3 * SEC);
    assert_eq!((t.len(), t.evicted), (0, 100));
    let s = t.slot_deferred(nth_key(7), 3 * SEC).unwrap();
    assert!(s.0 < 100);
    assert_eq!(t.value(s, 0, 3 * SEC), 0);
}

#[test]
fn a_sweep_across_eviction_blocks_evicts_exactly_the_idle_sources() {
    // Two windows: packets, and destination ports (each source gets a set of 3 ports).
    let rules = [
        rule(Metric::Packets, 100, 1000),
        rule(Metric::DstPorts, 100, 1000),
    ];
    let mut t = table(&rules, 1000);
    let from = |i: u32, port: u16| {
        pkt(
            &nth_addr(i).to_string(),
            "10.0.0.1",
            Proto::Udp,
            0,
            Some(port),
            60,
        )
    };
    // 300 sources (more than four eviction blocks) at 1 s; the odd ones again at 2.5 s.
    for i in 0..300 {
        for port in [53, 54, 55] {
            count(&mut t, &from(i, port), SEC);
        }
    }
    let sets_all = t.sets.used_words;
    assert!(sets_all > 0);
    for i in (1..300).step_by(2) {
        count(&mut t, &from(i, 53), 2 * SEC + 500 * MS);
    }
    assert_eq!(t.sweep(2 * SEC + 500 * MS), 150);
    assert_eq!((t.len(), t.evicted), (150, 150));
    // The evicted ones' sets went back to the pool.
    assert_eq!(t.sets.used_words, sets_all / 2);
    for i in 0..300 {
        let found = t.lookup(key(&from(i, 53)));
        if i % 2 == 0 {
            assert_eq!(found, None, "source {i} was idle");
        } else {
            let s = found.unwrap_or_else(|| panic!("source {i} was active"));
            assert_eq!(t.value(s, 0, 2 * SEC + 500 * MS), 1, "source {i}");
            assert_eq!(t.value(s, 1, 2 * SEC + 500 * MS), 1, "source {i}");
        }
    }
    // An evicted source comes back with fresh windows.
    count(&mut t, &from(4, 53), 3 * SEC);
    let s = t.lookup(key(&from(4, 53))).unwrap();
    assert_eq!(t.value(s, 0, 3 * SEC), 1);
}

#[test]
fn a_full_table_of_active_sources_is_not_scanned_until_one_can_go() {
    // 100 sources at 1 s, then source 0 again at 1.5 s; the table is full. The first sweep
    // scans and keeps them all.
    let full = || {
        let mut t = table(&[rule(Metric::Packets, 10, 1000)], 100);
        for i in 0..100 {
            t.slot_deferred(nth_key(i), SEC).unwrap();
        }
        t.slot_deferred(nth_key(0), SEC + 500 * MS).unwrap();
        assert!(t.slot_deferred(nth_key(100), SEC + 500 * MS).is_none());
        t.sweep_if_full(SEC + 600 * MS);
        assert_eq!((t.evicted, t.last_sweep), (0, SEC + 600 * MS));
        t
    };
    let mut t = full();
    let at = t.evictable_at;
    assert!(at > 2 * SEC && at <= 2 * SEC + 5 * MS, "evictable at {at}");
    // Until then, a full table does not scan: nothing could go.
    assert!(t.slot_deferred(nth_key(100), SEC + 700 * MS).is_none());
    t.sweep_if_full(at - 1);
    t.maybe_sweep(at - 1);
    assert_eq!((t.evicted, t.last_sweep), (0, SEC + 600 * MS));
    // At the bound the 99 sources last seen at 1 s go, and source 0 (1.5 s) stays.
    t.sweep_if_full(at);
    assert_eq!((t.evicted, t.len()), (99, 1));
    assert!(t.lookup(nth_key(0)).is_some());
    // And the bound is not late: a scan one unit of last-seen time before it (`sweep`
    // always scans) evicts nothing.
    let mut u = full();
    assert_eq!(u.sweep(at - (1 << super::SEEN_SHIFT)), 0);
}

#[test]
fn a_source_idle_for_less_than_the_window_is_kept() {
    let mut t = table(&[rule(Metric::Packets, 10, 1000)], 10);
    let p = syn_to(80);
    count(&mut t, &p, SEC);
    t.sweep(SEC + 999 * MS);
    assert_eq!(t.len(), 1);
    t.sweep(2 * SEC + 100 * MS);
    assert_eq!(t.len(), 0);
}

/// A rule as the reference model sees it.
#[derive(Clone, Debug)]
struct RefRule {
    rule: Rule,
    span: RefSpan,
}

fn matches(r: &Rule, p: &PacketMeta) -> bool {
    let proto_ok = match r.protocol {
        Protocol::Any => true,
        Protocol::Tcp => p.proto == Proto::Tcp,
        Protocol::Udp => p.proto == Proto::Udp,
        Protocol::Icmp => matches!(p.proto, Proto::Icmp | Proto::Icmpv6),
    };
    let syn = p.tcp_flags & (tcp_flag::SYN | tcp_flag::ACK) == tcp_flag::SYN;
    let answer = p.proto != Proto::Tcp || p.tcp_flags & (tcp_flag::ACK | tcp_flag::RST) != 0;
    let reply =
        answer && matches!((p.src_port, p.dst_port), (Some(s), Some(d)) if s < 1024 && d >= 1024);
    let ports_ok = match (&r.dst_ports, p.dst_port) {
        (None, _) => true,
        (Some(ps), Some(d)) => ps.contains(&d),
        (Some(_), None) => false,
    };
    proto_ok
        && (r.tcp_flags.is_none() || syn)
        && (!r.skip_replies || !reply)
        && ports_ok
        && (r.metric != Metric::DstPorts || p.dst_port.is_some())
}

fn rule_strategy() -> impl Strategy<Value = Rule> {
    (
        0..4u8,
        0..4u8,
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            Just(None),
            Just(Some(vec![80u16, 443])),
            Just(Some(vec![53]))
        ],
        1..300u64,
        prop_oneof![Just(100u64), Just(1000), Just(10_000)],
    )
        .prop_map(|(m, p, syn, skip, ports, threshold, window)| {
            let metric = [
                Metric::Packets,
                Metric::Bytes,
                Metric::DstPorts,
                Metric::DstAddrs,
            ][usize::from(m)];
            let protocol =
                [Protocol::Any, Protocol::Tcp, Protocol::Udp, Protocol::Icmp][usize::from(p)];
            Rule {
                tcp_flags: (syn && protocol == Protocol::Tcp).then_some(TcpFlagsFilter::Syn),
                dst_ports: ports,
                skip_replies: skip,
                protocol,
                threshold: if metric == Metric::Bytes {
                    threshold * 300
                } else {
                    threshold
                },
                ..rule(metric, threshold, window)
            }
        })
}

/// (source, protocol, syn, dst port, dst, length, µs since the previous packet)
type Gen = (u8, u8, bool, u16, u8, u16, u32);

fn packet_of(g: &Gen) -> PacketMeta {
    let (src, proto, syn, port, dst, len, _) = *g;
    let proto = [Proto::Tcp, Proto::Udp, Proto::Icmp, Proto::Other(47)][usize::from(proto % 4)];
    let ports = matches!(proto, Proto::Tcp | Proto::Udp);
    let src: IpAddr = if src % 4 == 3 {
        format!("2001:db8::{src}").parse().unwrap()
    } else {
        format!("198.51.100.{src}").parse().unwrap()
    };
    PacketMeta {
        src,
        dst: format!("10.0.{}.{}", dst / 16, dst % 16).parse().unwrap(),
        proto,
        tcp_flags: if proto == Proto::Tcp && syn {
            tcp_flag::SYN
        } else {
            tcp_flag::ACK
        },
        src_port: ports.then_some(if port % 3 == 0 { 53 } else { 40000 }),
        dst_port: ports.then_some(port),
        len: u32::from(len),
        fragment: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every packet, the table fires exactly the rules the per-rule reference windows fire,
    /// with the same values, on in-order streams with bursts (many packets in one bucket,
    /// escalation), gaps (eviction, expiry) and shared windows.
    #[test]
    fn decisions_match_the_reference_model(
        rules in prop::collection::vec(rule_strategy(), 1..7),
        stream in prop::collection::vec(
            (0..5u8, 0..4u8, any::<bool>(),
             prop_oneof![Just(80u16), Just(443), Just(53), 1000..1100u16],
             0..64u8, 40..1500u16,
             prop_oneof![Just(0u32), Just(0u32), 0..2000u32, 0..400_000u32]),
            1..3000),
    ) {
        let mut t = table(&rules, 1000);
        let refs: Vec<RefRule> = rules.iter().map(|r| RefRule {
            rule: r.clone(),
            span: RefSpan::new(r.window),
        }).collect();
        let mut rate: std::collections::HashMap<(SourceKey, usize), RateWindow<u64>> =
            Default::default();
        let mut distinct: std::collections::HashMap<(SourceKey, usize), DistinctWindow> =
            Default::default();
        let mut ts = 1_700_000_000 * SEC;
        for g in &stream {
            ts += u64::from(g.6);
            let p = packet_of(g);
            let k = key(&p);
            t.sweep_if_full(ts);
            t.maybe_sweep(ts);
            let got = count(&mut t, &p, ts);
            let mut want = Vec::new();
            for (ri, r) in refs.iter().enumerate() {
                if !matches(&r.rule, &p) {
                    continue;
                }
                let v = match r.rule.metric {
                    Metric::Packets => rate.entry((k, ri)).or_default().add(ts, r.span, 1),
                    Metric::Bytes => rate.entry((k, ri)).or_default().add(ts, r.span, u64::from(p.len)),
                    m => {
                        let value = if m == Metric::DstPorts {
                            u32::from(p.dst_port.unwrap_or(0))
                        } else {
                            fold(p.dst)
                        };
                        let cap = (r.rule.threshold * 2 + 1) as usize;
                        distinct.entry((k, ri)).or_default().add(ts, r.span, value, cap)
                    }
                };
                if v > r.rule.threshold {
                    want.push((ri, v));
                }
            }
            let mut got = got;
            got.sort_unstable();
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn a_wrong_or_stale_slot_guess_never_gives_a_wrong_slot() {
    let mut t = table(&[rule(Metric::Packets, 10, 1000)], 100);
    let a = t.slot_deferred(nth_key(1), 1000).unwrap();
    let b = t.slot_deferred(nth_key(2), 1000).unwrap();
    // The right guess, another source's slot, a slot never handed out, no guess.
    for guess in [a.0, b.0, 77, super::NO_GUESS] {
        let h = t.hash(nth_key(1));
        assert_eq!(
            t.slot_hashed(nth_key(1), h, guess, 2000),
            Some(a),
            "guess {guess}"
        );
    }
    // A freed slot (zeroed record) is not taken for the key 0.0.0.0.
    t.sweep(3 * SEC);
    assert_eq!(t.len(), 0);
    let zero = SourceKey::new(IpAddr::V4(0.into()), 32, 128);
    let h = t.hash(zero);
    let z = t.slot_hashed(zero, h, a.0, 3 * SEC).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t.lookup(zero), Some(z));
    // The evicted source stays gone.
    assert_eq!(t.lookup(nth_key(1)), None);
}

/// The record size README.md quotes for the shipped rules (88 bytes: key, flags, last seen and
/// two clocks in 5 words, four packet windows, two distinct windows), so that it cannot go
/// stale when a rule is added to the shipped file.
#[test]
fn shipped_rules_make_88_byte_records() {
    let c = crate::config::parse_str(
        include_str!("../../../rules.toml"),
        std::path::Path::new("rules.toml"),
    )
    .expect("the shipped rules.toml is valid");
    let refs: Vec<&Rule> = c.rules.iter().collect();
    let layout = Layout::compile(&refs);
    assert_eq!(layout.stride * 8, 88);
    assert_eq!(layout.clocks.len(), 2, "100 ms and 1 s");
}

/// A heavy cell stops at `HEAVY_CELL_MAX`, so a window's total is a plain sum that cannot
/// wrap: with every cell full the total is exactly `BUCKETS` times the most (a wrapped sum
/// would be far below it), and one more add changes nothing.
#[test]
fn heavy_cells_stop_at_their_most_and_totals_never_wrap() {
    use super::cells::{HEAVY_CELL_MAX, HeavyPool, PACKET_CELL_MAX};
    use super::count::add_rate;
    use super::layout::BUCKETS;
    let t = table(&[rule(Metric::Packets, 10, 1000)], 1);
    let layout = &t.layout;
    let mut r = vec![0u64; layout.stride];
    let mut heavy = HeavyPool::new(1);
    let mut e = 0;
    // A packed cell overflows: the record moves to a heavy entry.
    let v = add_rate(
        layout,
        &mut r,
        &mut heavy,
        &mut e,
        0,
        3,
        300,
        PACKET_CELL_MAX,
    );
    assert_ne!(e, 0, "escalated");
    assert_eq!(v, 300);
    let mut total = 0;
    for i in 0..BUCKETS {
        total = add_rate(
            layout,
            &mut r,
            &mut heavy,
            &mut e,
            0,
            i,
            u64::MAX,
            PACKET_CELL_MAX,
        );
    }
    assert_eq!(total, HEAVY_CELL_MAX * u64::from(BUCKETS));
    let again = add_rate(layout, &mut r, &mut heavy, &mut e, 0, 5, 1, PACKET_CELL_MAX);
    assert_eq!(again, total, "a full cell stays at its most");
}
