//! Engine tests against the recording fake: which processes each call starts, with which
//! restore text. Real-kernel behaviour is tested in `tests/it/firewall.rs`.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::tests_support::{Fake, open};
use super::*;

const FILTER_WITH_BANS: &str = "*filter\n:INPUT ACCEPT [0:0]\n:AB - [0:0]\n\
-A INPUT -j AB\n\
-A AB -s 10.0.0.0/8 -j ACCEPT\n\
-A AB -s 192.0.2.1/32 -m comment --comment \"autoblock until=5000 rule=a\" -j DROP\n\
-A AB -s 192.0.2.1/32 -m comment --comment \"autoblock until=6000 rule=b\" -j DROP\n\
-A AB -s 192.0.2.2/32 -m comment --comment \"autoblock until=900 rule=old\" -j DROP\n\
COMMIT\n";

fn secs(s: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

#[test]
fn open_on_empty_kernel_creates_chain_and_jump_per_family() {
    let fake = Arc::new(Fake::default());
    let _fw = open(FirewallOptions::new(Backend::Iptables, "AB"), &fake, 1000);
    let calls = fake.take();
    let cmds: Vec<&str> = calls.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        cmds,
        [
            "iptables-save -t filter",
            "ip6tables-save -t filter",
            "iptables-restore -w 5 --noflush",
            "ip6tables-restore -w 5 --noflush"
        ]
    );
    assert_eq!(
        calls[2].1.as_deref(),
        Some(
            "*filter\n:AB.bans - [0:0]\n:AB - [0:0]\n-A AB -j AB.bans\n-I INPUT 1 -j AB\nCOMMIT\n"
        )
    );
}

#[test]
fn open_adopts_dedupes_expires_and_keeps_foreign() {
    let fake = Arc::new(Fake::default());
    fake.set("iptables-save -t filter", FILTER_WITH_BANS);
    let fw = open(FirewallOptions::new(Backend::Iptables, "AB"), &fake, 1000);
    let calls = fake.take();
    assert_eq!(
        calls[2].1.as_deref(),
        Some(
            "*filter\n:AB.bb - [0:0]\n\
             -A AB.bb -s 192.0.2.1/32 -m comment --comment \"autoblock until=6000 rule=b\" -j DROP\n\
             :AB.bans - [0:0]\n-A AB.bans -j AB.bb\n\
             :AB - [0:0]\n-A AB -s 10.0.0.0/8 -j ACCEPT\n-A AB -j AB.bans\n\
             COMMIT\n"
        ),
        "the bans move out of our chain into the ban chain of their end time (6000 / 32 = 0xbb)"
    );
    assert_eq!(fw.len(), 1);
    assert_eq!(fw.next_expiry(), Some(secs(6000)));
}

#[test]
fn open_leaves_a_correct_kernel_alone() {
    let fake = Arc::new(Fake::default());
    let correct = "*filter\n:AB - [0:0]\n:AB.bans - [0:0]\n:AB.bb - [0:0]\n-A INPUT -j AB\n\
        -A AB -j AB.bans\n-A AB.bans -j AB.bb\n\
        -A AB.bb -s 192.0.2.1/32 -m comment --comment \"autoblock until=6000 rule=b\" -j DROP\n\
        COMMIT\n";
    fake.set("iptables-save -t filter", correct);
    fake.set(
        "ip6tables-save -t filter",
        "*filter\n:AB - [0:0]\n:AB.bans - [0:0]\n-A INPUT -j AB\n-A AB -j AB.bans\nCOMMIT\n",
    );
    let fw = open(FirewallOptions::new(Backend::Iptables, "AB"), &fake, 1000);
    assert_eq!(fake.take().len(), 2, "only the two saves");
    assert_eq!(fw.len(), 1);
    // Out of place: the ban in the bucket of another end time, a bucket the dispatch chain
    // does not reach, a stale bucket, a rule added by hand to a private chain.
    let misplaced = correct
        .replace(":AB.bb ", ":AB.bc ")
        .replace("AB.bb -s", "AB.bc -s");
    let unreached = correct.replace("-A AB.bans -j AB.bb\n", "");
    let stale = correct.replace(":AB.bb - [0:0]\n", ":AB.bb - [0:0]\n:AB.3 - [0:0]\n").replace(
        "COMMIT",
        "-A AB.3 -s 192.0.2.3/32 -m comment --comment \"autoblock until=100 rule=c\" -j DROP\nCOMMIT",
    );
    let by_hand = correct.replace("COMMIT", "-A AB.bans -j ACCEPT\nCOMMIT");
    for kernel in [misplaced, unreached, stale, by_hand] {
        fake.set("iptables-save -t filter", &kernel);
        drop(fw_reopen(&fake));
        let calls = fake.take_changes();
        let rebuilt = calls
            .first()
            .and_then(|c| c.1.as_deref())
            .unwrap_or_default();
        assert!(rebuilt.contains(":AB - [0:0]\n"), "{kernel}: {calls:?}");
    }
    // An empty chain left over (its deletion failed: someone jumps to it) is left alone.
    let pinned = correct.replace(":AB.bb - [0:0]\n", ":AB.bb - [0:0]\n:AB.3 - [0:0]\n");
    fake.set("iptables-save -t filter", &pinned);
    drop(fw_reopen(&fake));
    assert!(fake.take_changes().is_empty());
}

