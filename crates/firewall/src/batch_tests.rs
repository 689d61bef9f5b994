//! Checking and planning batches (pure): the last change per target wins, keep-the-longer
//! versus exact, typed rules beside bans, refusals reported without sinking the rest.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::*;
use crate::ban::Family;
use crate::guard::Refusal;
use crate::rule::{Action, Protocol};
use crate::tests_support::ban;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn checked_bans(batch: &Batch) -> Vec<Desired<Ban>> {
    check(batch, &Guard::default(), 1000, u64::MAX).bans
}

#[test]
fn last_change_per_net_wins_and_noops_vanish() {
    let mirror = Mirror::adopt(
        [
            ban("192.0.2.1/32", 1100, "a"),
            ban("192.0.2.2/32", 1100, "a"),
            ban("fd00::/64", 1100, "a"),
        ],
        1000,
    );
    let mut b = Batch::new();
    b.block(net("192.0.2.1/32"), secs(100), "a") // same expiry and reason: nothing to do
        .block(net("192.0.2.2/32"), secs(50), "a") // shorter: kept (keep the longer)
        .block(net("10.9.0.0/16"), secs(60), "new")
        .unblock(net("10.9.0.0/16")) // ...then unblocked, and not banned: nothing
        .block(net("10.8.0.0/16"), secs(60), "x")
        .unblock(net("fd00::/64"))
        .unblock(net("fd00:1::/64"));
    let p = plan(&checked_bans(&b), &mirror, false);
    assert_eq!(p.add, vec![ban("10.8.0.0/16", 1060, "x")]);
    assert!(p.replace.is_empty(), "{:?}", p.replace);
    assert_eq!(p.remove, vec![net("fd00::/64")]);
    assert!(!p.rebuilds(Family::V4) && p.rebuilds(Family::V6));

    // An exact batch shortens.
    let p = plan(&checked_bans(&b.clone().exact()), &mirror, true);
    assert_eq!(p.replace, vec![ban("192.0.2.2/32", 1050, "a")]);
    let mut m = mirror.clone();
    p.apply_to(&mut m, Family::V6);
    assert_eq!(m.count(Family::V6), 0);
    assert_eq!(m.get(&net("192.0.2.2/32")).unwrap().until, 1100);
}

#[test]
fn a_longer_block_replaces_with_its_reason() {
    let mirror = Mirror::adopt([ban("192.0.2.1/32", 1100, "short")], 1000);
    let mut b = Batch::new();
    b.block(net("192.0.2.1/32"), secs(3600), "long");
    let p = plan(&checked_bans(&b), &mirror, false);
    assert_eq!(p.replace, vec![ban("192.0.2.1/32", 4600, "long")]);
    assert!(p.rebuilds(Family::V4));
}

#[test]
fn ttls_are_capped_rounded_up_and_reasons_kept() {
    let mut b = Batch::new();
    b.block(net("10.0.0.0/8"), secs(10_000_000), "abuse feed #42")
        .block(
            IpAddr::from([192, 0, 2, 1]),
            Duration::from_millis(1500),
            "x",
        )
        .block(Ipv4Addr::new(192, 0, 2, 2), Duration::ZERO, "y");
    let c = check(&b, &Guard::default(), 5, 2_147_483);
    assert_eq!(
        c.bans,
        vec![
            Desired::Set(ban("10.0.0.0/8", 5 + 2_147_483, "abuse feed #42")),
            Desired::Set(ban("192.0.2.1/32", 7, "x")),
            Desired::Set(ban("192.0.2.2/32", 6, "y")),
        ]
    );
    assert_eq!(b.len(), 3);
}

#[test]
fn bad_entries_are_refused_and_the_rest_goes_through() {
    let mut b = Batch::new();
    for i in 0..100u32 {
        b.block(Ipv4Addr::from(0xC633_6400 + i), secs(60), "feed");
    }
    b.block(net("0.0.0.0/0"), secs(60), "feed")
        .block(net("10.0.0.0/1"), secs(60), "feed")
        .block(Ipv4Addr::LOCALHOST, secs(60), "feed")
        .block(Ipv4Addr::new(192, 0, 2, 9), secs(60), "quote\"d")
        .unblock(net("192.0.2.1/24"));
    let c = check(&b, &Guard::default(), 0, u64::MAX);
    assert_eq!(c.bans.len(), 100);
    let why: Vec<String> = c.refused.iter().map(ToString::to_string).collect();
    assert_eq!(why.len(), 5, "{why:?}");
    assert!(why[0].starts_with("refused 0.0.0.0/0: "), "{why:?}");
    assert!(why[1].contains("did you mean 0.0.0.0/1"), "{why:?}");
    assert!(why[2].contains("loopback"), "{why:?}");
    assert!(matches!(c.refused[3].refusal, Refusal::Reason(_)));
    assert!(why[4].contains("host bits"), "{why:?}");
}

#[test]
fn mapped_addresses_are_blocked_and_unblocked_as_ipv4() {
    let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
    let mut b = Batch::new();
    b.block(mapped, secs(60), "x");
    assert_eq!(
        checked_bans(&b),
        vec![Desired::Set(ban("203.0.113.7/32", 1060, "x"))]
    );
    let mut b = Batch::new();
    b.unblock(mapped);
    assert_eq!(
        checked_bans(&b),
        vec![Desired::Remove(net("203.0.113.7/32"))]
    );
}

#[test]
fn typed_rules_go_their_own_way_and_are_keyed_by_matches() {
    let sig = Rule::new()
        .dst(Ipv4Addr::new(10, 10, 10, 10))
        .protocol(Protocol::Udp)
        .sport(4500);
    let mut b = Batch::new();
    b.block(sig, secs(60), "ike-flood")
        .block(sig.action(Action::Reject), secs(30), "ike-flood");
    let c = check(&b, &Guard::default(), 1000, 10);
    assert!(c.bans.is_empty());
    let want = RuleEntry {
        rule: sig.action(Action::Reject),
        until: 1030,
        reason: "ike-flood".into(),
    };
    assert_eq!(c.rules, vec![Desired::Set(want.clone())]);

    // Against a longer entry with another action: the action changes, the expiry stays.
    let cur = RuleEntry {
        rule: sig,
        until: 2000,
        reason: "old".into(),
    };
    let mirror = Mirror::adopt([cur.clone()], 1000);
    let p = plan(&c.rules, &mirror, false);
    assert_eq!(
        p.replace,
        vec![RuleEntry {
            rule: sig.action(Action::Reject),
            ..cur
        }]
    );
    let mut b = Batch::new();
    b.unblock(sig.action(Action::LogAndDrop));
    let c = check(&b, &Guard::default(), 1000, 10);
    assert_eq!(plan(&c.rules, &mirror, false).remove, vec![sig]);
}
