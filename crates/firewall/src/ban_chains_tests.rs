//! Unit tests of the ban chains' names, restore lines and layout check.

use std::collections::BTreeSet;

use super::*;
use crate::parse::parse_save;
use crate::rule::{Action, Protocol, Rule};
use crate::tests_support::ban;

fn mirror(bans: &[(&str, u64)]) -> Mirror<Ban> {
    Mirror::adopt(bans.iter().map(|(n, u)| ban(n, *u, "r")), 0)
}

fn rule(chain: &str, net: &str, until: u64) -> String {
    render::ban_rule(chain, &ban(net, until, "r"))
}

#[test]
fn names_round_trip_and_nothing_else_is_private() {
    assert_eq!(bucket(0), 0);
    assert_eq!(bucket(BUCKET_SECS - 1), 0);
    assert_eq!(bucket(BUCKET_SECS), 1);
    assert_eq!(
        bucket(u64::MAX),
        LAST_BUCKET,
        "far ends share the last bucket"
    );
    let longest = "A".repeat(MAX_CHAIN_LEN);
    assert_eq!(
        bucket_chain(&longest, LAST_BUCKET).len(),
        28,
        "iptables' limit"
    );
    for k in [0, 1, 0xbb, LAST_BUCKET] {
        assert_eq!(
            private("AB", &bucket_chain("AB", k)),
            Some(Private::Bucket(k))
        );
    }
    assert_eq!(private("AB", "AB.bans"), Some(Private::Dispatch));
    for other in [
        "AB", "ab.bans", "AB.BB", "AB.0bb", "AB.", "AB.x", "ABC.1", "AB.1.2",
    ] {
        assert_eq!(private("AB", other), None, "{other}");
    }
    assert_eq!(private("AB", "AB.10000000"), None, "beyond the last bucket");
}

#[test]
fn a_new_end_time_creates_its_chain_and_the_dispatch_jumps_to_it() {
    let next = mirror(&[("192.0.2.1/32", 64), ("192.0.2.2/32", 100)]);
    let before = BTreeSet::from([2]);
    let new = ban("192.0.2.2/32", 100, "r");
    let (lines, delete) = change("AB", &before, &next, Family::V4, &BTreeSet::from([3]), &[]);
    assert!(delete.is_empty());
    assert_eq!(
        lines,
        [
            ":AB.3 - [0:0]".to_string(),
            rule("AB.3", "192.0.2.2/32", 100),
            ":AB.bans - [0:0]".into(),
            "-A AB.bans -j AB.2".into(),
            "-A AB.bans -j AB.3".into(),
        ]
    );
    // The same end time again: one appended line, nothing else.
    let (lines, delete) = change(
        "AB",
        &BTreeSet::from([2, 3]),
        &next,
        Family::V4,
        &BTreeSet::new(),
        &[&new],
    );
    assert_eq!(lines, [rule("AB.3", "192.0.2.2/32", 100)]);
    assert!(delete.is_empty());
}

#[test]
fn a_partly_ended_chain_is_rewritten_and_an_ended_one_deleted_after_the_dispatch() {
    // Bucket 2 keeps 192.0.2.1, bucket 3 lost its only ban.
    let next = mirror(&[("192.0.2.1/32", 70)]);
    let (lines, delete) = change(
        "AB",
        &BTreeSet::from([2, 3]),
        &next,
        Family::V4,
        &BTreeSet::from([2, 3]),
        &[],
    );
    assert_eq!(delete, ["AB.3"], "deleted after, best effort");
    assert_eq!(
        lines,
        [
            ":AB.2 - [0:0]".to_string(),
            rule("AB.2", "192.0.2.1/32", 70),
            ":AB.bans - [0:0]".into(),
            "-A AB.bans -j AB.2".into(),
            ":AB.3 - [0:0]".into(),
        ]
    );
    // Other families are not touched.
    let v6 = change(
        "AB",
        &BTreeSet::new(),
        &next,
        Family::V6,
        &BTreeSet::new(),
        &[],
    );
    assert!(v6.0.is_empty() && v6.1.is_empty(), "{v6:?}");
}

#[test]
fn whole_writes_every_chain_and_deletes_stale_ones_after_ours() {
    let bans = mirror(&[
        ("192.0.2.1/32", 64),
        ("2001:db8::/32", 64),
        ("192.0.2.9/32", 33),
    ]);
    let existing = ["AB.bans".to_string(), "AB.5".to_string()];
    let w = whole("AB", &bans, Family::V4, true, &existing);
    assert_eq!(
        w.before,
        [
            ":AB.1 - [0:0]".to_string(),
            rule("AB.1", "192.0.2.9/32", 33),
            ":AB.2 - [0:0]".into(),
            rule("AB.2", "192.0.2.1/32", 64),
            ":AB.bans - [0:0]".into(),
            "-A AB.bans -j AB.1".into(),
            "-A AB.bans -j AB.2".into(),
        ]
    );
    assert_eq!(w.after, [":AB.5 - [0:0]"]);
    assert_eq!(w.delete, ["AB.5"]);
    // ipset: no private chain is wanted; the dispatch chain goes too.
    let w = whole("AB", &bans, Family::V4, false, &existing);
    assert!(w.before.is_empty());
    assert_eq!(w.after, [":AB.bans - [0:0]", ":AB.5 - [0:0]"]);
    assert_eq!(w.delete, ["AB.bans", "AB.5"]);
}

