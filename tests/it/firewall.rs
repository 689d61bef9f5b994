//! The firewall API against real iptables/ip6tables/ipset, each test inside namespaces it
//! creates (never the host's tables): ban, expiry, extension, unban, reconcile after reopen,
//! repair after outside damage, flush, and real packets dropped or passed. Both backends,
//! both families.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use autoblock::firewall::{Backend, Ban, Batch, Firewall, FirewallError, FirewallOptions, Repair};
use ipnet::IpNet;

use crate::harness::netns::{self, Netns, Pair};
use crate::harness::{mid_bucket_ttl, require_root};

const V4: &str = "203.0.113.7/32";
const V6: &str = "2001:db8:bad::/48";

pub(crate) fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Our chain in these tests (and in `firewall_runs`, which shares these helpers).
pub(crate) const CHAIN: &str = "ABTEST";

pub(crate) fn open(ns: &Netns, backend: Backend) -> Firewall {
    Firewall::open(
        FirewallOptions::new(backend, CHAIN)
            .netns(ns.name())
            .maxelem(1000),
    )
    .expect("open")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn find<'a>(bans: &'a [Ban], n: &str) -> Vec<&'a Ban> {
    bans.iter().filter(|b| b.net == net(n)).collect()
}

/// Commits bans of `nets` for `ttl` seconds; none may be refused.
pub(crate) fn block(fw: &Firewall, nets: &[&str], ttl: u64, reason: &str) {
    let mut b = Batch::new();
    for n in nets {
        b.block(net(n), Duration::from_secs(ttl), reason);
    }
    let done = fw.commit(b).expect("commit");
    assert!(done.refused.is_empty(), "{:?}", done.refused);
}

pub(crate) fn ban_list_extend_unban(backend: Backend) {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abt");
    let fw = open(&ns, backend);
    block(&fw, &[V4, V6], 600, "login-abuse");
    let bans = fw.list().unwrap();
    assert_eq!(bans.len(), 2, "{bans:?}");
    let v4 = find(&bans, V4)[0];
    assert_eq!(v4.reason, "login-abuse");
    assert!(v4.until.abs_diff(now_secs() + 600) <= 1, "{v4:?}");
    // Extension: the same nets again with a longer TTL replace, never duplicate.
    block(&fw, &[V4, V6], 3600, "feed");
    let bans = fw.list().unwrap();
    assert_eq!(bans.len(), 2, "{bans:?}");
    for b in &bans {
        assert!(b.until.abs_diff(now_secs() + 3600) <= 1, "{b:?}");
        assert_eq!(b.reason, "feed");
    }
    // Unban one of each family.
    let mut b = Batch::new();
    b.unblock(net(V4)).unblock(net(V6));
    let _ = fw.commit(b).unwrap();
    assert!(fw.list().unwrap().is_empty());
    assert!(fw.is_empty());
    fw.flush().unwrap();
}

#[test]
fn iptables_ban_list_extend_unban() {
    ban_list_extend_unban(Backend::Iptables);
}

#[test]
fn ipset_ban_list_extend_unban() {
    ban_list_extend_unban(Backend::Ipset);
}

#[test]
fn iptables_expiry_by_call() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abt");
    let fw = open(&ns, Backend::Iptables);
    block(&fw, &[V4, V6], 2, "short");
    block(&fw, &["198.51.100.0/24"], 600, "long");
    let next = fw.next_expiry().unwrap();
    let due_at = next
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(due_at.abs_diff(now_secs() + 2) <= 1);
    assert!(
        fw.expire_due(next - Duration::from_secs(1))
            .unwrap()
            .is_empty()
    );
    let due = fw.expire_due(next).unwrap().bans;
    assert_eq!(due.len(), 2, "{due:?}");
    let left = fw.list().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].net, net("198.51.100.0/24"));
    fw.flush().unwrap();
}

#[test]
fn ipset_expiry_by_kernel() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abt");
    let fw = open(&ns, Backend::Ipset);
    block(&fw, &[V4, V6], 2, "short");
    block(&fw, &["198.51.100.0/24"], 600, "long");
    assert_eq!(fw.list().unwrap().len(), 3);
    std::thread::sleep(Duration::from_millis(3200));
    let left = fw.list().unwrap();
    assert_eq!(
        left.len(),
        1,
        "kernel should have expired the 2 s bans: {left:?}"
    );
    let due = fw.expire_due(SystemTime::now()).unwrap().bans;
    assert_eq!(due.len(), 2);
    assert_eq!(fw.len(), 1);
    fw.flush().unwrap();
}

