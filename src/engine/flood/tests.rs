//! Floods end to end on hand-made packets: an attack's life (start, signature, refresh, end,
//! return), fingerprint dominance at exactly 80%, ties, fragments, every refusal rule, the
//! `sources` action, and the memory bound.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::config::FloodAction;
use crate::packet::{Proto, tcp_flag};

const SEC: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * SEC;
const VICTIM: &str = "10.10.10.10";

fn config(floods: &str) -> Config {
    let text = format!("[allow]\nnets = [\"127.0.0.0/8\", \"192.0.2.0/24\"]\n{floods}");
    crate::config::parse_str(&text, std::path::Path::new("t.toml")).expect("valid config")
}

/// A detector named `d`: `body`, and defaults for the keys it does not set.
fn detector(body: &str) -> String {
    let mut text = format!("[[flood]]\nname = \"d\"\n{body}\n");
    for (key, value) in [
        ("metric", "\"packets\""),
        ("threshold", "100"),
        ("window", "\"1s\""),
        ("ban", "\"2s\""),
    ] {
        if !body.contains(&format!("{key} =")) {
            text.push_str(&format!("{key} = {value}\n"));
        }
    }
    text
}

fn floods(body: &str) -> Floods {
    Floods::new(&config(&detector(body)), Vec::new())
}

fn src(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x2800_0000 + i))
}

fn udp(from: IpAddr, sport: u16, dport: u16) -> PacketMeta {
    PacketMeta {
        src: from,
        dst: VICTIM.parse().unwrap(),
        proto: Proto::Udp,
        tcp_flags: 0,
        src_port: Some(sport),
        dst_port: Some(dport),
        len: 120,
        fragment: false,
    }
}

fn tcp(from: IpAddr, flags: u8, sport: u16, dport: u16) -> PacketMeta {
    PacketMeta {
        proto: Proto::Tcp,
        tcp_flags: flags,
        len: 60,
        ..udp(from, sport, dport)
    }
}

/// Feeds `packets`, one every `step` µs from `start`; returns the decisions and the last time.
fn feed(
    f: &mut Floods,
    packets: &[PacketMeta],
    start: u64,
    step: u64,
) -> (Vec<FloodDecision>, Timestamp) {
    let mut out = Vec::new();
    let mut t = Timestamp(start);
    for (i, p) in packets.iter().enumerate() {
        t = Timestamp(start + i as u64 * step);
        f.observe(p, t, t, &mut out);
    }
    (out, t)
}

fn starts(out: &[FloodDecision]) -> Vec<&AttackStart> {
    out.iter()
        .filter_map(|d| match d {
            FloodDecision::Attack(a) => Some(a.as_ref()),
            _ => None,
        })
        .collect()
}

fn only_start(out: &[FloodDecision]) -> &AttackStart {
    let s = starts(out);
    assert_eq!(s.len(), 1, "{out:#?}");
    s[0]
}

/// `n` packets: `k` of them from source port `port`, the rest from other ports.
fn mix(n: u32, k: u32, port: u16) -> Vec<PacketMeta> {
    (0..n)
        .map(|i| {
            let sport = if i < k { port } else { 20_000 + i as u16 };
            udp(src(i), sport, 5000 + (i % 50) as u16)
        })
        .collect()
}

