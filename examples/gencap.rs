//! Writes a synthetic capture for `make run` and the replay benchmarks. Deterministic for a
//! given seed. Classic pcap, Ethernet, microsecond stamps. Mixes (`--mix`):
//!
//! - `uniform` (default): benign IPv4 sources (80% TCP ACKs, 10% SYNs, 10% UDP), each packet
//!   from a random one of `--sources` (the source table's worst case), plus `--attackers` SYN
//!   flooders sending 10% of all packets; `--rate` packets/s. `--skewed` (= `--mix skewed`)
//!   draws the sources log-uniformly instead (a few busy, many quiet).
//! - `mixed`: issue 10's SYN-heavy IPv4+IPv6 mix (45% SYN incl. two flooders, 25% DNS, 18% TCP
//!   data, 12% IPv6 SYN; `--sources` IPv4 and a fifth as many IPv6 clients), snaplen 128.
//! - `zipf`: unlike the others on purpose: Zipf-distributed sources all over the address
//!   space, bursty arrivals, many ports and protocols, fragments, VLAN, ARP, attackers of
//!   every kind; snaplen 200. See `gencap/zipf.rs`.
//! - `distinct`: every packet from a new source (the memory benchmark's file).
//! - `few`: benches/live.sh's "few" flood: only TCP SYNs, from `--sources` (default 8)
//!   addresses, all of them flooders at a flood's `--rate`.
//! - `scan`: `few`, each SYN to a random port: every source also a port scanner (its
//!   distinct-port sets at their cap).
//!
//! `mixed` and `zipf` span `--seconds` (default 20) of capture time unless `--rate` is given;
//! `uniform`, `skewed`, `distinct`, `few` and `scan` run at `--rate` (default 200000/s) unless `--seconds` is.
//!
//! cargo run --release --example gencap -- --out F.pcap [--mix M] [--packets N] [--sources N]
//!     [--attackers N] [--rate PPS | --seconds S] [--seed N] [--skewed]

#[path = "gencap/frames.rs"]
mod frames;
#[path = "gencap/mixes.rs"]
mod mixes;
#[path = "gencap/zipf.rs"]
mod zipf;

use std::io::{self, BufWriter, Write};

use frames::{Ips, L4, PcapWriter, Pkt};
use mixes::{Gen, START_US};

#[derive(Copy, Clone, PartialEq, Eq)]
enum Mix {
    Uniform,
    Skewed,
    Mixed,
    Zipf,
    Distinct,
    Few,
    Scan,
}

struct Args {
    out: String,
    mix: Mix,
    packets: u64,
    sources: Option<u64>,
    attackers: u32,
    rate: Option<u64>,
    seconds: Option<u64>,
    seed: u64,
}

fn parse_mix(s: &str) -> Result<Mix, String> {
    Ok(match s {
        "uniform" => Mix::Uniform,
        "skewed" => Mix::Skewed,
        "mixed" => Mix::Mixed,
        "zipf" => Mix::Zipf,
        "distinct" => Mix::Distinct,
        "few" => Mix::Few,
        "scan" => Mix::Scan,
        _ => {
            return Err(format!(
                "--mix: `{s}` is not uniform, skewed, mixed, zipf, distinct, few or scan"
            ));
        }
    })
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: String::new(),
        mix: Mix::Uniform,
        packets: 2_000_000,
        sources: None,
        attackers: 4,
        rate: None,
        seconds: None,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--skewed" {
            a.mix = Mix::Skewed;
            continue;
        }
        let val = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || {
            val.parse::<u64>()
                .map_err(|_| format!("{flag}: `{val}` is not a number"))
        };
        match flag.as_str() {
            "--out" => a.out = val.clone(),
            "--mix" => a.mix = parse_mix(&val)?,
            "--packets" => a.packets = num()?,
            "--sources" => a.sources = Some(num()?.clamp(1, 1 << 30)),
            "--attackers" => a.attackers = u32::try_from(num()?).map_err(|e| e.to_string())?,
            "--rate" => a.rate = Some(num()?.max(1)),
            "--seconds" => a.seconds = Some(num()?.max(1)),
            "--seed" => a.seed = num()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.out.is_empty() {
        return Err("--out FILE is required".into());
    }
    Ok(a)
}

