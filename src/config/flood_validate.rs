//! Validation of the `[[flood]]` tables: required keys, names unique among rules and detectors,
//! known protocol, flags, fragments, metric, action and scope, port lists, window and ban
//! bounds, and the combinations that cannot work (a signature names one destination; a
//! fragment carries no ports or flags). Detectors are named `flood[N] (name)`, N from 1.

use std::collections::HashMap;
use std::time::Duration;

use toml::Spanned;

use super::raw::{DurationText, PortSpec, RawFlood, RawRule, S};
use super::rule::{MAX_WINDOW, MIN_WINDOW, name, ports, protocol};
use super::validate::Ctx;
use super::{
    EnforceConfig, Flood, FloodAction, FloodFlags, FloodMetric, FloodScope, Fragments, Protocol,
    duration,
};

/// Every detector that is valid; problems for the others go to `ctx`. Names must also differ
/// from every `[[rule]]` name (both appear as `rule` in events and kernel comments).
pub(super) fn floods(
    ctx: &mut Ctx,
    raw: &[Spanned<RawFlood>],
    rules: &[Spanned<RawRule>],
    enforce: &EnforceConfig,
) -> Vec<Flood> {
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for r in rules {
        if let Some(n) = &r.get_ref().name {
            let line = ctx.line_of(n.span().start);
            first_seen.entry(n.get_ref().clone()).or_insert(line);
        }
    }
    let mut out = Vec::new();
    for (i, f) in raw.iter().enumerate() {
        let name = f.get_ref().name.as_ref().map(|n| n.get_ref().as_str());
        let prefix = super::parse::label("flood", i, name);
        if let Some(n) = &f.get_ref().name {
            let line = ctx.line_of(n.span().start);
            if let Some(first) = first_seen.get(n.get_ref().as_str()) {
                let msg = format!(
                    "duplicate name `{}` (first defined at line {first}); rules and floods share names",
                    n.get_ref()
                );
                ctx.at(n.span(), &format!("{prefix}.name"), msg);
            } else {
                first_seen.insert(n.get_ref().clone(), line);
            }
        }
        if let Some(flood) = flood(ctx, f, &prefix, enforce) {
            out.push(flood);
        }
    }
    out
}

fn flood(
    ctx: &mut Ctx,
    spanned: &Spanned<RawFlood>,
    prefix: &str,
    enforce: &EnforceConfig,
) -> Option<Flood> {
    let r = spanned.get_ref();
    let key = |k: &str| format!("{prefix}.{k}");
    let missing = |ctx: &mut Ctx, k: &str| {
        let msg = format!("missing required key `{k}`");
        ctx.at(spanned.span(), &key(k), msg);
    };
    let name = match &r.name {
        Some(n) => name(ctx, n, &key("name")),
        None => {
            missing(ctx, "name");
            None
        }
    };
    let protocol = protocol(ctx, &r.protocol, &key("protocol"));
    let port_list = |ctx: &mut Ctx, raw: &S<Vec<Spanned<PortSpec>>>, k: &str| match raw {
        None => Some(None),
        Some(list) => ports(ctx, list, protocol, &key(k)).map(Some),
    };
    let src_ports = port_list(ctx, &r.src_ports, "src_ports");
    let dst_ports = port_list(ctx, &r.dst_ports, "dst_ports");
    let tcp_flags = tcp_flags(ctx, &r.tcp_flags, protocol, &key("tcp_flags"));
    let fragments = fragments(ctx, r, &key("fragments"));
    let metric = match &r.metric {
        Some(m) => word(ctx, m, &key("metric"), METRICS),
        None => {
            missing(ctx, "metric");
            None
        }
    };
    let threshold = match &r.threshold {
        Some(_) => ctx.int(&r.threshold, &key("threshold"), 0, 1..=i64::MAX),
        None => {
            missing(ctx, "threshold");
            None
        }
    };
    let window = match &r.window {
        Some(_) => ctx.duration(
            &r.window,
            &key("window"),
            MIN_WINDOW,
            MIN_WINDOW,
            MAX_WINDOW,
        ),
        None => {
            missing(ctx, "window");
            None
        }
    };
    let (action, scope) = action_scope(ctx, r, prefix);
    let ban = ban(ctx, &r.ban, &key("ban"), enforce);
    Some(Flood {
        name: name?,
        protocol: protocol?,
        src_ports: src_ports?,
        dst_ports: dst_ports?,
        tcp_flags: tcp_flags?,
        fragments: fragments?,
        metric: metric?,
        threshold: threshold? as u64,
        window: window?,
        action: action?,
        ban: ban?,
        scope: scope?,
    })
}

