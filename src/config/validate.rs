//! Stage two: [`RawConfig`] (from `parse.rs`) -> typed [`Config`] with defaults applied,
//! reporting every problem at once in file order. The defaults of every key live here; the
//! `[[rule]]` checks are in `rule.rs`. Also the entry points `load` and `parse_str`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::backend::{self, BackendChoice, NFT_HOOKS};
use super::duration;
use super::error::{ConfigError, Problem, line_col};
use super::parse::deserialize;
use super::raw::{self, DurationText, RawConfig, S};
use super::{
    AllowConfig, Backend, CaptureConfig, Config, ControlConfig, EnforceConfig, EventsConfig,
    LimitsConfig, MetricsConfig, StateConfig,
};
use crate::firewall::{self, FirewallError, FirewallOptions};

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => parse_str(&text, path),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(&e.as_bytes()[..valid]);
            let mut ctx = Ctx::new(&text, path);
            ctx.at(valid..valid, "", "the file is not UTF-8 text");
            Err(ctx.into_error())
        }
    }
}

/// Validates `text`; `origin` names the file in problems.
pub fn parse_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let mut ctx = Ctx::new(text, origin);
    let raw = match deserialize(text) {
        Ok(raw) => raw,
        Err(problems) => {
            for (span, key, message) in problems {
                match span {
                    Some(span) => ctx.at(span, &key, message),
                    None => ctx.nowhere(&key, message),
                }
            }
            return Err(ctx.into_error());
        }
    };
    let mut config = build(&mut ctx, raw);
    if !ctx.problems.is_empty() {
        return Err(ctx.into_error());
    }
    config.warnings = super::warnings::warnings(&config, text, &ctx.file);
    Ok(config)
}

/// Collects problems while building the typed values.
pub(super) struct Ctx<'a> {
    text: &'a str,
    pub(super) file: String,
    problems: Vec<Problem>,
}

impl<'a> Ctx<'a> {
    fn new(text: &'a str, origin: &Path) -> Self {
        Ctx {
            text,
            file: origin.display().to_string(),
            problems: Vec::new(),
        }
    }

    /// The problems in file order (the checks run table by table, not line by line).
    fn into_error(mut self) -> ConfigError {
        self.problems.sort_by_key(|p| p.position);
        ConfigError::Invalid {
            problems: self.problems,
        }
    }

