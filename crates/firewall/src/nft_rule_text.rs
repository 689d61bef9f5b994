//! Typed rules on nftables (pure), both ways: [`rule_lines`] renders a [`RuleEntry`] as the
//! rule line(s) of our table's `rules` chain, [`parse_line`] reads one listed line back. The
//! comment carries the expiry and the reason, `until=SECS REASON` (nft keeps at most 128 bytes
//! of comment, so the iptables form `autoblock until=SECS rule=REASON` would not leave room
//! for a reason; the table is ours alone, so the `autoblock` tag adds nothing).
//!
//! What `nft` 1.0.6 lists is not always what it was given: `meta l4proto tcp tcp sport 4500`
//! lists as `tcp sport 4500`, `tcp flags & (fin|syn|rst|ack) == syn` as `tcp flags syn /
//! fin,syn,rst,ack`, a zero set as `tcp flags ! fin,syn`, a one-flag mask as `tcp flags & fin
//! == fin`; counters print their values. The parser reads every one of those forms (measured
//! on a real kernel, `tests/it/firewall_rules.rs`); anything else in the chain is not ours to keep.

use super::ban::{Family, RuleEntry};
use super::nft_parse::tokenize_nft;
use super::rule::{Action, Ports, Protocol, Rule, TcpFlags};
use super::rule_text::{Line, Target, parse_net};

/// Our regular chain for typed rules, jumped to from every base chain after the set rules.
pub(crate) const RULES_CHAIN: &str = "rules";

/// The most bytes `nft` accepts in a comment.
const COMMENT_MAX: usize = 128;

/// The log rate of [`Action::LogAndDrop`], as `nft` lists it (the same as with iptables).
const LOG_LIMIT: &str = "limit rate 10/second burst 20 packets";

/// nft's names for [`TcpFlags`] bits, in bit order.
const FLAG_NAMES: [(u8, &str); 6] = [
    (TcpFlags::FIN, "fin"),
    (TcpFlags::SYN, "syn"),
    (TcpFlags::RST, "rst"),
    (TcpFlags::PSH, "psh"),
    (TcpFlags::ACK, "ack"),
    (TcpFlags::URG, "urg"),
];

/// `until=SECS REASON`.
pub(crate) fn comment(until: u64, reason: &str) -> String {
    format!("until={until} {reason}")
}

/// Why an entry ending at `until` with `reason` cannot be stored in a rule comment.
pub(crate) fn comment_problem(until: u64, reason: &str) -> Option<String> {
    let len = comment(until, reason).len();
    (len > COMMENT_MAX).then(|| {
        format!(
            "the reason is {} bytes long; an nftables rule comment holds {COMMENT_MAX} bytes with `until=SECS ` in front, so at most {} here",
            reason.len(),
            COMMENT_MAX - (len - reason.len())
        )
    })
}

fn parse_comment(text: &str) -> Option<(u64, String)> {
    let (until, reason) = text.strip_prefix("until=")?.split_once(' ')?;
    if reason.is_empty() || !until.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((until.parse().ok()?, reason.to_string()))
}

fn proto_word(family: Family) -> &'static str {
    match family {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

fn l4_name(p: Protocol, family: Family) -> &'static str {
    match (p, family) {
        (Protocol::Tcp, _) => "tcp",
        (Protocol::Udp, _) => "udp",
        (Protocol::Icmp, Family::V4) => "icmp",
        (Protocol::Icmp, Family::V6) => "ipv6-icmp",
    }
}

fn ports_text(p: Ports) -> String {
    if p.first == p.last {
        p.first.to_string()
    } else {
        format!("{}-{}", p.first, p.last)
    }
}

fn flag_list(bits: u8, sep: &str) -> String {
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "0x0".to_string()
    } else {
        names.join(sep)
    }
}

fn reject_text(family: Family) -> &'static str {
    match family {
        Family::V4 => "reject with icmp port-unreachable",
        Family::V6 => "reject with icmpv6 port-unreachable",
    }
}