#[test]
fn a_reflection_flood_gets_its_signature_which_ends_after_ban() {
    let mut f = floods("protocol = \"udp\"\naction = \"signature\"");
    let flood: Vec<PacketMeta> = (0..300)
        .map(|i| udp(src(i % 200), 4500, 30_000 + i as u16))
        .collect();
    let (out, last) = feed(&mut f, &flood, T0, 1000);
    let a = only_start(&out);
    assert_eq!(a.target, Target::Addr(VICTIM.parse().unwrap()));
    assert_eq!((a.observed, a.threshold), (101, 100));
    let fp = &a.fingerprint;
    assert_eq!(fp.dominant_protocol(), Some(FpProto::Udp));
    assert_eq!(fp.dominant_src_port(), Some(4500));
    assert_eq!(fp.dominant_dst_port(), None);
    assert_eq!(fp.dominant_flags(), None);
    assert_eq!((fp.packets, fp.length), (101, (120, 120)));
    assert!(
        (90..=112).contains(&fp.sources),
        "{}: estimated",
        fp.sources
    );
    assert!(
        !fp.sources_exact,
        "101 sources overflow the exact summaries"
    );
    assert_eq!(a.action, FloodAction::Signature);
    let mitigations: Vec<&Mitigation> = out
        .iter()
        .filter_map(|d| match d {
            FloodDecision::Mitigate(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(mitigations.len(), 1, "one rule, no refresh within the ban");
    assert_eq!(
        mitigations[0].signature.to_string(),
        "-d 10.10.10.10/32 -p udp --sport 4500 -j DROP"
    );
    assert!(!mitigations[0].refresh);

    // Quiet: nothing before `ban` has passed since it was last over, then the rule goes and the
    // attack ends, in that order.
    let mut out = Vec::new();
    let quiet = last.saturating_add(Duration::from_millis(1999));
    f.tick(quiet, &mut out);
    assert!(out.is_empty());
    let end = last.saturating_add(Duration::from_secs(2));
    assert_eq!(
        f.next_deadline(),
        Some(end),
        "the deadline follows the last crossing"
    );
    assert!(!f.due(quiet));
    f.tick(end, &mut out);
    assert!(
        matches!(&out[0], FloodDecision::Unmitigate(m) if m.signature == mitigations[0].signature)
    );
    let FloodDecision::AttackEnd(e) = &out[1] else {
        panic!("{out:#?}")
    };
    assert_eq!(
        e.packets, 300,
        "every packet from the crossing window's start"
    );
    assert_eq!(e.duration(), last.since(Timestamp(T0 + 100 * 1000)));
    assert!((e.peak_pps - 300.0).abs() < 1e-9, "{}", e.peak_pps);
    assert!(f.attacks(end).is_empty());
    assert_eq!(f.next_deadline(), None);

    // It comes back: a new attack, the rule again.
    let (out, _) = feed(&mut f, &flood, end.as_micros() + SEC, 1000);
    assert_eq!(starts(&out).len(), 1);
    assert!(
        out.iter()
            .any(|d| matches!(d, FloodDecision::Mitigate(m) if !m.refresh))
    );
    assert_eq!(f.started().map(|(_, n)| n).sum::<u64>(), 2);
}

#[test]
fn a_long_attack_keeps_its_rule_alive_in_the_kernel() {
    let mut f = floods("protocol = \"udp\"\naction = \"signature\"");
    let flood: Vec<PacketMeta> = (0..10_000).map(|i| udp(src(i % 500), 123, 80)).collect();
    // 10 s at 1000 packets/s: over threshold throughout.
    let (out, _) = feed(&mut f, &flood, T0, 1000);
    assert_eq!(starts(&out).len(), 1);
    let refreshes = out
        .iter()
        .filter(|d| matches!(d, FloodDecision::Mitigate(m) if m.refresh))
        .count();
    // The kernel keeps it 2 x ban (4 s) and it is refreshed when less than ban is left.
    assert!((3..=6).contains(&refreshes), "{refreshes}");
    assert!(!out.iter().any(|d| matches!(d, FloodDecision::AttackEnd(_))));
    let active = f.attacks(Timestamp(T0 + 10 * SEC));
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0].attack.signature.map(|s| s.to_string()).as_deref(),
        Some("-d 10.10.10.10/32 -p udp --sport 123 --dport 80 -j DROP")
    );
}

#[test]
fn dominance_starts_at_exactly_80_percent() {
    for (k, want) in [(81, Some(161)), (80, Some(161)), (79, None)] {
        let mut f = floods("protocol = \"udp\"\nthreshold = 99");
        let (out, _) = feed(&mut f, &mix(100, k, 161), T0, 100);
        let fp = &only_start(&out).fingerprint;
        assert_eq!(fp.dominant_src_port(), want, "{k} of 100");
        let share = fp.src_port.expect("a largest port");
        assert_eq!(
            (share.value, share.count, share.of),
            (161, u64::from(k), 100)
        );
    }
}

#[test]
fn ties_never_dominate_and_are_ordered() {
    let mut f = floods("protocol = \"udp\"\nthreshold = 99");
    let packets: Vec<PacketMeta> = (0..100)
        .map(|i| udp(src(i % 2), if i % 2 == 0 { 53 } else { 123 }, 9))
        .collect();
    let (out, _) = feed(&mut f, &packets, T0, 100);
    let fp = &only_start(&out).fingerprint;
    assert_eq!(fp.dominant_src_port(), None);
    assert_eq!(
        fp.src_port.map(|s| (s.value, s.count)),
        Some((53, 50)),
        "the smaller value first"
    );
    assert_eq!(fp.dominant_dst_port(), Some(9));
    let tops: Vec<(IpAddr, u64)> = fp.top_sources.iter().map(|s| (s.value, s.count)).collect();
    assert_eq!(tops, [(src(0), 50), (src(1), 50)]);
    assert_eq!((fp.sources, fp.sources_exact), (2, true));
}

#[test]
fn fragments_count_without_ports_and_refuse_a_signature() {
    let mut f = floods("action = \"signature\"\nthreshold = 99");
    let packets: Vec<PacketMeta> = (0..100)
        .map(|i| {
            let mut p = udp(src(i), 53, 4000);
            if i % 10 != 0 {
                p.fragment = true;
                p.src_port = None;
                p.dst_port = None;
                p.len = 1514;
            }
            p
        })
        .collect();
    let (out, _) = feed(&mut f, &packets, T0, 100);
    let a = only_start(&out);
    let fp = &a.fingerprint;
    assert!((fp.fragments - 0.9).abs() < 1e-9);
    assert_eq!(fp.length, (120, 1514));
    assert_eq!(fp.dominant_protocol(), Some(FpProto::Udp));
    assert_eq!(fp.dominant_src_port(), None, "fragments have no port: 10%");
    assert_eq!(a.action, FloodAction::Alert);
    assert!(matches!(a.refused, Some(Refusal::Fragments(_))));
    assert!(!out.iter().any(|d| matches!(d, FloodDecision::Mitigate(_))));
}

/// The one attack `packets` start with `facts` (listening tcp, udp; our own packets first).
fn refusal(
    body: &str,
    ours: &[PacketMeta],
    listening: (&[u16], &[u16]),
    packets: &[PacketMeta],
) -> Option<Refusal> {
    let protected = vec!["10.10.10.10/32".parse().unwrap()];
    let mut f = Floods::new(&config(&detector(body)), protected);
    f.set_host_ports(&crate::trust::proc_net::HostPorts {
        tcp_listening: listening.0.to_vec(),
        udp_listening: listening.1.to_vec(),
        tcp_remote: Vec::new(),
    });
    feed(&mut f, ours, T0, 10);
    let (out, _) = feed(&mut f, packets, T0 + SEC, 100);
    only_start(&out).refused.clone()
}

#[test]
fn signatures_are_refused_for_traffic_we_serve_or_use() {
    let sig = "protocol = \"udp\"\naction = \"signature\"";
    let victim: IpAddr = VICTIM.parse().unwrap();
    let reflection: Vec<PacketMeta> = (0..200)
        .map(|i| udp(src(i), 53, 40_000 + i as u16))
        .collect();
    // Nothing known about the host: the signature goes in.
    assert_eq!(refusal(sig, &[], (&[], &[]), &reflection), None);
    // We resolve names ourselves (our packets to port 53): answers from 53 are ours too.
    let query = PacketMeta {
        src: victim,
        dst: src(9999),
        ..udp(victim, 33_333, 53)
    };
    assert_eq!(
        refusal(sig, &[query], (&[], &[]), &reflection),
        Some(Refusal::Uses(FpProto::Udp, 53))
    );
    // A flood toward the port we listen on, from every source port: no way to tell it apart.
    let game: Vec<PacketMeta> = (0..200)
        .map(|i| udp(src(i), 1024 + i as u16, 30_120))
        .collect();
    assert_eq!(
        refusal(sig, &[], (&[], &[30_120]), &game),
        Some(Refusal::Serves(FpProto::Udp, Some(30_120)))
    );
    assert_eq!(
        refusal(sig, &[], (&[30_120], &[]), &game),
        None,
        "TCP 30120 is another service"
    );
    // ...or toward a port we answer from (seen in our own traffic).
    let answer = PacketMeta {
        src: victim,
        dst: src(7),
        ..udp(victim, 30_120, 50_000)
    };
    assert_eq!(
        refusal(sig, &[answer], (&[], &[]), &game),
        Some(Refusal::Serves(FpProto::Udp, Some(30_120)))
    );
    // With a dominant source port the attack is told apart from our clients.
    let ntp: Vec<PacketMeta> = (0..200).map(|i| udp(src(i), 123, 30_120)).collect();
    assert_eq!(refusal(sig, &[], (&[], &[30_120]), &ntp), None);
    // Random ports both ways toward a host that serves UDP.
    let random: Vec<PacketMeta> = (0..200)
        .map(|i| udp(src(i), 1024 + i as u16, 2000 + i as u16))
        .collect();
    assert_eq!(
        refusal(sig, &[], (&[], &[53]), &random),
        Some(Refusal::Serves(FpProto::Udp, None))
    );
    // Allowlisted sources in the window: 2 of a spoofed flood's 101 packets is real traffic...
    let mut mixed = reflection.clone();
    mixed[50].src = "192.0.2.5".parse().unwrap();
    mixed[60].src = "192.0.2.6".parse().unwrap();
    assert_eq!(
        refusal(sig, &[], (&[], &[]), &mixed),
        Some(Refusal::Allowlisted(2))
    );
    // ...one is what random spoofing puts there by chance, and loopback is spoofed anyway.
    mixed[60] = reflection[60];
    mixed[70].src = "127.0.0.9".parse().unwrap();
    assert_eq!(refusal(sig, &[], (&[], &[]), &mixed), None);
    // From a few real hosts, a single allowlisted packet is enough.
    let mut few: Vec<PacketMeta> = (0..200).map(|i| udp(src(i % 4), 53, 40_000)).collect();
    few[10].src = "192.0.2.5".parse().unwrap();
    assert_eq!(
        refusal(sig, &[], (&[], &[]), &few),
        Some(Refusal::Allowlisted(1))
    );
}

#[test]
fn a_syn_flood_toward_a_listening_port_is_refused_and_synack_reflection_is_not() {
    let syn_body = "protocol = \"tcp\"\ntcp_flags = \"syn\"\naction = \"signature\"";
    let syns: Vec<PacketMeta> = (0..200)
        .map(|i| tcp(src(i), tcp_flag::SYN, 1024 + i as u16, 25_565))
        .collect();
    assert_eq!(
        refusal(syn_body, &[], (&[25_565], &[]), &syns),
        Some(Refusal::Serves(FpProto::Tcp, Some(25_565)))
    );
    let any_tcp = "protocol = \"tcp\"\naction = \"signature\"";
    let synacks: Vec<PacketMeta> = (0..200)
        .map(|i| tcp(src(i), tcp_flag::SYN | tcp_flag::ACK, 80, 1024 + i as u16))
        .collect();
    assert_eq!(refusal(any_tcp, &[], (&[22], &[]), &synacks), None);
    // Unless we browse port 80 ourselves.
    let victim: IpAddr = VICTIM.parse().unwrap();
    let browse = PacketMeta {
        src: victim,
        dst: src(5),
        ..tcp(victim, tcp_flag::SYN, 40_000, 80)
    };
    assert_eq!(
        refusal(any_tcp, &[browse], (&[22], &[]), &synacks),
        Some(Refusal::Uses(FpProto::Tcp, 80))
    );
}

#[test]
fn signature_words_match_each_flag_word() {
    let mut f = floods("protocol = \"tcp\"\naction = \"signature\"");
    let synacks: Vec<PacketMeta> = (0..200)
        .map(|i| tcp(src(i), tcp_flag::SYN | tcp_flag::ACK, 80, 1024 + i as u16))
        .collect();
    let (out, _) = feed(&mut f, &synacks, T0, 100);
    let text = out.iter().find_map(|d| match d {
        FloodDecision::Mitigate(m) => Some(m.signature.to_string()),
        _ => None,
    });
    assert_eq!(
        text.as_deref(),
        Some("-d 10.10.10.10/32 -p tcp --sport 80 --tcp-flags SYN,RST,ACK SYN,ACK -j DROP")
    );
    let v6 = Signature {
        dst: "2001:db8::1".parse().unwrap(),
        protocol: FpProto::Icmp,
        sport: None,
        dport: None,
        flags: None,
    };
    assert_eq!(v6.to_string(), "-d 2001:db8::1/128 -p ipv6-icmp -j DROP");
}

#[test]
fn no_dominant_protocol_refuses_and_sources_are_never_banned_when_spoofed() {
    let mut f = floods("action = \"signature\"\nthreshold = 99");
    let half: Vec<PacketMeta> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                udp(src(i), 53, 9)
            } else {
                tcp(src(i), tcp_flag::SYN, 5, 9)
            }
        })
        .collect();
    let (out, _) = feed(&mut f, &half, T0, 100);
    assert_eq!(only_start(&out).refused, Some(Refusal::NoProtocol));

    let mut f = floods("protocol = \"tcp\"\ntcp_flags = \"syn\"\naction = \"sources\"");
    let spoofed: Vec<PacketMeta> = (0..500)
        .map(|i| tcp(src(i), tcp_flag::SYN, 1024, 25_565))
        .collect();
    let (out, _) = feed(&mut f, &spoofed, T0, 100);
    let a = only_start(&out);
    assert!(a.spoofed);
    assert!(matches!(a.refused, Some(Refusal::Spoofed { .. })));
    assert!(
        !out.iter()
            .any(|d| matches!(d, FloodDecision::BanSources { .. }))
    );
}