fn reconcile_after_reopen(backend: Backend) {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abt");
    let fw = open(&ns, backend);
    block(
        &fw,
        &[V4, V6, "198.51.100.0/24", "fd00:dead::/64"],
        600,
        "a",
    );
    block(&fw, &["192.0.2.9/32"], 1200, "b");
    let before = fw.list().unwrap();
    drop(fw); // killed without cleanup: everything stays in the kernel
    if backend == Backend::Iptables {
        // One commit's bans of one reason and end: only the first carries the comment, and
        // the reopen below must read the bare one back with it.
        for (save, bare) in [
            ("iptables-save", "-s 203.0.113.7/32 -j DROP"),
            ("ip6tables-save", "-s fd00:dead::/64 -j DROP"),
        ] {
            let dump = ns.ok(&[save, "-t", "filter"]);
            assert_eq!(dump.matches("rule=a\"").count(), 1, "{dump}");
            assert!(dump.contains(bare), "{dump}");
        }
        // Damage a dead process could leave: a duplicate (older), an expired rule, a second jump.
        ns.ok(&[
            "iptables",
            "-w",
            "-A",
            "ABTEST",
            "-s",
            "192.0.2.9/32",
            "-m",
            "comment",
            "--comment",
            "autoblock until=1000 rule=old",
            "-j",
            "DROP",
        ]);
        ns.ok(&[
            "iptables",
            "-w",
            "-A",
            "ABTEST",
            "-s",
            "192.0.2.10/32",
            "-m",
            "comment",
            "--comment",
            "autoblock until=1000 rule=expired",
            "-j",
            "DROP",
        ]);
    }
    ns.ok(&["iptables", "-w", "-A", "INPUT", "-j", "ABTEST"]);
    let fw = open(&ns, backend);
    let after = fw.list().unwrap();
    assert_eq!(after.len(), before.len(), "{after:?}");
    for b in &before {
        let same = find(&after, &b.net.to_string());
        assert_eq!(same.len(), 1, "{} duplicated or lost: {after:?}", b.net);
        assert!(
            same[0].until.abs_diff(b.until) <= 1,
            "{:?} vs {:?}",
            same[0],
            b
        );
        assert_eq!(same[0].reason, b.reason);
    }
    let dump = ns.ok(&["iptables-save", "-t", "filter"]);
    assert_eq!(dump.matches("-A INPUT -j ABTEST").count(), 1, "{dump}");
    assert!(
        !dump.contains("rule=old") && !dump.contains("rule=expired"),
        "{dump}"
    );
    assert_eq!(fw.len(), 5);
    fw.flush().unwrap();
}

#[test]
fn iptables_reconcile_after_reopen() {
    reconcile_after_reopen(Backend::Iptables);
}

#[test]
fn ipset_reconcile_after_reopen() {
    reconcile_after_reopen(Backend::Ipset);
}

fn has(repairs: &[Repair], f: impl Fn(&Repair) -> bool) -> bool {
    repairs.iter().any(f)
}

#[test]
fn iptables_repair_after_outside_damage() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abt");
    let fw = open(&ns, Backend::Iptables);
    block(&fw, &[V4, V6], 600, "a");
    assert!(fw.check_and_repair().unwrap().is_empty());
    let want = fw.list().unwrap();

    ns.ok(&["iptables", "-w", "-F", "ABTEST"]);
    let r = fw.check_and_repair().unwrap();
    assert!(
        has(&r, |r| matches!(r, Repair::ChainRebuilt { rules: 1, .. })),
        "{r:?}"
    );
    assert_eq!(fw.list().unwrap(), want);

    ns.ok(&["ip6tables", "-w", "-D", "INPUT", "-j", "ABTEST"]);
    ns.ok(&["ip6tables", "-w", "-F", "ABTEST"]);
    ns.ok(&["ip6tables", "-w", "-X", "ABTEST"]);
    ns.ok(&["iptables", "-w", "-D", "INPUT", "-j", "ABTEST"]);
    ns.ok(&["iptables", "-w", "-A", "INPUT", "-j", "ACCEPT"]);
    let r = fw.check_and_repair().unwrap();
    assert!(
        has(&r, |r| matches!(r, Repair::ChainRecreated { .. })),
        "{r:?}"
    );
    assert_eq!(
        r.iter()
            .filter(|r| matches!(r, Repair::JumpRestored { .. }))
            .count(),
        2,
        "{r:?}"
    );
    assert_eq!(fw.list().unwrap(), want);
    let dump = ns.ok(&["iptables-save", "-t", "filter"]);
    assert!(
        dump.contains("-A INPUT -j ABTEST\n-A INPUT -j ACCEPT"),
        "jump first: {dump}"
    );
    assert!(fw.check_and_repair().unwrap().is_empty());
    fw.flush().unwrap();
}

