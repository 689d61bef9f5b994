//! gencap's traffic mixes beyond the original uniform/skewed ones (see `gencap.rs` for what
//! each is for). Every mix is a function of (packets, sources, duration, seed) only.

use std::io::{self, Write};

use crate::frames::{self, Ips, L4, PcapWriter, Pkt};

/// xorshift64*: fast, deterministic, good enough for traffic shapes.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// An ephemeral client port.
    pub fn ephemeral(&mut self) -> u16 {
        32768 + self.below(28232) as u16
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The `k`-th IPv4 source (k + 1 scrambled), scattered over 16.0.0.0-79.255.255.255; distinct for k < 2^30
/// (an odd multiplier is a bijection modulo 2^30).
pub fn v4_source(k: u64) -> [u8; 4] {
    let a = ((k as u32).wrapping_add(1).wrapping_mul(0x9E37_79B1) & 0x3fff_ffff) + 0x1000_0000;
    a.to_be_bytes()
}

/// The `k`-th IPv6 source in 2001:db8::/32, each in its own /64 (hashed), distinct for k < 2^32.
pub fn v6_source(k: u64) -> [u8; 16] {
    let h = splitmix(k);
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[4..12].copy_from_slice(&h.to_be_bytes());
    a[12..].copy_from_slice(&(k as u32).to_be_bytes());
    a
}

pub fn v4_server(i: u8) -> [u8; 4] {
    [198, 51, 100, 10 + i]
}

pub fn v6_server(i: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff]);
    a[15] = 0x10 + i;
    a
}

/// Shared state of one generator run: where frames go and the reusable frame buffer.
pub struct Gen<W: Write> {
    pub rng: Rng,
    pub out: PcapWriter<W>,
    buf: Vec<u8>,
}

impl<W: Write> Gen<W> {
    pub fn new(seed: u64, out: PcapWriter<W>) -> Gen<W> {
        Gen {
            rng: Rng::new(seed),
            out,
            buf: Vec::with_capacity(2048),
        }
    }

    pub fn emit(&mut self, ts_us: u64, p: &Pkt) -> io::Result<()> {
        frames::build(&mut self.buf, p);
        self.out.record(ts_us, &self.buf)
    }

    pub fn emit_arp(&mut self, ts_us: u64, sender: [u8; 4], target: [u8; 4]) -> io::Result<()> {
        frames::arp(&mut self.buf, sender, target);
        self.out.record(ts_us, &self.buf)
    }
}

/// Capture time of the first packet (2026-11-24 00:00 UTC, as the original gencap).
pub const START_US: u64 = 1_795_514_400_000_000;

/// Capture time of packet `i` of `packets` evenly spaced over `duration_us` from [`START_US`].
fn spaced_ts(i: u64, packets: u64, duration_us: u64) -> u64 {
    START_US + (u128::from(i) * u128::from(duration_us) / u128::from(packets.max(1))) as u64
}

/// TCP data of random size: a pure ACK half the time, else ACK|PSH with up to 1460 bytes.
pub fn data_flags_len(rng: &mut Rng) -> (u8, u16) {
    if rng.next() & 1 == 0 {
        (0x10, 0)
    } else {
        (0x18, 1 + rng.below(1460) as u16)
    }
}

/// Issue 10's "different mix": of every 1000 packets, 80 SYNs from two heavy flooders and 370
/// benign SYNs to ports 80/443 (45% SYN in all), 250 DNS queries, 180 TCP data segments
/// (two thirds client to server, one third server replies), 120 IPv6 SYNs. `sources` IPv4
/// clients and `sources / 5` IPv6 clients, each packet from a uniformly drawn one; 8 IPv4 and
/// 4 IPv6 servers, 2 resolvers. Packets evenly spaced over `duration_us`.
pub fn mixed<W: Write>(
    g: &mut Gen<W>,
    packets: u64,
    sources: u64,
    duration_us: u64,
) -> io::Result<()> {
    let n4 = sources.max(1);
    let n6 = (sources / 5).max(1);
    for i in 0..packets {
        let ts = spaced_ts(i, packets, duration_us);
        let c = g.rng.below(1000);
        let web = if g.rng.next() & 1 == 0 { 80 } else { 443 };
        let sport = g.rng.ephemeral();
        let server = v4_server(g.rng.below(8) as u8);
        let client = v4_source(g.rng.below(n4));
        let p = if c < 80 {
            let src = [203, 0, 113, 1 + (c & 1) as u8];
            Pkt::new(
                Ips::V4 {
                    src,
                    dst: v4_server(0),
                },
                L4::Tcp {
                    sport,
                    dport: 80,
                    flags: 0x02,
                },
                0,
            )
        } else if c < 450 {
            Pkt::new(
                Ips::V4 {
                    src: client,
                    dst: server,
                },
                L4::Tcp {
                    sport,
                    dport: web,
                    flags: 0x02,
                },
                0,
            )
        } else if c < 700 {
            let dst = [198, 51, 100, 53 + (c & 1) as u8];
            let len = 20 + g.rng.below(40) as u16;
            Pkt::new(
                Ips::V4 { src: client, dst },
                L4::Udp { sport, dport: 53 },
                len,
            )
        } else if c < 880 {
            let (flags, len) = data_flags_len(&mut g.rng);
            if c < 820 {
                Pkt::new(
                    Ips::V4 {
                        src: client,
                        dst: server,
                    },
                    L4::Tcp {
                        sport,
                        dport: web,
                        flags,
                    },
                    len,
                )
            } else {
                let ips = Ips::V4 {
                    src: server,
                    dst: client,
                };
                Pkt::new(
                    ips,
                    L4::Tcp {
                        sport: web,
                        dport: sport,
                        flags,
                    },
                    len,
                )
            }
        } else {
            let ips = Ips::V6 {
                src: v6_source(g.rng.below(n6)),
                dst: v6_server(g.rng.below(4) as u8),
            };
            Pkt::new(
                ips,
                L4::Tcp {
                    sport,
                    dport: web,
                    flags: 0x02,
                },
                0,
            )
        };
        g.emit(ts, &p)?;
    }
    Ok(())
}

