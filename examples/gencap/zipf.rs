//! gencap's `zipf` mix: built to be unlike the other mixes, so that tuning does not fit one
//! file. Sources are heavy-tailed (Zipf, s = 1.0: a few very busy, a long tail seen once or
//! twice), an eighth of them IPv6, scattered over the address space; arrivals are bursty (Poisson
//! with a rate that changes every 4096 packets); traffic spans many ports and protocols, with
//! fragments, VLAN tags, ARP and GRE/ESP; and attackers of every kind the rules look for.
//!
//! Of every 1000 packets: 330 TCP data (a third server replies), 140 SYNs to two dozen service
//! ports, 80 QUIC, 60 DNS, 60 UDP to random high ports, 50 ICMP echo, 30 UDP fragments
//! (first and non-first), 20 ARP, 20 VLAN-tagged TCP data, 10 GRE/ESP; then 30 from three port
//! scanners, 20 from two host sweepers, 60 from an IPv6 UDP flooder, 20 from an ICMP flooder
//! and 70 SYNs from random spoofed sources (each new).

use std::io::{self, Write};

use crate::frames::{Ips, L4, Pkt};
use crate::mixes::{
    Gen, Rng, SERVICE_PORTS, START_US, Zipf, data_flags_len, v4_server, v4_source, v6_server,
    v6_source,
};

/// Per-attacker progress: the next port of each scanner, the next address of each sweeper.
#[derive(Default)]
struct Attackers {
    scan_port: [u16; 3],
    sweep_addr: [u16; 2],
}

/// A client of the given Zipf rank (an eighth IPv6, by hash of the rank) and a server of its family.
fn client_server(rank: u64, server: u8) -> Ips {
    if rank.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 61 == 0 {
        Ips::V6 {
            src: v6_source(rank),
            dst: v6_server(server),
        }
    } else {
        Ips::V4 {
            src: v4_source(rank),
            dst: v4_server(server),
        }
    }
}

fn reverse(ips: Ips) -> Ips {
    match ips {
        Ips::V4 { src, dst } => Ips::V4 { src: dst, dst: src },
        Ips::V6 { src, dst } => Ips::V6 { src: dst, dst: src },
    }
}

/// One benign packet of class `c` (0..800) from client `rank`.
fn benign(rng: &mut Rng, c: u64, rank: u64) -> Pkt {
    let ips = client_server(rank, rng.below(64) as u8);
    let sport = rng.ephemeral();
    let web = if rng.next() & 1 == 0 { 80 } else { 443 };
    match c {
        0..330 => {
            let (flags, len) = data_flags_len(rng);
            if c < 220 {
                Pkt::new(
                    ips,
                    L4::Tcp {
                        sport,
                        dport: web,
                        flags,
                    },
                    len,
                )
            } else {
                Pkt::new(
                    reverse(ips),
                    L4::Tcp {
                        sport: web,
                        dport: sport,
                        flags,
                    },
                    len,
                )
            }
        }
        330..470 => {
            let u = rng.unit();
            let dport = SERVICE_PORTS[(u * u * u * SERVICE_PORTS.len() as f64) as usize];
            Pkt::new(
                ips,
                L4::Tcp {
                    sport,
                    dport,
                    flags: 0x02,
                },
                0,
            )
        }
        470..550 => Pkt::new(ips, L4::Udp { sport, dport: 443 }, 1200),
        550..610 => Pkt::new(ips, L4::Udp { sport, dport: 53 }, 30),
        610..670 => {
            let dport = 1024 + rng.below(64512) as u16;
            Pkt::new(ips, L4::Udp { sport, dport }, 20 + rng.below(180) as u16)
        }
        670..720 => Pkt::new(ips, L4::Echo { id: sport }, 56),
        720..750 if c & 1 == 0 => Pkt::new(
            ips,
            L4::UdpFirstFragment {
                sport,
                dport: 7000,
                id: sport,
            },
            1472,
        ),
        720..750 => Pkt::new(ips, L4::Fragment { id: sport }, 1000),
        770..790 => {
            let (flags, len) = data_flags_len(rng);
            let mut p = Pkt::new(
                ips,
                L4::Tcp {
                    sport,
                    dport: web,
                    flags,
                },
                len,
            );
            p.vlan = Some(100);
            p
        }
        _ => Pkt::new(ips, L4::Other(if c & 1 == 0 { 47 } else { 50 }), 100),
    }
}

