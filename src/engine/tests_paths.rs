//! Unit tests of the ways a batch is counted: with look-ahead passes (large tables) and
//! packet by packet (tables that stay in cache) decide exactly alike, also across the switch;
//! and digests made elsewhere (replay's reader thread) decide as the engine's own, stale ones
//! (made before a reload) included.

use super::tests::{rate_scan_sweep_config, syn};
use super::*;
use crate::time::Timestamp;

const SEC: u64 = 1_000_000;

/// Floods from a few sources (banned, extended, expiring), ours among them, then thousands of
/// new sources that grow the table past the cache-resident size mid-run: the engine that
/// always takes the look-ahead passes, the default one and one fed packet by packet make the
/// same decisions and counts.
/// The packets of [`resident_and_lookahead_batches_decide_alike`]: floods from a few sources
/// and ours, then thousands of new sources.
fn mixed_items() -> Vec<(PacketMeta, Timestamp)> {
    (0..20_000u32)
        .map(|i| {
            let src = match i {
                _ if i % 13 == 0 => "10.9.9.9".to_string(),
                0..6000 => format!("203.0.113.{}", i % 7),
                _ => format!("198.18.{}.{}", (i / 250) % 200, i % 250),
            };
            let dst = format!("10.0.{}.{}", (i / 250) % 4, i % 250);
            let p = syn(&src, &dst, (i % 40) as u16 + 1);
            (p, Timestamp(SEC + u64::from(i) * 397))
        })
        .collect()
}

/// Digests made by a copy of the digester (as replay's reader does) decide as the engine's
/// own; after a reload (new tables, new hashers) and new local addresses, digests made by the
/// old copy are not taken: the engine digests those batches itself, and decides alike.
#[test]
fn digests_from_a_copy_decide_alike_and_stale_ones_are_remade() {
    let mut c = rate_scan_sweep_config();
    c.limits.max_tracked_sources = 100_000;
    let local: Vec<ipnet::IpNet> = vec!["10.9.9.9/32".parse().unwrap()];
    let mut own = Engine::new(&c, local.clone());
    let mut fed = Engine::new(&c, local);
    let mut copy = fed.digester();
    let items = mixed_items();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut digests = digest::Digests::default();
    let mut reloaded = c.clone();
    reloaded.rules[0].threshold += 1;
    reloaded.rules[0].aggregate_v4 = 24;
    for (k, chunk) in items.chunks(300).enumerate() {
        if k == 20 {
            for e in [&mut own, &mut fed] {
                e.reconfigure(&reloaded, chunk[0].1, &mut Vec::new());
            }
        }
        if k == 40 {
            // The bans it lifts come in each engine's own (hash) order: compared as sets.
            let ours = vec!["198.18.0.0/16".parse().unwrap()];
            let (mut x, mut y) = (Vec::new(), Vec::new());
            own.set_local(ours.clone(), chunk[0].1, &mut x);
            fed.set_local(ours, chunk[0].1, &mut y);
            let keys = |v: &[Decision]| {
                let mut k: Vec<String> = v.iter().map(|d| format!("{d:?}")).collect();
                k.sort();
                k
            };
            assert!(!x.is_empty());
            assert_eq!(keys(&x), keys(&y));
        }
        // The copy lags a reload by ten batches, as a reader thread may.
        if k == 30 || k == 50 {
            copy = fed.digester();
        }
        copy.digest(chunk, &mut digests);
        own.observe_batch(chunk, &mut a);
        fed.observe_digested(chunk, &digests, &mut b);
    }
    assert!(a.iter().any(|d| matches!(d, Decision::Block(_))));
    assert_eq!(a, b);
    assert_eq!(own.stats(), fed.stats());
    assert!(own.stats().local_packets > 0 && own.stats().tracked_sources > 0);
}

