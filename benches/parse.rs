//! Throughput of `packet::parse` on realistic frames: 20M parses per case, timed with
//! `Instant`, printed as M parses/s. Run: `cargo bench --bench parse`.

use std::hint::black_box;
use std::time::Instant;

use autoblock::packet::{link, parse};
use etherparse::{PacketBuilder, VlanId};

const N: u32 = 20_000_000;

/// Pads to the 60-byte Ethernet minimum, as a capture of a real small frame would show.
fn pad60(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let mac = (
        [0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
        [0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb],
    );
    let mut out = Vec::new();

    let b = PacketBuilder::ethernet2(mac.0, mac.1)
        .ipv4([198, 51, 100, 7], [10, 10, 10, 10], 64)
        .tcp(40000, 25565, 1, 1024)
        .syn();
    let mut f = Vec::new();
    b.write(&mut f, &[]).expect("syn");
    out.push(("eth/ipv4/tcp SYN 60B", pad60(f)));

    let b = PacketBuilder::ethernet2(mac.0, mac.1)
        .ipv4([8, 8, 8, 8], [10, 10, 10, 10], 64)
        .udp(53, 33000);
    let mut f = Vec::new();
    b.write(&mut f, &[0u8; 100]).expect("udp");
    out.push(("eth/ipv4/udp 142B", f));

    let b = PacketBuilder::ethernet2(mac.0, mac.1)
        .single_vlan(VlanId::try_new(100).expect("vlan"))
        .ipv4([172, 31, 15, 102], [10, 0, 0, 1], 64)
        .tcp(61000, 443, 1, 1024)
        .syn();
    let mut f = Vec::new();
    b.write(&mut f, &[]).expect("vlan");
    out.push(("eth/vlan/ipv4/tcp SYN 60B", pad60(f)));

    let b = PacketBuilder::ethernet2(mac.0, mac.1)
        .ipv6(
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0xfe; 16],
            64,
        )
        .tcp(443, 50000, 1, 1024)
        .ack(5);
    let mut f = Vec::new();
    b.write(&mut f, &[0u8; 32]).expect("v6");
    out.push(("eth/ipv6/tcp ACK 106B", f));

    // IPv6 with hop-by-hop + fragment header (first fragment), UDP: the etherparse path.
    let mut f = vec![
        0x33, 0x33, 0, 0, 0, 1, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x86, 0xdd,
    ];
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 24, 0, 64]);
    f.extend_from_slice(&[0x20; 32]);
    f.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]); // hbh -> frag
    f.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 9]); // frag offset 0, M=1 -> udp
    f.extend_from_slice(&[0, 53, 0x10, 0x92, 0, 8, 0, 0]); // udp
    out.push(("eth/ipv6/hbh+frag/udp 78B", f));
    out
}

fn time(name: &str, frames: &[&[u8]]) {
    let n = frames.len();
    let mut tcp = 0u64;
    let start = Instant::now();
    for i in 0..N as usize {
        let f = frames[i % n];
        if let Ok(m) = parse(black_box(link::ETHERNET), black_box(f), 60) {
            tcp += u64::from(m.tcp_flags) + u64::from(m.dst_port.unwrap_or(0));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    black_box(tcp);
    println!("{name:<28} {:>7.1} M parses/s", f64::from(N) / secs / 1e6);
}

fn main() {
    let frames = frames();
    for (name, f) in &frames {
        time(name, &[f.as_slice()]);
    }
    let mix: Vec<&[u8]> = frames.iter().map(|(_, f)| f.as_slice()).collect();
    time("mix of the above", &mix);
}
