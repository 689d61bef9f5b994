//! Enforcement benchmark driver (run by `benches/enforce.sh`, as root, against a namespace):
//! times applying, expiring and repairing bans through `autoblock_firewall`, or leaves N bans
//! in place for a throughput run.
//!
//! `enforce --netns NS --backend iptables|ipset|nftables --mode timing|fill|fillwatched|flush|flushrepair [--bans N] [--reasons distinct]`
//!
//! `--reasons distinct` gives every ban of `timing` its own reason (the iptables backend's
//! worst case: each ban then carries its own comment); by default a commit's bans share one.
//!
//! `flushrepair` fills N bans, starts [`Firewall::watch`], has someone else wipe the
//! firewall (`nft flush ruleset`; with iptables/ipset `iptables -F AUTOBLOCK`), and times
//! the flush -> event -> `check_and_repair` path. `fillwatched` times one commit of N bans
//! while our own watch listens.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime};

use autoblock_firewall::{Backend, Batch, Firewall, FirewallOptions};

/// The i-th address of 198.18.0.0/15 (the benchmarking range), never one the traffic uses.
fn addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let netns = get("--netns").ok_or("--netns NS is required")?;
    let backend: Backend = get("--backend")
        .ok_or("--backend iptables|ipset|nftables is required")?
        .parse()?;
    let bans: u32 = get("--bans")
        .map(|b| b.parse())
        .transpose()?
        .unwrap_or(10_000);
    let mode = get("--mode").unwrap_or_else(|| "timing".into());
    let distinct = get("--reasons").as_deref() == Some("distinct");
    let reason = |base: &str, i: u32| match distinct {
        true => format!("{base}-{i}"),
        false => base.to_string(),
    };
    let opts = FirewallOptions::new(backend, "AUTOBLOCK")
        .netns(netns.clone())
        .maxelem(2 * bans.max(100_000));
    let name = backend.to_string();
    match mode.as_str() {
        "flushrepair" => flush_repair(opts, &netns, backend, bans, &name)?,
        "fillwatched" => {
            let fw = Firewall::open(opts)?;
            let watch = fw.watch()?;
            let mut batch = Batch::new();
            for i in 0..bans {
                batch.block(addr(i), Duration::from_secs(3600), "bench");
            }
            let t = Instant::now();
            check(fw.commit(batch)?)?;
            println!(
                "{name} fill_watched bans={bans} commit_s={:.3}",
                t.elapsed().as_secs_f64()
            );
            drop(watch);
        }
        "fill" => {
            let fw = Firewall::open(opts.clone())?;
            let mut batch = Batch::new();
            for i in 0..bans {
                batch.block(addr(i), Duration::from_secs(3600), "bench");
            }
            let t = Instant::now();
            check(fw.commit(batch)?)?;
            println!(
                "{name} fill bans={bans} commit_s={:.3}",
                t.elapsed().as_secs_f64()
            );
            let t = Instant::now();
            let repairs = fw.check_and_repair()?;
            println!(
                "{name} check_and_repair bans={bans} s={:.3} repairs={}",
                t.elapsed().as_secs_f64(),
                repairs.len()
            );
            // A restart: open again and adopt every ban, then read them all back.
            drop(fw);
            let t = Instant::now();
            let fw = Firewall::open(opts)?;
            let reopen = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let listed = fw.list()?.len();
            println!(
                "{name} reopen bans={} s={reopen:.3} list={listed} list_s={:.3}",
                fw.len(),
                t.elapsed().as_secs_f64()
            );
            // Dropped without flush: the bans stay for the throughput run.
        }
        "flush" => println!("{}", Firewall::remove(opts)?),
        "timing" => {
            let fw = Firewall::open(opts)?;
            // Apply `bans` short and `bans` long bans: two commits, each one process call.
            let mut batch = Batch::new();
            for i in 0..bans {
                batch.block(addr(i), Duration::from_secs(30), &reason("short", i));
            }
            let t = Instant::now();
            check(fw.commit(batch)?)?;
            println!(
                "{name} apply bans={bans} s={:.3}",
                t.elapsed().as_secs_f64()
            );
            let mut batch = Batch::new();
            for i in bans..2 * bans {
                batch.block(addr(i), Duration::from_secs(3600), &reason("long", i));
            }
            let t = Instant::now();
            check(fw.commit(batch)?)?;
            println!(
                "{name} apply bans={bans} present={bans} s={:.3}",
                t.elapsed().as_secs_f64()
            );
            // Expire the short ones (as if 31 s later) with the long ones still present.
            let t = Instant::now();
            let due = fw.expire_due(SystemTime::now() + Duration::from_secs(31))?;
            println!(
                "{name} expire bans={} present={} s={:.3}",
                due.bans.len(),
                2 * bans,
                t.elapsed().as_secs_f64()
            );
            // Explicit removal of the long ones (a rebuild to empty for iptables, `del` lines for ipset).
            let mut batch = Batch::new();
            for i in bans..2 * bans {
                batch.unblock(addr(i));
            }
            let t = Instant::now();
            check(fw.commit(batch)?)?;
            println!(
                "{name} unblock bans={bans} s={:.3}",
                t.elapsed().as_secs_f64()
            );
            fw.flush()?;
        }
        other => return Err(format!("unknown --mode {other}").into()),
    }
    Ok(())
}

/// Every ban of the benchmark is a plain address: none may be refused.
fn check(done: autoblock_firewall::Committed) -> Result<(), String> {
    match done.refused.first() {
        Some(r) => Err(r.to_string()),
        None => Ok(()),
    }
}

/// Fill, watch, have the firewall wiped from outside, and time until it is repaired.
fn flush_repair(
    opts: FirewallOptions,
    netns: &str,
    backend: Backend,
    bans: u32,
    name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let fw = Firewall::open(opts)?;
    let mut batch = Batch::new();
    for i in 0..bans {
        batch.block(addr(i), Duration::from_secs(3600), "bench");
    }
    check(fw.commit(batch)?)?;
    let t = Instant::now();
    let watch = fw.watch()?;
    let subscribed = t.elapsed().as_secs_f64();
    let wipe: &[&str] = match backend {
        Backend::Nftables => &["nft", "flush", "ruleset"],
        _ => &["iptables", "-w", "-F", "AUTOBLOCK"],
    };
    let t = Instant::now();
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", netns])
        .args(wipe)
        .status()?;
    if !status.success() {
        return Err(format!("{wipe:?} failed: {status}").into());
    }
    let event = watch.wait_for_change(Duration::from_secs(30))?;
    let seen = t.elapsed();
    let repairs = fw.check_and_repair()?;
    let repaired = t.elapsed();
    let back = fw.list()?.len();
    println!(
        "{name} flush->repaired bans={bans} watch_start_s={subscribed:.3} event_s={:.3} repaired_s={:.3} repairs={} listed_after={back} event={event:?}",
        seen.as_secs_f64(),
        repaired.as_secs_f64(),
        repairs.len()
    );
    drop(watch);
    fw.flush()?;
    Ok(())
}
