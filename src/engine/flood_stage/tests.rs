//! A detached [`FloodStage`] gives the engine's exact decisions, in the same order, as the
//! detectors counted inside the engine: attacks of every action (signature, sources bans
//! and their expiry, alert), quiet ends, a clock reset, any batch sizes.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::engine::Decision;
use crate::engine::flood::FloodDecision;
use crate::packet::{Proto, tcp_flag};
use crate::test_rng::next;

const SEC: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * SEC;

const CONFIG: &str = "[enforce]\nmax_new_bans_per_sec = 1000\n
[[rule]]\nname = \"udp-src\"\nprotocol = \"udp\"\nmetric = \"packets\"\nthreshold = 400\nwindow = \"1s\"\nban = \"2s\"\n
[[flood]]\nname = \"ntp\"\nprotocol = \"udp\"\nsrc_ports = [123]\nmetric = \"packets\"\nthreshold = 50\nwindow = \"1s\"\naction = \"signature\"\nban = \"2s\"\n
[[flood]]\nname = \"dns\"\nprotocol = \"udp\"\nsrc_ports = [53]\nmetric = \"packets\"\nthreshold = 40\nwindow = \"1s\"\naction = \"sources\"\nban = \"3s\"\n
[[flood]]\nname = \"syn\"\nprotocol = \"tcp\"\ntcp_flags = \"syn\"\nmetric = \"packets\"\nthreshold = 60\nwindow = \"500ms\"\naction = \"alert\"\nban = \"1s\"\n";

fn engine() -> Engine {
    let config = crate::config::parse_str(CONFIG, std::path::Path::new("t.toml")).expect("valid");
    Engine::new(&config, Vec::new())
}

fn packet(rng: &mut u64, kind: u64) -> PacketMeta {
    let r = next(rng) >> 33;
    let (src, proto, flags, sport) = match kind {
        // Spoofed NTP answers: a new source nearly every packet.
        0 => (0x2800_0000 + (r as u32 & 0xffff), Proto::Udp, 0, 123),
        // DNS answers from five real resolvers.
        1 => (0x0808_0800 + (r % 5) as u32, Proto::Udp, 0, 53),
        // A SYN flood.
        2 => (
            0x3000_0000 + (r as u32 & 0xfff),
            Proto::Tcp,
            tcp_flag::SYN,
            40_000,
        ),
        // Ordinary traffic.
        _ => (
            0x0a00_0000 + (r % 300) as u32,
            Proto::Tcp,
            tcp_flag::ACK,
            443,
        ),
    };
    PacketMeta {
        src: IpAddr::V4(Ipv4Addr::from(src)),
        dst: IpAddr::V4(Ipv4Addr::from(0x0a0a_0a0a + (r % 3) as u32)),
        proto,
        tcp_flags: flags,
        src_port: Some(sport),
        dst_port: Some(1024 + (r % 50) as u16),
        len: 60 + (r % 1400) as u32,
        fragment: false,
    }
}

/// About a minute of traffic in phases (floods of each kind, quiet spells long enough for
/// attacks and bans to end), with a clock reset two minutes back in the middle.
fn traffic(seed: u64) -> Vec<(PacketMeta, Timestamp)> {
    let mut rng = seed;
    let mut t = T0;
    let mut out = Vec::new();
    for phase in 0..40u64 {
        if phase == 20 {
            t -= 120 * SEC;
        }
        let kind = next(&mut rng) % 5;
        let (count, step) = match kind {
            4 => (5, 900_000),
            _ => (100 + next(&mut rng) % 400, 2_000 + next(&mut rng) % 6_000),
        };
        for _ in 0..count {
            let k = if next(&mut rng).is_multiple_of(8) {
                3
            } else {
                kind
            };
            out.push((packet(&mut rng, k), Timestamp(t)));
            t += step;
        }
    }
    out
}

/// Batches of random sizes (1 to 700 packets).
fn batches(items: &[(PacketMeta, Timestamp)], seed: u64) -> Vec<&[(PacketMeta, Timestamp)]> {
    let mut rng = seed;
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let n = (1 + next(&mut rng) % 700) as usize;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

fn inside(items: &[&[(PacketMeta, Timestamp)]], end: Timestamp) -> Vec<Decision> {
    let mut e = engine();
    let mut out = Vec::new();
    for b in items {
        e.observe_batch(b, &mut out);
    }
    e.end_floods(end, EndReason::FileEnded, &mut out);
    out
}

fn detached(items: &[&[(PacketMeta, Timestamp)]], end: Timestamp) -> Vec<Decision> {
    let mut e = engine();
    let mut stage = e.detach_floods().expect("detectors");
    let mut out = Vec::new();
    let mut fed = Vec::new();
    for b in items {
        stage.observe_batch(b, &mut fed);
        e.feed_floods(fed.drain(..));
        e.observe_batch(b, &mut out);
    }
    let ended = stage.end_all(end, EndReason::FileEnded);
    e.apply_floods(end, ended, &mut out);
    out
}

fn count(out: &[Decision], what: fn(&Decision) -> bool) -> usize {
    out.iter().filter(|d| what(d)).count()
}

#[test]
fn a_detached_stage_decides_exactly_as_the_engine() {
    for seed in [1u64, 7, 42, 1_000_003] {
        let items = traffic(seed);
        let end = items.last().map(|(_, t)| *t).expect("traffic");
        let split = batches(&items, seed ^ 0x5555);
        let a = inside(&split, end);
        let b = detached(&split, end);
        assert_eq!(a, b, "seed {seed}");
        // The stream exercises every path (a test of nothing would pass as well).
        let attacks = count(&a, |d| {
            matches!(d, Decision::Flood(FloodDecision::Attack(_)))
        });
        let ends = count(&a, |d| {
            matches!(d, Decision::Flood(FloodDecision::AttackEnd(_)))
        });
        let mitigations = count(&a, |d| {
            matches!(d, Decision::Flood(FloodDecision::Mitigate(_)))
        });
        let blocks = count(&a, |d| matches!(d, Decision::Block(_)));
        let unblocks = count(&a, |d| matches!(d, Decision::Unblock { .. }));
        assert!(attacks >= 6 && ends >= 6, "seed {seed}: {attacks} {ends}");
        assert!(mitigations >= 2, "seed {seed}: {mitigations}");
        assert!(
            blocks >= 5 && unblocks >= 5,
            "seed {seed}: {blocks} {unblocks}"
        );
    }
}

#[test]
fn one_packet_batches_and_one_batch_agree_too() {
    let items = traffic(99);
    let end = items.last().map(|(_, t)| *t).expect("traffic");
    let ones: Vec<&[(PacketMeta, Timestamp)]> = items.chunks(1).collect();
    assert_eq!(inside(&ones, end), detached(&ones, end));
    let whole = [items.as_slice()];
    assert_eq!(inside(&whole, end), detached(&whole, end));
}

#[test]
fn without_detectors_there_is_no_stage() {
    let config = crate::config::parse_str("", std::path::Path::new("t.toml")).expect("valid");
    assert!(Engine::new(&config, Vec::new()).detach_floods().is_none());
}
