//! `autoblock check`: load and validate `rules.toml`, compile its `bpf_filter` with libpcap,
//! then print `ok: PATH`, what the daemon would do (capture, enforcement, allowlist; with
//! `backend = "auto"` what it picks on this host) and one line per rule and per flood detector
//! (exit 0), warnings on stderr; or fail with every problem (exit 2; exit 1 when the file exists
//! but cannot be read).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::{CheckArgs, CliError, CliResult};
use crate::config::duration::Formatted;
use crate::config::{
    self, BackendChoice, Config, ConfigError, Flood, FloodScope, Fragments, Problem, Protocol,
    Rule, RuleMode, TcpFlagsFilter, auto_candidates,
};
use crate::sys::backend::{can_probe, choose, probe};
use crate::sys::control::protocol::net_text;

/// Runs the command.
pub fn run(args: &CheckArgs) -> CliResult {
    let path = args.config.clone().unwrap_or_else(config::default_path);
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(ConfigError::Invalid { problems }) => return Err(failed(&path, &problems)),
        Err(e) => {
            let usage = e.is_usage();
            let e = if usage {
                CliError::usage(e)
            } else {
                CliError::runtime(e)
            };
            return Err(if args.config.is_none() {
                e.hint("(no ./rules.toml here either; name a file with --config PATH)")
            } else {
                e
            });
        }
    };
    if let Some(filter) = &config.capture.bpf_filter
        && let Err(why) = crate::sys::capture::compile_filter(filter)
    {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let problem = Problem {
            file: path.display().to_string(),
            position: config::locate(&text, "capture", "bpf_filter"),
            key: "capture.bpf_filter".into(),
            message: format!("libpcap cannot compile `{filter}`: {why}"),
        };
        return Err(failed(&path, &[problem]));
    }
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) is not worth a failure: the file is valid.
    let _ = writeln!(out, "ok: {}", path.display());
    if config.enforce.backend == BackendChoice::Auto {
        let _ = writeln!(out, "{}", auto_line(&config, can_probe()));
    }
    for line in overview(&config).into_iter().chain(summary(&config)) {
        let _ = writeln!(out, "{line}");
    }
    let mut err = std::io::stderr().lock();
    for w in &config.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    Ok(())
}

/// Exit 2 with every problem.
fn failed(path: &Path, problems: &[Problem]) -> CliError {
    let n = problems.len();
    let s = if n == 1 { "" } else { "s" };
    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
    CliError::usage(anyhow::anyhow!(
        "check failed: {n} problem{s} in {}\n{}",
        path.display(),
        list.join("\n")
    ))
}

/// What the daemon would do with this file, besides the rules: where it captures, how it bans,
/// what it never bans.
pub fn overview(config: &Config) -> Vec<String> {
    let c = &config.capture;
    let e = &config.enforce;
    let interfaces = if c.interfaces.is_empty() {
        "the default route's".to_owned()
    } else {
        c.interfaces.join(", ")
    };
    let filter = c
        .bpf_filter
        .as_deref()
        .map_or("none".to_owned(), |f| format!("`{f}`"));
    let allow: Vec<String> = config.allow.nets.iter().map(net_text).collect();
    let mut lines = vec![
        format!(
            "capture:   interfaces {interfaces}; bpf_filter {filter}; snaplen {}",
            c.snaplen
        ),
        format!(
            "enforce:   backend {}, chain {}, hooks {}; dry_run {}",
            e.backend.as_str(),
            e.chain,
            e.hooks.join(", "),
            if e.dry_run {
                "yes (nothing is enforced)"
            } else {
                "no"
            }
        ),
        format!(
            "allowlist: {}",
            if allow.is_empty() {
                "empty (only our own addresses are never banned)".to_owned()
            } else {
                allow.join(", ")
            }
        ),
    ];
    lines.extend(cluster_line(&config.cluster));
    lines
}

/// `cluster:   fleet web as node a (servers ...); shares rules, manual; applies the fleet's
/// bans`, when `[cluster]` has servers (nothing otherwise: sharing is off).
fn cluster_line(c: &crate::config::ClusterConfig) -> Option<String> {
    if !c.enabled() {
        return None;
    }
    let node = c.node.as_deref().unwrap_or("<the host name>");
    let mut shares: Vec<&str> = Vec::new();
    if c.share.rules {
        shares.push("rules");
    }
    if c.share.manual {
        shares.push("manual");
    }
    let shares = if shares.is_empty() {
        "shares nothing".to_owned()
    } else {
        format!("shares {} bans", shares.join(" and "))
    };
    let accept = if c.accept {
        "applies the fleet's bans"
    } else {
        "ignores the fleet's bans"
    };
    let creds = c
        .credentials
        .as_ref()
        .map_or(String::new(), |p| format!(", credentials {}", p.display()));
    Some(format!(
        "cluster:   fleet {} as node {node} (servers {}{creds}); {shares}; {accept}",
        c.name,
        c.servers.join(", "),
    ))
}

