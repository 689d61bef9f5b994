//! Validation of the `[[rule]]` tables: required keys, names unique and safe for iptables
//! comments, known protocol and metric, port lists, window and ban bounds, prefix lengths
//! (never 0), `mode` and `exempt` nets. Rules are named `rule[N] (name)` in problems, N from 1.

use std::collections::HashMap;
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::raw::{PortSpec, RawRule, S};
use super::validate::{Ctx, net_item};
use super::{EnforceConfig, Metric, Protocol, Rule, RuleMode, TcpFlagsFilter, duration};

pub(super) const MIN_WINDOW: Duration = Duration::from_millis(100);
pub(super) const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// Every rule that is valid; problems for the others go to `ctx`.
pub(super) fn rules(ctx: &mut Ctx, raw: &[Spanned<RawRule>], enforce: &EnforceConfig) -> Vec<Rule> {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let name = r.get_ref().name.as_ref().map(|n| n.get_ref().as_str());
        let prefix = super::parse::label("rule", i, name);
        if let Some(name) = &r.get_ref().name {
            let line = ctx.line_of(name.span().start);
            if let Some(first) = first_seen.get(name.get_ref().as_str()) {
                let msg = format!(
                    "duplicate rule name `{}` (first defined at line {first})",
                    name.get_ref()
                );
                ctx.at(name.span(), &format!("{prefix}.name"), msg);
            } else {
                first_seen.insert(name.get_ref(), line);
            }
        }
        if let Some(rule) = rule(ctx, r, &prefix, enforce) {
            out.push(rule);
        }
    }
    out
}

fn rule(
    ctx: &mut Ctx,
    spanned: &Spanned<RawRule>,
    prefix: &str,
    enforce: &EnforceConfig,
) -> Option<Rule> {
    let r = spanned.get_ref();
    let key = |k: &str| format!("{prefix}.{k}");
    let missing = |ctx: &mut Ctx, k: &str| {
        ctx.at(
            spanned.span(),
            &key(k),
            format!("missing required key `{k}`"),
        );
    };
    let name = match &r.name {
        None => {
            missing(ctx, "name");
            None
        }
        Some(n) => name(ctx, n, &key("name")),
    };
    let protocol = protocol(ctx, &r.protocol, &key("protocol"));
    let tcp_flags = tcp_flags(ctx, &r.tcp_flags, protocol, &key("tcp_flags"));
    let dst_ports = match &r.dst_ports {
        None => Some(None),
        Some(list) => ports(ctx, list, protocol, &key("dst_ports")).map(Some),
    };
    let metric = match &r.metric {
        None => {
            missing(ctx, "metric");
            None
        }
        Some(m) => metric(ctx, m, &key("metric")),
    };
    let threshold = match &r.threshold {
        None => {
            missing(ctx, "threshold");
            None
        }
        Some(_) => ctx.int(&r.threshold, &key("threshold"), 0, 1..=i64::MAX),
    };
    let window = match &r.window {
        None => {
            missing(ctx, "window");
            None
        }
        Some(_) => ctx.duration(
            &r.window,
            &key("window"),
            MIN_WINDOW,
            MIN_WINDOW,
            MAX_WINDOW,
        ),
    };
    let ban = rule_ban(ctx, r, &key("ban"), enforce);
    let aggregate_v4 = aggregate(ctx, &r.aggregate_v4, &key("aggregate_v4"), 32);
    let aggregate_v6 = aggregate(ctx, &r.aggregate_v6, &key("aggregate_v6"), 128);
    let mode = mode(ctx, &r.mode, &key("mode"));
    let exempt = exempt(ctx, &r.exempt, &key("exempt"));
    Some(Rule {
        name: name?,
        protocol: protocol?,
        tcp_flags: tcp_flags?,
        dst_ports: dst_ports?,
        metric: metric?,
        threshold: threshold? as u64,
        window: window?,
        ban: ban?,
        aggregate_v4: aggregate_v4? as u8,
        aggregate_v6: aggregate_v6? as u8,
        skip_replies: r
            .skip_replies
            .unwrap_or(matches!(metric?, Metric::DstPorts | Metric::DstAddrs)),
        ban_verified_peers: r.ban_verified_peers.unwrap_or(false),
        mode: mode?,
        exempt: exempt?,
    })
}

/// A prefix length of 1..=`max`: 0 would count the whole address family as one source and
/// ban it all (`0.0.0.0/0`), so it is refused.
fn aggregate(ctx: &mut Ctx, value: &S<i64>, key: &str, max: i64) -> Option<i64> {
    if let Some(v) = value
        && *v.get_ref() == 0
    {
        let all = if max == 32 { "0.0.0.0/0" } else { "::/0" };
        let msg = format!(
            "0 would count every address as one source and ban them all ({all}); use 1 to {max} (e.g. {})",
            if max == 32 { 24 } else { 64 }
        );
        ctx.at(v.span(), key, msg);
        return None;
    }
    ctx.int(value, key, max, 1..=max)
}

/// `enforce` (the default) or `log`.
fn mode(ctx: &mut Ctx, raw: &S<String>, key: &str) -> Option<RuleMode> {
    let Some(m) = raw else {
        return Some(RuleMode::Enforce);
    };
    match m.get_ref().as_str() {
        "enforce" => Some(RuleMode::Enforce),
        "log" => Some(RuleMode::Log),
        other => {
            let msg = format!(
                "unknown mode `{other}`, expected `enforce` (ban) or `log` (decide and report, never ban)"
            );
            ctx.at(m.span(), key, msg);
            None
        }
    }
}

