//! Flush and repair against the recording fake when the kernel cannot be read whole, and what
//! a flush reports (finding 4 of issue 11: never a rebuild or a jump from a blind read, never a
//! silent success).

use std::sync::Arc;

use super::tests_support::{Fake, open};
use super::*;

const INCOMPATIBLE: &str = "# Table `filter' is incompatible, use 'nft' tool.\n";
const V4_FOREIGN: &str =
    "*filter\n:AB - [0:0]\n-A INPUT -j AB\n-A AB -s 10.0.0.0/8 -j RETURN\nCOMMIT\n";
const V6_OURS: &str = "*filter\n:AB - [0:0]\n-A INPUT -j AB\nCOMMIT\n";

fn opened(fake: &Arc<Fake>) -> Firewall {
    fake.set("iptables-save -t filter", V4_FOREIGN);
    fake.set("ip6tables-save -t filter", V6_OURS);
    let fw = open(FirewallOptions::new(Backend::Iptables, "AB"), fake, 1000);
    fake.take();
    fw
}

#[test]
fn flush_keeps_foreign_rules_and_reports_what_it_removed() {
    let fake = Arc::new(Fake::default());
    let fw = opened(&fake);
    // After the removal the kernel reads back clean (the chain kept with its foreign rule).
    fake.queue("iptables-save -t filter", V4_FOREIGN);
    fake.queue("ip6tables-save -t filter", V6_OURS);
    fake.set(
        "iptables-save -t filter",
        "*filter\n:AB - [0:0]\n-A AB -s 10.0.0.0/8 -j RETURN\nCOMMIT\n",
    );
    fake.set("ip6tables-save -t filter", "*filter\nCOMMIT\n");
    let flushed = fw.flush().unwrap();
    let calls = fake.take();
    let cmds: Vec<&str> = calls.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        cmds,
        [
            "iptables-save -t filter",
            "ip6tables-save -t filter",
            "iptables-restore -w 5 --noflush",
            "ip6tables-restore -w 5 --noflush",
            "iptables-save -t filter",
            "ip6tables-save -t filter",
        ]
    );
    assert_eq!(
        calls[2].1.as_deref(),
        Some("*filter\n-D INPUT -j AB\n:AB - [0:0]\n-A AB -s 10.0.0.0/8 -j RETURN\nCOMMIT\n")
    );
    assert_eq!(
        calls[3].1.as_deref(),
        Some("*filter\n-D INPUT -j AB\n-F AB\n-X AB\nCOMMIT\n")
    );
    assert_eq!(flushed.jumps, 2);
    assert_eq!(
        flushed.to_string(),
        "removed the chain from ipv6 filter; emptied the chain but kept it in ipv4 filter \
         (it holds rules that are not ours); 2 jumps; 0 entries"
    );
}

#[test]
fn an_unreadable_table_stops_flush_repair_and_rebuild_before_any_change() {
    let fake = Arc::new(Fake::default());
    let fw = opened(&fake);
    fake.set("iptables-save -t filter", INCOMPATIBLE);
    for _ in 0..3 {
        let e = fw.check_and_repair().unwrap_err();
        assert!(matches!(e, FirewallError::UnreadableTable { .. }), "{e}");
    }
    let mut b = Batch::new();
    b.unblock(std::net::Ipv4Addr::new(192, 0, 2, 1));
    b.block(
        std::net::Ipv4Addr::new(192, 0, 2, 2),
        std::time::Duration::from_secs(60),
        "x",
    );
    let _ = fw.commit(b);
    let e = fw.flush().unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot read the ipv4 filter table (`iptables-save -t filter`): iptables-save says \
         `# Table `filter' is incompatible, use 'nft' tool.`; refusing to change a table it \
         cannot see (rules added with nft that iptables cannot show? see `nft list table ip \
         filter`)"
    );
    assert_eq!(e.command(), Some("iptables-save -t filter"));
    let changes: Vec<String> = fake
        .take_changes()
        .into_iter()
        .filter_map(|(_, stdin)| stdin)
        .collect();
    // The addition alone was appended (it needs no read); nothing was rebuilt or jumped.
    assert!(
        changes
            .iter()
            .all(|t| !t.contains(":AB - [0:0]") && !t.contains("-I INPUT")),
        "{changes:?}"
    );
}

#[test]
fn a_flush_that_leaves_ours_behind_says_so() {
    let fake = Arc::new(Fake::default());
    let fw = opened(&fake);
    // The removal "succeeds" but the kernel still shows a jump (another tool raced us).
    let e = fw.flush().unwrap_err();
    let FirewallError::FlushIncomplete { removed, reason } = &e else {
        panic!("{e}");
    };
    assert_eq!(removed.jumps, 2);
    assert!(reason.contains("1 jumps in ipv4 filter"), "{reason}");
    assert!(reason.contains("the chain in ipv6 filter"), "{reason}");
}

#[test]
fn remove_without_open_creates_nothing_and_reports_nothing_there() {
    let fake = Arc::new(Fake::default());
    let fw = unopened(FirewallOptions::new(Backend::Ipset, "AB"), &fake);
    let flushed = fw.flush().unwrap();
    assert!(flushed.is_empty());
    assert_eq!(
        flushed.to_string(),
        "nothing to remove (no chain, jump or set of ours)"
    );
    assert!(fake.take_changes().is_empty());
}

#[test]
fn ban_chains_alone_are_removed_and_reported() {
    let fake = Arc::new(Fake::default());
    // Our chain deleted by hand, its ban chains left.
    fake.queue(
        "iptables-save -t filter",
        "*filter\n:AB.bans - [0:0]\n:AB.1 - [0:0]\n-A AB.bans -j AB.1\nCOMMIT\n",
    );
    let fw = unopened(FirewallOptions::new(Backend::Iptables, "AB"), &fake);
    let flushed = fw.flush().unwrap();
    assert_eq!(flushed.ban_chains, 2);
    assert!(!flushed.is_empty());
    assert!(flushed.to_string().contains("2 ban chains"), "{flushed}");
    let calls = fake.take_changes();
    assert_eq!(
        calls[0].1.as_deref(),
        Some("*filter\n:AB.bans - [0:0]\n:AB.1 - [0:0]\n-X AB.bans\n-X AB.1\nCOMMIT\n")
    );
}

/// A handle on `opts` against `fake` that has read and changed nothing (as
/// [`Firewall::remove`] makes).
fn unopened(opts: FirewallOptions, fake: &Arc<Fake>) -> Firewall {
    let settings = opts.validate().unwrap();
    Firewall::unopened(
        settings,
        Box::new(super::tests_support::Shared(fake.clone())),
        None,
    )
}