#[test]
fn ipset_repair_after_outside_damage() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abt");
    let fw = open(&ns, Backend::Ipset);
    block(&fw, &[V4, V6], 600, "a");
    assert!(fw.check_and_repair().unwrap().is_empty());
    let want = fw.list().unwrap();

    ns.ok(&["ipset", "flush", "abtest4"]);
    let r = fw.check_and_repair().unwrap();
    assert!(
        has(&r, |r| matches!(r, Repair::SetRefilled { entries: 1, .. })),
        "{r:?}"
    );
    let got = fw.list().unwrap();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .zip(&want)
            .all(|(g, w)| g.net == w.net && g.until.abs_diff(w.until) <= 1)
    );

    ns.ok(&[
        "ip6tables",
        "-w",
        "-D",
        "ABTEST",
        "-m",
        "set",
        "--match-set",
        "abtest6",
        "src",
        "-j",
        "DROP",
    ]);
    ns.ok(&["ipset", "destroy", "abtest6"]);
    ns.ok(&["iptables", "-w", "-F", "ABTEST"]);
    let r = fw.check_and_repair().unwrap();
    assert!(
        has(&r, |r| matches!(r, Repair::SetRecreated { entries: 1, .. })),
        "{r:?}"
    );
    assert_eq!(
        r.iter()
            .filter(|r| matches!(r, Repair::MatchRuleRestored { .. }))
            .count(),
        2,
        "{r:?}"
    );
    assert_eq!(fw.list().unwrap().len(), 2);
    assert!(fw.check_and_repair().unwrap().is_empty());
    fw.flush().unwrap();
}

fn flush_keeps_foreign(backend: Backend) {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abt");
    let empty = ns.firewall_dump();
    ns.ok(&["iptables", "-w", "-N", "FOREIGN"]);
    ns.ok(&[
        "iptables",
        "-w",
        "-A",
        "INPUT",
        "-s",
        "192.0.2.99/32",
        "-j",
        "FOREIGN",
    ]);
    ns.ok(&[
        "ip6tables",
        "-w",
        "-A",
        "INPUT",
        "-s",
        "fd00:99::/64",
        "-j",
        "DROP",
    ]);
    ns.ok(&["ipset", "create", "foreign", "hash:ip"]);
    let foreign = ns.firewall_dump();
    let fw = Firewall::open(
        FirewallOptions::new(backend, "ABTEST")
            .hooks(["INPUT", "FORWARD", "raw:PREROUTING"])
            .netns(ns.name()),
    )
    .unwrap();
    block(&fw, &[V4, V6], 600, "a");
    let dump = ns.firewall_dump();
    assert!(
        dump.contains("-A PREROUTING -j ABTEST") && dump.contains("-A FORWARD -j ABTEST"),
        "{dump}"
    );
    fw.flush().unwrap();
    let after = ns.firewall_dump();
    assert!(
        !after.contains("ABTEST") && !after.contains("abtest"),
        "{after}"
    );
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    // Only our chains (declared empty in raw now, like before) differ: foreign state is intact.
    assert_eq!(
        strip(&after).replace(
            "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
            ""
        ),
        strip(&foreign)
    );
    assert_ne!(strip(&foreign), strip(&empty));
}

#[test]
fn iptables_flush_removes_only_ours() {
    flush_keeps_foreign(Backend::Iptables);
}

#[test]
fn ipset_flush_removes_only_ours() {
    flush_keeps_foreign(Backend::Ipset);
}

