//! Finding 4 (issue 11): an iptables-nft table that `iptables-save` cannot show ("# Table
//! `filter' is incompatible", here made by adding rules in `nft` syntax iptables cannot
//! translate) is an error at open, check, commit and flush: never a rebuild, never another
//! jump, nothing removed that we cannot see. Repeated repairs of a readable table leave exactly
//! one jump per hook. Inside namespaces the tests create, both backends.

use std::time::Duration;

use autoblock::firewall::{
    Backend, Batch, Firewall, FirewallError, FirewallOptions, Protocol, Rule,
};

use crate::harness::netns::Netns;
use crate::harness::require_root;

const CHAIN: &str = "ABTEST";

fn options(ns: &Netns, backend: Backend) -> FirewallOptions {
    FirewallOptions::new(backend, CHAIN)
        .netns(ns.name())
        .hooks(["INPUT", "raw:PREROUTING"])
        .maxelem(1000)
}

/// `nft list ruleset` of the namespace (ours and everyone's, in nft syntax: always readable).
fn ruleset(ns: &Netns) -> String {
    ns.ok(&["nft", "list", "ruleset"])
}

/// Jumps to our chain in one nft chain (`ip filter INPUT`, `ip raw PREROUTING`, ...).
fn nft_jumps(ns: &Netns, family: &str, table: &str, hook: &str) -> usize {
    ns.ok(&["nft", "list", "chain", family, table, hook])
        .lines()
        .filter(|l| l.trim_end().ends_with(&format!("jump {CHAIN}")))
        .count()
}

/// Makes `family filter` unreadable for iptables-save: a rule in nft syntax (a conntrack state
/// and a rate limit in one rule) that iptables-nft cannot translate back.
fn make_incompatible(ns: &Netns, family: &str) -> String {
    ns.ok(&[
        "nft", "insert", "rule", family, "filter", "INPUT", "ct", "state", "new", "limit", "rate",
        "5/second", "counter", "accept",
    ]);
    let save = if family == "ip" {
        "iptables-save"
    } else {
        "ip6tables-save"
    };
    let text = ns.ok(&[save, "-t", "filter"]);
    assert!(
        text.contains("incompatible"),
        "not incompatible yet: {text}"
    );
    // The handle, to take it back later.
    let listing = ns.ok(&["nft", "-a", "list", "chain", family, "filter", "INPUT"]);
    listing
        .lines()
        .find(|l| l.contains("limit rate"))
        .and_then(|l| l.rsplit("# handle ").next())
        .map(|h| h.trim().to_string())
        .expect("the rule's handle")
}

fn is_unreadable(e: &FirewallError) -> bool {
    let text = e.to_string();
    matches!(e, FirewallError::UnreadableTable { .. })
        && text.contains("incompatible")
        && text.contains("filter")
}

fn refuses_to_guess(backend: Backend) {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abfu");
    let fw = Firewall::open(options(&ns, backend)).expect("open");
    let rule = Rule::new()
        .dst("10.10.10.10".parse::<std::net::Ipv4Addr>().unwrap())
        .protocol(Protocol::Udp)
        .sport(4500);
    let mut b = Batch::new();
    b.block(
        "203.0.113.7".parse::<std::net::IpAddr>().unwrap(),
        Duration::from_secs(600),
        "x",
    )
    .block(rule, Duration::from_secs(600), "y");
    let _ = fw.commit(b).expect("commit");
    let handle = make_incompatible(&ns, "ip");
    let before = ruleset(&ns);
    for _ in 0..3 {
        let e = fw
            .check_and_repair()
            .expect_err("a repair of a table it cannot read");
        assert!(is_unreadable(&e), "{e}");
    }
    // A commit that rebuilds our chain (a typed rule's removal) must not flush what it cannot
    // see either. (A ban's removal touches only our private ban chains, never read.)
    let mut b = Batch::new();
    b.unblock(rule);
    let e = fw
        .commit(b)
        .expect_err("a rebuild of a table it cannot read");
    assert!(is_unreadable(&e), "{e}");
    let e = fw.flush().expect_err("a flush of a table it cannot read");
    assert!(is_unreadable(&e), "{e}");
    assert_eq!(ruleset(&ns), before, "the kernel changed");
    assert_eq!(nft_jumps(&ns, "ip", "filter", "INPUT"), 1);
    // Neither an open nor a removal without open changes anything.
    let e = Firewall::open(options(&ns, backend)).expect_err("open of a table it cannot read");
    assert!(is_unreadable(&e), "{e}");
    let e = Firewall::remove(options(&ns, backend)).expect_err("removal");
    assert!(is_unreadable(&e), "{e}");
    assert_eq!(ruleset(&ns), before, "the kernel changed");
    // Once readable again, repairs converge on one jump per hook however often they run.
    ns.ok(&[
        "nft", "delete", "rule", "ip", "filter", "INPUT", "handle", &handle,
    ]);
    ns.ok(&["iptables", "-w", "-A", "INPUT", "-j", CHAIN]);
    ns.ok(&["iptables", "-w", "-I", "INPUT", "1", "-j", "ACCEPT"]);
    ns.ok(&["ip6tables", "-w", "-A", "INPUT", "-j", CHAIN]);
    let fw = Firewall::open(options(&ns, backend)).expect("open");
    for _ in 0..3 {
        fw.check_and_repair().expect("repair");
        ns.ok(&[
            "iptables",
            "-w",
            "-t",
            "raw",
            "-D",
            "PREROUTING",
            "-j",
            CHAIN,
        ]);
    }
    fw.check_and_repair().expect("repair");
    for (family, table, hook) in [
        ("ip", "filter", "INPUT"),
        ("ip6", "filter", "INPUT"),
        ("ip", "raw", "PREROUTING"),
        ("ip6", "raw", "PREROUTING"),
    ] {
        assert_eq!(
            nft_jumps(&ns, family, table, hook),
            1,
            "{family} {table} {hook}"
        );
    }
    let flushed = fw.flush().expect("flush");
    assert_eq!(flushed.jumps, 4, "{flushed}");
    assert_eq!(flushed.chains.len(), 4, "{flushed}");
    assert!(!ruleset(&ns).contains(CHAIN), "{flushed}");
    let again = Firewall::remove(options(&ns, backend)).expect("remove");
    assert!(again.is_empty(), "{again}");
    assert!(!ruleset(&ns).contains(CHAIN));
}

#[test]
fn iptables_an_incompatible_table_is_an_error_never_a_rebuild() {
    refuses_to_guess(Backend::Iptables);
}

#[test]
fn ipset_an_incompatible_table_is_an_error_never_a_rebuild() {
    refuses_to_guess(Backend::Ipset);
}