#[test]
fn layout_problems_are_found_and_a_correct_layout_passes() {
    let bans = mirror(&[("192.0.2.1/32", 70)]);
    let good = format!(
        "*filter\n:AB - [0:0]\n:AB.2 - [0:0]\n:AB.bans - [0:0]\n-A AB -j AB.bans\n\
         -A AB.bans -j AB.2\n{}\nCOMMIT\n",
        rule("AB.2", "192.0.2.1/32", 70)
    );
    let check = |text: &str, in_chains: bool| {
        let st = parse_save(text, "filter", "AB", None, Family::V4).unwrap();
        layout_problem("AB", &st, &bans, Family::V4, in_chains)
    };
    assert_eq!(check(&good, true), None);
    let st = parse_save(&good, "filter", "AB", None, Family::V4).unwrap();
    assert_eq!(st.bans, [ban("192.0.2.1/32", 70, "r")]);
    assert!(st.foreign.is_empty() && st.orphans == 0, "{st:?}");
    let cases = [
        (good.replace("-A AB -j AB.bans\n", ""), "jump exactly once"),
        (good.replace("-A AB.bans -j AB.2\n", ""), "dispatch chain"),
        (
            good.replace(":AB.bans - [0:0]\n", ":AB.bans - [0:0]\n:AB.7 - [0:0]\n")
                .replace("COMMIT", &(rule("AB.7", "192.0.2.7/32", 230) + "\nCOMMIT")),
            "left over",
        ),
        (good.replace("AB.2 -s", "AB.3 -s"), "outside the ban chain"),
        (
            format!(
                "{}\n{}",
                good.replace("\nCOMMIT\n", ""),
                rule("AB", "192.0.2.5/32", 70)
            ) + "\nCOMMIT\n",
            "outside the ban chain",
        ),
    ];
    for (text, why) in cases {
        let problem = check(&text, true).unwrap_or_default();
        assert!(problem.contains(why), "{why}: {problem:?} for\n{text}");
    }
    // An empty chain left over (its deletion failed: someone jumps to it) is harmless.
    let pinned = good.replace(":AB.bans - [0:0]\n", ":AB.bans - [0:0]\n:AB.7 - [0:0]\n");
    assert_eq!(check(&pinned, true), None);
    assert_eq!(
        check("*filter\n:AB - [0:0]\n:AB.7 - [0:0]\nCOMMIT\n", false),
        None
    );
    // A rule added by hand to a private chain is an orphan: the next rewrite drops it.
    let by_hand = good.replace("COMMIT", "-A AB.2 -p tcp -j ACCEPT\nCOMMIT");
    let st = parse_save(&by_hand, "filter", "AB", None, Family::V4).unwrap();
    assert_eq!(st.orphans, 1);
    // ipset: any private chain left is a problem.
    assert!(check(&good, false).is_some());
    assert_eq!(check("*filter\n:AB - [0:0]\nCOMMIT\n", false), None);
}

/// `parse_save` of a filter table whose bucket chains hold `lines` (the layout's other lines
/// are not needed to read bans).
fn read(lines: &[String]) -> crate::parse::TableState {
    let text = format!("*filter\n:AB - [0:0]\n{}\nCOMMIT\n", lines.join("\n"));
    parse_save(&text, "filter", "AB", None, Family::V4).unwrap()
}

#[test]
fn only_the_first_ban_of_a_run_carries_the_comment_and_the_others_read_back_from_it() {
    let feed = [
        ban("192.0.2.3/32", 70, "feed"),
        ban("192.0.2.1/32", 70, "feed"),
        ban("192.0.2.2/32", 71, "syn"),
        ban("192.0.2.4/32", 70, "other"),
        ban("192.0.2.5/32", 71, "syn"),
        ban("198.51.100.0/24", 70, "feed"),
    ];
    let next = Mirror::adopt(feed.iter().cloned(), 0);
    let w = whole("AB", &next, Family::V4, true, &[]);
    let bare = |net: &str| render::bare_ban_rule("AB.2", &net.parse().unwrap());
    assert_eq!(
        w.before[..7],
        [
            ":AB.2 - [0:0]".to_string(),
            render::ban_rule("AB.2", &feed[1]),
            bare("192.0.2.3/32"),
            bare("198.51.100.0/24"),
            render::ban_rule("AB.2", &feed[3]),
            render::ban_rule("AB.2", &feed[2]),
            bare("192.0.2.5/32"),
        ],
        "runs by (end, reason), nets in order within a run"
    );
    assert_eq!(w.before[2], "-A AB.2 -s 192.0.2.3/32 -j DROP");
    let st = read(&w.before);
    let mut got = st.bans.clone();
    got.sort_by_key(|b| b.net);
    assert!(got.iter().eq(next.family(Family::V4)), "{got:?}");
    assert_eq!((st.orphans, st.misplaced), (0, 0));
}

