//! The daemon's enforcer on a real kernel (inside a namespace): a commit that fails keeps
//! every staged change, reports the command, its status and stderr, and succeeds on retry once
//! the kernel is fixed; extends and unbans go through the same batches.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use autoblock::firewall::{Backend, Firewall, FirewallOptions};
use autoblock::sys::enforcer::{Enforcer, KernelOp};
use autoblock::time::Timestamp;

use crate::harness::netns::Netns;
use crate::harness::require_root;

fn wall() -> Timestamp {
    Timestamp::from_unix(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

fn block(net: &str, secs: u64) -> KernelOp {
    KernelOp::Block {
        net: autoblock::sys::control::protocol::parse_net(net).expect("net"),
        until: wall().saturating_add(Duration::from_secs(secs)),
        reason: "syn-flood".into(),
        manual: false,
    }
}

#[test]
fn a_failed_commit_loses_nothing_and_is_retried() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abenf");
    let fw = Arc::new(
        Firewall::open(FirewallOptions::new(Backend::Iptables, "ABENF").netns(ns.name()))
            .expect("open"),
    );
    let mut enf = Enforcer::new(Some(fw.clone()));
    enf.stage_op(block("198.51.100.1", 600));
    enf.stage_op(block("2001:db8::/64", 600));
    let t0 = Instant::now();
    assert_eq!(
        enf.commit(wall(), t0).expect("commit").map(|a| a.blocks),
        Some(2)
    );
    assert!(
        ns.ok(&["iptables", "-S", "ABENF"])
            .contains("198.51.100.1/32")
    );
    assert!(
        ns.ok(&["ip6tables", "-S", "ABENF"])
            .contains("2001:db8::/64")
    );

    // Someone deletes our chain (a firewall reload): the next commit fails...
    ns.ok(&["iptables", "-D", "INPUT", "-j", "ABENF"]);
    ns.ok(&["iptables", "-F", "ABENF"]);
    ns.ok(&["iptables", "-X", "ABENF"]);
    enf.stage_op(block("198.51.100.2", 600));
    let err = enf.commit(wall(), t0).expect_err("the chain is gone");
    let msg = err.to_string();
    assert!(msg.contains("iptables-restore"), "names the command: {msg}");
    assert!(
        msg.contains("exit status") || msg.contains("exit code"),
        "{msg}"
    );
    assert_eq!(enf.pending(), 1, "nothing lost");
    // ...and is not retried before its backoff.
    assert_eq!(
        enf.commit(wall(), t0).expect("not yet").map(|a| a.blocks),
        None
    );
    assert!(enf.retry_at().is_some());

    // The periodic check repairs the kernel; the retry then lands the staged ban.
    let repairs = fw.check_and_repair().expect("repair");
    assert!(!repairs.is_empty());
    let later = t0 + Duration::from_secs(5);
    assert_eq!(
        enf.commit(wall(), later).expect("retry").map(|a| a.blocks),
        Some(1)
    );
    assert_eq!(enf.pending(), 0);
    let rules = ns.ok(&["iptables", "-S", "ABENF"]);
    assert!(
        rules.contains("198.51.100.1/32") && rules.contains("198.51.100.2/32"),
        "{rules}"
    );
    assert_eq!(
        rules.matches("198.51.100.1/32").count(),
        1,
        "no duplicate: {rules}"
    );

    // An extension replaces the rule's expiry; an unban removes it.
    enf.stage_op(block("198.51.100.1", 3600));
    enf.stage_op(KernelOp::Unblock {
        net: "198.51.100.2/32".parse().expect("net"),
    });
    enf.commit(wall(), later).expect("extend + unban");
    let rules = ns.ok(&["iptables", "-S", "ABENF"]);
    assert_eq!(rules.matches("198.51.100.1/32").count(), 1, "{rules}");
    assert!(!rules.contains("198.51.100.2/32"), "{rules}");
    let until: u64 = fw
        .list()
        .expect("list")
        .iter()
        .find(|b| b.net.to_string() == "198.51.100.1/32")
        .map(|b| b.until)
        .expect("still banned");
    assert!(until >= wall().as_secs() + 3590, "extended to ~1 h");
}