/// Opens "AB" (iptables) at time 1000 on whatever `fake` holds.
fn fw_reopen(fake: &Arc<Fake>) -> Firewall {
    open(FirewallOptions::new(Backend::Iptables, "AB"), fake, 1000)
}

#[test]
fn additions_append_and_removals_rebuild_one_call_per_family() {
    let fake = Arc::new(Fake::default());
    let fw = open(
        FirewallOptions::new(Backend::Iptables, "AB").hooks(["INPUT", "raw:PREROUTING"]),
        &fake,
        1000,
    );
    fake.take();
    let mut b = Batch::new();
    b.block(
        std::net::IpAddr::from([192, 0, 2, 7]),
        Duration::from_secs(600),
        "x",
    );
    b.block(
        "2001:db8::/32".parse::<ipnet::IpNet>().unwrap(),
        Duration::from_secs(600),
        "y",
    );
    assert!(fw.commit_at(b, 1000).unwrap().refused.is_empty());
    let calls = fake.take();
    assert_eq!(calls.len(), 2);
    let rule = |net: &str| {
        format!("-A AB.32 -s {net} -m comment --comment \"autoblock until=1600 rule=x\" -j DROP\n")
    };
    // The same lines for filter and raw, one restore.
    let in_both = |body: &str| format!("*filter\n{body}COMMIT\n*raw\n{body}COMMIT\n");
    // A new end time: its ban chain is created and the dispatch chain jumps to it; our own
    // chain is not touched.
    let new_bucket = format!(
        ":AB.32 - [0:0]\n{}:AB.bans - [0:0]\n-A AB.bans -j AB.32\n",
        rule("192.0.2.7/32")
    );
    assert_eq!(calls[0].1.as_deref(), Some(in_both(&new_bucket).as_str()));
    assert!(
        calls[1]
            .1
            .as_deref()
            .unwrap()
            .contains("-A AB.32 -s 2001:db8::/32")
    );

    // The same end time: appended to its ban chain.
    let mut b = Batch::new();
    b.block(
        std::net::IpAddr::from([192, 0, 2, 9]),
        Duration::from_secs(600),
        "x",
    );
    assert!(fw.commit_at(b, 1000).unwrap().refused.is_empty());
    let calls = fake.take();
    let append = rule("192.0.2.9/32");
    assert_eq!(calls[0].1.as_deref(), Some(in_both(&append).as_str()));

    // A removal rewrites that ban chain only; the last removal deletes it.
    let mut b = Batch::new();
    b.unblock(std::net::IpAddr::from([192, 0, 2, 7]));
    let _ = fw.commit(b).unwrap();
    let calls = fake.take_changes();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "iptables-restore -w 5 --noflush");
    let rewrite = format!(":AB.32 - [0:0]\n{append}");
    assert_eq!(calls[0].1.as_deref(), Some(in_both(&rewrite).as_str()));
    let mut b = Batch::new();
    b.unblock(std::net::IpAddr::from([192, 0, 2, 9]));
    let _ = fw.commit(b).unwrap();
    let calls = fake.take_changes();
    let emptied = ":AB.bans - [0:0]\n:AB.32 - [0:0]\n";
    assert_eq!(calls[0].1.as_deref(), Some(in_both(emptied).as_str()));
    // Then deleted, in a call of its own per table (best effort).
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[1].1.as_deref(), Some("*filter\n-X AB.32\nCOMMIT\n"));
    assert_eq!(calls[2].1.as_deref(), Some("*raw\n-X AB.32\nCOMMIT\n"));
    assert_eq!(fw.len(), 1);
}

#[test]
fn ipset_commit_is_one_restore_call() {
    let fake = Arc::new(Fake::default());
    let fw = open(
        FirewallOptions::new(Backend::Ipset, "AB").maxelem(10),
        &fake,
        1000,
    );
    let calls = fake.take();
    let cmds: Vec<&str> = calls.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        cmds,
        [
            "iptables-save -t filter",
            "ip6tables-save -t filter",
            "ipset list -n",
            "ipset restore -exist",
            "iptables-restore -w 5 --noflush",
            "ip6tables-restore -w 5 --noflush"
        ]
    );
    assert_eq!(
        calls[3].1.as_deref(),
        Some(
            "create ab4 hash:net family inet timeout 0 comment maxelem 10\n\
             create ab6 hash:net family inet6 timeout 0 comment maxelem 10\n"
        )
    );
    assert!(
        calls[4]
            .1
            .as_deref()
            .unwrap()
            .contains("-A AB -m set --match-set ab4 src -j DROP\n")
    );
    let mut b = Batch::new();
    b.block(
        "198.51.100.0/24".parse::<ipnet::IpNet>().unwrap(),
        Duration::from_secs(60),
        "feed",
    )
    .unblock("fd00::1".parse::<std::net::IpAddr>().unwrap());
    let _ = fw.commit(b).unwrap();
    let calls = fake.take();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "ipset restore -exist");
    assert!(
        calls[0]
            .1
            .as_deref()
            .unwrap()
            .starts_with("add ab4 198.51.100.0/24 timeout 60 comment \"feed\"\n")
    );
}

