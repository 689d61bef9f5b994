//! Runs a [`LiveCapture`] on one interface and reports what it saw, as one JSON line; the
//! namespace tests (`tests/it/live.rs`) run it under `ip netns exec`, so the capture opens an
//! interface inside the namespace.
//!
//! capture_probe --iface IF [--filter F] [--max-seconds S] [--batch N]
//!   prints `ready` once capturing, then captures until a line (or EOF) on stdin or S seconds
//!   (default 30), then stops and prints {stats, sources, latency_us, stop_ms, ...}.
//!   On a start error prints {"error": ...} and exits 2.
//! capture_probe --host
//!   prints {"default_route": ..., "local": [...]} for the current namespace.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use autoblock::packet::{Proto, tcp_flag};
use autoblock::sys::host;
use autoblock::sys::live::{CaptureStats, LiveCapture, LiveOptions};
use autoblock::time::Timestamp;
use serde_json::{Value, json};

#[derive(Default)]
struct Source {
    packets: u64,
    syn: u64,
    dst_ports: BTreeMap<u16, u64>,
    max_latency_us: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if args.iter().any(|a| a == "--host") {
        let route = host::default_route_interface().map_err(|e| e.to_string());
        let local = host::local_addresses(None)
            .map(|v| v.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        print_json(&json!({
            "default_route": route.as_ref().ok(),
            "default_route_error": route.as_ref().err(),
            "local": local.as_ref().ok(),
            "local_error": local.as_ref().err().map(|e| e.to_string()),
        }));
        return;
    }
    let Some(iface) = flag("--iface") else {
        eprintln!("usage: capture_probe --iface IF [--filter F] [--max-seconds S] | --host");
        std::process::exit(2);
    };
    let max_seconds: u64 = flag("--max-seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut opts = LiveOptions {
        filter: flag("--filter"),
        ..LiveOptions::default()
    };
    if let Some(n) = flag("--batch").and_then(|s| s.parse().ok()) {
        opts.batch_frames = n;
    }
    std::process::exit(run(&iface, &opts, Duration::from_secs(max_seconds)));
}

fn run(iface: &str, opts: &LiveOptions, max: Duration) -> i32 {
    let (tx, rx) = mpsc::sync_channel(64);
    let (back_tx, back_rx) = mpsc::channel();
    let cap = match LiveCapture::start(iface, 0, opts, tx, back_rx) {
        Ok(c) => c,
        Err(e) => {
            print_json(&json!({ "error": e.to_string() }));
            return 2;
        }
    };
    println!("ready");
    let _ = std::io::stdout().flush();

    let done = Arc::new(AtomicBool::new(false));
    let done_in = done.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        done_in.store(true, Ordering::Release);
    });

    let started = Instant::now();
    let mut sources: BTreeMap<IpAddr, Source> = BTreeMap::new();
    let mut latencies: Vec<u64> = Vec::new();
    let (mut first, mut last) = (None::<Timestamp>, Timestamp(0));
    let (mut batches, mut unparsed) = (0u64, 0u64);
    while !done.load(Ordering::Acquire) && started.elapsed() < max {
        let Ok(batch) = rx.recv_timeout(Duration::from_millis(5)) else {
            continue;
        };
        let now = Timestamp::from_unix(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        batches += 1;
        unparsed += batch.unparsed;
        for (p, ts) in &batch.items {
            let latency = now.since(*ts).as_micros() as u64;
            if latencies.len() < 1_000_000 {
                latencies.push(latency);
            }
            first.get_or_insert(*ts);
            last = *ts;
            let s = sources.entry(p.src).or_default();
            s.max_latency_us = s.max_latency_us.max(latency);
            s.packets += 1;
            if p.proto == Proto::Tcp
                && p.tcp_flags & (tcp_flag::SYN | tcp_flag::ACK) == tcp_flag::SYN
            {
                s.syn += 1;
            }
            if let Some(port) = p.dst_port {
                *s.dst_ports.entry(port).or_default() += 1;
            }
        }
        let _ = back_tx.send(batch.items);
    }
    let stop_started = Instant::now();
    let result = cap.stop();
    let stop_ms = stop_started.elapsed().as_secs_f64() * 1000.0;
    // Batches flushed while stopping.
    for batch in rx.try_iter() {
        batches += 1;
        unparsed += batch.unparsed;
        for (p, _) in &batch.items {
            sources.entry(p.src).or_default().packets += 1;
        }
    }
    latencies.sort_unstable();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round().max(0.0) as usize)
            .copied()
    };
    let span = first.map(|f| last.since(f).as_secs_f64()).unwrap_or(0.0);
    let packets: u64 = sources.values().map(|s| s.packets).sum();
    let (stats, error) = match result {
        Ok(s) => (s, None),
        Err(e) => (CaptureStats::default(), Some(e.to_string())),
    };
    print_json(&json!({
        "iface": iface,
        "stats": stats_json(&stats),
        "error": error,
        "batches": batches,
        "unparsed": unparsed,
        "packets": packets,
        "span_s": span,
        "pps": if span > 0.0 { packets as f64 / span } else { 0.0 },
        "latency_us": { "n": latencies.len(), "p50": pct(0.5), "p99": pct(0.99), "max": latencies.last() },
        "stop_ms": stop_ms,
        "sources": sources.iter().map(|(a, s)| (a.to_string(), json!({
            "packets": s.packets,
            "syn": s.syn,
            "max_latency_us": s.max_latency_us,
            "dst_ports": s.dst_ports.iter().map(|(p, n)| (p.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        }))).collect::<serde_json::Map<_, _>>(),
    }));
    0
}

fn stats_json(s: &CaptureStats) -> Value {
    json!({
        "frames": s.frames,
        "unparsed": s.unparsed,
        "batches_sent": s.batches_sent,
        "batches_dropped": s.batches_dropped,
        "packets_dropped": s.packets_dropped,
        "pcap_received": s.pcap_received,
        "pcap_dropped": s.pcap_dropped,
        "pcap_if_dropped": s.pcap_if_dropped,
        "delivered": s.delivered(),
        "lost": s.lost(),
    })
}

fn print_json(v: &Value) {
    println!("{v}");
    let _ = std::io::stdout().flush();
}
