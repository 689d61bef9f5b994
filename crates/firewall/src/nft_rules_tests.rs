//! Typed rules on the nftables backend against the recording fake: adopted at open, appended,
//! rewritten on removal, replacement and expiry, repaired alone when only they differ. Real
//! packets: `tests/it/firewall_rules.rs`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ban::unix_secs;
use crate::tests_support::{Fake, open};
use crate::{Action, Backend, Batch, FirewallOptions, Protocol, Repair, Rule};

const LIST: &str = "nft list table inet ab";
const TERSE: &str = "nft -t list ruleset";

fn opts() -> FirewallOptions {
    FirewallOptions::new(Backend::Nftables, "AB").maxelem(10)
}

fn ike() -> Rule {
    Rule::new()
        .dst(Ipv4Addr::new(10, 10, 10, 10))
        .protocol(Protocol::Udp)
        .sport(4500)
}

/// An intact table with two typed rules ending at `until` (one log-and-drop: two lines) and,
/// when `expired`, a third line that ended at 5.
fn table(until: u64, expired: bool) -> String {
    let old = if expired {
        "\t\tip saddr 192.0.2.9 meta l4proto icmp counter packets 0 bytes 0 drop comment \"until=5 old\"\n"
    } else {
        ""
    };
    format!(
        "table inet ab {{
\tset v4_32 {{
\t\ttype ipv4_addr
\t\tsize 10
\t\tflags timeout
\t}}

\tset v6_128 {{
\t\ttype ipv6_addr
\t\tsize 10
\t\tflags timeout
\t}}

\tchain input {{
\t\ttype filter hook input priority filter - 10; policy accept;
\t\tip saddr @v4_32 counter packets 0 bytes 0 drop
\t\tip6 saddr @v6_128 counter packets 0 bytes 0 drop
\t\tjump rules
\t}}

\tchain rules {{
\t\tip daddr 10.10.10.10 udp sport 4500 counter packets 3 bytes 84 drop comment \"until={until} ike flood\"
\t\tip saddr 10.200.0.3 tcp dport 7000 limit rate 10/second burst 20 packets counter packets 0 bytes 0 log prefix \"AB \" comment \"until={until} scan\"
\t\tip saddr 10.200.0.3 tcp dport 7000 counter packets 0 bytes 0 drop comment \"until={until} scan\"
{old}\t}}
}}
"
    )
}

fn scan() -> Rule {
    Rule::new()
        .src(Ipv4Addr::new(10, 200, 0, 3))
        .protocol(Protocol::Tcp)
        .dport(7000)
}

#[test]
fn open_adopts_typed_rules_and_drops_expired_lines() {
    let fake = Arc::new(Fake::default());
    fake.set(LIST, &table(2000, true));
    let fw = open(opts(), &fake, 1000);
    let c = fake.take();
    assert_eq!(c.len(), 2, "{c:?}");
    let script = c[1].1.as_deref().unwrap();
    assert!(
        script.starts_with("flush chain inet ab rules\n"),
        "{script}"
    );
    assert_eq!(script.lines().count(), 4, "{script}");
    assert!(!script.contains("old"), "{script}");
    assert_eq!(fw.len(), 2);
    fake.set(TERSE, &table(2000, false));
    let rules = fw.list_rules().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].rule, ike());
    assert_eq!(rules[1].rule, scan().action(Action::LogAndDrop));
    assert_eq!((rules[1].until, rules[1].reason.as_str()), (2000, "scan"));

    // An intact table is left alone.
    fake.set(LIST, &table(2000, false));
    drop(fw);
    fake.take();
    let _again = open(opts(), &fake, 1000);
    assert_eq!(fake.take().len(), 1, "only the listing");
}

#[test]
fn additions_append_and_removals_rewrite_the_chain() {
    let fake = Arc::new(Fake::default());
    fake.set(LIST, &table(u64::MAX / 2, false));
    let fw = open(opts(), &fake, 1000);
    fake.take();
    let sig = Rule::new()
        .dst(Ipv4Addr::new(10, 10, 10, 11))
        .protocol(Protocol::Tcp)
        .dport(80);
    let mut b = Batch::new();
    b.block(sig, Duration::from_secs(60), "sig");
    assert!(fw.commit(b).unwrap().refused.is_empty());
    let c = fake.take();
    let script = c[0].1.as_deref().unwrap();
    assert_eq!(script.lines().count(), 1, "{script}");
    assert!(
        script.starts_with("add rule inet ab rules ip daddr 10.10.10.11/32 tcp dport 80 counter drop comment \"until="),
        "{script}"
    );
    assert_eq!(fw.len(), 3);

    // Another action for the same matches replaces the entry; unblock removes by matches.
    let mut b = Batch::new();
    b.block(ike().action(Action::Reject), Duration::from_secs(60), "r");
    b.unblock(scan());
    let done = fw.commit(b).unwrap();
    assert!(done.refused.is_empty(), "{:?}", done.refused);
    let script = fake.take()[0].1.clone().unwrap();
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(lines[0], "flush chain inet ab rules");
    assert_eq!(lines.len(), 3, "{script}");
    assert!(
        lines[1].contains("udp sport 4500 counter reject with icmp port-unreachable"),
        "{script}"
    );
    assert_eq!(fw.len(), 2);
}

