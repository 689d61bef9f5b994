//! The iptables backend's runs of bans (only the first ban of a run with the same end and
//! reason carries the comment) on a real kernel, inside a namespace: damage to the private ban
//! chains alone — which the watch leaves out — is found and repaired by `check_and_repair` (a
//! hand-deleted run head whose bans would read as the run before's, a flushed `CHAIN.bans`),
//! and a switch to the ipset backend adopts every ban of every run, both families.

use std::net::IpAddr;

use autoblock::firewall::{Backend, Ban, Repair};

use crate::firewall::{CHAIN, block, open};
use crate::harness::netns::Netns;
use crate::harness::{mid_bucket_ttl, require_root};

/// `(net, reason)` of every ban, in net order (end times are compared apart).
fn reasons(bans: &[Ban]) -> Vec<(String, String)> {
    bans.iter()
        .map(|b| (b.net.to_string(), b.reason.clone()))
        .collect()
}

#[test]
fn damage_to_runs_is_repaired_and_an_ipset_switch_adopts_them() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abrv");
    let fw = open(&ns, Backend::Iptables);
    // Ends in the middle of one 32-second span: both commits' bans share one bucket.
    let ttl = mid_bucket_ttl().as_secs();
    block(
        &fw,
        &["192.0.2.1/32", "192.0.2.2/32", "fd00:1::/64", "fd00:2::/64"],
        ttl,
        "a",
    );
    block(&fw, &["192.0.2.3/32", "192.0.2.4/32"], ttl, "b");
    let before = fw.list().unwrap();
    assert_eq!(before.len(), 6, "{before:?}");
    let chain = ns.ban_chain(CHAIN);
    let lines = ns.chain_lines("iptables", &chain);
    assert_eq!(
        lines.matches("rule=b\"").count(),
        1,
        "an appended run: {lines}"
    );
    assert!(
        lines.contains(&format!("-A {chain} -s 192.0.2.4/32 -j DROP\n")),
        "{lines}"
    );

    // The head of the second run deleted by hand (the bucket's third rule): its bare ban now
    // reads as one of the first run. The check finds the chain changed and rewrites it.
    ns.ok(&["iptables", "-w", "-D", &chain, "3"]);
    let damaged = fw.list().unwrap();
    assert_eq!(damaged.len(), 5, "{damaged:?}");
    let lent = damaged.iter().find(|b| b.net.to_string() == "192.0.2.4/32");
    assert_eq!(lent.map(|b| b.reason.as_str()), Some("a"), "{damaged:?}");
    let repairs = fw.check_and_repair().unwrap();
    assert!(
        matches!(&repairs[..], [Repair::ChainRebuilt { rules: 4, .. }]),
        "{repairs:?}"
    );
    assert_eq!(reasons(&fw.list().unwrap()), reasons(&before));
    assert!(fw.check_and_repair().unwrap().is_empty());

    // The dispatch chain flushed alone: every ban is off until the check puts it back.
    ns.ok(&["iptables", "-w", "-F", "ABTEST.bans"]);
    let repairs = fw.check_and_repair().unwrap();
    assert!(
        matches!(&repairs[..], [Repair::ChainRebuilt { .. }]),
        "{repairs:?}"
    );
    let dispatch = ns.chain_lines("iptables", "ABTEST.bans");
    assert!(
        dispatch.contains(&format!("-A ABTEST.bans -j {chain}\n")),
        "{dispatch}"
    );

    // Killed without clean-up, then opened with ipset: every ban of every run moves into the
    // sets with its reason, and the ban chains go.
    drop(fw);
    let fw = open(&ns, Backend::Ipset);
    let after = fw.list().unwrap();
    assert_eq!(reasons(&after), reasons(&before));
    for (a, b) in after.iter().zip(&before) {
        assert!(a.until.abs_diff(b.until) <= 1, "{a:?} vs {b:?}");
    }
    for tool in ["iptables", "ip6tables"] {
        let left = ns.chain_lines(tool, CHAIN);
        assert!(!left.contains("ABTEST."), "{tool}: {left}");
    }
    let banned: IpAddr = "192.0.2.4".parse().unwrap();
    assert!(
        ns.ok(&["ipset", "list", "abtest4"])
            .contains(&banned.to_string()),
        "ipset"
    );
    fw.flush().unwrap();
}
