//! Gathers the verified peers once (or `--repeat N` times, printing each run's wall time and
//! the median) in the namespace it runs in, or of `--pid PID`, and prints a summary: how many
//! protected hosts of each kind, how many were left out over the cap, what could not be read.
//! `--conntrack` reads conntrack too; `--list` prints every protected net with why;
//! `--synthetic N` gathers from generated `/proc/net/tcp` text with N distinct peers instead
//! (the parser and the set alone); `--text` reads the socket tables from `/proc/net` text
//! instead of netlink (what the daemon falls back to); `--host-ports` times the flood
//! detectors' read of the host's ports (`host_ports`: all four socket tables) instead. The
//! measuring driver of `benches/peers.sh`.
//!
//! ```text
//! ip netns exec NS target/release/examples/peers --repeat 20
//! ```

use std::time::Instant;

use std::fmt::Write;

use autoblock::sys::peers::{
    GatherOptions, PeerFacts, ProcFiles, RecordedFacts, Source, gather, host_ports,
};
use autoblock::trust::peers::PeerKind;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let repeat = value("--repeat").unwrap_or(1).max(1);
    let facts: Box<dyn PeerFacts> = match (value("--synthetic"), value("--pid")) {
        (Some(n), _) => Box::new(RecordedFacts::default().with(Source::Tcp4, &synthetic(n))),
        (None, Some(pid)) => Box::new(ProcFiles::of_pid(u32::try_from(pid).unwrap_or(u32::MAX))),
        (None, None) if args.iter().any(|a| a == "--text") => Box::new(ProcFiles::own_text()),
        (None, None) => Box::new(ProcFiles::own()),
    };
    if args.iter().any(|a| a == "--host-ports") {
        time_host_ports(facts.as_ref(), repeat);
        return;
    }
    let opts = GatherOptions {
        conntrack: args.iter().any(|a| a == "--conntrack"),
        ..GatherOptions::default()
    };
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..repeat {
        let t = Instant::now();
        let g = gather(facts.as_ref(), &opts);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        last = Some(g);
    }
    let Some(g) = last else { return };
    times.sort_by(f64::total_cmp);
    println!(
        "gather: median {:.1} ms, min {:.1} ms, max {:.1} ms over {repeat} runs",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    let counts: Vec<String> = PeerKind::ALL
        .iter()
        .map(|k| format!("{} {}", k.name(), g.set.count(*k)))
        .collect();
    println!(
        "protected hosts {} ({}), dropped over the cap {}",
        g.set.hosts(),
        counts.join(", "),
        g.set.dropped()
    );
    for (source, error) in &g.problems {
        println!("unreadable {}: {error}", source.path());
    }
    if args.iter().any(|a| a == "--list") {
        for p in g.set.iter() {
            println!("{} {}", p.net, p.kinds);
        }
    }
}

/// The median of `repeat` reads of the host's ports, and what the last one found.
fn time_host_ports(facts: &dyn PeerFacts, repeat: u64) {
    let mut times = Vec::new();
    let mut ports = Default::default();
    for _ in 0..repeat {
        let t = Instant::now();
        ports = host_ports(facts);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "host_ports: median {:.1} ms, min {:.1} ms over {repeat} runs",
        times[times.len() / 2],
        times[0]
    );
    println!("{ports:?}");
}

/// `/proc/net/tcp` text with `n` established connections from `n` distinct peers (10.0.0.0/8),
/// as the kernel prints it on a little-endian machine: the parser and the set at scale, without
/// the kernel's cost.
fn synthetic(n: u64) -> String {
    let mut text = String::from(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
    );
    for i in 0..n {
        let peer = u32::from_ne_bytes([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let _ = writeln!(
            text,
            "{i:4}: 0100A8C0:01BB {peer:08X}:{:04X} 01 00000000:00000000 00:00000000 00000000     0        0 {i} 1 0000000000000000 20 4 30 10 -1",
            (i % 60000) + 1024
        );
    }
    text
}
