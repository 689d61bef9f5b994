//! Unit tests of bans from the fleet (issue 16): applied with their origin and our end cap,
//! never twice, refused by what protects us, lifted only by their own node, held back by the
//! fleet's own rate bucket (never dropped, never starving local detection), capped.

use super::remote::{FLEET_BURST_SECS, Remote};
use super::tests::{config, feed, rule, syn};
use super::*;
use crate::cluster::{BanKind, BanMessage};
use crate::config::Metric;
use crate::time::Timestamp;

const SEC: u64 = 1_000_000;
const NOW: Timestamp = Timestamp(1000 * SEC);

fn engine() -> Engine {
    Engine::new(
        &config(vec![rule("p", Metric::Packets, 10, 1000)]),
        vec!["10.0.0.1/32".parse().unwrap()],
    )
}

fn msg(origin: &str, kind: BanKind, target: &str, until_s: u64) -> BanMessage {
    BanMessage::new(
        format!("{origin}-1-{target}-{until_s}"),
        origin.into(),
        kind,
        target.parse().unwrap(),
        Timestamp::from_secs(until_s),
        Timestamp::from_secs(990),
        "syn-flood",
        2,
        false,
    )
}

fn key(target: &str) -> SourceKey {
    SourceKey::from_net(target.parse().unwrap())
}

fn apply(e: &mut Engine, m: &BanMessage, at: Timestamp) -> (Remote, Vec<Decision>) {
    let mut out = Vec::new();
    let r = e.apply_remote(m, at, &mut out);
    (r, out)
}

#[test]
fn a_ban_from_the_fleet_goes_in_with_its_origin_once() {
    let mut e = engine();
    let m = msg("a", BanKind::Block, "203.0.113.7/32", 1600);
    let (r, out) = apply(&mut e, &m, NOW);
    assert_eq!(r, Remote::Applied);
    let [Decision::Block(v)] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!(v.origin.as_deref(), Some("a"));
    assert_eq!((v.until, v.offense, &*v.rule), (m.until, 2, "syn-flood"));
    assert!(!v.manual() && v.metric.is_none());
    let b = e.bans().get(&key("203.0.113.7/32")).expect("banned");
    assert_eq!(
        (b.origin.as_deref(), b.until, b.manual),
        (Some("a"), m.until, false)
    );
    // The same end again, or an earlier one: nothing changes.
    assert_eq!(apply(&mut e, &m, NOW).0, Remote::Unchanged);
    let earlier = msg("b", BanKind::Block, "203.0.113.7/32", 1500);
    assert_eq!(apply(&mut e, &earlier, NOW).0, Remote::Unchanged);
    // A later end extends it, and the ban is the node's that set it.
    let later = msg("b", BanKind::Extend, "203.0.113.7/32", 1900);
    let (r, out) = apply(&mut e, &later, NOW);
    assert_eq!(r, Remote::Applied);
    assert!(matches!(&out[..], [Decision::Extend(v)] if v.origin.as_deref() == Some("b")));
    let b = e.bans().get(&key("203.0.113.7/32")).expect("banned");
    assert_eq!((b.origin.as_deref(), b.until), (Some("b"), later.until));
}

#[test]
fn the_end_is_capped_by_our_max_ban_and_an_ended_ban_is_not_applied() {
    let mut e = engine();
    // max_ban is 1 h in the test config.
    let m = msg("a", BanKind::Block, "203.0.113.8/32", 1000 + 86_400);
    let (_, out) = apply(&mut e, &m, NOW);
    assert!(matches!(&out[..], [Decision::Block(v)] if v.until == Timestamp(NOW.0 + 3600 * SEC)));
    let over = msg("a", BanKind::Block, "203.0.113.9/32", 1000);
    assert_eq!(apply(&mut e, &over, NOW), (Remote::Expired, vec![]));
}