/// What `backend = "auto"` picks here: probed now when we may (CAP_NET_ADMIN), else what is
/// known without the kernel.
fn auto_line(config: &Config, may_probe: bool) -> String {
    let e = &config.enforce;
    if !may_probe {
        let unfit: Vec<String> = auto_candidates(&e.chain, &e.hooks, e.max_ban)
            .into_iter()
            .filter_map(|(b, why)| Some(format!("; not {b}: {}", why?)))
            .collect();
        return format!(
            "backend auto: decided when the daemon starts (nftables if usable, else ipset, else iptables{}); run check as root to see what this host picks",
            unfit.concat()
        );
    }
    match choose(e, &probe) {
        Ok(c) if c.skipped.is_empty() => format!(
            "backend auto: {} on this host (probed now; the daemon probes again when it starts)",
            c.backend
        ),
        Ok(c) => format!(
            "backend auto: {} on this host, passed over {} (probed now; the daemon probes again when it starts)",
            c.backend,
            c.skipped.join("; ")
        ),
        Err(why) => format!("{why}: the daemon would not start here"),
    }
}

/// One line per rule and per flood detector, or a note that detection is off.
pub fn summary(config: &Config) -> Vec<String> {
    if config.rules.is_empty() && config.floods.is_empty() {
        return vec!["no [[rule]] or [[flood]]: detection is off".to_owned()];
    }
    config
        .rules
        .iter()
        .map(|r| rule_line(r, config.enforce.ban))
        .chain(config.floods.iter().map(flood_line))
        .collect()
}

/// `udp-flood-dst: flood of udp from ports 4500 toward each protected address: packets > 1000
/// per 1s, action signature, held 2m`
pub fn flood_line(f: &Flood) -> String {
    let mut what = protocol_word(f.protocol).to_owned();
    if let Some(flags) = f.tcp_flags {
        what.push(' ');
        what.push_str(flags.as_str());
    }
    if let Some(ports) = &f.src_ports {
        what.push_str(" from ports ");
        what.push_str(&port_list(ports));
    }
    if let Some(ports) = &f.dst_ports {
        what.push_str(" to ports ");
        what.push_str(&port_list(ports));
    }
    match f.fragments {
        Fragments::Only => what.push_str(", fragments only"),
        Fragments::Exclude => what.push_str(", no fragments"),
        Fragments::Include => {}
    }
    let scope = match f.scope {
        FloodScope::Destination => "each protected address",
        FloodScope::Total => "all protected addresses together",
    };
    format!(
        "{}: flood of {what} toward {scope}: {} > {} per {}, action {}, held {}",
        f.name,
        f.metric.as_str(),
        f.threshold,
        Formatted(f.window),
        f.action.as_str(),
        Formatted(f.ban),
    )
}

fn protocol_word(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        Protocol::Any => "any protocol",
    }
}

/// `syn-flood: tcp syn to ports 80,443: packets > 2000 per 1s, ban 10m, per /32 (v4) /128 (v6)`,
/// then `; log only`, `; bans verified peers too` and `; exempt NETS` when they apply.
pub fn rule_line(rule: &Rule, default_ban: Duration) -> String {
    let mut what = protocol_word(rule.protocol).to_owned();
    if rule.tcp_flags == Some(TcpFlagsFilter::Syn) {
        what.push_str(" syn");
    }
    if let Some(ports) = &rule.dst_ports {
        what.push_str(" to ports ");
        what.push_str(&port_list(ports));
    }
    let mut line = format!(
        "{}: {what}: {} > {} per {}, ban {}, per /{} (v4) /{} (v6)",
        rule.name,
        rule.metric.as_str(),
        rule.threshold,
        Formatted(rule.window),
        Formatted(rule.ban.unwrap_or(default_ban)),
        rule.aggregate_v4,
        rule.aggregate_v6,
    );
    if rule.mode == RuleMode::Log {
        line.push_str("; log only (never bans)");
    }
    if rule.ban_verified_peers {
        line.push_str("; bans verified peers too");
    }
    if !rule.exempt.is_empty() {
        let nets: Vec<String> = rule.exempt.iter().map(net_text).collect();
        line.push_str(&format!("; exempt {}", nets.join(", ")));
    }
    line
}