#[test]
fn expiry_rewrites_the_chain_without_the_ended_rules() {
    let fake = Arc::new(Fake::default());
    fake.set(LIST, &table(2000, false));
    let fw = open(opts(), &fake, 1000);
    let mut b = Batch::new();
    b.block(ike().sport(4501), Duration::from_secs(u64::MAX / 4), "long");
    let _ = fw.commit(b).unwrap();
    fake.take();
    let expired = fw
        .expire_due(UNIX_EPOCH + Duration::from_secs(2000))
        .unwrap();
    assert_eq!(expired.rules.len(), 2);
    let c = fake.take();
    assert_eq!(c.len(), 1);
    let script = c[0].1.as_deref().unwrap();
    assert!(script.starts_with("flush chain inet ab rules\nadd rule inet ab rules ip daddr 10.10.10.10/32 udp sport 4501 "), "{script}");
    assert_eq!(script.lines().count(), 2);
}

#[test]
fn repair_rewrites_typed_rules_alone_or_rebuilds_the_table_with_them() {
    let fake = Arc::new(Fake::default());
    let until = unix_secs(SystemTime::now()) + 3600;
    fake.set(LIST, &table(until, false));
    let fw = open(opts(), &fake, until - 3600);
    fake.take();
    fake.set(TERSE, &table(until, false));
    assert!(fw.check_and_repair().unwrap().is_empty());

    // `nft flush chain inet ab rules`: only the typed rules come back.
    let flushed = table(until, false)
        .lines()
        .filter(|l| !l.contains("comment"))
        .collect::<Vec<_>>()
        .join("\n");
    fake.set(TERSE, &flushed);
    fake.take();
    let r = fw.check_and_repair().unwrap();
    assert!(
        matches!(&r[..], [Repair::RulesRestored { rules: 2, .. }]),
        "{r:?}"
    );
    assert!(
        r[0].to_string()
            .contains("holds 0 typed rules and 0 other lines, 2 expected"),
        "{}",
        r[0]
    );
    let script = fake.take()[1].1.clone().unwrap();
    assert!(
        script.starts_with("flush chain inet ab rules\n"),
        "{script}"
    );
    assert_eq!(script.lines().count(), 4);

    // The jump gone: the whole table is rebuilt, typed rules included.
    fake.set(TERSE, &table(until, false).replace("\t\tjump rules\n", ""));
    let r = fw.check_and_repair().unwrap();
    assert!(
        matches!(&r[..], [Repair::TableRestored { entries: 2, .. }]),
        "{r:?}"
    );
    assert!(
        r[0].to_string()
            .contains("chain input has 0 jumps to rules"),
        "{}",
        r[0]
    );
    let script = fake.take()[1].1.clone().unwrap();
    assert!(
        script.contains("add rule inet ab input jump rules\n"),
        "{script}"
    );
    assert!(script.contains("log prefix \"AB \""), "{script}");
}

#[test]
fn rule_counters_read_the_drop_lines_of_the_rules_chain() {
    let fake = Arc::new(Fake::default());
    fake.set(LIST, &table(2000, false));
    let fw = open(opts(), &fake, 1000);
    let v6 = "\t\tip6 daddr fd00::1 udp sport 123 counter packets 9000 bytes 540000 drop comment \"until=2000 ntp\"\n";
    let listed = table(2000, false).replacen("\t}\n}", &format!("{v6}\t}}\n}}"), 1);
    fake.set(TERSE, &listed);
    let got = fw.rule_counters().unwrap();
    let seen: Vec<(Rule, &str, u64, u64)> = got
        .iter()
        .map(|c| (c.rule, c.reason.as_str(), c.packets, c.bytes))
        .collect();
    let ntp = Rule::new()
        .dst("fd00::1".parse::<std::net::Ipv6Addr>().unwrap())
        .protocol(Protocol::Udp)
        .sport(123);
    assert_eq!(
        seen,
        vec![
            (ike(), "ike flood", 3, 84),
            (scan(), "scan", 0, 0),
            (ntp, "ntp", 9000, 540_000)
        ]
    );
    // No table: nothing counted.
    fake.fail(TERSE, "Error: No such file or directory\n");
    assert!(fw.rule_counters().unwrap().is_empty());
}
