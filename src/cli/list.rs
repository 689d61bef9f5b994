//! `autoblock list`: the active bans, soonest to expire first, as a table or JSON; filtered by
//! rule, manual bans, or a network. In dry run the table says the bans are decisions only.

use ipnet::IpNet;

use super::remote::{RemoteArgs, human_secs, show, table, unexpected};
use super::replay::parse_net;
use super::{CliResult, OutputFormat};
use crate::sys::control::protocol::{BanInfo, Request, Response, net_text};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  sudo autoblock list\n  \
sudo autoblock list --rule port-scan\n  \
sudo autoblock list --net 2001:db8::/32\n  \
sudo autoblock list --manual --format json | jq -r '.[].target'")]
pub struct ListArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Output: aligned text for people, or the bans as one JSON document for scripts
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Only the bans this rule set (its end time)
    #[arg(long, value_name = "NAME")]
    pub rule: Option<String>,
    /// Only manual bans (`autoblock ban`)
    #[arg(long)]
    pub manual: bool,
    /// Only bans inside this network, or covering it (an address finds the prefix ban around
    /// it)
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub net: Option<IpNet>,
}

pub fn run(args: &ListArgs) -> CliResult {
    match args.remote.call(&Request::List) {
        Ok(Response::List(mut bans)) => {
            bans.retain(|b| keep(args, b));
            bans.sort_by_key(|b| b.remaining_secs);
            show(args.format, &bans, |b| render(b))
        }
        Ok(other) => Err(unexpected(other)),
        Err(e) => Err(e),
    }
}

/// True when `b` passes every filter asked for.
fn keep(args: &ListArgs, b: &BanInfo) -> bool {
    let rule = if b.rule.is_empty() {
        &b.reason
    } else {
        &b.rule
    };
    args.rule.as_ref().is_none_or(|r| r == rule)
        && (!args.manual || b.manual)
        && args
            .net
            .is_none_or(|n| n.contains(&b.target) || b.target.contains(&n))
}

/// The human view: one row per ban, or a line saying there is none.
pub fn render(bans: &[BanInfo]) -> String {
    if bans.is_empty() {
        return "no active bans\n".to_owned();
    }
    let mut out = String::new();
    if bans.iter().any(|b| b.dry_run) {
        out.push_str("DRY RUN: these are decisions only; nothing is in the kernel\n");
    }
    let rows: Vec<Vec<String>> = bans.iter().map(row).collect();
    out.push_str(&table(
        &["TARGET", "RULE", "LEFT", "UNTIL", "OFFENSE", "BY", "REASON"],
        &rows,
    ));
    let n = bans.len();
    out.push_str(&format!(
        "{n} active ban{}{}\n",
        if n == 1 { "" } else { "s" },
        if bans.iter().any(|b| b.dry_run) {
            " (dry run)"
        } else {
            ""
        }
    ));
    out
}

fn row(b: &BanInfo) -> Vec<String> {
    let rule = if b.rule.is_empty() {
        &b.reason
    } else {
        &b.rule
    };
    vec![
        net_text(&b.target),
        rule.clone(),
        human_secs(b.remaining_secs),
        b.until.clone(),
        if b.manual {
            "-".to_owned()
        } else {
            b.offense.to_string()
        },
        by(b),
        if b.manual && b.reason != *rule {
            b.reason.clone()
        } else {
            String::new()
        },
    ]
}

/// Who set the ban: `rule` or `manual` here, `fleet:NODE` for a ban from the fleet.
fn by(b: &BanInfo) -> String {
    match &b.origin {
        Some(node) => format!("fleet:{node}"),
        None if b.manual => "manual".to_owned(),
        None => "rule".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(target: &str, rule: &str, manual: bool, dry_run: bool) -> BanInfo {
        BanInfo {
            target: target.parse().expect("net"),
            reason: if manual { "abuse report" } else { rule }.into(),
            since: "2026-11-24T10:00:00.000Z".into(),
            until: "2026-11-24T10:10:00.000Z".into(),
            remaining_secs: 552,
            offense: 2,
            manual,
            rule: rule.into(),
            dry_run,
            origin: None,
        }
    }

    #[test]
    fn rule_and_reason_are_apart_and_dry_run_is_marked() {
        let bans = [
            ban(
                "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff/128",
                "syn-flood",
                false,
                false,
            ),
            ban("203.0.113.0/24", "manual", true, false),
            BanInfo {
                origin: Some("web-2".into()),
                ..ban("198.51.100.9/32", "conn-burst", false, false)
            },
        ];
        assert_eq!(
            render(&bans),
            "TARGET                                  RULE        LEFT   UNTIL                     OFFENSE  BY           REASON\n\
             2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff  syn-flood   9m12s  2026-11-24T10:10:00.000Z  2        rule\n\
             203.0.113.0/24                          manual      9m12s  2026-11-24T10:10:00.000Z  -        manual       abuse report\n\
             198.51.100.9                            conn-burst  9m12s  2026-11-24T10:10:00.000Z  2        fleet:web-2\n\
             3 active bans\n"
        );
        let dry = render(&[ban("203.0.113.7/32", "syn-flood", false, true)]);
        assert!(
            dry.starts_with("DRY RUN: these are decisions only"),
            "{dry}"
        );
        assert!(dry.ends_with("1 active ban (dry run)\n"), "{dry}");
    }

    #[test]
    fn filters_by_rule_manual_and_net() {
        use clap::Parser;
        let parse = |extra: &[&str]| {
            let cli =
                crate::cli::Cli::try_parse_from(["autoblock", "list"].iter().chain(extra).copied())
                    .expect("args");
            match cli.command {
                crate::cli::Command::List(a) => a,
                other => panic!("{other:?}"),
            }
        };
        let bans = [
            ban("2001:db8::/48", "manual", true, false),
            ban("203.0.113.7/32", "syn-flood", false, false),
        ];
        let kept = |a: &ListArgs| bans.iter().filter(|b| keep(a, b)).count();
        assert_eq!(kept(&parse(&[])), 2);
        assert_eq!(kept(&parse(&["--rule", "syn-flood"])), 1);
        assert_eq!(kept(&parse(&["--manual"])), 1);
        assert_eq!(kept(&parse(&["--net", "2001:db8::1"])), 1);
        assert_eq!(kept(&parse(&["--net", "203.0.113.0/24"])), 1);
        assert_eq!(kept(&parse(&["--net", "198.51.100.0/24"])), 0);
    }
}
