//! What changed between two configurations, one line per key, in words an operator reads
//! after `autoblock reload`: `rule conn-burst: threshold 28 -> 40`, `rule x added`,
//! `allow.nets: +192.0.2.0/24`, `flood udp-flood-dst: threshold 1000 -> 2000`.

use std::fmt::Display;

use super::duration::Formatted;
use super::{Config, Flood, Rule};

/// The changes from `old` to `new`, in file order; empty when nothing that matters changed.
pub fn diff(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut key = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name}: {a} -> {b}"));
        }
    };
    let (o, n) = (&old.enforce, &new.enforce);
    key("enforce.ban", dur(o.ban), dur(n.ban));
    key("enforce.max_ban", dur(o.max_ban), dur(n.max_ban));
    key(
        "enforce.repeat_window",
        dur(o.repeat_window),
        dur(n.repeat_window),
    );
    key(
        "enforce.repeat_multiplier",
        o.repeat_multiplier.to_string(),
        n.repeat_multiplier.to_string(),
    );
    key(
        "enforce.max_active_bans",
        o.max_active_bans.to_string(),
        n.max_active_bans.to_string(),
    );
    key(
        "enforce.max_new_bans_per_sec",
        o.max_new_bans_per_sec.to_string(),
        n.max_new_bans_per_sec.to_string(),
    );
    key(
        "enforce.keep_on_exit",
        o.keep_on_exit.to_string(),
        n.keep_on_exit.to_string(),
    );
    key(
        "enforce.extend_while_active",
        o.extend_while_active.to_string(),
        n.extend_while_active.to_string(),
    );
    key(
        "limits.max_tracked_sources",
        old.limits.max_tracked_sources.to_string(),
        new.limits.max_tracked_sources.to_string(),
    );
    key(
        "cluster.share",
        share(old.cluster.share),
        share(new.cluster.share),
    );
    out.extend(set_diff("allow.nets", &old.allow.nets, &new.allow.nets));
    out.extend(rules(&old.rules, &new.rules));
    out.extend(floods(&old.floods, &new.floods));
    out
}

/// `NAME: +added, -removed` for a list whose order does not matter.
fn set_diff<T: Display + PartialEq>(name: &str, old: &[T], new: &[T]) -> Option<String> {
    let mut parts: Vec<String> = new
        .iter()
        .filter(|x| !old.contains(x))
        .map(|x| format!("+{x}"))
        .collect();
    parts.extend(
        old.iter()
            .filter(|x| !new.contains(x))
            .map(|x| format!("-{x}")),
    );
    (!parts.is_empty()).then(|| format!("{name}: {}", parts.join(", ")))
}

fn rules(old: &[Rule], new: &[Rule]) -> Vec<String> {
    let mut out = Vec::new();
    for r in new {
        match old.iter().find(|o| o.name == r.name) {
            None => out.push(format!("rule {} added", r.name)),
            Some(o) => out.extend(rule(o, r)),
        }
    }
    for o in old.iter().filter(|o| !new.iter().any(|r| r.name == o.name)) {
        out.push(format!("rule {} removed", o.name));
    }
    out
}

fn rule(o: &Rule, n: &Rule) -> Vec<String> {
    let mut out = Vec::new();
    let mut key = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("rule {}: {name} {a} -> {b}", n.name));
        }
    };
    key(
        "protocol",
        format!("{:?}", o.protocol).to_lowercase(),
        format!("{:?}", n.protocol).to_lowercase(),
    );
    key("tcp_flags", flags(o), flags(n));
    key("dst_ports", ports(o), ports(n));
    key("metric", o.metric.as_str().into(), n.metric.as_str().into());
    key(
        "threshold",
        o.threshold.to_string(),
        n.threshold.to_string(),
    );
    key("window", dur(o.window), dur(n.window));
    key(
        "ban",
        o.ban.map_or("default".into(), dur),
        n.ban.map_or("default".into(), dur),
    );
    key(
        "aggregate_v4",
        o.aggregate_v4.to_string(),
        n.aggregate_v4.to_string(),
    );
    key(
        "aggregate_v6",
        o.aggregate_v6.to_string(),
        n.aggregate_v6.to_string(),
    );
    key(
        "skip_replies",
        o.skip_replies.to_string(),
        n.skip_replies.to_string(),
    );
    key(
        "ban_verified_peers",
        o.ban_verified_peers.to_string(),
        n.ban_verified_peers.to_string(),
    );
    key("mode", o.mode.as_str().into(), n.mode.as_str().into());
    if let Some(line) = set_diff(&format!("rule {}: exempt", n.name), &o.exempt, &n.exempt) {
        out.push(line);
    }
    out
}

