//! Commits, typed rules, guard rails, flush and open failures against the recording fake: which
//! processes start, with which text, and what is refused.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::tests_support::{Fake, open, try_open};
use crate::*;

const MIN: Duration = Duration::from_secs(60);

fn sig() -> Rule {
    Rule::new()
        .dst(Ipv4Addr::new(10, 10, 10, 10))
        .protocol(Protocol::Udp)
        .sport(4500)
}

fn ipset_fw(fake: &Arc<Fake>) -> Firewall {
    let fw = open(FirewallOptions::new(Backend::Ipset, "AB"), fake, 1000);
    fake.take();
    fw
}

#[test]
fn a_feed_with_bad_lines_commits_the_rest_and_lists_every_bad_one() {
    let fake = Arc::new(Fake::default());
    let fw = ipset_fw(&fake);
    let mut b = Batch::new();
    b.block(Ipv4Addr::new(203, 0, 113, 7), MIN, "feed")
        .block("0.0.0.0/0".parse::<IpNet>().unwrap(), MIN, "feed")
        .block("::/0".parse::<IpNet>().unwrap(), MIN, "feed")
        .block(Ipv4Addr::LOCALHOST, MIN, "feed")
        .block("2001:db8::/32".parse::<IpNet>().unwrap(), MIN, "feed");
    let done = fw.commit(b).unwrap();
    assert_eq!(done.refused.len(), 3, "{:?}", done.refused);
    let calls = fake.take();
    assert_eq!(calls.len(), 1);
    let text = calls[0].1.as_deref().unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        !text.contains("0.0.0.0/0") && !text.contains("127.0.0.1"),
        "{text}"
    );
    // A batch of nothing but refusals starts no process.
    let mut b = Batch::new();
    b.block(Ipv4Addr::LOCALHOST, MIN, "x");
    assert_eq!(fw.commit(b).unwrap().refused.len(), 1);
    assert!(fake.take().is_empty());
}

#[test]
fn typed_rules_live_in_the_chain_next_to_the_set_match() {
    let fake = Arc::new(Fake::default());
    let fw = ipset_fw(&fake);
    let mut b = Batch::new();
    b.block(sig(), MIN, "ike flood")
        .block(Ipv4Addr::new(192, 0, 2, 1), MIN, "ban");
    assert!(fw.commit(b).unwrap().refused.is_empty());
    let calls = fake.take();
    let cmds: Vec<&str> = calls.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        cmds,
        ["ipset restore -exist", "iptables-restore -w 5 --noflush"]
    );
    assert_eq!(
        calls[1].1.as_deref(),
        Some(
            "*filter\n-A AB -d 10.10.10.10/32 -p udp -m udp --sport 4500 -m comment --comment \"autoblock until=1060 rule=ike flood\" -j DROP\nCOMMIT\n"
        )
        .map(|s| s.replace("1060", &(now() + 60).to_string()))
        .as_deref()
    );
    assert_eq!(fw.len(), 2);

    // Changing the action rebuilds the chain: foreign rules, the match rule, then ours.
    let mut b = Batch::new();
    b.block(sig().action(Action::LogAndDrop), MIN, "ike flood");
    let _ = fw.commit(b).unwrap();
    let calls = fake.take();
    assert_eq!(
        calls[0].0, "iptables-save -t filter",
        "foreign rules read again"
    );
    let calls = &calls[1..];
    assert_eq!(calls.len(), 1);
    let text = calls[0].1.as_deref().unwrap();
    assert!(
        text.starts_with("*filter\n:AB - [0:0]\n-A AB -m set --match-set ab4 src -j DROP\n"),
        "{text}"
    );
    assert!(
        text.contains("-j LOG --log-prefix \"AB \"\n-A AB -d 10.10.10.10/32"),
        "{text}"
    );

    // Removing it (by its matches, whatever the action) rebuilds without it.
    let mut b = Batch::new();
    b.unblock(sig());
    let _ = fw.commit(b).unwrap();
    let calls = fake.take_changes();
    assert_eq!(
        calls[0].1.as_deref(),
        Some("*filter\n:AB - [0:0]\n-A AB -m set --match-set ab4 src -j DROP\nCOMMIT\n")
    );
    assert_eq!(fw.len(), 1);
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn typed_rules_expire_by_call_with_either_backend() {
    for backend in [Backend::Ipset, Backend::Iptables] {
        let fake = Arc::new(Fake::default());
        let fw = open(FirewallOptions::new(backend, "AB"), &fake, 1000);
        let mut b = Batch::new();
        b.block(sig().action(Action::Reject), MIN, "r");
        let _ = fw.commit(b).unwrap();
        fake.take();
        let end = fw.next_expiry().unwrap();
        let expired = fw.expire_due(end).unwrap();
        assert_eq!(expired.rules.len(), 1);
        assert!(expired.bans.is_empty());
        let calls = fake.take_changes();
        assert_eq!(calls.len(), 1, "{backend}: one rebuild");
        assert!(!calls[0].1.as_deref().unwrap().contains("10.10.10.10"));
        assert!(fw.is_empty());
    }
}