#[test]
fn sources_bans_the_real_hosts_that_carry_it() {
    let mut f = floods("protocol = \"udp\"\naction = \"sources\"");
    // Three reflectors carry it; a hundred hosts send one packet each.
    let mut packets: Vec<PacketMeta> = (0..300).map(|i| udp(src(i % 3), 53, 7000)).collect();
    packets.extend((0..100).map(|i| udp(src(1000 + i), 53, 7000)));
    let (out, _) = feed(&mut f, &packets, T0, 100);
    let a = only_start(&out);
    assert!(!a.spoofed);
    assert_eq!(a.action, FloodAction::Sources);
    let banned: Vec<IpAddr> = out
        .iter()
        .filter_map(|d| match d {
            FloodDecision::BanSources { sources, .. } => Some(sources.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        banned.contains(&src(0)) && banned.contains(&src(2)),
        "{banned:?}"
    );
    assert!(
        !banned.contains(&src(1050)),
        "one packet of several hundred is under 1%"
    );
}

#[test]
fn our_own_packets_are_never_counted_and_other_destinations_are_ignored() {
    let protected = vec!["10.10.10.10/32".parse().unwrap()];
    let mut f = Floods::new(&config(&detector("protocol = \"udp\"")), protected);
    let victim: IpAddr = VICTIM.parse().unwrap();
    let outbound: Vec<PacketMeta> = (0..500)
        .map(|i| PacketMeta {
            src: victim,
            dst: src(i),
            ..udp(victim, 53, 40_000)
        })
        .collect();
    let elsewhere: Vec<PacketMeta> = (0..500)
        .map(|i| PacketMeta {
            dst: src(9),
            ..udp(src(i), 53, 40_000)
        })
        .collect();
    let (mut out, _) = feed(&mut f, &outbound, T0, 100);
    out.extend(feed(&mut f, &elsewhere, T0 + SEC, 100).0);
    assert!(out.is_empty(), "{out:#?}");
    assert_eq!(f.tracked(), 0);
}

#[test]
fn total_scope_adds_every_destination_up() {
    let mut f = floods("protocol = \"udp\"\nscope = \"total\"");
    let spread: Vec<PacketMeta> = (0..101)
        .map(|i| PacketMeta {
            dst: IpAddr::V4(Ipv4Addr::new(10, 10, 10, (i % 50) as u8)),
            ..udp(src(i), 53, 7000)
        })
        .collect();
    let (out, _) = feed(&mut f, &spread, T0, 100);
    assert_eq!(only_start(&out).target, Target::Total);
    assert_eq!(f.tracked(), 1);
}

#[test]
fn memory_stays_bounded_under_any_number_of_targets_and_sources() {
    let mut f = floods("protocol = \"udp\"");
    let mut out = Vec::new();
    for i in 0..200_000u32 {
        let t = Timestamp(T0 + u64::from(i));
        let p = PacketMeta {
            dst: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            ..udp(src(i), 53, 7000)
        };
        f.observe(&p, t, t, &mut out);
    }
    assert!(out.is_empty());
    assert_eq!(f.tracked(), MAX_TARGETS);
    assert!(f.untracked() > 0);
    assert!(f.memory_bytes() < 5 << 20, "{}", f.memory_bytes());
    // Once idle they are swept and a new target gets a slot.
    let later = Timestamp(T0 + 10 * SEC);
    let p = udp(src(1), 53, 7000);
    f.observe(&p, later, later, &mut out);
    assert!(f.tracked() < 10, "{}", f.tracked());
}

#[test]
fn a_reload_keeps_unchanged_detectors_and_ends_attacks_of_changed_ones() {
    let text = detector("protocol = \"udp\"\naction = \"signature\"");
    let mut f = Floods::new(&config(&text), Vec::new());
    let flood: Vec<PacketMeta> = (0..200).map(|i| udp(src(i), 4500, 9)).collect();
    let (_, last) = feed(&mut f, &flood, T0, 100);
    let mut out = Vec::new();
    f.reconfigure(&config(&text), last, &mut out);
    assert!(out.is_empty());
    assert_eq!(f.attacks(last).len(), 1);
    f.reconfigure(
        &config(&text.replace("threshold = 100", "threshold = 50")),
        last,
        &mut out,
    );
    assert!(matches!(out[0], FloodDecision::Unmitigate(_)));
    assert!(matches!(out[1], FloodDecision::AttackEnd(_)));
    assert!(f.attacks(last).is_empty());
}

#[test]
fn explain_shows_each_detector_toward_an_address() {
    let mut f = floods("protocol = \"udp\"");
    let (_, last) = feed(
        &mut f,
        &(0..40).map(|i| udp(src(i), 53, 9)).collect::<Vec<_>>(),
        T0,
        100,
    );
    let x = f.explain(VICTIM.parse().unwrap(), last);
    assert_eq!(x.len(), 1);
    assert_eq!((x[0].value, x[0].threshold), (40, 100));
    assert_eq!(f.explain(src(1), last)[0].value, 0);
}

#[test]
fn syn_sources_that_complete_handshakes_are_not_spoofed() {
    let body = "protocol = \"tcp\"\ntcp_flags = \"syn\"\naction = \"sources\"\nthreshold = 400";
    // Each client sends its SYN, then (after our SYN-ACK) a bare ACK: real hosts.
    let mut f = floods(body);
    let mut packets = Vec::new();
    for i in 0..600 {
        packets.push(tcp(src(i), tcp_flag::SYN, 40_000, 443));
        packets.push(tcp(src(i), tcp_flag::ACK, 40_000, 443));
    }
    let (out, _) = feed(&mut f, &packets, T0, 100);
    let a = only_start(&out);
    assert!(!a.spoofed, "{a:#?}");
    assert_eq!(a.action, FloodAction::Sources);
    // The same SYNs with no ACK ever: spoofed, and the sources action is refused.
    let mut f = floods(body);
    let syns: Vec<PacketMeta> = packets
        .iter()
        .filter(|p| p.tcp_flags == tcp_flag::SYN)
        .copied()
        .collect();
    let (out, _) = feed(&mut f, &syns, T0, 100);
    let a = only_start(&out);
    assert!(a.spoofed);
    assert!(matches!(a.refused, Some(Refusal::Spoofed { .. })));
}

#[test]
fn fingerprint_counts_start_at_a_64th_of_the_threshold() {
    // Threshold 6400: counts start with the 100th packet of the window.
    let mut f = floods("protocol = \"udp\"\nthreshold = 6400");
    let mut packets: Vec<PacketMeta> = (0..99).map(|i| udp(src(i), 53, 9)).collect();
    packets.extend((0..7000).map(|i| udp(src(i), 4500, 9)));
    let (out, _) = feed(&mut f, &packets, T0, 100);
    let fp = &only_start(&out).fingerprint;
    assert_eq!(fp.packets, 6401 - 99);
    let sport = fp.src_port.expect("a port");
    assert_eq!((sport.value, sport.count, sport.of), (4500, 6302, 6302));
    // A target that never gets that busy holds no counts.
    let mut quiet = floods("protocol = \"udp\"\nthreshold = 6400");
    feed(&mut quiet, &packets[..50], T0, 100);
    assert!(quiet.memory_bytes() < 200_000, "{}", quiet.memory_bytes());
    assert!(quiet.table.entries.iter().all(|e| e.cells.is_none()));
}

/// A route taken by one detector goes straight to it, one taken by none is idle, and a
/// route that must do more (two detectors, bare ACKs, protected addresses) takes the loop.
#[test]
fn routes_go_to_their_one_detector_to_the_loop_or_nowhere() {
    let two = format!(
        "{}{}",
        detector("protocol = \"tcp\"\ntcp_flags = \"syn\""),
        detector("protocol = \"tcp\"").replace("name = \"d\"", "name = \"e\"")
    );
    let mut f = Floods::new(&config(&two), Vec::new());
    let (syn, synack, udp_route) = (0, 1, 6);
    assert_eq!(f.single[syn], 0, "two detectors take SYNs");
    assert_eq!(f.single[synack], 2, "only the second takes SYN-ACKs");
    assert_eq!(f.single[ACK_CLASS], 0, "bare ACKs may feed a watch");
    assert_eq!(f.idle_routes >> udp_route & 1, 1);
    assert_eq!(f.idle_routes >> ACK_CLASS & 1, 0);
    // Both detectors count a SYN flood, the second alone a SYN-ACK one and an ACK one.
    let to =
        |flags: u8| -> Vec<PacketMeta> { (0..101).map(|i| tcp(src(i), flags, 1000, 80)).collect() };
    let (out, _) = feed(&mut f, &to(tcp_flag::SYN), T0, 10);
    assert_eq!(starts(&out).len(), 2, "{out:#?}");
    let rules = |out: &[FloodDecision]| -> Vec<String> {
        starts(out).iter().map(|a| a.rule.to_string()).collect()
    };
    for flags in [tcp_flag::SYN | tcp_flag::ACK, tcp_flag::ACK] {
        let mut g = Floods::new(&config(&two), Vec::new());
        let (out, _) = feed(&mut g, &to(flags), T0, 10);
        assert_eq!(rules(&out), ["e"], "{flags:#x}");
    }
    // Protected addresses: every route takes the loop (our own packets teach ports).
    f.set_protected(&["10.10.10.10/32".parse().unwrap()]);
    assert_eq!((f.single, f.idle_routes), ([0; ROUTE_SLOTS], 0));
    f.set_protected(&[]);
    assert_eq!(f.single[synack], 2);
}
