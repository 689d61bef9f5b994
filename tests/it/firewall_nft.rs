//! The nftables backend against the real `nft` and kernel, each test inside namespaces it
//! creates: ban, expiry by the kernel, extension, unban, prefixes matching their whole range
//! (overlapping bans included), IPv4-mapped addresses, adoption on reopen with no gap, repair
//! after `nft flush ruleset`, and a flush that leaves every other table alone.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use autoblock::firewall::{Backend, Ban, Batch, Firewall, FirewallOptions, Repair};

use crate::firewall::{ban_list_extend_unban, block, net, packets};
use crate::harness::netns::{self, Netns, Pair};
use crate::harness::{require_root, wait_samples};

const TABLE: &str = "abtest";

fn opts(ns: &str) -> FirewallOptions {
    FirewallOptions::new(Backend::Nftables, "ABTEST")
        .netns(ns)
        .maxelem(1000)
}

fn open(ns: &Netns) -> Firewall {
    Firewall::open(opts(ns.name())).expect("open")
}

fn same_bans(a: &[Ban], b: &[Ban]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.net == y.net && x.reason == y.reason && x.until.abs_diff(y.until) <= 1)
}

/// `nft -a -t list table inet abtest`: structure with rule handles (changes if rebuilt).
fn structure(ns: &Netns) -> String {
    ns.ok(&["nft", "-a", "-t", "list", "table", "inet", TABLE])
}

#[test]
fn nft_ban_list_extend_unban() {
    ban_list_extend_unban(Backend::Nftables);
}

#[test]
fn nft_drops_banned_packets_only() {
    packets(Backend::Nftables);
}

#[test]
fn nft_expiry_by_kernel() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abn");
    let fw = open(&ns);
    block(&fw, &["203.0.113.7/32", "2001:db8:bad::/48"], 2, "short");
    block(&fw, &["198.51.100.0/24"], 600, "long");
    assert_eq!(fw.list().unwrap().len(), 3);
    std::thread::sleep(Duration::from_millis(3200));
    let left = fw.list().unwrap();
    assert_eq!(
        left.len(),
        1,
        "the kernel should have expired the 2 s bans: {left:?}"
    );
    assert_eq!(left[0].net, net("198.51.100.0/24"));
    let due = fw.expire_due(SystemTime::now()).unwrap();
    assert_eq!(due.bans.len(), 2);
    assert_eq!(fw.len(), 1);
    fw.flush().unwrap();
}

/// A /31 drops exactly its two addresses; a /24 around it (an overlapping ban, each with its
/// own expiry) drops the whole range; lifting the /24 leaves the /31 in force.
#[test]
fn nft_prefixes_match_their_whole_range_and_may_overlap() {
    if !require_root() {
        return;
    }
    let pair = Pair::new("abn");
    let _listeners = pair.listen();
    let fw = Firewall::open(opts(pair.server.name())).unwrap();
    // CLIENT4 = .1 and CLIENT4_B = .3; CLIENT6 = ::1 and CLIENT6_B = ::3.
    block(&fw, &["10.200.0.0/31", "fd00:200::/127"], 600, "narrow");
    assert!(!pair.reaches(netns::CLIENT4, netns::SERVER4));
    assert!(pair.reaches(netns::CLIENT4_B, netns::SERVER4));
    assert!(!pair.reaches(netns::CLIENT6, netns::SERVER6));
    assert!(pair.reaches(netns::CLIENT6_B, netns::SERVER6));
    block(&fw, &["10.200.0.0/24", "fd00:200::/64"], 600, "wide");
    assert!(
        !pair.reaches(netns::CLIENT4_B, netns::SERVER4),
        "inside the /24"
    );
    assert!(
        !pair.reaches(netns::CLIENT6_B, netns::SERVER6),
        "inside the /64"
    );
    assert_eq!(fw.list().unwrap().len(), 4);
    let mut b = Batch::new();
    b.unblock(net("10.200.0.0/24"))
        .unblock(net("fd00:200::/64"));
    let done = fw.commit(b).unwrap();
    assert!(done.refused.is_empty(), "{:?}", done.refused);
    assert!(pair.reaches(netns::CLIENT4_B, netns::SERVER4));
    assert!(pair.reaches(netns::CLIENT6_B, netns::SERVER6));
    assert!(
        !pair.reaches(netns::CLIENT4, netns::SERVER4),
        "the /31 stays"
    );
    let counters = pair
        .server
        .ok(&["nft", "list", "chain", "inet", TABLE, "input"]);
    assert!(
        counters.contains("@v4_31 counter packets")
            && !counters.contains("@v4_31 counter packets 0 "),
        "the /31 rule counted drops: {counters}"
    );
    fw.flush().unwrap();
}