/// One attack packet of class `c` (800..1000).
fn attack(rng: &mut Rng, c: u64, a: &mut Attackers) -> Pkt {
    let sport = rng.ephemeral();
    let target = v4_server(0);
    match c {
        800..830 => {
            let k = (c % 3) as usize;
            a.scan_port[k] = a.scan_port[k] % 65535 + 1;
            let ips = Ips::V4 {
                src: [203, 0, 113, 66 + k as u8],
                dst: target,
            };
            Pkt::new(
                ips,
                L4::Tcp {
                    sport,
                    dport: a.scan_port[k],
                    flags: 0x02,
                },
                0,
            )
        }
        830..850 => {
            let k = (c & 1) as usize;
            a.sweep_addr[k] = a.sweep_addr[k].wrapping_add(1);
            let [hi, lo] = a.sweep_addr[k].to_be_bytes();
            let ips = Ips::V4 {
                src: [203, 0, 113, 77 + k as u8],
                dst: [100, 64 + k as u8, hi, lo],
            };
            let l4 = if k == 0 {
                L4::Echo { id: 7 }
            } else {
                L4::Tcp {
                    sport,
                    dport: 22,
                    flags: 0x02,
                }
            };
            Pkt::new(ips, l4, 0)
        }
        850..910 => {
            let mut src = v6_server(0);
            src[4..6].copy_from_slice(&[0x0b, 0xad]);
            let ips = Ips::V6 {
                src,
                dst: v6_server(0),
            };
            Pkt::new(
                ips,
                L4::Udp {
                    sport,
                    dport: 27015,
                },
                100,
            )
        }
        910..930 => Pkt::new(
            Ips::V4 {
                src: [203, 0, 113, 99],
                dst: target,
            },
            L4::Echo { id: 9 },
            1000,
        ),
        _ => {
            let src = v4_source(rng.next() >> 34);
            Pkt::new(
                Ips::V4 { src, dst: target },
                L4::Tcp {
                    sport,
                    dport: 80,
                    flags: 0x02,
                },
                0,
            )
        }
    }
}

/// Writes the zipf mix: `packets` over about `duration_us`, benign clients drawn from
/// `sources` Zipf ranks.
pub fn zipf<W: Write>(
    g: &mut Gen<W>,
    packets: u64,
    sources: u64,
    duration_us: u64,
) -> io::Result<()> {
    let ranks = Zipf::new(sources, 1.0);
    let mean_gap = duration_us as f64 / packets.max(1) as f64;
    let phases = [0.3, 0.6, 1.0, 1.4, 1.7];
    let mut phase = 1.0;
    let mut t = 0.0f64;
    let mut attackers = Attackers::default();
    for i in 0..packets {
        if i % 4096 == 0 {
            phase = phases[g.rng.below(phases.len() as u64) as usize];
        }
        t += mean_gap * phase * -(1.0 - g.rng.unit()).ln();
        let ts = START_US + t as u64;
        let c = g.rng.below(1000);
        if (750..770).contains(&c) {
            let sender = v4_source(ranks.draw(&mut g.rng));
            g.emit_arp(ts, sender, v4_server(0))?;
            continue;
        }
        let p = if c < 800 {
            let rank = ranks.draw(&mut g.rng);
            benign(&mut g.rng, c, rank)
        } else {
            attack(&mut g.rng, c, &mut attackers)
        };
        g.emit(ts, &p)?;
    }
    Ok(())
}
