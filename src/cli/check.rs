//! `autoblock check`: load and validate `rules.toml`, then print `ok: PATH` and one line per rule
//! (exit 0), or fail with every problem (exit 2; exit 1 when the file cannot be read).

use std::io::Write;
use std::time::Duration;

use super::{CheckArgs, CliError, CliResult};
use crate::config::duration::Formatted;
use crate::config::{self, Config, ConfigError, Protocol, Rule, TcpFlagsFilter};

/// Runs the command.
pub fn run(args: &CheckArgs) -> CliResult {
    let path = args.config.clone().unwrap_or_else(config::default_path);
    match config::load(&path) {
        Ok(config) => {
            let mut out = std::io::stdout().lock();
            // A closed stdout (`| head`) is not worth a failure: the file is valid.
            let _ = writeln!(out, "ok: {}", path.display());
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
            mode: crate::config::RuleMode::Enforce,
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
            mode: crate::config::RuleMode::Enforce,
            exempt: Vec::new(),
        };
        assert_eq!(
            rule_line(&scan, Duration::from_secs(600)),
            "port-scan: any protocol: dst_ports > 60 per 10s, ban 1h, per /24 (v4) /64 (v6)"
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
