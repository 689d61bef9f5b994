//! Unit tests of the policy engine: windows through the engine, aggregation, allowlist, local
//! addresses, escalation, extension, caps. Time is moved by hand; nothing sleeps.

use super::admin::RefuseReason;
use super::*;
use crate::config::*;
use crate::engine::bans::ActiveBan;
use crate::engine::sources::SourceKey;
use crate::packet::{Proto, tcp_flag};
use std::path::PathBuf;

const MS: u64 = 1000;
const SEC: u64 = 1_000_000;

pub(super) fn rule(name: &str, metric: Metric, threshold: u64, window_ms: u64) -> Rule {
    Rule {
        name: name.into(),
        protocol: Protocol::Any,
        tcp_flags: None,
        dst_ports: None,
        metric,
        threshold,
        window: Duration::from_millis(window_ms),
        ban: None,
        aggregate_v4: 32,
        aggregate_v6: 128,
        skip_replies: matches!(metric, Metric::DstPorts | Metric::DstAddrs),
        ban_verified_peers: false,
        mode: crate::config::RuleMode::Enforce,
        exempt: Vec::new(),
    }
}

/// A packet rate, a port scan and a host sweep, bans of 300 ms: the config of the tests that
/// feed one engine in different ways and compare the decisions.
pub(super) fn rate_scan_sweep_config() -> Config {
    let mut c = config(vec![
        rule("p", Metric::Packets, 20, 1000),
        rule("scan", Metric::DstPorts, 15, 10_000),
        rule("sweep", Metric::DstAddrs, 15, 10_000),
    ]);
    c.enforce.ban = Duration::from_millis(300);
    c
}

pub(super) fn config(rules: Vec<Rule>) -> Config {
    Config {
        capture: CaptureConfig {
            interfaces: vec![],
            bpf_filter: None,
            snaplen: 128,
        },
        enforce: EnforceConfig {
            backend: crate::config::BackendChoice::Fixed(Backend::Iptables),
            chain: "AUTOBLOCK".into(),
            hooks: vec!["INPUT".into()],
            ban: Duration::from_secs(600),
            max_ban: Duration::from_secs(3600),
            repeat_window: Duration::from_secs(3600),
            repeat_multiplier: 2.0,
            max_active_bans: 100,
            max_new_bans_per_sec: 1000,
            keep_on_exit: true,
            dry_run: false,
            extend_while_active: true,
            check_interval: Duration::from_secs(10),
            priority: -10,
        },
        allow: AllowConfig {
            nets: vec![
                "127.0.0.0/8".parse().unwrap(),
                "192.0.2.0/28".parse().unwrap(),
            ],
        },
        limits: LimitsConfig {
            max_tracked_sources: 1000,
        },
        events: EventsConfig::default(),
        control: ControlConfig {
            socket: PathBuf::from("/tmp/x.sock"),
        },
        state: StateConfig {
            dir: PathBuf::from("/tmp"),
        },
        metrics: MetricsConfig::default(),
        cluster: ClusterConfig::default(),
        rules,
        floods: Vec::new(),
        warnings: Vec::new(),
    }
}

pub(super) fn syn(src: &str, dst: &str, port: u16) -> PacketMeta {
    PacketMeta {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto: Proto::Tcp,
        tcp_flags: tcp_flag::SYN,
        src_port: Some(40000),
        dst_port: Some(port),
        len: 60,
        fragment: false,
    }
}

pub(super) fn feed(
    e: &mut Engine,
    p: &PacketMeta,
    n: u64,
    start_us: u64,
    step_us: u64,
) -> Vec<Decision> {
    let mut out = Vec::new();
    for i in 0..n {
        e.observe(p, Timestamp(start_us + i * step_us), &mut out);
    }
    out
}

