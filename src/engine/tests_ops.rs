//! Unit tests of what operators ask of the engine (issue 14): banning again never shortens, a
//! manual ban's rule is `manual` with the reason apart, prefix bans found around an address,
//! bulk unbans, the rule that set the end time named, log-only rules, exempt nets, leaders.

use std::time::Duration;

use super::tests::{config, feed, rule, syn};
use super::*;
use crate::config::{Metric, RuleMode};
use crate::time::Timestamp;

const SEC: u64 = 1_000_000;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn engine() -> Engine {
    Engine::new(&config(vec![rule("p", Metric::Packets, 10, 1000)]), vec![])
}

#[test]
fn banning_again_never_silently_shortens() {
    let mut e = engine();
    let t = Timestamp(SEC);
    let hour = Some(Duration::from_secs(3600));
    let ten = Some(Duration::from_secs(600));
    let first = e.ban_manual(net("203.0.113.7/32"), hour, "abuse", false, false, t);
    assert!(matches!(first, Ok(ManualBan::Banned(_))));
    let again = e.ban_manual(net("203.0.113.7/32"), ten, "again", false, false, t);
    let Ok(ManualBan::Kept(kept)) = again else {
        panic!("{again:?}");
    };
    assert_eq!(kept.until, Timestamp(SEC + 3600 * SEC));
    assert_eq!(kept.comment.as_deref(), Some("abuse"));
    // Longer: applied. Explicitly replaced: shortened.
    let longer = e.ban_manual(
        net("203.0.113.7/32"),
        Some(Duration::from_secs(7200)),
        "x",
        false,
        false,
        t,
    );
    assert!(matches!(longer, Ok(ManualBan::Banned(_))));
    let replaced = e.ban_manual(net("203.0.113.7/32"), ten, "x", false, true, t);
    assert!(matches!(replaced, Ok(ManualBan::Banned(_))));
    let key = sources::SourceKey::from_net(net("203.0.113.7/32"));
    assert_eq!(
        e.bans().get(&key).map(|b| b.until),
        Some(Timestamp(SEC + 600 * SEC))
    );
}

#[test]
fn a_manual_ban_is_rule_manual_with_its_reason_apart() {
    let mut e = engine();
    let d = e.ban_manual(
        net("198.51.100.0/24"),
        None,
        "abuse report #12",
        false,
        false,
        Timestamp(SEC),
    );
    let Ok(ManualBan::Banned(Decision::Block(v))) = d else {
        panic!("{d:?}");
    };
    assert_eq!(&*v.rule, "manual");
    assert_eq!(v.comment.as_deref(), Some("abuse report #12"));
    let b = e.bans().iter().next().expect("a ban");
    assert_eq!(
        (&*b.rule, b.comment.as_deref()),
        ("manual", Some("abuse report #12"))
    );
}

#[test]
fn unban_sees_the_prefix_ban_around_an_address() {
    let mut e = engine();
    let t = Timestamp(SEC);
    assert!(
        e.ban_manual(net("2001:db8::/48"), None, "", false, false, t)
            .is_ok()
    );
    // The address has no ban of its own: the /48 is named and kept...
    let covered = e.unban(net("2001:db8::1/128"), false, t);
    let Unbanned::Covered(by) = covered else {
        panic!("{covered:?}");
    };
    assert_eq!(by.key.net(), net("2001:db8::/48"));
    assert_eq!(e.bans().len(), 1);
    // ...explain finds it too, and --covering lifts it.
    let x = e.explain("2001:db8::1".parse().unwrap(), t);
    assert_eq!(x.ban.map(|b| b.key.net()), Some(net("2001:db8::/48")));
    assert!(matches!(
        e.unban(net("2001:db8::1/128"), true, t),
        Unbanned::Removed(_)
    ));
    assert_eq!(e.bans().len(), 0);
    assert_eq!(e.unban(net("2001:db8::1/128"), true, t), Unbanned::NotFound);
}

#[test]
fn unban_all_or_one_rules_bans() {
    let mut e = engine();
    let t = Timestamp(SEC);
    for n in ["198.51.100.1/32", "198.51.100.2/32"] {
        assert!(e.ban_manual(net(n), None, "", false, false, t).is_ok());
    }
    let out = feed(&mut e, &syn("203.0.113.9", "10.0.0.1", 80), 20, SEC, 1000);
    assert!(out.iter().any(|d| matches!(d, Decision::Block(_))));
    assert_eq!(e.bans().len(), 3);
    let mut out = Vec::new();
    assert_eq!(e.unban_where(Some("p"), t, &mut out), 1);
    assert_eq!(e.bans().len(), 2);
    assert_eq!(e.unban_where(None, t, &mut out), 2);
    assert_eq!((e.bans().len(), out.len()), (0, 3));
}

