//! Typed rules in nft words: what we write, and what `nft` 1.0.6 lists back (the listed lines
//! below are copied from a real kernel).

use super::*;
use crate::parse::classify;
use std::net::{IpAddr, Ipv4Addr};

fn entry(rule: Rule, reason: &str) -> RuleEntry {
    RuleEntry {
        rule,
        until: 1_795_566_000,
        reason: reason.into(),
    }
}

fn ike() -> Rule {
    Rule::new()
        .dst(Ipv4Addr::new(10, 10, 10, 10))
        .protocol(Protocol::Udp)
        .sport(4500)
}

fn scan() -> Rule {
    Rule::new()
        .src("fd00:200::3".parse::<IpAddr>().unwrap())
        .protocol(Protocol::Tcp)
        .dport(7000..=7001)
        .tcp_flags(TcpFlags::syn())
}

#[test]
fn entries_render_as_nft_rule_lines() {
    assert_eq!(
        rule_lines("AB ", &entry(ike(), "ike flood")),
        [
            "ip daddr 10.10.10.10/32 udp sport 4500 counter drop comment \"until=1795566000 ike flood\""
        ]
    );
    let log = rule_lines("AB ", &entry(scan().action(Action::LogAndDrop), "scan"));
    assert_eq!(
        log,
        [
            "ip6 saddr fd00:200::3/128 tcp dport 7000-7001 tcp flags & (fin|syn|rst|ack) == syn limit rate 10/second burst 20 packets counter log prefix \"AB \" comment \"until=1795566000 scan\"",
            "ip6 saddr fd00:200::3/128 tcp dport 7000-7001 tcp flags & (fin|syn|rst|ack) == syn counter drop comment \"until=1795566000 scan\"",
        ]
    );
    let icmp = Rule::new()
        .src(Ipv4Addr::new(192, 0, 2, 1))
        .protocol(Protocol::Icmp)
        .action(Action::Reject);
    assert_eq!(
        rule_lines("AB ", &entry(icmp, "r")),
        [
            "ip saddr 192.0.2.1/32 meta l4proto icmp counter reject with icmp port-unreachable comment \"until=1795566000 r\""
        ]
    );
    let none = Rule::new()
        .dst(Ipv4Addr::new(10, 0, 0, 1))
        .protocol(Protocol::Tcp)
        .tcp_flags(TcpFlags::new(TcpFlags::ALL, 0));
    assert!(
        rule_lines("AB ", &entry(none, "n"))[0]
            .contains("tcp flags & (fin|syn|rst|psh|ack|urg) == 0x0 counter drop")
    );
}

#[test]
fn what_we_write_reads_back() {
    let shapes = [
        ike(),
        scan(),
        scan().action(Action::Reject),
        scan().action(Action::LogAndDrop),
        Rule::new()
            .src(Ipv4Addr::new(192, 0, 2, 1))
            .dst("192.0.2.0/24".parse::<ipnet::IpNet>().unwrap())
            .protocol(Protocol::Tcp)
            .sport(1..=1024)
            .dport(80)
            .tcp_flags(TcpFlags::new(TcpFlags::ALL, 0)),
        Rule::new()
            .dst("2001:db8::1".parse::<IpAddr>().unwrap())
            .protocol(Protocol::Icmp)
            .action(Action::Reject),
        Rule::new()
            .src(Ipv4Addr::new(192, 0, 2, 1))
            .protocol(Protocol::Udp),
        Rule::new()
            .src(Ipv4Addr::new(192, 0, 2, 1))
            .action(Action::Reject),
    ];
    for rule in shapes {
        let e = entry(rule, "a, b } { é \\ 'x' # handle 5");
        let lines: Vec<Line> = rule_lines("AB ", &e)
            .iter()
            .map(|l| parse_line(l).unwrap_or_else(|| panic!("{l}")))
            .collect();
        let (bans, rules, orphans) = classify(lines);
        assert_eq!((bans.len(), orphans), (0, 0), "{rule}");
        assert_eq!(rules, [e], "{rule}");
    }
}

