//! Unit tests of the engine under spoofing (issue 11): scans from a privileged source port
//! (finding 6), martian and link-local sources (finding 9), verified peers spared, TTL
//! consistency. Replay-style: the shipped `rules.toml`, packets fed in batches on capture
//! time.

use super::*;
use crate::packet::{Proto, tcp_flag};
use crate::trust::peers::PeerKind;

const MS: u64 = 1000;
const SEC: u64 = 1_000_000;

/// The shipped rules, as `autoblock replay` would run them.
fn shipped() -> Config {
    let text = include_str!("../../rules.toml");
    crate::config::parse_str(text, std::path::Path::new("rules.toml")).expect("shipped rules")
}

fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> PacketMeta {
    PacketMeta {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto: Proto::Tcp,
        tcp_flags: flags,
        src_port: Some(sport),
        dst_port: Some(dport),
        len: 60,
        fragment: false,
    }
}

/// Feeds `packets` in batches of 64, one every `step_us` from `start_us`.
fn replay(e: &mut Engine, packets: &[PacketMeta], start_us: u64, step_us: u64) -> Vec<Decision> {
    let items: Vec<(PacketMeta, Timestamp)> = packets
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, Timestamp(start_us + i as u64 * step_us)))
        .collect();
    let mut out = Vec::new();
    for chunk in items.chunks(64) {
        e.observe_batch(chunk, &mut out);
    }
    out
}

fn blocked(d: &[Decision]) -> Vec<(String, String)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Block(v) => Some((v.key.to_string(), v.rule.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_syn_scan_from_source_port_53_is_a_port_scan() {
    // `nmap -sS -g 53 -p 2000-2199`: 200 SYNs from port 53, a few ms apart (slow enough for
    // syn-flood and conn-burst to stay quiet: 200 SYNs over 2 s).
    let mut e = Engine::new(&shipped(), vec![]);
    let scan: Vec<PacketMeta> = (2000..2200)
        .map(|port| tcp("198.51.100.9", 53, "10.0.0.1", port, tcp_flag::SYN))
        .collect();
    let d = replay(&mut e, &scan, SEC, 40 * MS);
    assert_eq!(blocked(&d), [("198.51.100.9".into(), "port-scan".into())]);
}

#[test]
fn replies_from_service_ports_are_still_no_scan() {
    let mut e = Engine::new(&shipped(), vec![]);
    let mut replies = Vec::new();
    for port in 30_000..30_200u16 {
        // A web server's SYN-ACKs and RSTs to our clients' ephemeral ports...
        let flags = if port % 2 == 0 {
            tcp_flag::SYN | tcp_flag::ACK
        } else {
            tcp_flag::RST | tcp_flag::ACK
        };
        replies.push(tcp("198.51.100.80", 443, "10.0.0.1", port, flags));
        // ... and a resolver's answers (UDP from port 53).
        let mut dns = tcp("198.51.100.53", 53, "10.0.0.1", port, 0);
        dns.proto = Proto::Udp;
        replies.push(dns);
    }
    let d = replay(&mut e, &replies, SEC, 10 * MS);
    assert_eq!(blocked(&d), []);
}

fn udp(src: &str, dst: &str) -> PacketMeta {
    PacketMeta {
        proto: Proto::Udp,
        tcp_flags: 0,
        ..tcp(src, 40_000, dst, 9, 0)
    }
}

fn icmp(src: &str, dst: &str) -> PacketMeta {
    PacketMeta {
        proto: Proto::Icmp,
        tcp_flags: 0,
        src_port: None,
        dst_port: None,
        ..tcp(src, 0, dst, 0, 0)
    }
}

/// SYN, UDP and ICMP floods from `src`, each far above the shipped thresholds (as `hping3 -a`
/// sends them).
fn floods(src: &str) -> Vec<PacketMeta> {
    let mut v = Vec::new();
    for i in 0..6000u16 {
        v.push(tcp(src, 1024 + i % 5000, "10.88.0.1", 22, tcp_flag::SYN));
        v.push(udp(src, "10.88.0.1"));
        if i % 4 == 0 {
            v.push(icmp(src, "10.88.0.1"));
        }
    }
    v
}

fn suppressed(d: &[Decision]) -> Vec<(String, SuppressReason)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Suppressed { verdict, reason } => Some((verdict.key.to_string(), *reason)),
            _ => None,
        })
        .collect()
}

fn operator_peers() -> Arc<PeerSet> {
    let mut b = PeerSet::builder(16);
    b.host("10.88.0.3".parse().unwrap(), PeerKind::Established);
    b.host("10.88.0.254".parse().unwrap(), PeerKind::Gateway);
    Arc::new(b.build())
}