#[test]
fn nft_ipv4_mapped_blocks_the_ipv4_address() {
    if !require_root() {
        return;
    }
    let pair = Pair::new("abn");
    let _listeners = pair.listen();
    let fw = Firewall::open(opts(pair.server.name())).unwrap();
    let mapped: IpAddr = format!("::ffff:{}", netns::CLIENT4).parse().unwrap();
    let mut b = Batch::new();
    b.block(mapped, Duration::from_secs(60), "dual-stack");
    let done = fw.commit(b).unwrap();
    assert!(done.refused.is_empty(), "{:?}", done.refused);
    let bans = fw.list().unwrap();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].net, net(&format!("{}/32", netns::CLIENT4)));
    assert!(!pair.reaches(netns::CLIENT4, netns::SERVER4));
    assert!(pair.reaches(netns::CLIENT4_B, netns::SERVER4));
    let mut b = Batch::new();
    b.unblock(mapped);
    let done = fw.commit(b).unwrap();
    assert!(done.refused.is_empty(), "{:?}", done.refused);
    assert!(fw.list().unwrap().is_empty());
    assert!(pair.reaches(netns::CLIENT4, netns::SERVER4));
    fw.flush().unwrap();
}

/// Reopening adopts every ban with its remaining time and leaves the table untouched (same rule
/// handles), and a sampler reading the kernel every few ms across the drop and the reopen never
/// sees the ban missing.
#[test]
fn nft_reopen_adopts_without_a_gap() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abn");
    let fw = open(&ns);
    block(
        &fw,
        &[
            "203.0.113.7/32",
            "2001:db8:bad::/48",
            "198.51.100.0/24",
            "fd00:dead::/64",
        ],
        600,
        "a",
    );
    block(&fw, &["192.0.2.9/32"], 1200, "b");
    let before = fw.list().unwrap();
    let shape = structure(&ns);
    let stop = Arc::new(AtomicBool::new(false));
    let taken = Arc::new(AtomicU32::new(0));
    let sampler = {
        let (stop, taken, name) = (stop.clone(), taken.clone(), ns.name().to_string());
        std::thread::spawn(move || {
            let (mut samples, mut missing) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let out = std::process::Command::new("ip")
                    .args([
                        "netns", "exec", &name, "nft", "list", "set", "inet", TABLE, "v4_32",
                    ])
                    .output()
                    .expect("nft list set");
                if !String::from_utf8_lossy(&out.stdout).contains("192.0.2.9 ") {
                    missing += 1;
                }
                samples += 1;
                taken.store(samples, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(3));
            }
            (samples, missing)
        })
    };
    // At least 5 samples before the drop and 5 after the reopen, however slow a busy machine
    // makes each `nft`.
    wait_samples(&taken, 5);
    drop(fw); // no cleanup: everything stays in the kernel
    let fw = open(&ns);
    wait_samples(&taken, taken.load(Ordering::Relaxed) + 5);
    stop.store(true, Ordering::Relaxed);
    let (samples, missing) = sampler.join().unwrap();
    assert!(samples >= 10, "too few samples: {samples}");
    assert_eq!(missing, 0, "{missing} of {samples} samples without the ban");
    assert!(same_bans(&fw.list().unwrap(), &before), "{before:?}");
    assert_eq!(fw.len(), 5);
    assert_eq!(structure(&ns), shape, "reopen changed an intact table");
    fw.flush().unwrap();
}

#[test]
fn nft_repair_after_flush_ruleset() {
    if !require_root() {
        return;
    }
    let pair = Pair::new("abn");
    let _listeners = pair.listen();
    let fw = Firewall::open(opts(pair.server.name())).unwrap();
    let (c4, c6) = (
        format!("{}/32", netns::CLIENT4),
        format!("{}/128", netns::CLIENT6),
    );
    block(&fw, &[&c4, &c6, "198.51.100.0/24"], 600, "a");
    assert!(fw.check_and_repair().unwrap().is_empty());
    let want = fw.list().unwrap();

    pair.server.ok(&["nft", "flush", "ruleset"]);
    assert!(
        pair.reaches(netns::CLIENT4, netns::SERVER4),
        "flushed: no ban"
    );
    let r = fw.check_and_repair().unwrap();
    assert!(
        matches!(&r[..], [Repair::TableRestored { entries: 3, problem, .. }] if problem == "table missing"),
        "{r:?}"
    );
    assert!(same_bans(&fw.list().unwrap(), &want));
    assert!(!pair.reaches(netns::CLIENT4, netns::SERVER4));
    assert!(!pair.reaches(netns::CLIENT6, netns::SERVER6));

    // One rule deleted by hand: the table is rebuilt with it.
    let listing = structure(&pair.server);
    let handle = listing
        .lines()
        .find(|l| l.contains("@v4_24"))
        .and_then(|l| l.rsplit("# handle ").next())
        .expect("v4_24 rule")
        .trim()
        .to_string();
    pair.server.ok(&[
        "nft", "delete", "rule", "inet", TABLE, "input", "handle", &handle,
    ]);
    let r = fw.check_and_repair().unwrap();
    assert!(
        r.len() == 1
            && r[0]
                .to_string()
                .contains("chain input has 0 rules for @v4_24"),
        "{r:?}"
    );
    assert!(same_bans(&fw.list().unwrap(), &want));
    assert!(fw.check_and_repair().unwrap().is_empty());
    // iptables -F does not touch our table at all.
    pair.server.ok(&["iptables", "-w", "-F"]);
    assert!(fw.check_and_repair().unwrap().is_empty());
    fw.flush().unwrap();
}