/// `rules, manual`, `rules`, `manual` or `none`.
fn share(s: super::ShareKinds) -> String {
    let kinds: Vec<&str> = [("rules", s.rules), ("manual", s.manual)]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
    if kinds.is_empty() {
        "none".into()
    } else {
        kinds.join(", ")
    }
}

fn floods(old: &[Flood], new: &[Flood]) -> Vec<String> {
    let mut out = Vec::new();
    for f in new {
        match old.iter().find(|o| o.name == f.name) {
            None => out.push(format!("flood {} added", f.name)),
            Some(o) => {
                for ((name, a), (_, b)) in flood_keys(o).into_iter().zip(flood_keys(f)) {
                    if a != b {
                        out.push(format!("flood {}: {name} {a} -> {b}", f.name));
                    }
                }
            }
        }
    }
    for o in old.iter().filter(|o| !new.iter().any(|f| f.name == o.name)) {
        out.push(format!("flood {} removed", o.name));
    }
    out
}

/// A detector's keys in file order, as words.
fn flood_keys(f: &Flood) -> [(&'static str, String); 11] {
    let list = |p: &Option<Vec<u16>>| p.as_deref().map_or("all".into(), port_list);
    [
        ("protocol", format!("{:?}", f.protocol).to_lowercase()),
        ("src_ports", list(&f.src_ports)),
        ("dst_ports", list(&f.dst_ports)),
        (
            "tcp_flags",
            f.tcp_flags.map_or("any", |t| t.as_str()).into(),
        ),
        ("fragments", f.fragments.as_str().into()),
        ("metric", f.metric.as_str().into()),
        ("threshold", f.threshold.to_string()),
        ("window", dur(f.window)),
        ("action", f.action.as_str().into()),
        ("ban", dur(f.ban)),
        ("scope", f.scope.as_str().into()),
    ]
}

fn port_list(p: &[u16]) -> String {
    p.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn dur(d: std::time::Duration) -> String {
    Formatted(d).to_string()
}

fn flags(r: &Rule) -> String {
    r.tcp_flags.map_or("any".into(), |_| "syn".into())
}

fn ports(r: &Rule) -> String {
    r.dst_ports.as_deref().map_or("all".into(), port_list)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = "[enforce]\nban = \"10m\"\n[allow]\nnets = [\"10.0.0.0/8\"]\n[[rule]]\nname = \"a\"\nmetric = \"packets\"\nthreshold = 5\nwindow = \"1s\"\n[[rule]]\nname = \"b\"\nmetric = \"bytes\"\nthreshold = 9\nwindow = \"1s\"\n";

    fn parse(text: &str) -> Config {
        super::super::parse_str(text, Path::new("r.toml")).expect("valid")
    }

    #[test]
    fn every_change_is_one_line() {
        let old = parse(BASE);
        assert!(diff(&old, &old).is_empty());
        let new = parse(
            &BASE
                .replace("ban = \"10m\"", "ban = \"5m\"")
                .replace("\"10.0.0.0/8\"", "\"192.0.2.0/24\"")
                .replace("threshold = 5", "threshold = 50\nmode = \"log\"")
                .replace("name = \"b\"", "name = \"c\""),
        );
        assert_eq!(
            diff(&old, &new),
            [
                "enforce.ban: 10m -> 5m",
                "allow.nets: +192.0.2.0/24, -10.0.0.0/8",
                "rule a: threshold 5 -> 50",
                "rule a: mode enforce -> log",
                "rule c added",
                "rule b removed",
            ]
        );
        let flood = "[[flood]]\nname = \"f\"\nprotocol = \"udp\"\nmetric = \"packets\"\nthreshold = 10\nwindow = \"1s\"\n";
        let old = parse(&format!("{BASE}{flood}"));
        let new = parse(&format!(
            "{BASE}{}",
            flood
                .replace("threshold = 10", "threshold = 20\nsrc_ports = [53]")
                .replace("\"f\"", "\"g\"")
        ));
        assert_eq!(diff(&old, &new), ["flood g added", "flood f removed"]);
        let new = parse(&format!(
            "{BASE}{}",
            flood.replace("threshold = 10", "threshold = 20\nsrc_ports = [53]")
        ));
        assert_eq!(
            diff(&old, &new),
            [
                "flood f: src_ports all -> 53",
                "flood f: threshold 10 -> 20"
            ]
        );
    }
}