    /// A problem at `span` (byte offsets into the text).
    pub(super) fn at(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            position: Some(line_col(self.text, span.start)),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn nowhere(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            position: None,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// 1-based line of a byte offset, for messages such as "first defined at line 3".
    pub(super) fn line_of(&self, offset: usize) -> usize {
        line_col(self.text, offset).0
    }

    /// An integer in `range`, else `default`. `None` when present and out of range.
    pub(super) fn int(
        &mut self,
        value: &S<i64>,
        key: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let Some(v) = value else {
            return Some(default);
        };
        let n = *v.get_ref();
        if range.contains(&n) {
            return Some(n);
        }
        let message = if *range.end() == i64::MAX {
            format!("must be greater than {}, found {n}", range.start() - 1)
        } else {
            format!(
                "must be between {} and {}, found {n}",
                range.start(),
                range.end()
            )
        };
        self.at(v.span(), key, message);
        None
    }

    /// A duration in `min..=max`, else `default`. `None` when present and invalid.
    pub(super) fn duration(
        &mut self,
        value: &S<DurationText>,
        key: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let Some(v) = value else {
            return Some(default);
        };
        let d = match duration::parse(&v.get_ref().0) {
            Ok(d) => d,
            Err(e) => {
                self.at(v.span(), key, e.to_string());
                return None;
            }
        };
        if d < min || d > max {
            let f = duration::format;
            let message = if d < min && max == Duration::MAX {
                format!("must be at least {}, found {}", f(min), f(d))
            } else {
                format!("must be between {} and {}, found {}", f(min), f(max), f(d))
            };
            self.at(v.span(), key, message);
            return None;
        }
        Some(d)
    }
}

fn build(ctx: &mut Ctx, raw: RawConfig) -> Config {
    let enforce = enforce(ctx, &raw.enforce);
    let rules = super::rule::rules(ctx, &raw.rule, &enforce);
    let floods = super::flood_validate::floods(ctx, &raw.flood, &raw.rule, &enforce);
    Config {
        capture: capture(ctx, &raw.capture),
        allow: allow(ctx, &raw.allow),
        limits: LimitsConfig {
            max_tracked_sources: positive(
                ctx,
                &raw.limits.max_tracked_sources,
                "limits.max_tracked_sources",
                1_000_000,
            ),
        },
        events: EventsConfig {
            file: raw.events.file.filter(|f| !f.is_empty()).map(PathBuf::from),
        },
        control: ControlConfig {
            socket: path(
                ctx,
                &raw.control.socket,
                "control.socket",
                super::DEFAULT_SOCKET,
            ),
        },
        state: StateConfig {
            dir: path(ctx, &raw.state.dir, "state.dir", "/var/lib/autoblock"),
        },
        metrics: MetricsConfig {
            listen: listen(ctx, &raw.metrics.listen),
        },
        cluster: super::cluster::cluster(ctx, &raw.cluster),
        enforce,
        rules,
        floods,
        warnings: Vec::new(),
    }
}

fn positive(ctx: &mut Ctx, value: &S<i64>, key: &str, default: usize) -> usize {
    let n = ctx.int(value, key, default as i64, 1..=i64::MAX);
    n.map_or(default, |n| n as usize)
}

fn capture(ctx: &mut Ctx, raw: &raw::RawCapture) -> CaptureConfig {
    let mut interfaces = Vec::new();
    for (i, name) in raw.interfaces.iter().flat_map(|v| v.get_ref()).enumerate() {
        let key = format!("capture.interfaces[{i}]");
        let text = name.get_ref();
        let ok = !text.is_empty()
            && text.len() <= 15
            && !text.contains(|c: char| c == '/' || c == ':' || c.is_whitespace());
        if !ok {
            let msg = format!(
                "`{text}` is not an interface name (1-15 characters, no `/`, `:` or spaces)"
            );
            ctx.at(name.span(), &key, msg);
        } else if interfaces.contains(text) {
            ctx.at(name.span(), &key, format!("`{text}` is listed twice"));
        } else {
            interfaces.push(text.clone());
        }
    }
    let snaplen = ctx.int(&raw.snaplen, "capture.snaplen", 128, 64..=65535);
    CaptureConfig {
        interfaces,
        bpf_filter: raw.bpf_filter.clone().filter(|f| !f.trim().is_empty()),
        snaplen: snaplen.unwrap_or(128) as u32,
    }
}

const DEFAULT_BAN: Duration = Duration::from_secs(600);
const DEFAULT_MAX_BAN: Duration = Duration::from_secs(24 * 3600);

fn chain_ok(text: &str) -> bool {
    (1..=28).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn backend(ctx: &mut Ctx, raw: &raw::RawEnforce) -> BackendChoice {
    match raw
        .backend
        .as_ref()
        .map(|b| (BackendChoice::parse(b.get_ref()), b.span()))
    {
        None => BackendChoice::Auto,
        Some((Ok(backend), _)) => backend,
        Some((Err(e), span)) => {
            ctx.at(span, "enforce.backend", e);
            BackendChoice::Auto
        }
    }
}

fn chain(ctx: &mut Ctx, raw: &raw::RawEnforce, backend: BackendChoice) -> String {
    let Some(c) = &raw.chain else {
        return "AUTOBLOCK".to_owned();
    };
    let text = c.get_ref();
    let max = firewall::IPTABLES_MAX_CHAIN_LEN;
    if !chain_ok(text) {
        let msg = format!("`{text}` is not a chain name (1-28 characters of A-Z a-z 0-9 _ -)");
        ctx.at(c.span(), "enforce.chain", msg);
    } else if backend == BackendChoice::Fixed(Backend::Iptables) && text.len() > max {
        let msg = format!(
            "`{text}` is {} characters: the iptables backend takes at most {max} (its ban chains are named {text}.<7 hex digits>, and iptables takes 28)",
            text.len()
        );
        ctx.at(c.span(), "enforce.chain", msg);
    }
    text.clone()
}

fn repeat_multiplier(ctx: &mut Ctx, raw: &raw::RawEnforce) -> f64 {
    let Some(m) = &raw.repeat_multiplier else {
        return 2.0;
    };
    let x = *m.get_ref();
    if !(x.is_finite() && x >= 1.0) {
        ctx.at(
            m.span(),
            "enforce.repeat_multiplier",
            format!("must be at least 1.0, found {x}"),
        );
    }
    x
}

fn enforce(ctx: &mut Ctx, raw: &raw::RawEnforce) -> EnforceConfig {
    let backend = backend(ctx, raw);
    let chain = chain(ctx, raw, backend);
    // An invalid chain is reported above; the hooks are checked against the default then.
    let own = if chain_ok(&chain) {
        chain.as_str()
    } else {
        "AUTOBLOCK"
    };
    let hooks = hooks(ctx, &raw.hooks, backend, own);
    let priority = ctx
        .int(&raw.priority, "enforce.priority", -10, -1000..=1000)
        .unwrap_or(-10) as i32;
    let dur = |ctx: &mut Ctx, v: &S<DurationText>, key: &str, default: Duration| {
        ctx.duration(v, key, default, Duration::from_millis(1), Duration::MAX)
    };
    let ban = dur(ctx, &raw.ban, "enforce.ban", DEFAULT_BAN);
    let max_ban = dur(ctx, &raw.max_ban, "enforce.max_ban", DEFAULT_MAX_BAN);
    if let (Some(b), Some(m), Some(v)) = (ban, max_ban, &raw.ban)
        && b > m
    {
        let msg = format!(
            "{} is longer than enforce.max_ban ({})",
            duration::format(b),
            duration::format(m)
        );
        ctx.at(v.span(), "enforce.ban", msg);
    }
    let repeat_window = dur(
        ctx,
        &raw.repeat_window,
        "enforce.repeat_window",
        Duration::from_secs(3600),
    );
    let check_interval = ctx.duration(
        &raw.check_interval,
        "enforce.check_interval",
        Duration::from_secs(10),
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    kernel_timeout_limit(ctx, backend, max_ban, &raw.max_ban);
    let repeat_multiplier = repeat_multiplier(ctx, raw);
    let max_active_bans = positive(
        ctx,
        &raw.max_active_bans,
        "enforce.max_active_bans",
        100_000,
    );
    let max_new_bans_per_sec = ctx
        .int(
            &raw.max_new_bans_per_sec,
            "enforce.max_new_bans_per_sec",
            1000,
            1..=i64::from(u32::MAX),
        )
        .unwrap_or(1000) as u32;
    EnforceConfig {
        backend,
        chain,
        hooks,
        ban: ban.unwrap_or(DEFAULT_BAN),
        max_ban: max_ban.unwrap_or(DEFAULT_MAX_BAN),
        repeat_window: repeat_window.unwrap_or_default(),
        repeat_multiplier,
        max_active_bans,
        max_new_bans_per_sec,
        keep_on_exit: raw.keep_on_exit.unwrap_or(true),
        dry_run: raw.dry_run.unwrap_or(false),
        extend_while_active: raw.extend_while_active.unwrap_or(true),
        check_interval: check_interval.unwrap_or_default(),
        priority,
    }
}

/// A ban longer than the backend's kernel timeout would silently end early: ipset keeps at
/// most 2,147,483 s (24.8 days) per entry, `nft` accepts at most 99,999,999 s. (`auto` passes
/// over a backend that cannot hold it instead.)
fn kernel_timeout_limit(
    ctx: &mut Ctx,
    backend: BackendChoice,
    max_ban: Option<Duration>,
    raw: &S<DurationText>,
) {
    let BackendChoice::Fixed(fixed) = backend else {
        return;
    };
    let Some(limit) = backend::timeout_limit(fixed) else {
        return;
    };
    let advice = match fixed {
        Backend::Ipset => "ipset allows for a timeout ({}); lower it or use backend = \"iptables\"",
        _ => "nft accepts for a timeout ({})",
    };
    if let (Some(m), Some(v)) = (max_ban, raw)
        && m > limit
    {
        let msg = format!(
            "{} is longer than {}",
            duration::format(m),
            advice.replace("{}", &duration::format(limit))
        );
        ctx.at(v.span(), "enforce.max_ban", msg);
    }
}

/// `INPUT`, `FORWARD`, a chain of yours such as `DOCKER-USER`, or `table:CHAIN` with table
/// filter, raw or mangle: whatever the firewall library accepts at open (its own check, so
/// `check` and a start never disagree), never our own `chain`; with nftables, only chains that
/// are nftables hooks.
fn hooks(
    ctx: &mut Ctx,
    raw: &S<Vec<Spanned<String>>>,
    backend: BackendChoice,
    chain: &str,
) -> Vec<String> {
    let Some(list) = raw else {
        return vec!["INPUT".to_owned()];
    };
    if list.get_ref().is_empty() {
        let msg = "needs at least one hook (such as \"INPUT\"), or the chain is never reached";
        ctx.at(list.span(), "enforce.hooks", msg);
    }
    let mut hooks: Vec<String> = Vec::new();
    for (i, hook) in list.get_ref().iter().enumerate() {
        let key = format!("enforce.hooks[{i}]");
        let text = hook.get_ref();
        let checked = FirewallOptions::new(Backend::Iptables, chain)
            .hooks([text.as_str()])
            .check();
        let qualified = backend::qualified(text);
        if let Err(e) = checked {
            let why = match e {
                FirewallError::InvalidOption(why) => why,
                other => other.to_string(),
            };
            ctx.at(hook.span(), &key, why);
        } else if backend == BackendChoice::Fixed(Backend::Nftables)
            && !NFT_HOOKS.contains(&qualified.as_str())
        {
            let msg = format!("`{text}` is not an nftables hook, expected one of {NFT_HOOKS:?}");
            ctx.at(hook.span(), &key, msg);
        } else if hooks.contains(text) {
            ctx.at(hook.span(), &key, format!("`{text}` is listed twice"));
        } else {
            hooks.push(text.clone());
        }
    }
    hooks
}

fn allow(ctx: &mut Ctx, raw: &raw::RawAllow) -> AllowConfig {
    let Some(list) = &raw.nets else {
        let defaults = ["127.0.0.0/8", "::1/128"];
        let nets = defaults.iter().filter_map(|n| n.parse().ok()).collect();
        return AllowConfig { nets };
    };
    let mut nets: Vec<IpNet> = Vec::new();
    let mut seen = HashSet::new();
    for (i, item) in list.iter().enumerate() {
        if let Some(net) = net_item(ctx, item, &format!("allow.nets[{i}]"))
            && seen.insert(net)
        {
            nets.push(net);
        }
    }
    AllowConfig { nets }
}

/// One entry of a list of networks (`[allow] nets`, a rule's `exempt`): a CIDR network or a
/// plain address (/32, /128). Host bits are an error: `192.0.2.7/24` could mean the host or
/// the /24, and guessing either way bans or spares the wrong addresses.
pub(super) fn net_item(ctx: &mut Ctx, item: &Spanned<String>, key: &str) -> Option<IpNet> {
    let text = item.get_ref().trim();
    if let Ok(net) = text.parse::<IpNet>() {
        if net.trunc() == net {
            return Some(net);
        }
        let msg = format!(
            "`{text}` has host bits set: write the network {} or the address {}",
            net.trunc(),
            net.addr()
        );
        ctx.at(item.span(), key, msg);
        return None;
    }
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Some(IpNet::from(addr));
    }
    let msg = format!(
        "`{}` is not an address or network such as 192.0.2.0/24, 2001:db8::/32 or 192.0.2.7",
        item.get_ref()
    );
    ctx.at(item.span(), key, msg);
    None
}

fn path(ctx: &mut Ctx, raw: &S<String>, key: &str, default: &str) -> PathBuf {
    match raw {
        None => PathBuf::from(default),
        Some(p) if p.get_ref().trim().is_empty() => {
            ctx.at(
                p.span(),
                key,
                format!("must not be empty (default: {default})"),
            );
            PathBuf::from(default)
        }
        Some(p) => PathBuf::from(p.get_ref()),
    }
}

fn listen(ctx: &mut Ctx, raw: &S<String>) -> Option<SocketAddr> {
    let v = raw.as_ref()?;
    let text = v.get_ref().trim();
    if text.is_empty() {
        return None;
    }
    match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            let msg = format!(
                "`{text}` is not an address with a port such as 127.0.0.1:9477 or [::1]:9477"
            );
            ctx.at(v.span(), "metrics.listen", msg);
            None
        }
    }
}