#[test]
fn nft_flush_removes_only_ours() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abn");
    ns.ok(&[
        "iptables",
        "-w",
        "-A",
        "INPUT",
        "-s",
        "192.0.2.99/32",
        "-j",
        "DROP",
    ]);
    ns.ok(&["nft", "add", "table", "inet", "other"]);
    ns.ok(&[
        "nft",
        "add",
        "set",
        "inet",
        "other",
        "keep",
        "{ type ipv4_addr; flags timeout; }",
    ]);
    ns.ok(&[
        "nft",
        "add",
        "element",
        "inet",
        "other",
        "keep",
        "{ 192.0.2.98 timeout 1h }",
    ]);
    ns.ok(&[
        "nft",
        "add",
        "chain",
        "inet",
        "other",
        "input",
        "{ type filter hook input priority 0; }",
    ]);
    ns.ok(&[
        "nft",
        "add",
        "rule",
        "inet",
        "other",
        "input",
        "ip saddr @keep drop",
    ]);
    let strip = |s: String| {
        s.lines()
            .filter(|l| !l.contains("expires"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    let foreign = strip(ns.ok(&["nft", "list", "ruleset"]));
    let fw = Firewall::open(opts(ns.name()).hooks(["INPUT", "FORWARD", "raw:PREROUTING"])).unwrap();
    block(&fw, &["203.0.113.7/32", "2001:db8:bad::/48"], 600, "a");
    let during = ns.ok(&["nft", "list", "ruleset"]);
    assert!(
        during.contains("hook prerouting priority raw - 10") && during.contains("hook forward"),
        "{during}"
    );
    fw.flush().unwrap();
    assert_eq!(strip(ns.ok(&["nft", "list", "ruleset"])), foreign);
}

#[test]
fn probe_changes_nothing_and_names_what_fails() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abn");
    for b in [Backend::Nftables, Backend::Ipset, Backend::Iptables] {
        b.probe(Some(ns.name()))
            .unwrap_or_else(|e| panic!("{b:?}: {e}"));
    }
    assert_eq!(
        ns.ok(&["nft", "list", "ruleset"]),
        "",
        "the probe committed something"
    );
    let e = Backend::Nftables
        .probe(Some("abn-does-not-exist"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nft -c -f -") && e.contains("abn-does-not-exist"),
        "{e}"
    );
}

/// Reasons are stored verbatim in element comments and read back exactly, also on reopen:
/// spaces, commas, braces, quotes of the other kind, backslashes, non-ASCII, 128 bytes.
#[test]
fn nft_reasons_are_kept_verbatim() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abn");
    let fw = open(&ns);
    let long = "x".repeat(128);
    let reasons = [
        "abuse feed #42",
        "a, b }",
        "x\\y 'q'",
        "ünïcode ✓",
        long.as_str(),
    ];
    let mut b = Batch::new();
    for (i, r) in reasons.iter().enumerate() {
        b.block(
            net(&format!("192.0.2.{}/32", i + 1)),
            Duration::from_secs(600),
            r,
        );
    }
    let done = fw.commit(b).unwrap();
    assert!(done.refused.is_empty(), "{:?}", done.refused);
    let got: Vec<String> = fw.list().unwrap().into_iter().map(|b| b.reason).collect();
    assert_eq!(got, reasons);
    drop(fw);
    let fw = open(&ns);
    let got: Vec<String> = fw.list().unwrap().into_iter().map(|b| b.reason).collect();
    assert_eq!(got, reasons, "after reopen");
    fw.flush().unwrap();
}