pub(crate) fn packets(backend: Backend) {
    if !require_root() {
        return;
    }
    let pair = Pair::new("abt");
    let _listeners = pair.listen();
    for (a, b, dst) in [
        (netns::CLIENT4, netns::CLIENT4_B, netns::SERVER4),
        (netns::CLIENT6, netns::CLIENT6_B, netns::SERVER6),
    ] {
        assert!(
            pair.reaches(a, dst) && pair.reaches(b, dst),
            "no path {a}/{b} -> {dst} before any ban"
        );
    }
    let fw =
        Firewall::open(FirewallOptions::new(backend, "ABTEST").netns(pair.server.name())).unwrap();
    let mut batch = Batch::new();
    batch.block(
        netns::CLIENT4.parse::<IpAddr>().unwrap(),
        Duration::from_secs(60),
        "test",
    );
    batch.block(
        netns::CLIENT6.parse::<IpAddr>().unwrap(),
        Duration::from_secs(60),
        "test",
    );
    let _ = fw.commit(batch).unwrap();
    for (a, b, dst) in [
        (netns::CLIENT4, netns::CLIENT4_B, netns::SERVER4),
        (netns::CLIENT6, netns::CLIENT6_B, netns::SERVER6),
    ] {
        assert!(!pair.reaches(a, dst), "banned {a} still reaches {dst}");
        assert!(pair.reaches(b, dst), "unbanned {b} blocked from {dst}");
    }
    assert!(
        !pair.pings(netns::CLIENT4, netns::SERVER4),
        "banned ping answered"
    );
    assert!(
        pair.pings(netns::CLIENT4_B, netns::SERVER4),
        "unbanned ping dropped"
    );
    let mut batch = Batch::new();
    batch.unblock(netns::CLIENT4.parse::<IpAddr>().unwrap());
    batch.unblock(netns::CLIENT6.parse::<IpAddr>().unwrap());
    let _ = fw.commit(batch).unwrap();
    assert!(pair.reaches(netns::CLIENT4, netns::SERVER4));
    assert!(pair.reaches(netns::CLIENT6, netns::SERVER6));
    assert!(pair.pings(netns::CLIENT4, netns::SERVER4));
    fw.flush().unwrap();
}

#[test]
fn iptables_drops_banned_packets_only() {
    packets(Backend::Iptables);
}

#[test]
fn ipset_drops_banned_packets_only() {
    packets(Backend::Ipset);
}

#[test]
fn errors_carry_command_status_stderr_and_the_failing_line() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abt");
    let fw = open(&ns, Backend::Iptables);
    // Two bans a moment apart, ending in the middle of one 32-second span: one ban chain.
    let ttl = mid_bucket_ttl();
    let mut b = Batch::new();
    b.block(net(V4), ttl, "abuse feed #42");
    assert!(fw.commit(b).unwrap().refused.is_empty());
    let bucket = ns.ban_chain("ABTEST");
    // Someone jumps to the ban's chain from elsewhere: its deletion, once its ban is removed,
    // fails, and the removal succeeds all the same (the emptied chain stays, unreached).
    ns.ok(&["iptables", "-w", "-A", "FORWARD", "-j", &bucket]);
    let mut b = Batch::new();
    b.unblock(net(V4));
    assert!(fw.commit(b).unwrap().refused.is_empty());
    assert!(fw.is_empty());
    let chains = ns.chain_lines("iptables", "ABTEST");
    assert!(chains.contains(&format!("-N {bucket}\n")), "{chains}");
    assert!(
        !chains.contains(&format!("-j {bucket}")),
        "unreached: {chains}"
    );
    assert!(
        fw.check_and_repair().unwrap().is_empty(),
        "an empty chain is harmless"
    );
    ns.ok(&["iptables", "-w", "-D", "FORWARD", "-j", &bucket]);

    // Someone deletes the ban chain: the next ban of that end time fails in the kernel.
    let mut b = Batch::new();
    b.block(net(V4), ttl, "abuse feed #42");
    assert!(fw.commit(b).unwrap().refused.is_empty());
    ns.ok(&["iptables", "-w", "-F", "ABTEST.bans"]);
    ns.ok(&["iptables", "-w", "-F", &bucket]);
    ns.ok(&["iptables", "-w", "-X", &bucket]);
    let mut b = Batch::new();
    b.block(
        "203.0.113.8".parse::<IpAddr>().unwrap(),
        ttl,
        "abuse feed #42",
    );
    let e = fw.commit(b).unwrap_err();
    let text = e.to_string();
    assert!(
        e.command().is_some_and(
            |c| c.starts_with(&format!("ip netns exec {} iptables-restore", ns.name()))
        ),
        "{text}"
    );
    assert!(e.status().is_some_and(|s| !s.success()), "{text}");
    assert!(e.stderr().is_some_and(|s| s.contains("line 2")), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(
        text.contains(&format!(
            "(input line 2: `-A {bucket} -s 203.0.113.8/32 -m comment --comment \"autoblock until="
        )),
        "{text}"
    );
    assert_eq!(fw.len(), 1, "nothing recorded for a failed commit");
    assert!(!fw.check_and_repair().unwrap().is_empty());
    fw.flush().unwrap();

    let e = Firewall::open(
        FirewallOptions::new(Backend::Iptables, "ABTEST").netns("abt-does-not-exist"),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("network namespace \"abt-does-not-exist\" not found"),
        "{e}"
    );
    let e = Firewall::open(FirewallOptions::new(Backend::Iptables, "BAD NAME")).unwrap_err();
    assert!(matches!(e, FirewallError::InvalidOption(_)), "{e}");
}