/// Networks this rule does not count; every entry checked like `[allow] nets`.
fn exempt(ctx: &mut Ctx, raw: &S<Vec<Spanned<String>>>, key: &str) -> Option<Vec<IpNet>> {
    let Some(list) = raw else {
        return Some(Vec::new());
    };
    let mut nets = Vec::new();
    let mut ok = true;
    for (i, item) in list.get_ref().iter().enumerate() {
        match net_item(ctx, item, &format!("{key}[{i}]")) {
            Some(net) if !nets.contains(&net) => nets.push(net),
            Some(_) => {}
            None => ok = false,
        }
    }
    ok.then_some(nets)
}

/// The rule's own `ban`: `Some(None)` when absent (the default applies), `None` when invalid
/// (reported), and never longer than `enforce.max_ban`.
fn rule_ban(
    ctx: &mut Ctx,
    r: &RawRule,
    key: &str,
    enforce: &EnforceConfig,
) -> Option<Option<Duration>> {
    let Some(b) = r.ban.as_ref() else {
        return Some(None);
    };
    let d = ctx.duration(
        &r.ban,
        key,
        enforce.ban,
        Duration::from_millis(1),
        Duration::MAX,
    );
    match d {
        Some(d) if d > enforce.max_ban => {
            let msg = format!(
                "{} is longer than enforce.max_ban ({})",
                duration::format(d),
                duration::format(enforce.max_ban)
            );
            ctx.at(b.span(), key, msg);
            None
        }
        d => d.map(Some),
    }
}

/// `[A-Za-z0-9_.-]{1,32}`: it goes into iptables comments and ipset names unquoted.
pub(super) fn name(ctx: &mut Ctx, n: &Spanned<String>, key: &str) -> Option<String> {
    let text = n.get_ref();
    let ok = (1..=32).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Some(text.clone())
    } else {
        let msg = format!("`{text}` is not a rule name (1-32 characters of A-Z a-z 0-9 _ . -)");
        ctx.at(n.span(), key, msg);
        None
    }
}

pub(super) fn protocol(ctx: &mut Ctx, raw: &S<String>, key: &str) -> Option<Protocol> {
    let Some(p) = raw else {
        return Some(Protocol::Any);
    };
    match p.get_ref().as_str() {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "icmp" => Some(Protocol::Icmp),
        "any" => Some(Protocol::Any),
        other => {
            let msg = format!("unknown protocol `{other}`, expected `tcp`, `udp`, `icmp` or `any`");
            ctx.at(p.span(), key, msg);
            None
        }
    }
}

/// `Some(None)` when absent; `None` when invalid.
fn tcp_flags(
    ctx: &mut Ctx,
    raw: &S<String>,
    protocol: Option<Protocol>,
    key: &str,
) -> Option<Option<TcpFlagsFilter>> {
    let Some(f) = raw else {
        return Some(None);
    };
    if f.get_ref() != "syn" {
        let msg = format!(
            "unknown tcp_flags `{}`, expected `syn` (SYN set, ACK clear)",
            f.get_ref()
        );
        ctx.at(f.span(), key, msg);
        return None;
    }
    match protocol {
        Some(Protocol::Tcp) => Some(Some(TcpFlagsFilter::Syn)),
        Some(_) => {
            ctx.at(f.span(), key, "needs protocol = \"tcp\"");
            None
        }
        None => None,
    }
}

/// Sorted, without duplicates; `None` when any entry is invalid.
pub(super) fn ports(
    ctx: &mut Ctx,
    list: &Spanned<Vec<Spanned<PortSpec>>>,
    protocol: Option<Protocol>,
    key: &str,
) -> Option<Vec<u16>> {
    if protocol == Some(Protocol::Icmp) {
        let field = key.rsplit('.').next().unwrap_or(key);
        let msg = format!("ICMP has no ports: remove {field} or use protocol tcp, udp or any");
        ctx.at(list.span(), key, msg);
        return None;
    }
    if list.get_ref().is_empty() {
        let msg = "an empty list matches no packet: remove the key to count every port";
        ctx.at(list.span(), key, msg);
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in list.get_ref().iter().enumerate() {
        match port_range(item.get_ref()) {
            Some((lo, hi)) => out.extend(lo..=hi),
            None => {
                let shown = match item.get_ref() {
                    PortSpec::Number(n) => n.to_string(),
                    PortSpec::Text(t) => format!("\"{t}\""),
                };
                let msg =
                    format!("`{shown}` is not a port (1-65535) or a range such as \"8000-8100\"");
                ctx.at(item.span(), &format!("{key}[{i}]"), msg);
                ok = false;
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    ok.then_some(out)
}

fn port_range(spec: &PortSpec) -> Option<(u16, u16)> {
    let port = |n: i64| u16::try_from(n).ok().filter(|&p| p != 0);
    let parse = |s: &str| s.trim().parse::<i64>().ok().and_then(port);
    match spec {
        PortSpec::Number(n) => port(*n).map(|p| (p, p)),
        PortSpec::Text(t) => match t.split_once('-') {
            None => parse(t).map(|p| (p, p)),
            Some((lo, hi)) => {
                let (lo, hi) = (parse(lo)?, parse(hi)?);
                (lo <= hi).then_some((lo, hi))
            }
        },
    }
}

fn metric(ctx: &mut Ctx, m: &Spanned<String>, key: &str) -> Option<Metric> {
    match m.get_ref().as_str() {
        "packets" => Some(Metric::Packets),
        "bytes" => Some(Metric::Bytes),
        "dst_ports" => Some(Metric::DstPorts),
        "dst_addrs" => Some(Metric::DstAddrs),
        other => {
            let msg = format!(
                "unknown metric `{other}`, expected `packets`, `bytes`, `dst_ports` or `dst_addrs`"
            );
            ctx.at(m.span(), key, msg);
            None
        }
    }
}