/// `nft list chain inet t rules` after adding the lines of `entries_render_as_nft_rule_lines`
/// and the odd flag shapes.
const LISTED: [&str; 9] = [
    "ip daddr 10.10.10.10 udp sport 4500 counter packets 3 bytes 84 drop comment \"until=5 ike flood\"",
    "ip saddr 10.200.0.3 tcp dport 7000 tcp flags syn / fin,syn,rst,ack counter packets 0 bytes 0 reject with icmp port-unreachable comment \"until=5 syn\"",
    "ip6 saddr fd00:200::3 tcp dport 7000-7001 limit rate 10/second burst 20 packets counter packets 0 bytes 0 log prefix \"ABTEST \" comment \"until=5 l\"",
    "ip6 saddr fd00:200::3 tcp dport 7000-7001 counter packets 0 bytes 0 drop comment \"until=5 l\"",
    "ip6 daddr 2001:db8::1 meta l4proto ipv6-icmp counter packets 0 bytes 0 reject with icmpv6 port-unreachable comment \"until=5 icmp6\"",
    "ip saddr 192.0.2.1 ip daddr 192.0.2.9 tcp sport 1-1024 tcp dport 80 tcp flags ! fin,syn,rst,psh,ack,urg counter packets 0 bytes 0 drop comment \"until=5 all\"",
    "ip6 saddr fd00::1 tcp flags & fin == fin counter packets 0 bytes 0 reject with icmpv6 port-unreachable comment \"until=5 one\"",
    "ip6 saddr fd00::1 tcp flags syn,ack / syn,ack counter packets 0 bytes 0 drop comment \"until=5 both\"",
    "ip saddr 192.0.2.1 meta l4proto udp counter packets 0 bytes 0 drop comment \"until=5 x \\ {a, b} é ' $(x) # y\"",
];

#[test]
fn every_listed_form_reads_back() {
    let lines: Vec<Line> = LISTED
        .iter()
        .map(|l| parse_line(l).unwrap_or_else(|| panic!("{l}")))
        .collect();
    assert_eq!(lines[0].rule, ike());
    assert_eq!((lines[0].until, lines[0].reason.as_str()), (5, "ike flood"));
    assert_eq!(lines[1].rule.tcp_flags, Some(TcpFlags::syn()));
    assert_eq!(lines[1].target, Target::Reject);
    assert_eq!(
        lines[5].rule.tcp_flags,
        Some(TcpFlags::new(TcpFlags::ALL, 0))
    );
    assert_eq!(lines[5].rule.sport, Some(Ports::from(1..=1024)));
    assert_eq!(
        lines[6].rule.tcp_flags,
        Some(TcpFlags::new(TcpFlags::FIN, TcpFlags::FIN))
    );
    let both = TcpFlags::SYN | TcpFlags::ACK;
    assert_eq!(lines[7].rule.tcp_flags, Some(TcpFlags::new(both, both)));
    assert_eq!(lines[8].reason, "x \\ {a, b} é ' $(x) # y");
    let (bans, rules, orphans) = classify(lines);
    assert_eq!((bans.len(), rules.len(), orphans), (0, 8, 0));
    assert!(
        rules
            .iter()
            .any(|r| r.rule.action == Action::LogAndDrop && r.reason == "l")
    );
}

#[test]
fn anything_else_is_not_ours() {
    for line in [
        "ip saddr 192.0.2.1 counter packets 0 bytes 0 accept comment \"until=5 x\"",
        "ip saddr 192.0.2.1 drop comment \"until=5 x\"",
        "ip saddr 192.0.2.1 counter drop",
        "ip saddr 192.0.2.1 counter drop comment \"autoblock until=5 rule=x\"",
        "ip saddr 192.0.2.1 counter drop comment \"until=5\"",
        "ip saddr 192.0.2.1 iifname \"eth0\" counter drop comment \"until=5 x\"",
        "ip saddr fd00::1 counter drop comment \"until=5 x\"",
        "ip saddr 192.0.2.1 ip6 daddr fd00::1 counter drop comment \"until=5 x\"",
        "ip saddr 192.0.2.1 counter reject with icmpv6 port-unreachable comment \"until=5 x\"",
        "ip saddr 192.0.2.1 counter log prefix \"x\" comment \"until=5 x\"",
        "ip saddr 192.0.2.1 limit rate 10/second burst 20 packets counter drop comment \"until=5 x\"",
        "ip saddr 192.0.2.1 udp sport 5 tcp dport 6 counter drop comment \"until=5 x\"",
        "ip saddr 192.0.2.1 tcp flags syn counter drop comment \"until=5 x\"",
        "ip saddr 192.0.2.1 counter drop drop comment \"until=5 x\"",
        "tcp dport 22 counter drop comment \"until=5 x\"",
        "jump rules",
    ] {
        assert!(parse_line(line).is_none(), "{line}");
    }
}

#[test]
fn comments_hold_128_bytes() {
    assert_eq!(comment(1_795_566_000, "a b"), "until=1795566000 a b");
    assert_eq!(comment_problem(1_795_566_000, &"x".repeat(111)), None);
    let why = comment_problem(1_795_566_000, &"x".repeat(112)).unwrap();
    assert!(why.contains("at most 111"), "{why}");
    assert_eq!(parse_comment("until=5 a  b "), Some((5, "a  b ".into())));
    assert_eq!(parse_comment("until=-5 a"), None);
    assert_eq!(parse_comment("until=5 "), None);
}
