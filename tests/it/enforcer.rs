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
    block_until(net, wall().saturating_add(Duration::from_secs(secs)))
}

fn block_until(net: &str, until: Timestamp) -> KernelOp {
    KernelOp::Block {
        net: autoblock::sys::control::protocol::parse_net(net).expect("net"),
        until,
        reason: "syn-flood".into(),
        manual: false,
    }
}

/// An end time about ten minutes ahead, in the middle of one of the iptables backend's
/// 32-second spans of end times: bans given it in commits a moment apart share a ban chain.
fn shared_end() -> Timestamp {
    let secs = wall().as_secs() + 600;
    Timestamp::from_secs(secs - secs % 32 + 16)
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
    let end = shared_end();
    enf.stage_op(block_until("198.51.100.1", end));
    enf.stage_op(block("2001:db8::/64", 600));
    let t0 = Instant::now();
    assert_eq!(
        enf.commit(wall(), t0).expect("commit").map(|a| a.blocks),
        Some(2)
    );
    assert!(
        ns.chain_lines("iptables", "ABENF")
            .contains("198.51.100.1/32")
    );
    assert!(
        ns.chain_lines("ip6tables", "ABENF")
            .contains("2001:db8::/64")
    );

    // A firewall reload deletes our chains: the next commit fails (its ban goes to the ban
    // chain of an end time that existed)...
    ns.ok(&["iptables", "-D", "INPUT", "-j", "ABENF"]);
    ns.ok(&["iptables", "-F"]);
    ns.ok(&["iptables", "-X"]);
    enf.stage_op(block_until("198.51.100.2", end));
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
    let rules = ns.chain_lines("iptables", "ABENF");
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
    let rules = ns.chain_lines("iptables", "ABENF");
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