fn blocks(d: &[Decision]) -> Vec<String> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Block(v) => Some(v.key.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn exactly_the_threshold_does_not_fire_one_more_does() {
    let mut e = Engine::new(&config(vec![rule("p", Metric::Packets, 100, 1000)]), vec![]);
    let p = syn("203.0.113.7", "10.0.0.1", 80);
    assert!(feed(&mut e, &p, 100, 10 * SEC, MS).is_empty());
    let d = feed(&mut e, &p, 1, 10 * SEC + 100 * MS, 0);
    assert_eq!(blocks(&d), ["203.0.113.7"]);
    let Decision::Block(v) = &d[0] else { panic!() };
    assert_eq!((v.observed, v.threshold, v.offense), (101, 100, 1));
    assert_eq!(v.ban, Duration::from_secs(600));
    assert_eq!(v.until, Timestamp(10 * SEC + 100 * MS + 600 * SEC));
}

#[test]
fn a_burst_split_across_a_second_boundary_is_caught() {
    let mut e = Engine::new(&config(vec![rule("p", Metric::Packets, 100, 1000)]), vec![]);
    let p = syn("203.0.113.7", "10.0.0.1", 80);
    assert!(feed(&mut e, &p, 60, 4 * SEC + 900 * MS, MS).is_empty());
    let d = feed(&mut e, &p, 60, 5 * SEC, MS);
    assert_eq!(blocks(&d), ["203.0.113.7"]);
}

#[test]
fn filters_select_packets() {
    let mut r = rule("syn80", Metric::Packets, 5, 1000);
    r.protocol = Protocol::Tcp;
    r.tcp_flags = Some(TcpFlagsFilter::Syn);
    r.dst_ports = Some(vec![443, 80]);
    let mut e = Engine::new(&config(vec![r]), vec![]);
    let mut synack = syn("203.0.113.7", "10.0.0.1", 80);
    synack.tcp_flags = tcp_flag::SYN | tcp_flag::ACK;
    let other_port = syn("203.0.113.7", "10.0.0.1", 22);
    let mut udp = syn("203.0.113.7", "10.0.0.1", 80);
    udp.proto = Proto::Udp;
    udp.tcp_flags = 0;
    let mut frag = syn("203.0.113.7", "10.0.0.1", 80);
    frag.fragment = true;
    frag.dst_port = None;
    frag.tcp_flags = 0;
    for p in [synack, other_port, udp, frag] {
        assert!(feed(&mut e, &p, 50, SEC, MS).is_empty(), "{p:?}");
    }
    let d = feed(&mut e, &syn("203.0.113.7", "10.0.0.1", 443), 6, 2 * SEC, MS);
    assert_eq!(blocks(&d).len(), 1);
}

#[test]
fn port_scan_and_sweep_count_distinct_values() {
    let mut e = Engine::new(
        &config(vec![
            rule("scan", Metric::DstPorts, 20, 10_000),
            rule("sweep", Metric::DstAddrs, 20, 10_000),
        ]),
        vec![],
    );
    // Same port, same host, many times: neither fires.
    assert!(feed(&mut e, &syn("198.51.100.1", "10.0.0.1", 80), 500, SEC, MS).is_empty());
    let mut out = Vec::new();
    for port in 0..21u16 {
        e.observe(
            &syn("198.51.100.2", "10.0.0.1", port),
            Timestamp(SEC + u64::from(port)),
            &mut out,
        );
    }
    for host in 0..21u8 {
        let dst = format!("10.0.1.{host}");
        e.observe(&syn("198.51.100.3", &dst, 22), Timestamp(2 * SEC), &mut out);
    }
    let got: Vec<(String, String)> = out
        .iter()
        .filter_map(|d| match d {
            Decision::Block(v) => Some((v.key.to_string(), v.rule.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        [
            ("198.51.100.2".to_string(), "scan".to_string()),
            ("198.51.100.3".to_string(), "sweep".to_string())
        ]
    );
}

#[test]
fn replies_from_service_ports_are_not_a_port_scan() {
    let mut e = Engine::new(
        &config(vec![rule("scan", Metric::DstPorts, 20, 10_000)]),
        vec![],
    );
    let mut out = Vec::new();
    // A DNS server answering one client's queries from port 53 to 100 ephemeral ports.
    for port in 0..100u16 {
        let mut p = syn("198.51.100.53", "10.0.0.1", 30_000 + port);
        p.proto = Proto::Udp;
        p.src_port = Some(53);
        e.observe(&p, Timestamp(SEC + u64::from(port)), &mut out);
    }
    assert!(out.is_empty());
    // The same ports probed from an ephemeral source port are a scan.
    for port in 0..100u16 {
        let p = syn("198.51.100.54", "10.0.0.1", 30_000 + port);
        e.observe(&p, Timestamp(SEC + u64::from(port)), &mut out);
    }
    assert_eq!(blocks(&out), ["198.51.100.54"]);
}

#[test]
fn sources_in_one_v6_prefix_are_one_offender() {
    let mut r = rule("p", Metric::Packets, 100, 1000);
    r.aggregate_v6 = 64;
    let mut e = Engine::new(&config(vec![r]), vec![]);
    let mut out = Vec::new();
    for i in 0..101u32 {
        let src = format!("2001:db8:bad:1:{:x}::{:x}", i % 7, i);
        e.observe(
            &syn(&src, "2001:db8::1", 80),
            Timestamp(SEC + u64::from(i)),
            &mut out,
        );
    }
    assert_eq!(blocks(&out), ["2001:db8:bad:1::/64"]);
}

#[test]
fn allowlisted_sources_are_suppressed_once_not_blocked() {
    let mut e = Engine::new(&config(vec![rule("p", Metric::Packets, 10, 1000)]), vec![]);
    // 127.0.0.1 is allowlisted too, but a martian source on the wire: never counted at all.
    assert!(feed(&mut e, &syn("127.0.0.1", "127.0.0.1", 80), 1000, SEC, MS).is_empty());
    let d = feed(&mut e, &syn("192.0.2.5", "10.0.0.1", 80), 1000, SEC, MS);
    assert!(blocks(&d).is_empty());
    let reasons: Vec<_> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Suppressed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [SuppressReason::Allowlist]);
}

#[test]
fn a_prefix_that_contains_an_allowlisted_net_is_not_blocked() {
    let mut r = rule("p", Metric::Packets, 10, 1000);
    r.aggregate_v4 = 24;
    let mut e = Engine::new(&config(vec![r]), vec![]);
    // 192.0.2.200 is outside 192.0.2.0/28, but its /24 contains it.
    let d = feed(&mut e, &syn("192.0.2.200", "10.0.0.1", 80), 20, SEC, MS);
    assert!(matches!(
        d.as_slice(),
        [Decision::Suppressed {
            reason: SuppressReason::Allowlist,
            ..
        }]
    ));
}

#[test]
fn local_sources_are_never_counted_and_local_prefixes_never_blocked() {
    let mut r = rule("p", Metric::Packets, 10, 1000);
    r.aggregate_v4 = 24;
    let local = vec!["10.9.9.9/32".parse().unwrap()];
    let mut e = Engine::new(&config(vec![r]), local);
    assert!(feed(&mut e, &syn("10.9.9.9", "10.0.0.1", 80), 1000, SEC, MS).is_empty());
    assert_eq!(e.stats().local_packets, 1000);
    assert_eq!(e.stats().tracked_sources, 0);
    let d = feed(&mut e, &syn("10.9.9.1", "10.0.0.1", 80), 20, SEC, MS);
    assert!(matches!(
        d.as_slice(),
        [Decision::Suppressed {
            reason: SuppressReason::Local,
            ..
        }]
    ));
}

#[test]
fn repeat_offenders_get_longer_bans_up_to_max_ban() {
    let mut c = config(vec![rule("p", Metric::Packets, 10, 1000)]);
    c.enforce.ban = Duration::from_secs(60);
    c.enforce.max_ban = Duration::from_secs(200);
    c.enforce.repeat_window = Duration::from_secs(3600);
    let mut e = Engine::new(&c, vec![]);
    let p = syn("203.0.113.9", "10.0.0.1", 80);
    let mut bans = Vec::new();
    let mut t = SEC;
    for _ in 0..4 {
        let d = feed(&mut e, &p, 11, t, MS);
        for x in &d {
            if let Decision::Block(v) = x {
                bans.push((v.offense, v.ban.as_secs()));
            }
        }
        // Let the ban expire.
        t += 300 * SEC;
        let mut out = Vec::new();
        e.tick(Timestamp(t), &mut out);
        assert!(matches!(out.as_slice(), [Decision::Unblock { .. }]));
    }
    assert_eq!(bans, [(1, 60), (2, 120), (3, 200), (4, 200)]);
    // Past the repeat window the count starts again.
    t += 3700 * SEC;
    let d = feed(&mut e, &p, 11, t, MS);
    assert!(matches!(&d[..], [Decision::Block(v)] if v.offense == 1 && v.ban.as_secs() == 60));
}

#[test]
fn a_banned_source_still_over_threshold_is_extended_then_unblocked() {
    let mut c = config(vec![rule("p", Metric::Packets, 10, 1000)]);
    c.enforce.ban = Duration::from_secs(20);
    let mut e = Engine::new(&c, vec![]);
    let p = syn("203.0.113.9", "10.0.0.1", 80);
    // 30 s of 100 packets/s.
    let d = feed(&mut e, &p, 3000, SEC, 10 * MS);
    assert_eq!(blocks(&d).len(), 1);
    let extends: Vec<_> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Extend(v) => Some(v.until),
            _ => None,
        })
        .collect();
    // Extended in 2 s steps (a tenth of 20 s), about 15 times in 29 s.
    assert!((13..=16).contains(&extends.len()), "{}", extends.len());
    let last = *extends.last().unwrap();
    assert_eq!(e.bans().next_deadline(), Some(last));
    let mut out = Vec::new();
    e.tick(last, &mut out);
    assert!(matches!(&out[..], [Decision::Unblock { ban, .. }] if ban.peak >= 100));
}

#[test]
fn a_rule_with_a_longer_ban_upgrades_an_active_one() {
    let mut short = rule("burst", Metric::Packets, 10, 1000);
    short.ban = Some(Duration::from_secs(60));
    let flood = rule("flood", Metric::Packets, 100, 1000);
    let mut e = Engine::new(&config(vec![short, flood]), vec![]);
    let d = feed(&mut e, &syn("203.0.113.9", "10.0.0.1", 80), 101, SEC, MS);
    let kinds: Vec<(String, u64)> = d
        .iter()
        .map(|d| match d {
            Decision::Block(v) => (format!("block:{}", v.rule), v.ban.as_secs()),
            Decision::Extend(v) => (format!("extend:{}", v.rule), v.ban.as_secs()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("block:burst".to_string(), 60),
            ("extend:flood".to_string(), 600)
        ]
    );
    assert_eq!(
        e.bans().next_deadline(),
        Some(Timestamp(SEC + 100 * MS + 600 * SEC))
    );
}

#[test]
fn the_ban_cap_holds() {
    let mut c = config(vec![rule("p", Metric::Packets, 5, 1000)]);
    c.enforce.max_active_bans = 2;
    let mut e = Engine::new(&c, vec![]);
    let mut out = Vec::new();
    for i in 0..5 {
        out.extend(feed(
            &mut e,
            &syn(&format!("203.0.113.{i}"), "10.0.0.1", 80),
            6,
            SEC,
            MS,
        ));
    }
    assert_eq!(blocks(&out).len(), 2);
    let caps = out
        .iter()
        .filter(|d| {
            matches!(
                d,
                Decision::Suppressed {
                    reason: SuppressReason::Cap,
                    ..
                }
            )
        })
        .count();
    assert_eq!(caps, 3);
}

#[test]
fn a_spoofed_flood_keeps_memory_flat_and_blocks_nobody() {
    let mut c = config(vec![rule("p", Metric::Packets, 5, 1000)]);
    c.limits.max_tracked_sources = 1000;
    let mut e = Engine::new(&c, vec![]);
    let mut out = Vec::new();
    let mut peak = 0;
    for i in 0..50_000u32 {
        let p = syn(
            &std::net::Ipv4Addr::from(0x0b00_0000 + i).to_string(),
            "10.0.0.1",
            80,
        );
        e.observe(&p, Timestamp(SEC + u64::from(i) * 20), &mut out);
        e.observe(&p, Timestamp(SEC + u64::from(i) * 20 + 1), &mut out);
        peak = peak.max(e.memory_bytes());
    }
    assert!(out.is_empty());
    let s = e.stats();
    assert!(s.tracked_sources <= 1000);
    assert!(s.untracked > 0 || s.evicted > 0);
    assert!(peak < 1_000_000, "peak {peak} bytes for 1000 sources");
}

#[test]
fn time_running_backwards_or_jumping_years_is_safe() {
    let mut e = Engine::new(&config(vec![rule("p", Metric::Packets, 10, 1000)]), vec![]);
    let p = syn("203.0.113.7", "10.0.0.1", 80);
    let mut out = Vec::new();
    for t in [u64::MAX - 1, SEC, u64::MAX / 3, 5, 10 * 365 * 86_400 * SEC] {
        for _ in 0..5 {
            e.observe(&p, Timestamp(t), &mut out);
        }
        e.tick(Timestamp(t), &mut out);
    }
    assert!(
        blocks(&out).is_empty(),
        "5 packets per far-apart instant never add up"
    );
}

#[test]
fn new_bans_are_rate_limited() {
    let mut c = config(vec![rule("p", Metric::Packets, 2, 1000)]);
    c.enforce.max_new_bans_per_sec = 3;
    let mut e = Engine::new(&c, vec![]);
    let mut out = Vec::new();
    for i in 0..10 {
        out.extend(feed(
            &mut e,
            &syn(&format!("203.0.113.{i}"), "10.0.0.1", 80),
            3,
            SEC,
            1,
        ));
    }
    assert_eq!(blocks(&out).len(), 3);
    let rate = out
        .iter()
        .filter(|d| {
            matches!(
                d,
                Decision::Suppressed {
                    reason: SuppressReason::Rate,
                    ..
                }
            )
        })
        .count();
    assert_eq!(rate, 7);
}

#[test]
fn manual_bans_respect_the_allowlist_unless_forced() {
    let mut e = Engine::new(
        &config(vec![rule("p", Metric::Packets, 10, 1000)]),
        vec!["10.9.9.9/32".parse().unwrap()],
    );
    let t = Timestamp(SEC);
    let allow = "127.0.0.1/32".parse().unwrap();
    assert_eq!(
        e.ban_manual(allow, None, "x", false, false, t),
        Err(RefuseReason::Allowlisted("127.0.0.0/8".parse().unwrap()))
    );
    let local = "10.9.9.0/24".parse().unwrap();
    assert!(matches!(
        e.ban_manual(local, None, "x", false, false, t),
        Err(RefuseReason::Local(_))
    ));
    assert!(e.ban_manual(allow, None, "x", true, false, t).is_ok());
    let d = e
        .ban_manual(
            "198.51.100.7/32".parse().unwrap(),
            Some(Duration::from_secs(30)),
            "abuse",
            false,
            false,
            t,
        )
        .unwrap();
    assert!(
        matches!(&d, ManualBan::Banned(Decision::Block(v)) if v.metric.is_none() && &*v.rule == "manual" && v.comment.as_deref() == Some("abuse"))
    );
    assert!(
        e.bans()
            .get(&SourceKey::new("198.51.100.7".parse().unwrap(), 32, 128))
            .is_some_and(|b| b.manual)
    );
    // Unban: an event; twice: nothing.
    let net = "198.51.100.7/32".parse().unwrap();
    assert!(matches!(
        e.unban(net, false, t),
        Unbanned::Removed(Decision::Unblock {
            reason: UnblockReason::Manual,
            ..
        })
    ));
    assert_eq!(e.unban(net, false, t), Unbanned::NotFound);
}

#[test]
fn adopted_bans_expire_like_any_other() {
    let mut e = Engine::new(&config(vec![rule("p", Metric::Packets, 10, 1000)]), vec![]);
    let key = SourceKey::new("203.0.113.50".parse().unwrap(), 32, 128);
    e.adopt(ActiveBan {
        key,
        until: Timestamp(100 * SEC),
        since: Timestamp(0),
        rule: Arc::from("syn-flood"),
        comment: None,
        offense: 2,
        duration: Duration::from_secs(100),
        peak: 0,
        manual: false,
        origin: None,
    });
    // Still over threshold while adopted: extended, not blocked twice.
    assert_eq!(e.bans().len(), 1);
    let d = feed(
        &mut e,
        &syn("203.0.113.50", "10.0.0.1", 80),
        20,
        50 * SEC,
        MS,
    );
    assert_eq!(e.bans().len(), 1, "{d:?}");
    assert!(blocks(&d).is_empty());
    let mut out = Vec::new();
    // The rule's own ban for a second offense (2 x 600 s) replaced the adopted 100 s.
    e.tick(Timestamp(1249 * SEC), &mut out);
    assert!(out.is_empty());
    e.tick(Timestamp(1251 * SEC), &mut out);
    assert!(
        matches!(
            &out[..],
            [Decision::Unblock {
                reason: UnblockReason::Expired,
                ..
            }]
        ),
        "{out:?}"
    );
}

#[test]
fn explain_reports_window_values_ban_and_history() {
    let mut r = rule("p", Metric::Packets, 10, 1000);
    r.aggregate_v4 = 24;
    let mut e = Engine::new(
        &config(vec![r, rule("scan", Metric::DstPorts, 50, 10_000)]),
        vec![],
    );
    feed(&mut e, &syn("203.0.113.5", "10.0.0.1", 80), 5, SEC, MS);
    feed(&mut e, &syn("203.0.113.6", "10.0.0.1", 81), 8, SEC, MS);
    let x = e.explain("203.0.113.5".parse().unwrap(), Timestamp(SEC + 20 * MS));
    assert_eq!(x.rules.len(), 2);
    assert_eq!(
        (x.rules[0].value, x.rules[0].key.to_string().as_str()),
        (13, "203.0.113.0/24")
    );
    assert!(
        x.ban
            .as_ref()
            .is_some_and(|b| b.key.to_string() == "203.0.113.0/24")
    );
    assert_eq!(x.rules[1].value, 1);
    assert_eq!(x.offenses, 1);
    assert!(x.allowlisted.is_none() && !x.local);
}

#[test]
fn reload_keeps_counters_bans_and_history_when_windows_are_unchanged() {
    let c = config(vec![rule("p", Metric::Packets, 100, 1000)]);
    let mut e = Engine::new(&c, vec![]);
    let p = syn("203.0.113.7", "10.0.0.1", 80);
    assert!(feed(&mut e, &p, 50, SEC, MS).is_empty());
    // Lower the threshold: the 50 already counted still count.
    let mut c2 = config(vec![rule("p", Metric::Packets, 55, 1000)]);
    c2.rules[0].name = "renamed".into();
    e.reconfigure(&c2, Timestamp(SEC), &mut Vec::new());
    let d = feed(&mut e, &p, 6, SEC + 100 * MS, MS);
    assert!(matches!(&d[..], [Decision::Block(v)] if &*v.rule == "renamed" && v.observed == 56));
    // A different window starts that group afresh; the ban stays.
    e.reconfigure(
        &config(vec![rule("p", Metric::Packets, 55, 2000)]),
        Timestamp(SEC),
        &mut Vec::new(),
    );
    assert_eq!(e.stats().tracked_sources, 0);
    assert_eq!(e.stats().active_bans, 1);
    let saved = e.offenses();
    assert_eq!(saved.len(), 1);
    let mut fresh = Engine::new(&c, vec![]);
    fresh.restore_offenses(&saved);
    let d = feed(&mut fresh, &p, 101, 2 * SEC, MS);
    assert!(matches!(&d[..], [Decision::Block(v)] if v.offense == 2));
}

#[test]
fn a_batch_decides_exactly_like_packet_by_packet() {
    let c = rate_scan_sweep_config();
    let local = vec!["10.9.9.9/32".parse().unwrap()];
    let mut one = Engine::new(&c, local.clone());
    let mut batch = Engine::new(&c, local);
    let mut items = Vec::new();
    for i in 0..5000u32 {
        let src = format!("203.0.113.{}", i % 7);
        let src = if i % 13 == 0 {
            "10.9.9.9".to_string()
        } else {
            src
        };
        let dst = format!("10.0.{}.{}", (i / 250) % 4, i % 250);
        let p = syn(&src, &dst, (i % 40) as u16 + 1);
        items.push((p, Timestamp(SEC + u64::from(i) * 997)));
    }
    let mut a = Vec::new();
    for (p, ts) in &items {
        one.observe(p, *ts, &mut a);
    }
    let mut b = Vec::new();
    for chunk in items.chunks(256) {
        batch.observe_batch(chunk, &mut b);
    }
    assert!(a.iter().any(|d| matches!(d, Decision::Block(_))));
    assert!(a.iter().any(|d| matches!(d, Decision::Unblock { .. })));
    assert_eq!(a, b);
    assert_eq!(one.stats().local_packets, batch.stats().local_packets);
}

// Found by a second read of the engine (clock steps, stalls, reloads, floods).

/// R1: `--force` must never override the local-address refusal (doc: "never overridden").
#[test]
fn force_does_not_override_local() {
    let mut e = Engine::new(
        &config(vec![rule("p", Metric::Packets, 10, 1000)]),
        vec!["10.9.9.9/32".parse().unwrap()],
    );
    let r = e.ban_manual(
        "0.0.0.0/0".parse().unwrap(),
        None,
        "x",
        true,
        false,
        Timestamp(SEC),
    );
    assert!(matches!(r, Err(RefuseReason::Local(_))), "got {r:?}");
}

/// After a backward clock reset (> 60 s) the new-ban limiter refills on the new time (review
/// R2: it once stayed frozen until time caught up, suppressing every new offender as `rate`).
#[test]
fn the_new_ban_limit_refills_after_a_backward_clock_reset() {
    let mut c = config(vec![rule("p", Metric::Packets, 2, 1000)]);
    c.enforce.max_new_bans_per_sec = 3;
    c.enforce.max_active_bans = 10_000;
    let mut e = Engine::new(&c, vec![]);
    let mut out = Vec::new();
    // Burst at t = 1000 s uses the bucket.
    for i in 0..3 {
        out.extend(feed(
            &mut e,
            &syn(&format!("203.0.113.{i}"), "10.0.0.1", 80),
            3,
            1000 * SEC,
            1,
        ));
    }
    assert_eq!(blocks(&out).len(), 3);
    out.clear();
    // Clock steps back 10 minutes; then one new attacker per second for 60 s.
    for s in 0..60u64 {
        let t = 400 * SEC + s * SEC;
        out.extend(feed(
            &mut e,
            &syn(&format!("198.51.100.{s}"), "10.0.0.1", 80),
            3,
            t,
            1,
        ));
        e.tick(Timestamp(t), &mut out);
    }
    let n = blocks(&out).len();
    assert!(
        n >= 50,
        "only {n} of 60 new attackers blocked after the clock reset"
    );
}

/// In the daemon the wall-clock tick moves `now` ahead of queued packets; after a 1 s stall of
/// the engine thread the backlog must not land in one bucket and trip a 150 pkt/s rule with a
/// steady 100 pkt/s source (review R3a: it once did).
#[test]
fn a_backlog_after_a_stall_does_not_trip_a_rate_rule() {
    let mut e = Engine::new(&config(vec![rule("p", Metric::Packets, 150, 1000)]), vec![]);
    let p = syn("203.0.113.9", "10.0.0.1", 80);
    let mut out = Vec::new();
    // Packets every 10 ms; batches of 1 packet; a tick (wall = ts + 1 ms) every 200 ms,
    // as engine_loop does. Between 10 s and 11 s the engine thread is stalled (e.g. fsync in
    // save()); the batches queue up and are processed right after the wall tick at 11 s.
    let pkt = |i: u64| (p, Timestamp(i * 10 * MS));
    for i in 0..1000u64 {
        e.observe_batch(&[pkt(i)], &mut out);
        if i % 20 == 0 {
            e.tick(Timestamp(i * 10 * MS + MS), &mut out);
        }
    }
    // Stall: 100 packets (10.00 s .. 10.99 s) queued; the engine wakes at 11.0 s.
    e.observe_batch(&[pkt(1000)], &mut out);
    e.tick(Timestamp(11 * SEC), &mut out);
    for i in 1001..1100u64 {
        e.observe_batch(&[pkt(i)], &mut out);
    }
    // Then on time again for another second.
    for i in 1100..1200u64 {
        e.observe_batch(&[pkt(i)], &mut out);
        if i % 20 == 0 {
            e.tick(Timestamp(i * 10 * MS + MS), &mut out);
        }
    }
    assert!(
        blocks(&out).is_empty(),
        "a steady 100 pkt/s source was blocked by a 150/s rule: {:?}",
        out.first()
    );
}

/// A 30 s NTP step back does not pile 30 s of packets into one bucket (review R3b: holding time
/// at the latest value once did).
#[test]
fn a_small_backward_clock_step_does_not_inflate_rates() {
    let mut e = Engine::new(&config(vec![rule("p", Metric::Packets, 150, 1000)]), vec![]);
    let p = syn("203.0.113.9", "10.0.0.1", 80);
    let mut out = Vec::new();
    // 100 pkt/s for 20 s, then the wall clock steps back 30 s and traffic goes on at 100/s.
    for i in 0..2000u64 {
        e.observe(&p, Timestamp(100 * SEC + i * 10 * MS), &mut out);
    }
    for i in 0..500u64 {
        e.observe(&p, Timestamp(90 * SEC + i * 10 * MS), &mut out);
    }
    assert!(
        blocks(&out).is_empty(),
        "steady 100/s blocked by a 150/s rule after a 30 s clock step"
    );
}

/// A source added to the allowlist by a reload is unbanned at once and never extended while it
/// sends (review R4: it once kept its ban, extended by fire() without looking at the
/// allowlist).
#[test]
fn a_source_allowlisted_by_reload_is_unbanned_and_never_extended() {
    let mut c = config(vec![rule("p", Metric::Packets, 10, 1000)]);
    c.enforce.ban = Duration::from_secs(20);
    let mut e = Engine::new(&c, vec![]);
    let p = syn("198.51.100.7", "10.0.0.1", 80);
    let d = feed(&mut e, &p, 20, SEC, 10 * MS);
    assert_eq!(blocks(&d).len(), 1);
    c.allow.nets.push("198.51.100.7/32".parse().unwrap());
    let mut lifted = Vec::new();
    e.reconfigure(&c, Timestamp(2 * SEC), &mut lifted);
    assert!(matches!(
        &lifted[..],
        [Decision::Unblock {
            reason: UnblockReason::Protected,
            ..
        }]
    ));
    // 60 s more of the (now allowlisted) source's traffic.
    let d = feed(&mut e, &p, 6000, 2 * SEC, 10 * MS);
    let extends = d
        .iter()
        .filter(|d| matches!(d, Decision::Extend(_)))
        .count();
    let key = SourceKey::new("198.51.100.7".parse().unwrap(), 32, 128);
    assert!(
        e.bans().get(&key).is_none() && extends == 0,
        "allowlisted source still banned ({extends} extensions, until {:?})",
        e.bans().get(&key).map(|b| b.until)
    );
}

/// The `quiet` map (suppressions already reported) stays bounded under a flood of distinct
/// offenders past the rate limit (review R5: it once grew by one entry per offender for a
/// whole ban length).
#[test]
fn quiet_map_stays_bounded_under_a_flood_of_distinct_offenders() {
    let mut c = config(vec![rule("p", Metric::Packets, 2, 1000)]);
    c.limits.max_tracked_sources = 1000;
    c.enforce.max_new_bans_per_sec = 1;
    let mut e = Engine::new(&c, vec![]);
    let mut out = Vec::new();
    // 50k distinct sources, 3 packets each, spread over 100 s (the table evicts them after 1 s).
    for i in 0..50_000u32 {
        let src = std::net::Ipv4Addr::from(0x0b00_0000 + i).to_string();
        let t = SEC + u64::from(i) * 2 * MS;
        out.extend(feed(&mut e, &syn(&src, "10.0.0.1", 80), 3, t, 1));
        out.clear();
    }
    assert!(e.stats().tracked_sources <= 1000);
    assert!(
        e.quiet.len() <= 10_000,
        "quiet holds {} entries",
        e.quiet.len()
    );
}

#[test]
fn a_clock_set_back_keeps_each_ban_s_remaining_time() {
    let mut c = config(vec![rule("p", Metric::Packets, 10, 1000)]);
    c.enforce.ban = Duration::from_secs(600);
    let mut e = Engine::new(&c, vec![]);
    let t = 10_000 * SEC;
    assert_eq!(
        blocks(&feed(
            &mut e,
            &syn("203.0.113.9", "10.0.0.1", 80),
            11,
            t,
            MS
        ))
        .len(),
        1
    );
    // The wall clock steps back one hour, 100 s later: 500 s of the ban are left, as in the
    // kernel (ipset timeouts are relative).
    let back = t + 100 * SEC - 3600 * SEC;
    let mut out = Vec::new();
    e.tick(Timestamp(t + 100 * SEC), &mut out);
    e.tick(Timestamp(back), &mut out);
    assert!(out.is_empty());
    let until = e.bans().next_deadline().expect("still banned");
    let left = until.since(Timestamp(back)).as_secs();
    assert!((499..=500).contains(&left), "{left} s left");
    e.tick(Timestamp(back + 501 * SEC), &mut out);
    assert!(matches!(&out[..], [Decision::Unblock { .. }]));
}

#[test]
fn reload_applies_max_tracked_sources_to_the_tables_it_keeps() {
    let c = config(vec![rule("p", Metric::Packets, 100, 1000)]);
    let mut e = Engine::new(&c, vec![]);
    let mut out = Vec::new();
    let mut see = |e: &mut Engine, from: u32, to: u32| {
        for i in from..to {
            let src = std::net::Ipv4Addr::from(0x0b00_0000 + i).to_string();
            e.observe(
                &syn(&src, "10.0.0.1", 80),
                Timestamp(SEC + u64::from(i)),
                &mut out,
            );
        }
    };
    see(&mut e, 0, 10);
    let mut c2 = c.clone();
    c2.limits.max_tracked_sources = 20;
    e.reconfigure(&c2, Timestamp(SEC), &mut Vec::new());
    assert_eq!(e.stats().tracked_sources, 10, "counters kept");
    see(&mut e, 10, 50);
    assert_eq!(e.stats().tracked_sources, 20, "the new bound holds");
    c2.limits.max_tracked_sources = 30;
    e.reconfigure(&c2, Timestamp(SEC), &mut Vec::new());
    see(&mut e, 50, 100);
    assert_eq!(e.stats().tracked_sources, 30, "raised too");
}