/// The matches of `rule` in nft words (`ip daddr 10.10.10.10/32 udp sport 4500`).
fn matches_text(rule: &Rule, family: Family) -> String {
    let ip = proto_word(family);
    let mut words: Vec<String> = Vec::new();
    if let Some(n) = rule.src {
        words.push(format!("{ip} saddr {n}"));
    }
    if let Some(n) = rule.dst {
        words.push(format!("{ip} daddr {n}"));
    }
    if let Some(p) = rule.protocol {
        let l4 = l4_name(p, family);
        if rule.sport.is_none() && rule.dport.is_none() && rule.tcp_flags.is_none() {
            words.push(format!("meta l4proto {l4}"));
        }
        if let Some(ports) = rule.sport {
            words.push(format!("{l4} sport {}", ports_text(ports)));
        }
        if let Some(ports) = rule.dport {
            words.push(format!("{l4} dport {}", ports_text(ports)));
        }
    }
    if let Some(f) = rule.tcp_flags {
        words.push(format!(
            "tcp flags & ({}) == {}",
            flag_list(f.mask, "|"),
            flag_list(f.set, "|")
        ));
    }
    words.join(" ")
}

/// The rule line(s) of one entry for our `rules` chain (two for [`Action::LogAndDrop`]: a
/// rate-limited log line with `log_prefix`, then the drop line). Every line counts packets.
pub(crate) fn rule_lines(log_prefix: &str, e: &RuleEntry) -> Vec<String> {
    let family = e.rule.family().unwrap_or(Family::V4);
    let head = matches_text(&e.rule, family);
    let tail = format!("comment \"{}\"", comment(e.until, &e.reason));
    match e.rule.action {
        Action::Drop => vec![format!("{head} counter drop {tail}")],
        Action::Reject => vec![format!("{head} counter {} {tail}", reject_text(family))],
        Action::LogAndDrop => vec![
            format!("{head} {LOG_LIMIT} counter log prefix \"{log_prefix}\" {tail}"),
            format!("{head} counter drop {tail}"),
        ],
    }
}

/// Words that start a new part of a listed rule (they end a `tcp flags` expression).
const KEYWORDS: [&str; 11] = [
    "ip", "ip6", "meta", "tcp", "udp", "counter", "limit", "log", "drop", "reject", "comment",
];

/// `fin,syn`, `(fin|syn)`, `syn|ack`, `0x0`, `0x12` as bits.
fn parse_flags(text: &str) -> Option<u8> {
    let text = text.trim_start_matches('(').trim_end_matches(')');
    if let Some(hex) = text.strip_prefix("0x") {
        return u8::from_str_radix(hex, 16).ok();
    }
    text.split([',', '|']).try_fold(0u8, |acc, name| {
        FLAG_NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(b, _)| acc | b)
    })
}

/// The words after `tcp flags`: `! MASK`, `SET / MASK` or `& MASK == SET`.
fn parse_flag_words(words: &[&str]) -> Option<TcpFlags> {
    let (mask, set) = match words {
        ["!", mask] => (parse_flags(mask)?, 0),
        [set, "/", mask] => (parse_flags(mask)?, parse_flags(set)?),
        ["&", mask, "==", set] => (parse_flags(mask)?, parse_flags(set)?),
        _ => return None,
    };
    (mask != 0 && set & !mask == 0).then_some(TcpFlags::new(mask, set))
}

fn parse_ports(text: &str) -> Option<Ports> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    Some(Ports {
        first: a.parse().ok()?,
        last: b.parse().ok()?,
    })
}

fn parse_l4(name: &str) -> Option<(Protocol, Option<Family>)> {
    Some(match name {
        "tcp" => (Protocol::Tcp, None),
        "udp" => (Protocol::Udp, None),
        "icmp" => (Protocol::Icmp, Some(Family::V4)),
        "ipv6-icmp" => (Protocol::Icmp, Some(Family::V6)),
        _ => return None,
    })
}

/// What one listed line says, while it is read.
#[derive(Default)]
struct Reading {
    rule: Rule,
    family: Option<Family>,
    target: Option<Target>,
    limited: bool,
    counted: bool,
    comment: Option<(u64, String)>,
}

impl Reading {
    /// Records the family a word implies; false when it contradicts an earlier one.
    fn family(&mut self, f: Family) -> bool {
        *self.family.get_or_insert(f) == f
    }

