//! `autoblock unban`: lift bans now: named targets, every ban (`--all`) or one rule's
//! (`--rule`). An address inside a broader ban (a banned /48) is not lifted by itself: the
//! covering ban is named, and `--covering` lifts it. Exit 1 when a named target had no ban of
//! its own (after lifting the rest).

use ipnet::IpNet;

use super::remote::{RemoteArgs, emit, human_secs, unexpected};
use super::replay::parse_net;
use super::{CliError, CliResult};
use crate::sys::control::protocol::{Request, Response, net_text};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  sudo autoblock unban 203.0.113.7 2001:db8:42::/64\n  \
sudo autoblock unban 2001:db8:42::7 --covering     # lifts the /64 ban around it\n  \
sudo autoblock unban --rule conn-burst               # every ban conn-burst set\n  \
sudo autoblock unban --all"
)]
pub struct UnbanArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Banned addresses or networks, exactly as `autoblock list` shows them
    #[arg(value_name = "IP|CIDR", value_parser = parse_net, required_unless_present_any = ["all", "rule"])]
    pub targets: Vec<IpNet>,
    /// A target inside a broader ban (an address in a banned /64) lifts that ban
    #[arg(long)]
    pub covering: bool,
    /// Lift every ban
    #[arg(long, conflicts_with = "rule")]
    pub all: bool,
    /// Lift every ban this rule set (`manual`: every manual ban)
    #[arg(long, value_name = "NAME")]
    pub rule: Option<String>,
}

/// Lifts the bans asked for.
pub fn run(args: &UnbanArgs) -> CliResult {
    let req = Request::Unban {
        targets: args.targets.clone(),
        covering: args.covering,
        all: args.all,
        rule: args.rule.clone(),
    };
    let (removed, not_found, covered) = match args.remote.call(&req)? {
        Response::Unbanned {
            removed,
            not_found,
            covered,
        } => (removed, not_found, covered),
        other => return Err(unexpected(other)),
    };
    let mut out = String::new();
    let bulk = args.all || args.rule.is_some();
    if bulk && removed.len() > args.targets.len() + 20 {
        let which = match &args.rule {
            Some(rule) => format!("set by {rule}"),
            None => "in force".to_owned(),
        };
        out.push_str(&format!("unbanned {} bans {which}\n", removed.len()));
    } else {
        for net in &removed {
            out.push_str(&format!("unbanned {}\n", net_text(net)));
        }
        if bulk && removed.is_empty() {
            out.push_str("no ban to lift\n");
        }
    }
    emit(&out);
    let mut lines: Vec<String> = covered
        .iter()
        .map(|c| {
            format!(
                "not banned itself: {} is inside the ban on {} (by {}, {} left); --covering lifts that ban",
                net_text(&c.target),
                net_text(&c.by.target),
                if c.by.rule.is_empty() { &c.by.reason } else { &c.by.rule },
                human_secs(c.by.remaining_secs)
            )
        })
        .collect();
    lines.extend(
        not_found
            .iter()
            .map(|n| format!("not banned: {}", net_text(n))),
    );
    if lines.is_empty() {
        Ok(())
    } else {
        Err(CliError::runtime(anyhow::anyhow!(lines.join("\n"))))
    }
}
