//! `Firewall::watch` on a real kernel (inside namespaces): an `nft flush ruleset` or an
//! `iptables -F` wakes the watcher at once, `check_and_repair` then restores every ban, and
//! our own commits do not wake it (nftables backend). `watch()` returns once subscribed: no
//! sleep is needed before the damage. Our own expiries and unblocks do not wake it with the
//! iptables backend either.

use std::time::{Duration, Instant};

use autoblock::firewall::{Backend, Batch, Firewall, FirewallOptions, Repair};

use crate::harness::netns::{self, Netns, Pair};
use crate::harness::require_root;

#[test]
fn nft_flush_ruleset_is_repaired_on_the_event() {
    if !require_root() {
        return;
    }
    let pair = Pair::new("abw");
    let _listeners = pair.listen();
    let fw = Firewall::open(
        FirewallOptions::new(Backend::Nftables, "ABWATCH").netns(pair.server.name()),
    )
    .unwrap();
    let watch = fw.watch().unwrap();
    let mut b = Batch::new();
    b.block(
        netns::CLIENT4.parse::<std::net::IpAddr>().unwrap(),
        Duration::from_secs(600),
        "a",
    );
    b.block(
        "198.51.100.9".parse::<std::net::IpAddr>().unwrap(),
        Duration::from_secs(600),
        "b",
    );
    let done = fw.commit(b).unwrap();
    assert!(done.refused.is_empty(), "{:?}", done.refused);
    let mut b = Batch::new();
    b.unblock("198.51.100.9".parse::<std::net::IpAddr>().unwrap());
    let done = fw.commit(b).unwrap();
    assert!(done.refused.is_empty(), "{:?}", done.refused);
    assert_eq!(
        watch.wait_for_change(Duration::from_millis(500)).unwrap(),
        None,
        "our own commits woke the watcher"
    );
    assert!(!pair.reaches(netns::CLIENT4, netns::SERVER4));

    let t0 = Instant::now();
    pair.server.ok(&["nft", "flush", "ruleset"]);
    let event = watch.wait_for_change(Duration::from_secs(10)).unwrap();
    assert!(event.is_some(), "no event after nft flush ruleset");
    let repairs = fw.check_and_repair().unwrap();
    let took = t0.elapsed();
    eprintln!("nft flush ruleset -> repaired in {took:?} ({:?})", event);
    assert!(
        matches!(&repairs[..], [Repair::TableRestored { entries: 1, .. }]),
        "{repairs:?}"
    );
    assert!(!pair.reaches(netns::CLIENT4, netns::SERVER4), "ban back");
    assert!(pair.reaches(netns::CLIENT4_B, netns::SERVER4));
    drop(watch);
    fw.flush().unwrap();
}

#[test]
fn iptables_flush_wakes_the_watch_of_an_iptables_backend() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abw");
    let fw = Firewall::open(FirewallOptions::new(Backend::Iptables, "ABWATCH").netns(ns.name()))
        .unwrap();
    let mut b = Batch::new();
    b.block(
        "203.0.113.7".parse::<std::net::IpAddr>().unwrap(),
        Duration::from_secs(600),
        "a",
    );
    let done = fw.commit(b).unwrap();
    assert!(done.refused.is_empty(), "{:?}", done.refused);
    let watch = fw.watch().unwrap();
    // Our own expiries and unblocks rewrite and delete only private ban chains: no wake-up.
    let mut b = Batch::new();
    for (ip, secs) in [
        ("198.51.100.9", 2),
        ("198.51.100.10", 2),
        ("198.51.100.11", 900),
    ] {
        b.block(
            ip.parse::<std::net::IpAddr>().unwrap(),
            Duration::from_secs(secs),
            "b",
        );
    }
    assert!(fw.commit(b).unwrap().refused.is_empty());
    let mut b = Batch::new();
    b.unblock("198.51.100.11".parse::<std::net::IpAddr>().unwrap());
    assert!(fw.commit(b).unwrap().refused.is_empty());
    let due = fw
        .expire_due(std::time::SystemTime::now() + Duration::from_secs(10))
        .unwrap();
    assert_eq!(due.bans.len(), 2, "{due:?}");
    let before = ns.chain_lines("iptables", "ABWATCH");
    assert_eq!(before.matches("-j DROP").count(), 1, "{before}");
    assert_eq!(
        watch.wait_for_change(Duration::from_millis(500)).unwrap(),
        None,
        "our own expiry and unblock woke the watcher"
    );
    ns.ok(&["iptables", "-w", "-F", "ABWATCH"]);
    let event = watch.wait_for_change(Duration::from_secs(10)).unwrap();
    assert!(
        event
            .as_deref()
            .is_some_and(|e| e.starts_with("delete rule ip filter ABWATCH")),
        "{event:?}"
    );
    let repairs = fw.check_and_repair().unwrap();
    assert!(
        matches!(&repairs[..], [Repair::ChainRebuilt { rules: 1, .. }]),
        "{repairs:?}"
    );
    drop(watch);
    fw.flush().unwrap();
}
