//! `autoblock check`: load and validate `rules.toml`, then print `ok: PATH`, with `backend =
//! "auto"` what it picks on this host, and one line per rule (exit 0), or fail with every
//! problem (exit 2; exit 1 when the file cannot be read).

use std::io::Write;
use std::time::Duration;

use super::{CheckArgs, CliError, CliResult};
use crate::config::duration::Formatted;
use crate::config::{
    self, BackendChoice, Config, ConfigError, Protocol, Rule, TcpFlagsFilter, auto_candidates,
};
use crate::sys::backend::{can_probe, choose, probe};

/// Runs the command.
pub fn run(args: &CheckArgs) -> CliResult {
    let path = args.config.clone().unwrap_or_else(config::default_path);
    match config::load(&path) {
        Ok(config) => {
            let mut out = std::io::stdout().lock();
            // A closed stdout (`| head`) is not worth a failure: the file is valid.
            let _ = writeln!(out, "ok: {}", path.display());
            if config.enforce.backend == BackendChoice::Auto {
                let _ = writeln!(out, "{}", auto_line(&config, can_probe()));
            }
            for line in summary(&config) {
                let _ = writeln!(out, "{line}");
            }
            Ok(())
        }
        Err(ConfigError::Invalid { problems }) => {
            let n = problems.len();
            let s = if n == 1 { "" } else { "s" };
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Err(CliError::usage(anyhow::anyhow!(
                "check failed: {n} problem{s} in {}\n{}",
                path.display(),
                list.join("\n")
            )))
        }
        Err(e) => {
            let e = CliError::runtime(e);
            if args.config.is_none() {
                Err(e.hint("(no ./rules.toml here either; name a file with --config PATH)"))
            } else {
                Err(e)
            }
        }
    }
}

/// What `backend = "auto"` picks here: probed now when we may (CAP_NET_ADMIN), else what is
/// known without the kernel.
fn auto_line(config: &Config, may_probe: bool) -> String {
    let e = &config.enforce;
    if !may_probe {
        let unfit: Vec<String> = auto_candidates(&e.hooks, e.max_ban)
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

/// One line per rule, or a note that detection is off.
pub fn summary(config: &Config) -> Vec<String> {
    if config.rules.is_empty() {
        return vec!["no [[rule]]: detection is off".to_owned()];
    }
    config
        .rules
        .iter()
        .map(|r| rule_line(r, config.enforce.ban))
        .collect()
}

/// `syn-flood: tcp syn to ports 80,443: packets > 2000 per 1s, ban 10m, per /32 (v4) /128 (v6)`
pub fn rule_line(rule: &Rule, default_ban: Duration) -> String {
    let mut what = match rule.protocol {
        Protocol::Tcp => "tcp".to_owned(),
        Protocol::Udp => "udp".to_owned(),
        Protocol::Icmp => "icmp".to_owned(),
        Protocol::Any => "any protocol".to_owned(),
    };
    if rule.tcp_flags == Some(TcpFlagsFilter::Syn) {
        what.push_str(" syn");
    }
    if let Some(ports) = &rule.dst_ports {
        what.push_str(" to ports ");
        what.push_str(&port_list(ports));
    }
    format!(
        "{}: {what}: {} > {} per {}, ban {}, per /{} (v4) /{} (v6)",
        rule.name,
        rule.metric.as_str(),
        rule.threshold,
        Formatted(rule.window),
        Formatted(rule.ban.unwrap_or(default_ban)),
        rule.aggregate_v4,
        rule.aggregate_v6,
    )
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
        };
        assert_eq!(
            rule_line(&scan, Duration::from_secs(600)),
            "port-scan: any protocol: dst_ports > 60 per 10s, ban 1h, per /24 (v4) /64 (v6)"
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
    fn port_runs_are_folded() {
        assert_eq!(port_list(&[22]), "22");
        assert_eq!(
            port_list(&[80, 443, 8000, 8001, 8002, 9000]),
            "80,443,8000-8002,9000"
        );
        assert_eq!(port_list(&[65534, 65535]), "65534-65535");
    }
}