#[test]
fn a_verified_peer_is_reported_never_banned_on_spoofable_floods() {
    let mut e = Engine::new(&shipped(), vec!["10.88.0.1/32".parse().unwrap()]);
    e.set_peers(operator_peers());
    let d = replay(&mut e, &floods("10.88.0.3"), SEC, 20);
    assert_eq!(blocked(&d), []);
    let established = Kinds::of(PeerKind::Established);
    let mut rules: Vec<String> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Suppressed { verdict, reason } => {
                assert_eq!(*reason, SuppressReason::Peer(established));
                assert_eq!(verdict.key.to_string(), "10.88.0.3");
                Some(verdict.rule.to_string())
            }
            _ => None,
        })
        .collect();
    rules.sort();
    // Reported once per would-be ban, per rule.
    assert_eq!(
        rules,
        ["conn-burst", "icmp-flood", "syn-flood", "udp-flood"]
    );
    assert_eq!(e.bans().len(), 0);
    let x = e.explain("10.88.0.3".parse().unwrap(), Timestamp(2 * SEC));
    assert_eq!(x.peer.map(|p| p.kinds), Some(established));
    // The gateway too; and an attacker's own unspoofed flood is banned at once.
    let d = replay(&mut e, &floods("10.88.0.254"), 3 * SEC, 100);
    assert_eq!(blocked(&d), []);
    let d = replay(&mut e, &floods("10.88.0.9"), 5 * SEC, 100);
    let first = d.iter().find_map(|d| match d {
        Decision::Block(v) => Some(v.clone()),
        _ => None,
    });
    let first = first.expect("the attacker is banned");
    assert_eq!(first.key.to_string(), "10.88.0.9");
    // syn-flood's 25th SYN: the 55th packet, 5.4 ms into the flood at this pace.
    assert_eq!(&*first.rule, "syn-flood");
    assert!(first.at.as_micros() - 5 * SEC <= 6 * MS, "{first:?}");
}

#[test]
fn a_rule_marked_safe_bans_a_verified_peer_and_prefixes_covering_one_are_spared() {
    let text = "[[rule]]\nname = \"handshakes\"\nprotocol = \"tcp\"\nmetric = \"packets\"\nthreshold = 10\nwindow = \"1s\"\nban_verified_peers = true\n\n[[rule]]\nname = \"net-syn\"\nprotocol = \"tcp\"\ntcp_flags = \"syn\"\nmetric = \"packets\"\nthreshold = 10\nwindow = \"1s\"\naggregate_v4 = 24\n";
    let config = crate::config::parse_str(text, std::path::Path::new("t.toml")).expect("valid");
    let mut e = Engine::new(&config, vec![]);
    e.set_peers(operator_peers());
    let syns: Vec<PacketMeta> = (0..20)
        .map(|_| tcp("10.88.0.3", 40_000, "10.88.0.1", 22, tcp_flag::SYN))
        .collect();
    let d = replay(&mut e, &syns, SEC, MS);
    assert_eq!(blocked(&d), [("10.88.0.3".into(), "handshakes".into())]);
    let established = Kinds::of(PeerKind::Established);
    assert_eq!(
        suppressed(&d),
        [("10.88.0.0/24".into(), SuppressReason::Peer(established))]
    );
}

#[test]
fn a_ban_in_force_on_a_peer_is_not_extended_by_spoofable_evidence() {
    let mut e = Engine::new(&shipped(), vec![]);
    let d = replay(&mut e, &floods("10.88.0.3")[..200], SEC, 100);
    assert_eq!(blocked(&d).len(), 1, "banned before it was verified");
    e.set_peers(operator_peers());
    let until = e.bans().iter().next().map(|b| b.until);
    let d = replay(&mut e, &floods("10.88.0.3"), 30 * SEC, 100);
    assert!(
        !d.iter().any(|d| matches!(d, Decision::Extend(_))),
        "{d:#?}"
    );
    assert_eq!(e.bans().iter().next().map(|b| b.until), until);
}

#[test]
fn martian_sources_are_never_counted_and_link_local_ones_never_banned() {
    let mut e = Engine::new(&shipped(), vec![]);
    let mut spoofed = floods("127.0.0.53");
    spoofed.extend(floods("224.0.0.1"));
    let d = replay(&mut e, &spoofed, SEC, 10);
    // The flood detectors see the traffic toward us (its volume is real); no rule counts it.
    assert!(d.iter().all(|d| matches!(d, Decision::Flood(_))), "{d:#?}");
    assert_eq!(e.stats().martian_packets, spoofed.len() as u64);
    assert_eq!(e.stats().tracked_sources, 0);
    let d = replay(&mut e, &floods("169.254.169.254"), 3 * SEC, 100);
    assert_eq!(blocked(&d), []);
    assert!(!suppressed(&d).is_empty());
    for (key, reason) in suppressed(&d) {
        assert_eq!(
            (key.as_str(), reason),
            ("169.254.169.254", SuppressReason::LinkLocal)
        );
    }
}

/// Replay and live run the same code: fed the same peers, packet by packet and in batches
/// they decide the same.
#[test]
fn observe_and_observe_batch_agree_with_peers() {
    let mut packets = floods("10.88.0.3");
    packets.extend(floods("10.88.0.9"));
    packets.extend(floods("127.0.0.1"));
    let mut one = Engine::new(&shipped(), vec![]);
    let mut batch = Engine::new(&shipped(), vec![]);
    one.set_peers(operator_peers());
    batch.set_peers(operator_peers());
    let mut singles = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        one.observe(p, Timestamp(SEC + i as u64 * 50), &mut singles);
    }
    let batched = replay(&mut batch, &packets, SEC, 50);
    assert_eq!(singles, batched);
    assert_eq!(one.stats(), batch.stats());
    assert_eq!(blocked(&batched).len(), 1);
}