/// Engines on config `c` (our addresses `local`) fed `items` in the three ways a batch is
/// counted: always with the look-ahead passes, the default choice (packet by packet while
/// the tables stay in cache), and one packet at a time; with their decisions.
fn three_ways(
    c: &crate::config::Config,
    local: &[ipnet::IpNet],
    items: &[(PacketMeta, Timestamp)],
) -> [(Engine, Vec<Decision>); 3] {
    let mut lookahead = Engine::new(c, local.to_vec());
    lookahead.lookahead_always = true;
    let mut default = Engine::new(c, local.to_vec());
    let mut one = Engine::new(c, local.to_vec());
    let (mut a, mut b, mut d) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in items.chunks(300) {
        lookahead.observe_batch(chunk, &mut a);
        default.observe_batch(chunk, &mut b);
    }
    for (p, ts) in items {
        one.observe(p, *ts, &mut d);
    }
    [(lookahead, a), (default, b), (one, d)]
}

#[test]
fn resident_and_lookahead_batches_decide_alike() {
    let mut c = rate_scan_sweep_config();
    c.limits.max_tracked_sources = 100_000;
    let local = ["10.9.9.9/32".parse().unwrap()];
    let [(lookahead, a), (default, b), (one, d)] = three_ways(&c, &local, &mixed_items());
    assert!(a.iter().any(|d| matches!(d, Decision::Block(_))));
    assert!(a.iter().any(|d| matches!(d, Decision::Extend(_))));
    assert!(a.iter().any(|d| matches!(d, Decision::Unblock { .. })));
    assert!(
        !default.groups[0].table.cache_resident(),
        "the run ends past the switch"
    );
    assert_eq!(a, b);
    assert_eq!(a, d);
    assert_eq!(lookahead.stats(), default.stats());
    assert_eq!(lookahead.stats(), one.stats());
}

/// A group gives a source a record only for a packet one of its windows admits (class, port
/// list), in both ways a batch is counted: UDP packets get none (only TCP SYN rules), SYNs to
/// port 22 none in the port-80 group; the port-80 SYNs of a /24 make one record that fires,
/// an exempt /24's one that never does, and every engine decides alike.
#[test]
fn a_group_makes_records_only_for_packets_it_counts() {
    use super::tests::{config, rule};
    use crate::config::{Metric, Protocol, TcpFlagsFilter};
    let mut any_syn = rule("syn", Metric::Packets, 500, 1000);
    any_syn.protocol = Protocol::Tcp;
    any_syn.tcp_flags = Some(TcpFlagsFilter::Syn);
    let mut web = any_syn.clone();
    web.name = "web".into();
    web.threshold = 50;
    web.dst_ports = Some(vec![80]);
    web.aggregate_v4 = 24;
    web.exempt = vec!["198.51.100.0/24".parse().unwrap()];
    let mut c = config(vec![any_syn, web]);
    c.limits.max_tracked_sources = 100_000;
    let host = |net: &str, i: u32| format!("{net}.{}.{}", i / 250, i % 250 + 1);
    let mut items = Vec::new();
    for i in 0..3000u32 {
        let mut udp = syn(&host("198.18", i), "10.0.0.1", 53);
        udp.proto = crate::packet::Proto::Udp;
        udp.tcp_flags = 0;
        items.push(udp);
        items.push(syn(&host("198.19", i % 2000), "10.0.0.1", 22));
    }
    for i in 0..600u32 {
        items.push(syn(&format!("203.0.113.{}", i % 60 + 1), "10.0.0.1", 80));
        items.push(syn(&format!("198.51.100.{}", i % 10 + 1), "10.0.0.1", 80));
    }
    let items: Vec<_> = items
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, Timestamp(SEC + i as u64 * 100)))
        .collect();
    let [(lookahead, a), (default, b), (one, d)] = three_ways(&c, &[], &items);
    for e in [&lookahead, &default, &one] {
        let lens: Vec<usize> = e.groups.iter().map(|g| g.table.len()).collect();
        assert_eq!(lens, [2000 + 60 + 10, 2], "records per group");
        assert_eq!(e.stats().tracked_sources, 2072);
    }
    let fired: Vec<String> = a
        .iter()
        .filter_map(|d| match d {
            Decision::Block(v) => Some(format!("{} {}", v.rule, v.key)),
            _ => None,
        })
        .collect();
    assert_eq!(fired, ["web 203.0.113.0/24"]);
    assert_eq!(a, b);
    assert_eq!(a, d);
    assert_eq!(lookahead.stats(), default.stats());
    assert_eq!(lookahead.stats(), one.stats());
}