/// benches/live.sh's "few" flood: every packet a TCP SYN to port 80 of one server from one of
/// `sources` addresses (198.18.0.1 onward, drawn uniformly), a random ephemeral source port,
/// evenly spaced over `duration_us`. At a flood's rate every source crosses the SYN rules.
/// With `scan`, each SYN goes to a random port (1-65535) instead: every source is also a port
/// scanner, whose distinct-port sets sit at their cap.
pub fn few<W: Write>(
    g: &mut Gen<W>,
    packets: u64,
    sources: u64,
    duration_us: u64,
    scan: bool,
) -> io::Result<()> {
    for i in 0..packets {
        let ts = spaced_ts(i, packets, duration_us);
        let k = g.rng.below(sources) as u32 + 1;
        let src = [198, 18 + (k >> 16) as u8, (k >> 8) as u8, k as u8];
        let sport = g.rng.ephemeral();
        let dport = if scan {
            1 + g.rng.below(65_535) as u16
        } else {
            80
        };
        let l4 = L4::Tcp {
            sport,
            dport,
            flags: 0x02,
        };
        let p = Pkt::new(
            Ips::V4 {
                src,
                dst: v4_server(0),
            },
            l4,
            0,
        );
        g.emit(ts, &p)?;
    }
    Ok(())
}

/// One packet from each of `packets` distinct sources (every 8th IPv6), evenly spaced over
/// `duration_us`, rotating through SYN, UDP, ICMP echo and TCP data to 16 servers and 7 ports,
/// so that every kind of window gets state: the memory benchmark's file.
pub fn distinct<W: Write>(g: &mut Gen<W>, packets: u64, duration_us: u64) -> io::Result<()> {
    for i in 0..packets {
        let ts = spaced_ts(i, packets, duration_us);
        let server = (i % 16) as u8;
        let ips = if i % 8 == 7 {
            Ips::V6 {
                src: v6_source(i),
                dst: v6_server(server),
            }
        } else {
            Ips::V4 {
                src: v4_source(i),
                dst: v4_server(server),
            }
        };
        let sport = g.rng.ephemeral();
        let dport = [22, 25, 53, 80, 443, 8080, 8443][(i % 7) as usize];
        let (l4, len) = match i % 4 {
            0 => (
                L4::Tcp {
                    sport,
                    dport,
                    flags: 0x02,
                },
                0,
            ),
            1 => (L4::Udp { sport, dport }, 40),
            2 => (L4::Echo { id: i as u16 }, 56),
            _ => (
                L4::Tcp {
                    sport,
                    dport,
                    flags: 0x18,
                },
                200,
            ),
        };
        g.emit(ts, &Pkt::new(ips, l4, len))?;
    }
    Ok(())
}

/// Service ports a SYN goes to in the zipf mix, most popular first.
pub const SERVICE_PORTS: [u16; 24] = [
    443, 80, 22, 53, 25, 8080, 993, 587, 3389, 8443, 5060, 143, 110, 465, 995, 1883, 3306, 5222,
    5432, 6379, 8000, 9000, 9200, 27017,
];

/// Ranks 1..=n drawn with probability proportional to rank^-s (the cumulative table is built
/// once; a draw is a binary search).
pub struct Zipf(Vec<f64>);

impl Zipf {
    pub fn new(n: u64, s: f64) -> Zipf {
        let mut acc = 0.0;
        let cdf: Vec<f64> = (1..=n.max(1))
            .map(|k| {
                acc += (k as f64).powf(-s);
                acc
            })
            .collect();
        Zipf(cdf.iter().map(|c| c / acc).collect())
    }
    /// A rank in 0..n (0 the most frequent).
    pub fn draw(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1) as u64
    }
}