#[test]
fn an_append_starts_its_own_run_even_with_the_same_end_and_reason() {
    let old = ban("192.0.2.1/32", 70, "r");
    let new = [ban("192.0.2.9/32", 70, "r"), ban("192.0.2.8/32", 70, "r")];
    let next = Mirror::adopt([old.clone(), new[0].clone(), new[1].clone()], 0);
    let (lines, _) = change(
        "AB",
        &BTreeSet::from([2]),
        &next,
        Family::V4,
        &BTreeSet::new(),
        &[&new[0], &new[1]],
    );
    assert_eq!(
        lines,
        [
            render::ban_rule("AB.2", &new[0]),
            "-A AB.2 -s 192.0.2.8/32 -j DROP".to_string(),
        ]
    );
}

#[test]
fn a_bare_ban_with_no_run_of_ours_before_it_in_its_chain_is_an_orphan() {
    let head = rule("AB.2", "192.0.2.1/32", 70);
    let bare = |chain: &str, net: &str| render::bare_ban_rule(chain, &net.parse().unwrap());
    // First in its chain.
    let st = read(&[bare("AB.2", "192.0.2.2/32"), head.clone()]);
    assert_eq!((st.bans.len(), st.orphans), (1, 1));
    // After another chain's run: runs never cross chains.
    let st = read(&[head.clone(), bare("AB.3", "192.0.2.2/32")]);
    assert_eq!((st.bans.len(), st.orphans), (1, 1));
    // After a line that is not ours: the run is broken.
    let st = read(&[
        head.clone(),
        "-A AB.2 -p tcp -j ACCEPT".into(),
        bare("AB.2", "192.0.2.2/32"),
    ]);
    assert_eq!((st.bans.len(), st.orphans), (1, 2));
    // Anything but exactly `-s NET -j DROP` of the table's family is not a bare ban.
    for other in [
        "-A AB.2 -s 192.0.2.2/32 -j ACCEPT",
        "-A AB.2 -s 192.0.2.2/32 -p tcp -j DROP",
        "-A AB.2 -s 2001:db8::1/128 -j DROP",
        "-A AB.2 -d 192.0.2.2/32 -j DROP",
    ] {
        let st = read(&[head.clone(), other.into()]);
        assert_eq!((st.bans.len(), st.orphans), (1, 1), "{other}");
    }
    // A bare ban inherits the run's end time: one of another bucket's end is misplaced.
    let st = read(&[
        rule("AB.3", "192.0.2.1/32", 70),
        bare("AB.3", "192.0.2.2/32"),
    ]);
    assert_eq!((st.bans.len(), st.misplaced), (2, 2));
}

#[test]
fn a_hand_deleted_head_of_a_later_run_lends_its_bans_the_run_before_and_the_check_sees_it() {
    let bans = [
        ban("192.0.2.1/32", 70, "a"),
        ban("192.0.2.2/32", 70, "a"),
        ban("192.0.2.3/32", 71, "b"),
        ban("192.0.2.4/32", 71, "b"),
    ];
    let next = Mirror::adopt(bans.iter().cloned(), 0);
    let w = whole("AB", &next, Family::V4, true, &[]);
    let head_b = render::ban_rule("AB.2", &bans[2]);
    assert!(w.before.contains(&head_b), "{:?}", w.before);
    let damaged: Vec<String> = w.before.into_iter().filter(|l| *l != head_b).collect();
    let st = read(&damaged);
    let mut got = st.bans.clone();
    got.sort_by_key(|b| b.net);
    // Not orphans: the run before lends its end and reason (same bucket, so not misplaced).
    assert_eq!(
        got,
        [
            bans[0].clone(),
            bans[1].clone(),
            ban("192.0.2.4/32", 70, "a"),
        ]
    );
    assert_eq!((st.orphans, st.misplaced), (0, 0));
    // What a check compares (`content_ok`) differs from memory: the chain is rewritten.
    assert!(!got.iter().eq(next.family(Family::V4)));
}

#[test]
fn only_a_commented_plain_ban_starts_a_run() {
    let net: ipnet::IpNet = "192.0.2.1/32".parse().unwrap();
    let entry = |rule: Rule| crate::ban::RuleEntry {
        rule,
        until: 70,
        reason: "r".into(),
    };
    let typed = render::typed_rule(
        "AB.2",
        &entry(Rule::new().src(net).protocol(Protocol::Tcp).dport(22)),
    );
    let logged = render::typed_rule(
        "AB.2",
        &entry(Rule::new().src(net).action(Action::LogAndDrop)),
    );
    let reject = render::typed_rule("AB.2", &entry(Rule::new().src(net).action(Action::Reject)));
    let bare = render::bare_ban_rule("AB.2", &"192.0.2.2/32".parse().unwrap());
    for head in [&typed[0], &logged[0], &reject[0]] {
        let st = read(&[head.clone(), bare.clone()]);
        assert!(st.bans.is_empty(), "{head}: {:?}", st.bans);
    }
}