/// Bans lifted together come out in key order, whatever the ban table's hash order: the same
/// events on every run.
#[test]
fn bans_lifted_together_come_out_in_key_order() {
    let t = Timestamp(SEC);
    let unblocked = |out: &[Decision]| -> Vec<String> {
        out.iter()
            .filter_map(|d| match d {
                Decision::Unblock { ban, .. } => Some(ban.key.to_string()),
                _ => None,
            })
            .collect()
    };
    let nets: Vec<String> = (1..=40)
        .rev()
        .map(|i| format!("198.51.100.{i}/32"))
        .collect();
    let mut e = engine();
    for n in &nets {
        assert!(e.ban_manual(net(n), None, "", false, false, t).is_ok());
    }
    let mut out = Vec::new();
    assert_eq!(e.unban_where(None, t, &mut out), 40);
    let got = unblocked(&out);
    let mut sorted = got.clone();
    sorted.sort_by_key(|k| k.parse::<std::net::IpAddr>().ok());
    assert_eq!(got, sorted, "unban_where");
    // Our own addresses now cover every ban: all lifted, in order.
    for n in &nets {
        assert!(e.ban_manual(net(n), None, "", false, false, t).is_ok());
    }
    let mut out = Vec::new();
    e.set_local(vec![net("198.51.100.0/24")], t, &mut out);
    let got = unblocked(&out);
    assert_eq!(got.len(), 40);
    let mut sorted = got.clone();
    sorted.sort_by_key(|k| k.parse::<std::net::IpAddr>().ok());
    assert_eq!(got, sorted, "lift_protected");
}

#[test]
fn the_rule_that_extends_a_ban_is_named_by_it() {
    let mut c = config(vec![
        rule("slow", Metric::Packets, 5, 1000),
        rule("fast", Metric::Packets, 50, 1000),
    ]);
    c.rules[1].ban = Some(Duration::from_secs(3600));
    let mut e = Engine::new(&c, vec![]);
    let out = feed(&mut e, &syn("203.0.113.9", "10.0.0.1", 80), 60, SEC, 1000);
    assert!(
        out.iter()
            .any(|d| matches!(d, Decision::Extend(v) if &*v.rule == "fast"))
    );
    let b = e.bans().iter().next().expect("banned");
    assert_eq!(
        &*b.rule, "fast",
        "list and explain name the rule that set the end time"
    );
}