    fn protocol(&mut self, p: Protocol) -> bool {
        *self.rule.protocol.get_or_insert(p) == p
    }

    fn set<T>(slot: &mut Option<T>, v: T) -> Option<()> {
        slot.is_none().then(|| *slot = Some(v))
    }
}

/// Reads one line of our `rules` chain as `nft list` (without `-a`) prints it, or `None` when
/// anything in it is not of the forms we write.
pub(crate) fn parse_line(line: &str) -> Option<Line> {
    let tokens = tokenize_nft(line);
    let words: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut r = Reading::default();
    let mut i = 0;
    while i < words.len() {
        i += read_part(&mut r, &words[i..])?;
    }
    finish(r)
}

/// Reads the part of a rule that starts `words`; returns how many words it took.
fn read_part(r: &mut Reading, words: &[&str]) -> Option<usize> {
    match words {
        [ip @ ("ip" | "ip6"), dir @ ("saddr" | "daddr"), net, ..] => {
            let net = parse_net(net)?;
            let f = Family::of(&net);
            let want = if *ip == "ip" { Family::V4 } else { Family::V6 };
            if f != want || !r.family(f) {
                return None;
            }
            let slot = if *dir == "saddr" {
                &mut r.rule.src
            } else {
                &mut r.rule.dst
            };
            Reading::set(slot, net)?;
            Some(3)
        }
        ["meta", "l4proto", name, ..] => {
            let (p, f) = parse_l4(name)?;
            if !r.protocol(p) || f.is_some_and(|f| !r.family(f)) {
                return None;
            }
            Some(3)
        }
        [l4 @ ("tcp" | "udp"), dir @ ("sport" | "dport"), ports, ..] => {
            let (p, _) = parse_l4(l4)?;
            if !r.protocol(p) {
                return None;
            }
            let slot = if *dir == "sport" {
                &mut r.rule.sport
            } else {
                &mut r.rule.dport
            };
            Reading::set(slot, parse_ports(ports)?)?;
            Some(3)
        }
        ["tcp", "flags", rest @ ..] => {
            let n = rest
                .iter()
                .position(|w| KEYWORDS.contains(w))
                .unwrap_or(rest.len());
            if !r.protocol(Protocol::Tcp) {
                return None;
            }
            Reading::set(&mut r.rule.tcp_flags, parse_flag_words(&rest[..n])?)?;
            Some(2 + n)
        }
        ["counter", "packets", _, "bytes", _, ..] => r.count(5),
        ["counter", ..] => r.count(1),
        ["limit", "rate", "10/second", "burst", "20", "packets", ..] => {
            (!r.limited).then(|| r.limited = true)?;
            Some(6)
        }
        ["log", "prefix", _, ..] => Reading::set(&mut r.target, Target::Log).map(|_| 3),
        ["drop", ..] => Reading::set(&mut r.target, Target::Drop).map(|_| 1),
        [
            "reject",
            "with",
            kind @ ("icmp" | "icmpv6"),
            "port-unreachable",
            ..,
        ] => {
            let f = if *kind == "icmp" {
                Family::V4
            } else {
                Family::V6
            };
            if !r.family(f) {
                return None;
            }
            Reading::set(&mut r.target, Target::Reject).map(|_| 4)
        }
        ["comment", text, ..] => Reading::set(&mut r.comment, parse_comment(text)?).map(|_| 2),
        _ => None,
    }
}

impl Reading {
    fn count(&mut self, words: usize) -> Option<usize> {
        (!self.counted).then(|| self.counted = true)?;
        Some(words)
    }
}

fn finish(r: Reading) -> Option<Line> {
    let target = r.target?;
    if r.limited != (target == Target::Log) || !r.counted {
        return None;
    }
    if r.rule.src.is_none() && r.rule.dst.is_none() {
        return None;
    }
    let (until, reason) = r.comment?;
    Some(Line {
        rule: r.rule,
        target,
        until,
        reason,
    })
}

#[cfg(test)]
#[path = "nft_rule_text_tests.rs"]
mod tests;
