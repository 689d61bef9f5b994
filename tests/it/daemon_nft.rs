//! The daemon with `backend = "nftables"` (the config path and the enforcer the other backends
//! use): a flood is banned into our table, and a `kill -9` plus restart keeps the ban in the
//! kernel the whole time (sampled every few ms), the new daemon adopts it, and the attacker
//! stays blocked. See `daemon_util` for the topology.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use crate::harness::daemon::{ATTACKER4, Daemon, Setup, Topo, poll};
use crate::harness::netns::Netns;
use crate::harness::{require_root, wait_samples};

const EVENT: Duration = Duration::from_secs(20);

/// True when the kernel's host set holds `addr` (one `nft list set` call).
fn in_host_set(ns: &str, addr: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .args(["nft", "list", "set", "inet", "autoblock", "v4_32"])
        .output()
        .expect("nft list set");
    String::from_utf8_lossy(&out.stdout).contains(&format!("{addr} "))
}

fn rule_count(ns: &Netns) -> usize {
    ns.ok(&["nft", "list", "chain", "inet", "autoblock", "input"])
        .matches(" drop")
        .count()
}

#[test]
fn nft_kill9_restart_keeps_block_without_gap() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abdn");
    let _svc = t.serve();
    let mut s = Setup::new();
    s.backend("nftables");
    s.write();
    let mut d = Daemon::start_as(&t.victim, &s, &[], "first");
    assert_eq!(d.status()["backend"], "nftables", "{}", d.status());
    let flood = t.flood(300, 1000, &[]);
    d.wait_event(EVENT, "block", |e| e["ip"] == ATTACKER4);
    let ns = t.victim.name().to_string();
    assert!(
        poll(EVENT, || in_host_set(&ns, ATTACKER4)),
        "no element for {ATTACKER4} in inet autoblock v4_32"
    );
    flood.wait(Duration::from_secs(30));
    let rules = rule_count(&t.victim);

    let stop = Arc::new(AtomicBool::new(false));
    let taken = Arc::new(AtomicU32::new(0));
    let sampler = {
        let (stop, taken, ns) = (stop.clone(), taken.clone(), ns.clone());
        std::thread::spawn(move || {
            let (mut samples, mut missing) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                if !in_host_set(&ns, ATTACKER4) {
                    missing += 1;
                }
                samples += 1;
                taken.store(samples, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
            (samples, missing)
        })
    };
    wait_samples(&taken, 5);
    d.kill9();
    std::thread::sleep(Duration::from_millis(300));
    let d2 = Daemon::start_as(&t.victim, &s, &[], "second");
    let started = d2.of("started").remove(0);
    assert_eq!(started["adopted_bans"], 1, "{started}");
    assert_eq!(started["backend"], "nftables", "{started}");
    std::thread::sleep(Duration::from_millis(500));
    wait_samples(&taken, taken.load(Ordering::Relaxed) + 5);
    stop.store(true, Ordering::Relaxed);
    let (samples, missing) = sampler.join().expect("sampler");
    eprintln!("kill -9 + restart: {samples} samples of v4_32, {missing} without the ban");
    assert!(samples >= 10, "too few samples: {samples}");
    assert_eq!(missing, 0, "a gap");
    assert_eq!(rule_count(&t.victim), rules, "no rule added by the restart");
    assert!(
        !t.attacker_connects(),
        "the attacker connects after the restart"
    );
    assert!(t.client_connects());
}