#[test]
fn our_addresses_and_allowlist_refuse_it_even_a_manual_one() {
    let mut e = engine();
    for (target, reason) in [
        ("192.0.2.5/32", SuppressReason::Allowlist),
        ("10.0.0.0/24", SuppressReason::Local),
    ] {
        let mut m = msg("a", BanKind::Block, target, 1600);
        m.manual = true;
        m.rule = "manual".into();
        let (r, out) = apply(&mut e, &m, NOW);
        assert_eq!(r, Remote::Refused(reason), "{target}");
        assert!(matches!(
            &out[..],
            [Decision::Suppressed { verdict, reason: r }]
                if *r == reason && verdict.origin.as_deref() == Some("a") && verdict.manual()
        ));
    }
    assert_eq!(e.bans().len(), 0);
}

#[test]
fn a_remote_unblock_lifts_only_that_nodes_ban() {
    let mut e = engine();
    apply(
        &mut e,
        &msg("a", BanKind::Block, "203.0.113.7/32", 1600),
        NOW,
    );
    let by_b = msg("b", BanKind::Unblock, "203.0.113.7/32", 1600);
    assert_eq!(apply(&mut e, &by_b, NOW), (Remote::Unchanged, vec![]));
    let by_a = msg("a", BanKind::Unblock, "203.0.113.7/32", 1600);
    let (r, out) = apply(&mut e, &by_a, NOW);
    assert_eq!(r, Remote::Applied);
    assert!(matches!(
        &out[..],
        [Decision::Unblock { ban, reason: UnblockReason::Manual, .. }] if ban.origin.as_deref() == Some("a")
    ));
    // A ban of our own is never lifted by the fleet.
    e.ban_manual(
        "198.51.100.1/32".parse().unwrap(),
        None,
        "x",
        false,
        false,
        NOW,
    )
    .expect("banned");
    let ours = msg("a", BanKind::Unblock, "198.51.100.1/32", 1600);
    assert_eq!(apply(&mut e, &ours, NOW).0, Remote::Unchanged);
    assert_eq!(e.bans().len(), 1);
}

#[test]
fn a_rule_here_that_extends_a_fleet_ban_makes_it_ours() {
    let mut e = engine();
    let m = msg("a", BanKind::Block, "203.0.113.50/32", 1005);
    apply(&mut e, &m, NOW);
    let d = feed(
        &mut e,
        &syn("203.0.113.50", "10.0.0.1", 80),
        20,
        NOW.0,
        1000,
    );
    assert!(
        matches!(&d[..], [Decision::Extend(v)] if v.origin.is_none()),
        "{d:?}"
    );
    let b = e.bans().get(&key("203.0.113.50/32")).expect("banned");
    assert_eq!((b.origin.as_deref(), &*b.rule), (None, "p"));
    let lift = msg("a", BanKind::Unblock, "203.0.113.50/32", 1005);
    assert_eq!(apply(&mut e, &lift, NOW).0, Remote::Unchanged);
}

#[test]
fn a_reloaded_allowlist_lifts_a_fleet_ban_even_a_manual_one() {
    let mut e = engine();
    let mut m = msg("a", BanKind::Block, "198.51.100.0/24", 1600);
    m.manual = true;
    apply(&mut e, &m, NOW);
    let mut c = config(vec![rule("p", Metric::Packets, 10, 1000)]);
    c.allow.nets.push("198.51.100.0/24".parse().unwrap());
    let mut out = Vec::new();
    e.reconfigure(&c, NOW, &mut out);
    assert!(matches!(
        &out[..],
        [Decision::Unblock {
            reason: UnblockReason::Protected,
            ..
        }]
    ));
}

