//! One of our rules as iptables words (pure), both ways: [`entry_lines`] renders a ban or a
//! typed rule as `-A` lines for `iptables-restore`, [`parse_line`] reads one `-A` line of
//! `iptables-save` back. Both agree on one canonical form; a line with anything else in it is
//! not ours (kept as foreign). Our comment is `autoblock until=SECS rule=REASON`, the reason
//! last and verbatim; [`parse_bare_ban`] reads the uncommented bans of a bucket chain.

use ipnet::IpNet;

use super::ban::Family;
use super::rule::{Action, Ports, Protocol, Rule, TcpFlags};

/// The log rate of [`Action::LogAndDrop`], as `iptables-save` prints it.
const LOG_LIMIT: &str = "10/sec";
const LOG_BURST: &str = "20";

/// What one line does; a [`Action::LogAndDrop`] entry is a `Log` line then a `Drop` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Drop,
    Reject,
    Log,
}

/// One of our lines, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// The matches (action left at Drop; see `target`).
    pub(crate) rule: Rule,
    pub(crate) target: Target,
    pub(crate) until: u64,
    pub(crate) reason: String,
}

/// `"..."` for iptables-restore: `\` and `"` escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn reject_with(family: Family) -> &'static str {
    match family {
        Family::V4 => "icmp-port-unreachable",
        Family::V6 => "icmp6-port-unreachable",
    }
}

/// The `-A` lines for one entry (`rule` with any action) in `chain`.
pub(crate) fn entry_lines(chain: &str, rule: &Rule, until: u64, reason: &str) -> Vec<String> {
    let family = rule.family().unwrap_or(Family::V4);
    let mut head = format!("-A {chain}");
    if let Some(n) = rule.src {
        head += &format!(" -s {n}");
    }
    if let Some(n) = rule.dst {
        head += &format!(" -d {n}");
    }
    if let Some(p) = rule.protocol {
        let name = p.name(family);
        head += &format!(" -p {name}");
        if rule.sport.is_some() || rule.dport.is_some() || rule.tcp_flags.is_some() {
            head += &format!(" -m {name}");
        }
    }
    if let Some(p) = rule.sport {
        head += &format!(" --sport {p}");
    }
    if let Some(p) = rule.dport {
        head += &format!(" --dport {p}");
    }
    if let Some(t) = rule.tcp_flags {
        head += &format!(" --tcp-flags {t}");
    }
    head += &format!(
        " -m comment --comment {}",
        quoted(&format!("autoblock until={until} rule={reason}"))
    );
    match rule.action {
        Action::Drop => vec![format!("{head} -j DROP")],
        Action::Reject => vec![format!(
            "{head} -j REJECT --reject-with {}",
            reject_with(family)
        )],
        Action::LogAndDrop => vec![
            format!(
                "{head} -m limit --limit {LOG_LIMIT} --limit-burst {LOG_BURST} -j LOG --log-prefix {}",
                quoted(&format!("{chain} "))
            ),
            format!("{head} -j DROP"),
        ],
    }
}

/// Parses our comment `autoblock until=SECS rule=REASON` (the reason is the rest, verbatim).
pub(crate) fn parse_comment(comment: &str) -> Option<(u64, String)> {
    let rest = comment.strip_prefix("autoblock")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let (head, reason) = match rest.find(" rule=") {
        Some(i) => (&rest[..i], &rest[i + " rule=".len()..]),
        None => (rest, "-"),
    };
    let mut until = None;
    for word in head.split_whitespace() {
        match word.split_once('=') {
            Some(("until", v)) => until = Some(v.parse().ok()?),
            _ => return None,
        }
    }
    Some((until?, reason.to_string()))
}

pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        .filter(|n| n.trunc() == *n)
}

/// A net of the table's family (an IPv4 net in an `ip6tables-save` table is not ours: a
/// rebuild would write it into the other family's table).
fn net_of(s: &str, family: Family) -> Option<IpNet> {
    parse_net(s).filter(|n| Family::of(n) == family)
}

fn parse_ports(s: &str) -> Option<Ports> {
    let (a, b) = s.split_once(':').unwrap_or((s, s));
    Some(Ports {
        first: a.parse().ok()?,
        last: b.parse().ok()?,
    })
}