/// `action` (default alert) and `scope` (default destination); `None` for both when a
/// signature is asked for in total (it names one destination).
fn action_scope(
    ctx: &mut Ctx,
    r: &RawFlood,
    prefix: &str,
) -> (Option<FloodAction>, Option<FloodScope>) {
    let action = match &r.action {
        Some(a) => word(ctx, a, &format!("{prefix}.action"), ACTIONS),
        None => Some(FloodAction::Alert),
    };
    let scope = match &r.scope {
        Some(s) => word(ctx, s, &format!("{prefix}.scope"), SCOPES),
        None => Some(FloodScope::Destination),
    };
    if action == Some(FloodAction::Signature)
        && scope == Some(FloodScope::Total)
        && let Some(s) = &r.scope
    {
        let msg = "a signature drops traffic toward one destination: use scope = \"destination\" or another action";
        ctx.at(s.span(), &format!("{prefix}.scope"), msg);
        return (None, None);
    }
    (action, scope)
}

const METRICS: &[(&str, FloodMetric)] = &[
    ("packets", FloodMetric::Packets),
    ("bytes", FloodMetric::Bytes),
];
const ACTIONS: &[(&str, FloodAction)] = &[
    ("signature", FloodAction::Signature),
    ("sources", FloodAction::Sources),
    ("alert", FloodAction::Alert),
];
const SCOPES: &[(&str, FloodScope)] = &[
    ("destination", FloodScope::Destination),
    ("total", FloodScope::Total),
];
const FLAGS: &[(&str, FloodFlags)] = &[
    ("syn", FloodFlags::Syn),
    ("synack", FloodFlags::Synack),
    ("ack", FloodFlags::Ack),
    ("rst", FloodFlags::Rst),
    ("fin", FloodFlags::Fin),
    ("any", FloodFlags::Any),
];
const FRAGMENTS: &[(&str, Fragments)] = &[
    ("include", Fragments::Include),
    ("exclude", Fragments::Exclude),
    ("only", Fragments::Only),
];

/// One of `words`, or a problem listing them.
fn word<T: Copy>(ctx: &mut Ctx, v: &Spanned<String>, key: &str, words: &[(&str, T)]) -> Option<T> {
    let text = v.get_ref().as_str();
    if let Some((_, t)) = words.iter().find(|(w, _)| *w == text) {
        return Some(*t);
    }
    let field = key.rsplit('.').next().unwrap_or(key);
    let names: Vec<String> = words.iter().map(|(w, _)| format!("`{w}`")).collect();
    let msg = format!("unknown {field} `{text}`, expected {}", names.join(", "));
    ctx.at(v.span(), key, msg);
    None
}

/// `Some(None)` when absent or `any`; `None` when invalid.
fn tcp_flags(
    ctx: &mut Ctx,
    raw: &S<String>,
    protocol: Option<Protocol>,
    key: &str,
) -> Option<Option<FloodFlags>> {
    let Some(f) = raw else {
        return Some(None);
    };
    let flags = word(ctx, f, key, FLAGS)?;
    match protocol {
        Some(Protocol::Tcp) => Some((flags != FloodFlags::Any).then_some(flags)),
        Some(_) => {
            ctx.at(f.span(), key, "needs protocol = \"tcp\"");
            None
        }
        None => None,
    }
}

/// `only` cannot be combined with a port or flag filter: fragments have neither.
fn fragments(ctx: &mut Ctx, r: &RawFlood, key: &str) -> Option<Fragments> {
    let Some(f) = &r.fragments else {
        return Some(Fragments::Include);
    };
    let value = word(ctx, f, key, FRAGMENTS)?;
    let filtered = r.src_ports.is_some() || r.dst_ports.is_some() || r.tcp_flags.is_some();
    if value == Fragments::Only && filtered {
        let msg = "a non-first fragment has no ports or TCP flags: remove src_ports, dst_ports and tcp_flags, or count fragments with \"include\"";
        ctx.at(f.span(), key, msg);
        return None;
    }
    Some(value)
}

/// The hold-down: at least 1 s, at most `enforce.max_ban`; `enforce.ban` when absent.
fn ban(
    ctx: &mut Ctx,
    raw: &S<DurationText>,
    key: &str,
    enforce: &EnforceConfig,
) -> Option<Duration> {
    let d = ctx.duration(raw, key, enforce.ban, Duration::from_secs(1), Duration::MAX)?;
    if d > enforce.max_ban
        && let Some(v) = raw
    {
        let msg = format!(
            "{} is longer than enforce.max_ban ({})",
            duration::format(d),
            duration::format(enforce.max_ban)
        );
        ctx.at(v.span(), key, msg);
        return None;
    }
    Some(d)
}