/// Sorted ports with runs folded: `80,443,8000-8100`.
fn port_list(ports: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let start = ports[i];
        let mut end = start;
        while i + 1 < ports.len() && ports[i + 1] == end.wrapping_add(1) && end != u16::MAX {
            i += 1;
            end = ports[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Metric;

    fn rule() -> Rule {
        Rule {
            name: "syn-flood".into(),
            protocol: Protocol::Tcp,
            tcp_flags: Some(TcpFlagsFilter::Syn),
            dst_ports: Some(vec![80, 443]),
            metric: Metric::Packets,
            threshold: 2000,
            window: Duration::from_secs(1),
            ban: None,
            aggregate_v4: 32,
            aggregate_v6: 128,
            skip_replies: false,
            ban_verified_peers: false,
            mode: RuleMode::Enforce,
            exempt: Vec::new(),
        }
    }

    #[test]
    fn rule_line_reads_like_the_rule() {
        assert_eq!(
            rule_line(&rule(), Duration::from_secs(600)),
            "syn-flood: tcp syn to ports 80,443: packets > 2000 per 1s, ban 10m, per /32 (v4) /128 (v6)"
        );
        let scan = Rule {
            name: "port-scan".into(),
            protocol: Protocol::Any,
            tcp_flags: None,
            dst_ports: None,
            metric: Metric::DstPorts,
            threshold: 60,
            window: Duration::from_secs(10),
            ban: Some(Duration::from_secs(3600)),
            aggregate_v4: 24,
            aggregate_v6: 64,
            skip_replies: true,
            ban_verified_peers: true,
            mode: RuleMode::Log,
            exempt: vec!["192.0.2.0/24".parse().expect("net")],
        };
        assert_eq!(
            rule_line(&scan, Duration::from_secs(600)),
            "port-scan: any protocol: dst_ports > 60 per 10s, ban 1h, per /24 (v4) /64 (v6); log only (never bans); bans verified peers too; exempt 192.0.2.0/24"
        );
    }

    #[test]
    fn the_overview_names_backend_hooks_interfaces_allowlist_and_dry_run() {
        let c = config::parse_str(
            "[capture]\ninterfaces = [\"eth0\"]\nbpf_filter = \"not port 22\"\n[enforce]\nbackend = \"ipset\"\nhooks = [\"INPUT\", \"FORWARD\"]\ndry_run = true\n[allow]\nnets = [\"192.0.2.0/24\", \"2001:db8::1\"]\n",
            Path::new("r.toml"),
        )
        .expect("valid");
        assert_eq!(
            overview(&c),
            [
                "capture:   interfaces eth0; bpf_filter `not port 22`; snaplen 128",
                "enforce:   backend ipset, chain AUTOBLOCK, hooks INPUT, FORWARD; dry_run yes (nothing is enforced)",
                "allowlist: 192.0.2.0/24, 2001:db8::1",
            ]
        );
    }

    #[test]
    fn the_overview_has_a_cluster_line_when_sharing_is_on() {
        let parse = |text: &str| config::parse_str(text, Path::new("r.toml")).expect("valid");
        assert!(
            overview(&parse(""))
                .iter()
                .all(|l| !l.starts_with("cluster"))
        );
        let c = parse(
            "[cluster]\nservers = [\"nats://10.0.0.5:4222\", \"tls://nats.example.net:4222\"]\nname = \"web\"\nshare = [\"manual\"]\n",
        );
        assert_eq!(
            overview(&c).last().map(String::as_str),
            Some(
                "cluster:   fleet web as node <the host name> (servers nats://10.0.0.5:4222, tls://nats.example.net:4222); shares manual bans; applies the fleet's bans"
            )
        );
    }

    #[test]
    fn auto_without_the_right_to_probe_says_what_it_knows() {
        let c = config::parse_str(
            "[enforce]\nhooks = [\"filter:MY_INPUT\"]\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(
            auto_line(&c, false),
            "backend auto: decided when the daemon starts (nftables if usable, else ipset, else iptables; not nftables: hook `filter:MY_INPUT` is not an nftables hook); run check as root to see what this host picks"
        );
    }

    #[test]
    fn flood_line_reads_like_the_detector() {
        let f = Flood {
            name: "ntp-reflection".into(),
            protocol: Protocol::Udp,
            src_ports: Some(vec![123]),
            dst_ports: None,
            tcp_flags: None,
            fragments: Fragments::Exclude,
            metric: crate::config::FloodMetric::Bytes,
            threshold: 1_000_000,
            window: Duration::from_secs(2),
            action: crate::config::FloodAction::Signature,
            ban: Duration::from_secs(120),
            scope: FloodScope::Destination,
        };
        assert_eq!(
            flood_line(&f),
            "ntp-reflection: flood of udp from ports 123, no fragments toward each protected address: bytes > 1000000 per 2s, action signature, held 2m"
        );
    }

    #[test]
    fn port_runs_are_folded() {
        assert_eq!(port_list(&[22]), "22");
        assert_eq!(
            port_list(&[80, 443, 8000, 8001, 8002, 9000]),
            "80,443,8000-8002,9000"
        );
        assert_eq!(port_list(&[65534, 65535]), "65534-65535");
    }
}