#[test]
fn keep_the_longer_unless_exact() {
    let fake = Arc::new(Fake::default());
    let fw = ipset_fw(&fake);
    let ip = Ipv4Addr::new(192, 0, 2, 1);
    let mut b = Batch::new();
    b.block(ip, Duration::from_secs(86_400), "long");
    let _ = fw.commit(b).unwrap();
    let long = fw.next_expiry().unwrap();
    fake.take();
    let mut b = Batch::new();
    b.block(ip, MIN, "short");
    let _ = fw.commit(b).unwrap();
    assert!(fake.take().is_empty(), "a shorter block changes nothing");
    assert_eq!(fw.next_expiry(), Some(long));
    let mut b = Batch::new().exact();
    b.block(ip, MIN, "short");
    let _ = fw.commit(b).unwrap();
    assert_eq!(fake.take().len(), 1);
    assert!(fw.next_expiry().unwrap() < long);
}

#[test]
fn lookups_protection_and_mapped_addresses() {
    let fake = Arc::new(Fake::default());
    let fw = ipset_fw(&fake);
    let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
    let mut b = Batch::new();
    b.block(mapped, MIN, "dual-stack peer").block(
        "198.51.100.0/24".parse::<IpNet>().unwrap(),
        MIN,
        "net",
    );
    let _ = fw.commit(b).unwrap();
    let calls = fake.take();
    assert!(
        calls[0]
            .1
            .as_deref()
            .unwrap()
            .contains("add ab4 203.0.113.7/32 ")
    );
    assert!(fw.is_blocked(Ipv4Addr::new(203, 0, 113, 7)));
    assert!(fw.is_blocked(mapped));
    assert_eq!(
        fw.ban_covering(Ipv4Addr::new(198, 51, 100, 9))
            .unwrap()
            .reason,
        "net"
    );
    assert!(!fw.is_blocked(Ipv4Addr::new(198, 51, 101, 9)));

    let covered = fw.set_protected(["198.51.100.77".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        covered.len(),
        1,
        "the /24 covers the newly protected address"
    );
    let mut b = Batch::new();
    b.block(Ipv4Addr::new(198, 51, 100, 77), MIN, "x");
    let refused = fw.commit(b).unwrap().refused;
    assert!(
        matches!(refused[0].refusal, Refusal::Protected { .. }),
        "{refused:?}"
    );
    let mut b = Batch::new().override_protected();
    b.block(Ipv4Addr::new(198, 51, 100, 77), MIN, "operator");
    assert!(fw.commit(b).unwrap().refused.is_empty());
}

#[test]
fn list_agrees_with_next_expiry_to_the_second() {
    let fake = Arc::new(Fake::default());
    let fw = ipset_fw(&fake);
    let mut b = Batch::new();
    b.block(Ipv4Addr::new(192, 0, 2, 1), Duration::from_secs(600), "x");
    let _ = fw.commit(b).unwrap();
    let until = fw
        .next_expiry()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    fake.set("ipset list -n", "ab4\nab6\n");
    // The kernel counts down in whole seconds: a moment later it says 599.
    let left = until - now() - 1;
    fake.set(
        "ipset save ab4",
        &format!(
            "create ab4 hash:net family inet hashsize 1024 maxelem 65536 timeout 0 comment\n\
             add ab4 192.0.2.1 timeout {left} comment \"x\"\n"
        ),
    );
    fake.set(
        "ipset save ab6",
        "create ab6 hash:net family inet6 hashsize 1024 maxelem 65536 timeout 0 comment\n",
    );
    assert_eq!(fw.list().unwrap()[0].until, until);
}

#[test]
fn a_failed_open_takes_back_what_it_created() {
    let fake = Arc::new(Fake::default());
    fake.fail(
        "ip6tables-restore -w 5 --noflush",
        "ip6tables-restore: line 2 failed",
    );
    let e = try_open(FirewallOptions::new(Backend::Ipset, "AB"), &fake, 1000).unwrap_err();
    assert!(e.to_string().contains("ip6tables-restore"), "{e}");
    let calls = fake.take();
    let cmds: Vec<&str> = calls.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        &cmds[cmds.len() - 2..],
        ["iptables-restore -w 5 --noflush", "ipset restore -exist"]
    );
    assert_eq!(
        calls[calls.len() - 2].1.as_deref(),
        Some("*filter\n-D INPUT -j AB\n-F AB\n-X AB\nCOMMIT\n")
    );
    assert_eq!(
        calls[calls.len() - 1].1.as_deref(),
        Some("destroy ab4\ndestroy ab6\n")
    );
}

