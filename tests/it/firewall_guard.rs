//! The firewall library's guard rails and address rules on a real kernel, both backends, each
//! test in namespaces it creates: `/0`, loopback and host-bit prefixes refused while the rest
//! of a 10k feed commits, IPv4-mapped addresses blocked as IPv4 (real packets), reasons kept
//! verbatim, a duplicate never shortens a ban, `list` and `next_expiry` agree, `flush` keeps a
//! hand-added rule, bad hooks and chain names leave nothing behind.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autoblock::firewall::{
    Backend, Batch, Firewall, FirewallError, FirewallOptions, IpNet, Refusal, Special,
};

use crate::harness::netns::{self, Netns, Pair};
use crate::harness::require_root;

const HOUR: Duration = Duration::from_secs(3600);

fn open(ns: &Netns, backend: Backend) -> Firewall {
    Firewall::open(FirewallOptions::new(backend, "ABTEST").netns(ns.name())).expect("open")
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn feed_with_bad_lines(backend: Backend) {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abg");
    let fw = open(&ns, backend);
    let mut b = Batch::new();
    for i in 0..10_000u32 {
        b.block(
            Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i),
            HOUR,
            "abuse feed #42",
        );
    }
    for bad in ["0.0.0.0/0", "::/0", "127.0.0.1/32", "::1/128", "10.0.0.0/1"] {
        b.block(net(bad), HOUR, "abuse feed #42");
    }
    let done = fw.commit(b).expect("the good lines commit");
    let why: Vec<String> = done.refused.iter().map(ToString::to_string).collect();
    assert_eq!(why.len(), 5, "{why:#?}");
    assert!(why[0].starts_with("refused 0.0.0.0/0: "), "{why:#?}");
    assert!(why[2].contains("loopback"), "{why:#?}");
    assert!(
        why[4].contains("host bits set (did you mean 0.0.0.0/1?)"),
        "{why:#?}"
    );
    let bans = fw.list().unwrap();
    assert_eq!(bans.len(), 10_000);
    assert!(
        bans.iter().all(|b| b.reason == "abuse feed #42"),
        "verbatim"
    );
    let dump = ns.firewall_dump();
    for absent in [
        "0.0.0.0/0 ",
        "-s 0.0.0.0/0",
        "127.0.0.1",
        "::1",
        "0.0.0.0/1",
    ] {
        assert!(!dump.contains(absent), "{absent} reached the kernel");
    }
    // Loopback still works inside the namespace.
    let _listener = ns.spawn(&["nc", "-l", "-k", "-n", "127.0.0.1", "7001"]);
    let reached = (0..30).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        ns.exec(&["nc", "-z", "-n", "-w", "1", "127.0.0.1", "7001"])
            .status
            .success()
    });
    assert!(reached, "loopback traffic blocked");
    fw.flush().unwrap();
}

#[test]
fn iptables_feed_with_bad_lines_commits_the_rest() {
    feed_with_bad_lines(Backend::Iptables);
}

#[test]
fn ipset_feed_with_bad_lines_commits_the_rest() {
    feed_with_bad_lines(Backend::Ipset);
}

fn mapped_is_ipv4(backend: Backend) {
    if !require_root() {
        return;
    }
    let pair = Pair::new("abg");
    let _listeners = pair.listen();
    let fw = open(&pair.server, backend);
    let mapped: IpAddr = format!("::ffff:{}", netns::CLIENT4).parse().unwrap();
    let mut b = Batch::new();
    b.block(mapped, HOUR, "dual-stack peer");
    assert!(fw.commit(b).unwrap().refused.is_empty());
    assert!(fw.is_blocked(mapped));
    assert!(fw.is_blocked(netns::CLIENT4.parse::<IpAddr>().unwrap()));
    let listed = fw.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].net, net(&format!("{}/32", netns::CLIENT4)));
    if backend == Backend::Ipset {
        pair.server
            .ok(&["ipset", "test", "abtest4", netns::CLIENT4]);
    }
    assert!(
        !pair.reaches(netns::CLIENT4, netns::SERVER4),
        "mapped ban let IPv4 through"
    );
    assert!(pair.reaches(netns::CLIENT4_B, netns::SERVER4));
    let mut b = Batch::new();
    b.unblock(mapped);
    let _ = fw.commit(b).unwrap();
    assert!(fw.list().unwrap().is_empty());
    assert!(pair.reaches(netns::CLIENT4, netns::SERVER4));
    fw.flush().unwrap();
}

#[test]
fn iptables_ipv4_mapped_is_blocked_as_ipv4() {
    mapped_is_ipv4(Backend::Iptables);
}

#[test]
fn ipset_ipv4_mapped_is_blocked_as_ipv4() {
    mapped_is_ipv4(Backend::Ipset);
}

fn keep_longer_and_agree(backend: Backend) {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abg");
    let fw = open(&ns, backend);
    let target = net("203.0.113.0/24");
    let mut b = Batch::new();
    b.block(target, Duration::from_secs(86_400), "long \"quoted\" no");
    let refused = fw.commit(b).unwrap().refused;
    assert!(
        matches!(refused[0].refusal, Refusal::Reason(_)),
        "{refused:?}"
    );
    let mut b = Batch::new();
    b.block(target, Duration::from_secs(86_400), "long: day ban");
    let _ = fw.commit(b).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let mut b = Batch::new();
    b.block(target, Duration::from_secs(60), "short");
    let _ = fw.commit(b).unwrap();
    let listed = fw.list().unwrap();
    assert_eq!(listed[0].reason, "long: day ban", "{listed:?}");
    let next = secs(fw.next_expiry().unwrap());
    assert_eq!(listed[0].until, next, "list and next_expiry agree");
    assert!(next >= secs(SystemTime::now()) + 86_000, "not shortened");
    // Exact shortens.
    let mut b = Batch::new().exact();
    b.block(target, Duration::from_secs(60), "short");
    let _ = fw.commit(b).unwrap();
    let listed = fw.list().unwrap();
    assert_eq!(
        (listed[0].until, listed[0].reason.as_str()),
        (secs(fw.next_expiry().unwrap()), "short")
    );
    fw.flush().unwrap();
}