#[test]
fn a_log_only_rule_reports_and_never_bans() {
    let mut c = config(vec![rule("trial", Metric::Packets, 10, 1000)]);
    c.rules[0].mode = RuleMode::Log;
    let mut e = Engine::new(&c, vec![]);
    let out = feed(&mut e, &syn("203.0.113.9", "10.0.0.1", 80), 100, SEC, 1000);
    assert_eq!(e.bans().len(), 0);
    let logged: Vec<_> = out
        .iter()
        .filter(|d| {
            matches!(
                d,
                Decision::Suppressed {
                    reason: SuppressReason::Log,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(logged.len(), 1, "reported once per would-be ban: {out:?}");
    assert!(
        !out.iter()
            .any(|d| matches!(d, Decision::Block(_) | Decision::Extend(_)))
    );
}

#[test]
fn exempt_sources_are_not_counted_by_that_rule() {
    let mut c = config(vec![
        rule("a", Metric::Packets, 10, 1000),
        rule("b", Metric::Packets, 10, 1000),
    ]);
    c.rules[0].exempt = vec![net("203.0.113.0/24")];
    let mut e = Engine::new(&c, vec![]);
    let out = feed(&mut e, &syn("203.0.113.9", "10.0.0.1", 80), 20, SEC, 1000);
    let rules: Vec<&str> = out
        .iter()
        .filter_map(|d| match d {
            Decision::Block(v) => Some(&*v.rule),
            _ => None,
        })
        .collect();
    assert_eq!(rules, ["b"]);
    let x = e.explain("203.0.113.9".parse().unwrap(), Timestamp(SEC + 20_000));
    assert_eq!(x.exempt.iter().map(|r| &**r).collect::<Vec<_>>(), ["a"]);
    assert_eq!(x.rules[0].value, 0);
}

#[test]
fn the_leaders_of_each_rule_come_without_a_walk() {
    let mut e = engine();
    let mut out = Vec::new();
    for (i, n) in [(1u8, 3u64), (2, 12), (3, 7)] {
        let p = syn(&format!("198.51.100.{i}"), "10.0.0.1", 80);
        for k in 0..n {
            e.observe(&p, Timestamp(SEC + k * 1000), &mut out);
        }
    }
    let top = e.top(2);
    assert_eq!(top.len(), 1);
    let got: Vec<(String, u64)> = top[0]
        .sources
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(
        got,
        [
            ("198.51.100.2".to_owned(), 12),
            ("198.51.100.3".to_owned(), 7)
        ]
    );
    assert_eq!(e.active_by_rule(), [(std::sync::Arc::from("p"), 1)]);
    // Two seconds later the 1 s windows are empty: the leaders go with them.
    e.refresh_leaders(Timestamp(3 * SEC));
    assert!(e.top(2)[0].sources.is_empty());
}

#[test]
fn explain_never_counts_fewer_offenses_than_the_ban_in_force() {
    let mut c = config(vec![rule("p", Metric::Packets, 10, 1000)]);
    c.enforce.repeat_window = Duration::from_secs(1);
    c.rules[0].ban = Some(Duration::from_secs(3600));
    let mut e = Engine::new(&c, vec![]);
    feed(&mut e, &syn("203.0.113.9", "10.0.0.1", 80), 20, SEC, 1000);
    // Ten seconds on, the history (repeat_window 1 s) is gone; the ban is not.
    let mut out = Vec::new();
    e.tick(Timestamp(12 * SEC), &mut out);
    let x = e.explain("203.0.113.9".parse().unwrap(), Timestamp(12 * SEC));
    let ban = x.ban.expect("still banned");
    assert_eq!((x.offenses, ban.offense), (1, 1));
}

/// The proptests' rules: two packet rates over different windows and a distinct-ports count.
fn two_rates_and_ports() -> Config {
    config(vec![
        rule("p", Metric::Packets, 30, 1000),
        rule("q", Metric::Packets, 12, 500),
        rule("d", Metric::DstPorts, 6, 1000),
    ])
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// The tables report a rule's values only above its leaders' floor (or its threshold):
    /// the leaders, the decisions and `top` are those of an engine whose tables report every
    /// value, on random traffic from more sources than the leaders hold.
    #[test]
    fn report_levels_change_no_leader_and_no_decision(
        stream in proptest::collection::vec((0..40u8, 0..4u16, 0..20_000u32), 200..1500),
    ) {
        let c = two_rates_and_ports();
        let mut levels = Engine::new(&c, vec![]);
        let mut all = Engine::new(&c, vec![]);
        all.report_all = true;
        all.sync_reports();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut ts = 1_000_000_000u64;
        for (i, (src, port, gap)) in stream.iter().enumerate() {
            ts += u64::from(*gap);
            let p = syn(&format!("198.51.100.{src}"), "10.0.0.1", 1000 + port);
            levels.observe(&p, Timestamp(ts), &mut x);
            all.observe(&p, Timestamp(ts), &mut y);
            if i % 97 == 0 {
                levels.refresh_leaders(Timestamp(ts));
                all.refresh_leaders(Timestamp(ts));
            }
            proptest::prop_assert_eq!(levels.top(8), all.top(8));
        }
        proptest::prop_assert_eq!(x, y);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Replay keeps no leaders: its tables then report only values above each rule's peak so
    /// far (or its threshold). The decisions and the peaks (one source each, and five as with
    /// `--report`) are those of an engine with leaders, on random traffic with bursts over
    /// the thresholds; and `top` stays empty.
    #[test]
    fn without_leaders_the_decisions_and_peaks_are_the_same(
        stream in proptest::collection::vec(
            (proptest::prop_oneof![0..3u8, 0..40u8], 0..10u16, 0..5_000u32),
            200..1500,
        ),
        keep in proptest::prop_oneof![proptest::strategy::Just(1usize), proptest::strategy::Just(5)],
    ) {
        let c = two_rates_and_ports();
        let mut with = Engine::new(&c, vec![]);
        let mut without = Engine::new(&c, vec![]);
        without.without_leaders();
        with.keep_peak_sources(keep);
        without.keep_peak_sources(keep);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut ts = 1_000_000_000u64;
        for (src, port, gap) in &stream {
            ts += u64::from(*gap);
            let p = syn(&format!("198.51.100.{src}"), "10.0.0.1", 1000 + port);
            with.observe(&p, Timestamp(ts), &mut x);
            without.observe(&p, Timestamp(ts), &mut y);
        }
        proptest::prop_assert!(!x.is_empty(), "the stream went over a threshold");
        proptest::prop_assert_eq!(x, y);
        proptest::prop_assert_eq!(with.peaks(), without.peaks());
        proptest::prop_assert!(without.top(8).iter().all(|r| r.sources.is_empty()));
    }
}