fn parse_protocol(s: &str, family: Family) -> Option<Protocol> {
    match (s, family) {
        ("tcp", _) => Some(Protocol::Tcp),
        ("udp", _) => Some(Protocol::Udp),
        ("icmp", Family::V4) | ("ipv6-icmp" | "icmpv6", Family::V6) => Some(Protocol::Icmp),
        _ => None,
    }
}

/// Reads the words after `-A CHAIN` as a bare ban, `-s NET -j DROP`: in a bucket chain of ours,
/// a ban that takes its end time and reason from the commented ban before it.
pub(crate) fn parse_bare_ban(words: &[String], family: Family) -> Option<IpNet> {
    match words {
        [s, net, j, drop] if s == "-s" && j == "-j" && drop == "DROP" => net_of(net, family),
        _ => None,
    }
}

/// Reads the words after `-A CHAIN` as one of our lines, or `None` when anything in them is
/// not of our canonical form.
pub(crate) fn parse_line(words: &[String], family: Family) -> Option<Line> {
    let mut rule = Rule::new();
    let (mut comment, mut target, mut limit, mut burst) = (None, None, None, None);
    let mut it = words.iter().map(String::as_str);
    while let Some(w) = it.next() {
        match w {
            "-s" | "--source" => rule.src = Some(net_of(it.next()?, family)?),
            "-d" | "--destination" => rule.dst = Some(net_of(it.next()?, family)?),
            "-p" | "--protocol" => rule.protocol = Some(parse_protocol(it.next()?, family)?),
            "-m" | "--match" => match it.next()? {
                "comment" | "limit" => {}
                m if rule.protocol.is_some_and(|p| p.name(family) == m) => {}
                _ => return None,
            },
            "--sport" | "--source-port" => rule.sport = Some(parse_ports(it.next()?)?),
            "--dport" | "--destination-port" => rule.dport = Some(parse_ports(it.next()?)?),
            "--tcp-flags" => {
                let mask = TcpFlags::parse_names(it.next()?)?;
                let set = TcpFlags::parse_names(it.next()?)?;
                rule.tcp_flags = Some(TcpFlags::new(mask, set));
            }
            "--comment" => comment = Some(parse_comment(it.next()?)?),
            "--limit" => limit = Some(it.next()?),
            "--limit-burst" => burst = Some(it.next()?),
            "-j" | "--jump" => {
                target = Some(match it.next()? {
                    "DROP" => Target::Drop,
                    "REJECT" => Target::Reject,
                    "LOG" => Target::Log,
                    _ => return None,
                })
            }
            "--reject-with" if it.next()? == reject_with(family) => {}
            "--log-prefix" => {
                it.next()?;
            }
            _ => return None,
        }
    }
    let target = target?;
    let limit_ok = match target {
        Target::Log => limit == Some(LOG_LIMIT) && burst == Some(LOG_BURST),
        _ => limit.is_none() && burst.is_none(),
    };
    if !limit_ok {
        return None;
    }
    let (until, reason) = comment?;
    Some(Line {
        rule,
        target,
        until,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::tokenize;
    use std::net::Ipv4Addr;

    fn round_trip(rule: Rule, family: Family) -> Vec<Line> {
        entry_lines("AB", &rule, 99, "abuse feed #42 \\ 'x'")
            .iter()
            .map(|l| {
                let words = tokenize(l.strip_prefix("-A AB ").unwrap(), true);
                parse_line(&words, family).unwrap_or_else(|| panic!("{l}"))
            })
            .collect()
    }

    #[test]
    fn plain_bans_keep_their_historic_form() {
        let r = Rule::from("203.0.113.7/32".parse::<IpNet>().unwrap());
        assert_eq!(
            entry_lines("AUTOBLOCK", &r, 1795566000, "syn-flood"),
            [
                "-A AUTOBLOCK -s 203.0.113.7/32 -m comment --comment \"autoblock until=1795566000 rule=syn-flood\" -j DROP"
            ]
        );
    }

    #[test]
    fn typed_rules_render_as_iptables_save_prints_them() {
        let sig = Rule::new()
            .dst(Ipv4Addr::new(10, 10, 10, 10))
            .protocol(Protocol::Udp)
            .sport(4500);
        assert_eq!(
            entry_lines("AB", &sig, 5, "flood"),
            [
                "-A AB -d 10.10.10.10/32 -p udp -m udp --sport 4500 -m comment --comment \"autoblock until=5 rule=flood\" -j DROP"
            ]
        );
        let log = Rule::new()
            .src("fd00::/64".parse::<IpNet>().unwrap())
            .protocol(Protocol::Tcp)
            .dport(1000..=2000)
            .tcp_flags(TcpFlags::syn())
            .action(Action::LogAndDrop);
        let lines = entry_lines("AB", &log, 5, "scan");
        assert_eq!(
            lines[0],
            "-A AB -s fd00::/64 -p tcp -m tcp --dport 1000:2000 --tcp-flags FIN,SYN,RST,ACK SYN -m comment --comment \"autoblock until=5 rule=scan\" -m limit --limit 10/sec --limit-burst 20 -j LOG --log-prefix \"AB \""
        );
        assert!(lines[1].ends_with("rule=scan\" -j DROP"));
        let rej = entry_lines("AB", &log.action(Action::Reject), 5, "r");
        assert!(rej[0].ends_with("-j REJECT --reject-with icmp6-port-unreachable"));
    }

    #[test]
    fn every_shape_reads_back() {
        let icmp = Rule::new()
            .src(Ipv4Addr::new(192, 0, 2, 1))
            .protocol(Protocol::Icmp);
        let line = &round_trip(icmp.action(Action::Reject), Family::V4)[0];
        assert_eq!((line.rule, line.target), (icmp, Target::Reject));
        assert_eq!(
            (line.until, line.reason.as_str()),
            (99, "abuse feed #42 \\ 'x'")
        );
        let v6 = Rule::new()
            .dst("2001:db8::1".parse::<std::net::IpAddr>().unwrap())
            .protocol(Protocol::Icmp);
        assert_eq!(round_trip(v6, Family::V6)[0].rule, v6);
        let tcp = Rule::new()
            .dst(Ipv4Addr::new(10, 0, 0, 1))
            .protocol(Protocol::Tcp)
            .sport(1..=1024)
            .dport(80)
            .tcp_flags(TcpFlags::new(TcpFlags::ALL, 0))
            .action(Action::LogAndDrop);
        let lines = round_trip(tcp, Family::V4);
        assert_eq!(
            lines.iter().map(|l| l.target).collect::<Vec<_>>(),
            [Target::Log, Target::Drop]
        );
        assert!(lines.iter().all(|l| l.rule == tcp.key()));
    }

    #[test]
    fn anything_else_is_not_ours() {
        for line in [
            "-s 192.0.2.1/32 -m comment --comment \"someone else's note\" -j DROP",
            "-s 192.0.2.1/32 -j DROP",
            "-s 192.0.2.1/32 -i eth0 -m comment --comment \"autoblock until=5 rule=x\" -j DROP",
            "! -s 192.0.2.1/32 -m comment --comment \"autoblock until=5 rule=x\" -j DROP",
            "-s 192.0.2.1/32 -m comment --comment \"autoblock until=5 rule=x\" -j ACCEPT",
            "-s 192.0.2.1/32 -m comment --comment \"autoblock until=5 rule=x\" -j REJECT --reject-with tcp-reset",
            "-s 192.0.2.1/32 -m comment --comment \"autoblock until=5 rule=x\" -j LOG",
            "-s 192.0.2.1/32 -m comment --comment \"autoblock until=5 rule=x\" -m limit --limit 10/sec --limit-burst 20 -j DROP",
            "-s 10.0.0.1/8 -m comment --comment \"autoblock until=5 rule=x\" -j DROP",
            "-p icmp -s 192.0.2.1/32 -m icmp --icmp-type 8 -m comment --comment \"autoblock until=5 rule=x\" -j DROP",
        ] {
            assert_eq!(
                parse_line(&tokenize(line, true), Family::V4),
                None,
                "{line}"
            );
        }
    }

    #[test]
    fn comments() {
        assert_eq!(
            parse_comment("autoblock until=7 rule=a b  c "),
            Some((7, "a b  c ".into()))
        );
        assert_eq!(
            parse_comment("autoblock until=7 rule=x until=9"),
            Some((7, "x until=9".into()))
        );
        assert_eq!(parse_comment("autoblock\tuntil=7"), Some((7, "-".into())));
        assert_eq!(parse_comment("autoblock rule=a"), None);
        assert_eq!(parse_comment("autoblock until=x rule=a"), None);
        assert_eq!(parse_comment("autoblockuntil=7 rule=a"), None);
        assert_eq!(parse_comment("other until=7"), None);
    }
}