#[test]
fn expire_due_rebuilds_only_families_with_due_bans() {
    let fake = Arc::new(Fake::default());
    fake.set("iptables-save -t filter", FILTER_WITH_BANS);
    let fw = open(FirewallOptions::new(Backend::Iptables, "AB"), &fake, 1000);
    fake.take();
    assert!(fw.expire_due(secs(5999)).unwrap().is_empty());
    assert!(fake.take().is_empty());
    let due = fw.expire_due(secs(6000)).unwrap();
    assert_eq!(due.bans.len(), 1);
    let calls = fake.take();
    assert_eq!(
        calls.len(),
        2,
        "no read of the table (our chain is not touched): a restore and a delete"
    );
    assert_eq!(
        calls[0].1.as_deref(),
        Some("*filter\n:AB.bans - [0:0]\n:AB.bb - [0:0]\nCOMMIT\n")
    );
    assert_eq!(calls[1].1.as_deref(), Some("*filter\n-X AB.bb\nCOMMIT\n"));
    assert_eq!(fw.next_expiry(), None);
}

#[test]
fn repair_detects_flushed_chain_and_missing_jump() {
    let fake = Arc::new(Fake::default());
    fake.set("iptables-save -t filter", FILTER_WITH_BANS);
    let fw = open(FirewallOptions::new(Backend::Iptables, "AB"), &fake, 1000);
    fake.set(
        "iptables-save -t filter",
        "*filter\n:INPUT ACCEPT [0:0]\n:AB - [0:0]\nCOMMIT\n",
    );
    fake.set(
        "ip6tables-save -t filter",
        "*filter\n:AB - [0:0]\n:AB.bans - [0:0]\n-A INPUT -j AB\n-A AB -j AB.bans\nCOMMIT\n",
    );
    fake.take();
    let repairs = fw.check_and_repair().unwrap();
    let text: Vec<String> = repairs.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "ipv4 filter: chain rebuilt with 1 ban rules",
            "ipv4 filter: jump from INPUT restored at position 1"
        ]
    );
    let calls = fake.take();
    assert_eq!(calls.len(), 3, "two saves, one restore");
    assert_eq!(calls[1].0, "iptables-restore -w 5 --noflush");
    assert_eq!(
        calls[1].1.as_deref(),
        Some(
            "*filter\n:AB.bb - [0:0]\n\
             -A AB.bb -s 192.0.2.1/32 -m comment --comment \"autoblock until=6000 rule=b\" -j DROP\n\
             :AB.bans - [0:0]\n-A AB.bans -j AB.bb\n:AB - [0:0]\n-A AB -j AB.bans\n\
             -I INPUT 1 -j AB\nCOMMIT\n"
        )
    );
}

#[test]
fn firewall_can_be_shared_between_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Firewall>();
}

#[test]
fn repair_compares_entries_not_counts() {
    let fake = Arc::new(Fake::default());
    fake.set("iptables-save -t filter", FILTER_WITH_BANS);
    let fw = open(FirewallOptions::new(Backend::Iptables, "AB"), &fake, 1000);
    // One ban for another in the right chain (a commit that failed in a later table leaves
    // this in the earlier one): the same count, not our entries.
    fake.set(
        "iptables-save -t filter",
        "*filter\n:AB - [0:0]\n:AB.bans - [0:0]\n:AB.bb - [0:0]\n-A INPUT -j AB\n\
         -A AB -s 10.0.0.0/8 -j ACCEPT\n-A AB -j AB.bans\n-A AB.bans -j AB.bb\n\
         -A AB.bb -s 192.0.2.99/32 -m comment --comment \"autoblock until=6000 rule=b\" -j DROP\n\
         COMMIT\n",
    );
    fake.set(
        "ip6tables-save -t filter",
        "*filter\n:AB - [0:0]\n:AB.bans - [0:0]\n-A INPUT -j AB\n-A AB -j AB.bans\nCOMMIT\n",
    );
    fake.take();
    let repairs = fw.check_and_repair().unwrap();
    let text: Vec<String> = repairs.iter().map(ToString::to_string).collect();
    assert_eq!(text, ["ipv4 filter: chain rebuilt with 1 ban rules"]);
    let calls = fake.take_changes();
    let restore = calls[0].1.as_deref().unwrap();
    assert!(restore.contains("-A AB.bb -s 192.0.2.1/32"), "{restore}");
    assert!(!restore.contains("192.0.2.99"), "{restore}");
}