#[test]
fn a_chain_named_like_ours_but_for_case_is_refused_before_any_change() {
    let fake = Arc::new(Fake::default());
    fake.set(
        "iptables-save -t filter",
        "*filter\n:ab - [0:0]\n-A INPUT -j ab\n-A ab -m set --match-set ab4 src -j DROP\nCOMMIT\n",
    );
    let e = try_open(FirewallOptions::new(Backend::Ipset, "AB"), &fake, 1000).unwrap_err();
    assert!(matches!(e, FirewallError::ChainInUse { .. }), "{e}");
    assert!(
        e.to_string().contains("chain ab matches the same set ab4"),
        "{e}"
    );
    assert!(fake.take().iter().all(|(c, _)| c.contains("-save")));
}

#[test]
fn a_rebuild_keeps_foreign_rules_added_since_open() {
    let fake = Arc::new(Fake::default());
    let fw = open(FirewallOptions::new(Backend::Iptables, "AB"), &fake, 1000);
    let rule = Rule::new()
        .dst(Ipv4Addr::new(10, 10, 10, 10))
        .protocol(Protocol::Udp)
        .sport(4500);
    let mut b = Batch::new();
    b.block(rule, MIN, "x");
    let _ = fw.commit(b).unwrap();
    fake.set(
        "iptables-save -t filter",
        "*filter\n:AB - [0:0]\n:AB.bans - [0:0]\n-A INPUT -j AB\n-A AB -s 10.0.0.0/8 -j RETURN\n\
         -A AB -j AB.bans\nCOMMIT\n",
    );
    fake.take();
    let mut b = Batch::new();
    b.unblock(rule);
    let _ = fw.commit(b).unwrap();
    assert_eq!(
        fake.take_changes()[0].1.as_deref(),
        Some(
            "*filter\n:AB.bans - [0:0]\n:AB - [0:0]\n-A AB -s 10.0.0.0/8 -j RETURN\n\
             -A AB -j AB.bans\nCOMMIT\n"
        )
    );
}

#[test]
fn a_hook_that_is_neither_built_in_nor_existing_is_refused_before_any_change() {
    let fake = Arc::new(Fake::default());
    let typo = FirewallOptions::new(Backend::Ipset, "AB").hooks(["INPUT", "OUTPUTT"]);
    let e = try_open(typo, &fake, 1000).unwrap_err();
    assert!(matches!(e, FirewallError::InvalidOption(_)), "{e}");
    assert!(e.to_string().contains("hook \"OUTPUTT\""), "{e}");
    assert!(fake.take().iter().all(|(c, _)| c.contains("-save")));
    // A user chain that exists (Docker's) is a fine hook.
    let docker = "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\nCOMMIT\n";
    fake.set("iptables-save -t filter", docker);
    fake.set("ip6tables-save -t filter", docker);
    let opts = FirewallOptions::new(Backend::Iptables, "AB").hooks(["DOCKER-USER"]);
    let _fw = open(opts, &fake, 1000);
    let calls = fake.take_changes();
    assert!(
        calls[0]
            .1
            .as_deref()
            .unwrap()
            .contains("-I DOCKER-USER 1 -j AB"),
        "{calls:?}"
    );
}

#[test]
fn a_drop_all_left_by_an_older_version_is_removed_at_open() {
    let fake = Arc::new(Fake::default());
    // `-s 0.0.0.0/0` is not printed: an old /0 ban reads back as a rule without address.
    fake.set(
        "iptables-save -t filter",
        "*filter\n:AB - [0:0]\n-A INPUT -j AB\n\
         -A AB -m comment --comment \"autoblock until=99999 rule=oops\" -j DROP\nCOMMIT\n",
    );
    let fw = open(FirewallOptions::new(Backend::Iptables, "AB"), &fake, 1000);
    assert!(fw.is_empty());
    let calls = fake.take_changes();
    assert_eq!(
        calls[0].1.as_deref(),
        Some("*filter\n:AB.bans - [0:0]\n:AB - [0:0]\n-A AB -j AB.bans\nCOMMIT\n"),
        "{calls:?}"
    );
}

#[test]
fn a_failed_ipset_restore_leaves_memory_as_the_kernel_is() {
    let fake = Arc::new(Fake::default());
    let fw = ipset_fw(&fake);
    // ipset restore applies lines up to the failing one: the first add made it.
    fake.fail(
        "ipset restore -exist",
        "ipset v7.17: Error in line 2: Hash is full",
    );
    fake.set(
        "ipset save ab4",
        "create ab4 hash:net family inet hashsize 1024 maxelem 1 timeout 0 comment\n\
         add ab4 192.0.2.1 timeout 59 comment \"a\"\n",
    );
    fake.set(
        "ipset save ab6",
        "create ab6 hash:net family inet6 hashsize 1024 maxelem 1 timeout 0 comment\n",
    );
    let mut b = Batch::new();
    b.block(Ipv4Addr::new(192, 0, 2, 1), MIN, "a")
        .block(Ipv4Addr::new(192, 0, 2, 2), MIN, "a");
    assert!(fw.commit(b).is_err());
    assert!(fw.is_blocked(Ipv4Addr::new(192, 0, 2, 1)));
    assert!(!fw.is_blocked(Ipv4Addr::new(192, 0, 2, 2)));
    assert_eq!(fw.len(), 1);
}