#[test]
fn the_fleets_rate_limit_holds_bans_back_until_they_fit_and_never_starves_local_bans() {
    let mut c = config(vec![rule("p", Metric::Packets, 10, 1000)]);
    c.enforce.max_new_bans_per_sec = 2;
    let mut e = Engine::new(&c, vec![]);
    let burst = 2 * FLEET_BURST_SECS as usize;
    let mut results = Vec::new();
    for i in 0..burst + 3 {
        let m = msg("a", BanKind::Block, &format!("203.0.113.{i}/32"), 1600);
        results.push(apply(&mut e, &m, NOW).0);
    }
    assert!(results[..burst].iter().all(|r| *r == Remote::Applied));
    assert!(results[burst..].iter().all(|r| *r == Remote::Waiting));
    assert_eq!((e.bans().len(), e.fleet_waiting()), (burst, 3));
    // Local detection has its own bucket.
    let d = feed(
        &mut e,
        &syn("198.51.100.9", "10.0.0.1", 80),
        20,
        NOW.0,
        1000,
    );
    assert!(d.iter().any(|d| matches!(d, Decision::Block(_))), "{d:?}");
    // Half a second refills one token: the oldest waiting ban goes in first.
    let mut out = Vec::new();
    e.retry_fleet(Timestamp(NOW.0 + SEC / 2), &mut out);
    assert!(
        matches!(&out[..], [Decision::Block(v)] if v.key == key(&format!("203.0.113.{burst}/32")))
    );
    assert_eq!(e.fleet_waiting(), 2);
    // A new one waits behind them; an unblock of a waiting ban forgets it.
    let late = msg("a", BanKind::Block, "198.51.100.77/32", 1600);
    assert_eq!(
        apply(&mut e, &late, Timestamp(NOW.0 + SEC / 2)).0,
        Remote::Waiting
    );
    let lift = msg(
        "a",
        BanKind::Unblock,
        &format!("203.0.113.{}/32", burst + 1),
        1600,
    );
    apply(&mut e, &lift, Timestamp(NOW.0 + SEC / 2));
    assert_eq!(e.fleet_waiting(), 2);
    // Once their end has passed, waiting bans are dropped, not applied.
    let mut out = Vec::new();
    e.retry_fleet(Timestamp::from_secs(1600), &mut out);
    assert!(
        out.iter().all(|d| !matches!(d, Decision::Block(_))),
        "{out:?}"
    );
    assert_eq!(e.fleet_waiting(), 0);
}

#[test]
fn max_active_bans_caps_the_fleet_too() {
    let mut c = config(vec![rule("p", Metric::Packets, 10, 1000)]);
    c.enforce.max_active_bans = 3;
    let mut e = Engine::new(&c, vec![]);
    for i in 0..3 {
        let m = msg("a", BanKind::Block, &format!("203.0.113.{i}/32"), 1600);
        assert_eq!(apply(&mut e, &m, NOW).0, Remote::Applied);
    }
    let over = msg("a", BanKind::Block, "203.0.113.9/32", 1600);
    let (r, out) = apply(&mut e, &over, NOW);
    assert_eq!(r, Remote::Refused(SuppressReason::Cap));
    assert!(matches!(
        &out[..],
        [Decision::Suppressed {
            reason: SuppressReason::Cap,
            ..
        }]
    ));
    // An extension needs no room.
    let longer = msg("a", BanKind::Extend, "203.0.113.1/32", 1700);
    assert_eq!(apply(&mut e, &longer, NOW).0, Remote::Applied);
}

#[test]
fn a_rule_ban_from_the_fleet_spares_a_peer_verified_here_a_manual_one_does_not() {
    use crate::trust::peers::{PeerKind, PeerSet};
    let mut e = engine();
    let mut b = PeerSet::builder(4);
    b.host("198.51.100.7".parse().unwrap(), PeerKind::Established);
    e.set_peers(std::sync::Arc::new(b.build()));
    let (r, out) = apply(
        &mut e,
        &msg("a", BanKind::Block, "198.51.100.0/24", 1600),
        NOW,
    );
    assert!(
        matches!(r, Remote::Refused(SuppressReason::Peer(_))),
        "{r:?}"
    );
    assert!(matches!(
        &out[..],
        [Decision::Suppressed { reason: SuppressReason::Peer(_), verdict }]
            if verdict.origin.as_deref() == Some("a")
    ));
    assert_eq!(e.bans().len(), 0);
    let mut m = msg("a", BanKind::Block, "198.51.100.7/32", 1600);
    m.manual = true;
    m.rule = "manual".into();
    assert_eq!(apply(&mut e, &m, NOW).0, Remote::Applied);
    assert!(e.bans().get(&key("198.51.100.7/32")).is_some());
}