#[test]
fn iptables_keeps_the_longer_ban_and_list_agrees() {
    keep_longer_and_agree(Backend::Iptables);
}

#[test]
fn ipset_keeps_the_longer_ban_and_list_agrees() {
    keep_longer_and_agree(Backend::Ipset);
}

fn flush_keeps_hand_added(backend: Backend) {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abg");
    let fw = open(&ns, backend);
    let mut b = Batch::new();
    b.block(net("198.51.100.7/32"), HOUR, "x");
    let _ = fw.commit(b).unwrap();
    ns.ok(&[
        "iptables",
        "-w",
        "-I",
        "ABTEST",
        "1",
        "-s",
        "192.0.2.0/24",
        "-j",
        "RETURN",
    ]);
    // An unblock keeps it, so does an expiry, and so does flush. (With iptables neither
    // touches our chain: they rewrite or delete the ban chain of the bans' end time.)
    let mut b = Batch::new();
    b.unblock(net("198.51.100.7/32"));
    let _ = fw.commit(b).unwrap();
    let mut b = Batch::new();
    b.block(net("198.51.100.8/32"), HOUR, "y");
    let _ = fw.commit(b).unwrap();
    if backend == Backend::Iptables {
        let chains = ns.chain_lines("iptables", "ABTEST");
        assert_eq!(
            chains.matches("-N ABTEST.").count(),
            2,
            "dispatch + one: {chains}"
        );
    }
    let expired = fw.expire_due(SystemTime::now() + HOUR + HOUR).unwrap();
    assert_eq!(expired.bans.len(), 1);
    let chains = ns.chain_lines("iptables", "ABTEST");
    assert!(
        chains.contains("-A ABTEST -s 192.0.2.0/24 -j RETURN"),
        "{chains}"
    );
    assert!(!chains.contains("198.51.100.8"), "{chains}");
    if backend == Backend::Iptables {
        assert_eq!(
            chains.matches("-N ABTEST.").count(),
            1,
            "the ban's chain is gone: {chains}"
        );
    }
    fw.flush().unwrap();
    let dump = ns.firewall_dump();
    assert!(
        dump.contains("-A ABTEST -s 192.0.2.0/24 -j RETURN"),
        "{dump}"
    );
    assert!(
        !dump.contains("-j ABTEST") && !dump.contains("abtest4") && !dump.contains("ABTEST."),
        "{dump}"
    );
    // A reopen adopts the kept chain with its rule; the next flush keeps it again.
    let fw = open(&ns, backend);
    fw.flush().unwrap();
    assert!(ns.firewall_dump().contains("-j RETURN"));
}

#[test]
fn iptables_flush_keeps_a_hand_added_rule() {
    flush_keeps_hand_added(Backend::Iptables);
}

#[test]
fn ipset_flush_keeps_a_hand_added_rule() {
    flush_keeps_hand_added(Backend::Ipset);
}

#[test]
fn bad_hooks_and_chain_names_leave_nothing_behind() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abg");
    let before = ns.firewall_dump();
    for opts in [
        FirewallOptions::new(Backend::Ipset, "ABTEST").hooks(["INPUT", "OUTPUTT"]),
        FirewallOptions::new(Backend::Ipset, "INPUT"),
        FirewallOptions::new(Backend::Iptables, "ABTEST").min_prefix(0, 16),
        // 21 characters: its ban chains' names would pass iptables' 28.
        FirewallOptions::new(Backend::Iptables, "ABTEST_LONGER_THAN_20"),
    ] {
        let e = Firewall::open(opts.netns(ns.name())).unwrap_err();
        assert!(matches!(e, FirewallError::InvalidOption(_)), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
    let strip = |s: String| -> String { s.lines().filter(|l| !l.starts_with('#')).collect() };
    assert_eq!(strip(ns.firewall_dump()), strip(before));
    // A user chain that exists is a hook (Docker's DOCKER-USER).
    ns.ok(&["iptables", "-w", "-N", "DOCKER-USER"]);
    ns.ok(&["ip6tables", "-w", "-N", "DOCKER-USER"]);
    let fw = Firewall::open(
        FirewallOptions::new(Backend::Iptables, "ABTEST")
            .hooks(["DOCKER-USER"])
            .netns(ns.name()),
    )
    .unwrap();
    assert!(ns.firewall_dump().contains("-A DOCKER-USER -j ABTEST"));
    fw.flush().unwrap();
    // Allowed explicitly, a special range can be blocked.
    let fw = Firewall::open(
        FirewallOptions::new(Backend::Ipset, "ABTEST")
            .netns(ns.name())
            .allow(Special::LinkLocal),
    )
    .unwrap();
    let mut b = Batch::new();
    b.block(net("fe80::1/128"), HOUR, "neighbour")
        .block(net("ff02::1/128"), HOUR, "multicast");
    let refused = fw.commit(b).unwrap().refused;
    assert_eq!(refused.len(), 1);
    assert!(refused[0].to_string().contains("multicast"), "{refused:?}");
    assert_eq!(fw.list().unwrap().len(), 1);
    fw.flush().unwrap();
}
