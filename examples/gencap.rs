//! Writes a synthetic capture for `make run` and the replay benchmark: many benign sources
//! (TCP with ACKs, UDP, a little IPv6) plus a few attackers sending SYN floods, at a fixed
//! packet rate. Deterministic for a given seed. Classic pcap, Ethernet, microsecond stamps.
//!
//! cargo run --release --example gencap -- --out F.pcap --packets 2000000 --sources 64000 --attackers 4 [--skewed]

use std::io::{BufWriter, Write};

struct Args {
    out: String,
    packets: u64,
    sources: u32,
    attackers: u32,
    rate: u64,
    seed: u64,
    /// Pick sources log-uniformly (a few busy, many quiet: like real traffic) instead of
    /// uniformly (every packet from a random one of all sources: the cache's worst case).
    skewed: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: String::new(),
        packets: 2_000_000,
        sources: 64_000,
        attackers: 4,
        rate: 200_000,
        seed: 1,
        skewed: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--skewed" {
            a.skewed = true;
            continue;
        }
        let val = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || {
            val.parse::<u64>()
                .map_err(|_| format!("{flag}: `{val}` is not a number"))
        };
        match flag.as_str() {
            "--out" => a.out = val.clone(),
            "--packets" => a.packets = num()?,
            "--sources" => a.sources = u32::try_from(num()?).map_err(|e| e.to_string())?,
            "--attackers" => a.attackers = u32::try_from(num()?).map_err(|e| e.to_string())?,
            "--rate" => a.rate = num()?.max(1),
            "--seed" => a.seed = num()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.out.is_empty() {
        return Err("--out FILE is required".into());
    }
    Ok(a)
}

/// xorshift64*: fast, deterministic, good enough for traffic shapes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn frame(
    buf: &mut Vec<u8>,
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
    flags: u8,
) {
    buf.clear();
    buf.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]);
    let l4_len: u16 = if proto == 6 { 20 } else { 8 + 18 };
    let total = 20 + l4_len;
    buf.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ]);
    buf.extend_from_slice(&src);
    buf.extend_from_slice(&dst);
    buf.extend_from_slice(&sport.to_be_bytes());
    buf.extend_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        buf.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        buf.extend_from_slice(&[0, (8 + 18) as u8, 0, 0]);
        buf.extend_from_slice(&[0u8; 18]);
    }
    while buf.len() < 60 {
        buf.push(0);
    }
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
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&[0u8; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    let mut rng = Rng(a.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let server = [198, 51, 100, 10];
    let start_us: u64 = 1_795_514_400_000_000;
    let mut buf = Vec::with_capacity(64);
    let result = (|| -> std::io::Result<()> {
        w.write_all(&hdr)?;
        for i in 0..a.packets {
            let r = rng.next();
            let ts = start_us + i * 1_000_000 / a.rate;
            if a.attackers > 0 && r.is_multiple_of(10) {
                // An attacker: a SYN flood to port 80 from one of a few addresses.
                let k = ((r >> 8) % u64::from(a.attackers)) as u8;
                frame(
                    &mut buf,
                    [203, 0, 113, k + 1],
                    server,
                    6,
                    1024 + (r >> 16) as u16 % 60000,
                    80,
                    0x02,
                );
            } else {
                let n = u64::from(a.sources.max(1));
                let s = if a.skewed {
                    // rank = n^u - 1 for u uniform in [0, 1): log-uniform, heavy head.
                    let u = (r >> 11) as f64 / (1u64 << 53) as f64;
                    ((n as f64).powf(u) as u64).min(n) as u32
                } else {
                    ((r >> 8) % n) as u32 + 1
                };
                let src = [10, (s >> 16) as u8, (s >> 8) as u8, s as u8];
                let sport = 1024 + (s % 60000) as u16;
                match (r >> 40) % 10 {
                    0 => frame(&mut buf, src, server, 17, sport, 53, 0),
                    1 => frame(&mut buf, src, server, 6, sport, 443, 0x02),
                    _ => frame(&mut buf, src, server, 6, sport, 443, 0x10),
                }
            }
            w.write_all(&((ts / 1_000_000) as u32).to_le_bytes())?;
            w.write_all(&((ts % 1_000_000) as u32).to_le_bytes())?;
            w.write_all(&(buf.len() as u32).to_le_bytes())?;
            w.write_all(&(buf.len() as u32).to_le_bytes())?;
            w.write_all(&buf)?;
        }
        w.flush()
    })();
    if let Err(e) = result {
        eprintln!("gencap: writing {}: {e}", a.out);
        std::process::exit(1);
    }
}