impl Args {
    /// Capture time the file spans, in µs.
    fn duration_us(&self) -> u64 {
        let by_rate = |rate: u64| self.packets.saturating_mul(1_000_000) / rate;
        match (self.rate, self.seconds, self.mix) {
            (Some(r), _, _) => by_rate(r),
            (None, Some(s), _) => s * 1_000_000,
            (None, None, Mix::Mixed | Mix::Zipf) => 20_000_000,
            (None, None, _) => by_rate(200_000),
        }
    }
}

/// The original mix (`uniform` / `skewed`): byte for byte what gencap always wrote.
fn classic<W: Write>(g: &mut Gen<W>, a: &Args) -> io::Result<()> {
    let server = [198, 51, 100, 10];
    let n = a.sources.unwrap_or(64_000);
    // i * 1e6 / rate, as gencap always stamped them, unless --seconds says otherwise.
    let (per, over) = match (a.rate, a.seconds) {
        (None, Some(s)) => (s * 1_000_000, a.packets.max(1)),
        (r, _) => (1_000_000, r.unwrap_or(200_000)),
    };
    for i in 0..a.packets {
        let r = g.rng.next();
        let ts = START_US + (u128::from(i) * u128::from(per) / u128::from(over)) as u64;
        let tcp = |src, sport, dport, flags| {
            Pkt::new(
                Ips::V4 { src, dst: server },
                L4::Tcp {
                    sport,
                    dport,
                    flags,
                },
                0,
            )
        };
        let p = if a.attackers > 0 && r.is_multiple_of(10) {
            // An attacker: a SYN flood to port 80 from one of a few addresses.
            let k = ((r >> 8) % u64::from(a.attackers)) as u8;
            tcp(
                [203, 0, 113, k + 1],
                1024 + (r >> 16) as u16 % 60000,
                80,
                0x02,
            )
        } else {
            let s = if a.mix == Mix::Skewed {
                // rank = n^u - 1 for u uniform in [0, 1): log-uniform, heavy head.
                let u = (r >> 11) as f64 / (1u64 << 53) as f64;
                ((n as f64).powf(u) as u64).min(n) as u32
            } else {
                ((r >> 8) % n) as u32 + 1
            };
            let src = [10, (s >> 16) as u8, (s >> 8) as u8, s as u8];
            let sport = 1024 + (s % 60000) as u16;
            match (r >> 40) % 10 {
                0 => Pkt::new(
                    Ips::V4 { src, dst: server },
                    L4::Udp { sport, dport: 53 },
                    18,
                ),
                1 => tcp(src, sport, 443, 0x02),
                _ => tcp(src, sport, 443, 0x10),
            }
        };
        g.emit(ts, &p)?;
    }
    Ok(())
}

fn generate(a: &Args, file: std::fs::File) -> io::Result<()> {
    let snaplen = match a.mix {
        Mix::Mixed => 128,
        Mix::Zipf => 200,
        _ => 65535,
    };
    let out = PcapWriter::new(BufWriter::with_capacity(1 << 20, file), snaplen)?;
    let mut g = Gen::new(a.seed, out);
    let duration = a.duration_us();
    match a.mix {
        Mix::Uniform | Mix::Skewed => classic(&mut g, a)?,
        Mix::Mixed => mixes::mixed(&mut g, a.packets, a.sources.unwrap_or(60_000), duration)?,
        Mix::Zipf => zipf::zipf(&mut g, a.packets, a.sources.unwrap_or(200_000), duration)?,
        Mix::Distinct => mixes::distinct(&mut g, a.packets, duration)?,
        Mix::Few => mixes::few(&mut g, a.packets, a.sources.unwrap_or(8), duration, false)?,
        Mix::Scan => mixes::few(&mut g, a.packets, a.sources.unwrap_or(8), duration, true)?,
    }
    g.out.finish()
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gencap: {e}");
            std::process::exit(2);
        }
    };
    let file = match std::fs::File::create(&a.out) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("gencap: cannot create {}: {e}", a.out);
            std::process::exit(1);
        }
    };
    if let Err(e) = generate(&a, file) {
        eprintln!("gencap: writing {}: {e}", a.out);
        std::process::exit(1);
    }
}
