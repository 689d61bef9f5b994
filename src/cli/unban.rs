//! `autoblock unban`: lift bans now. Exit 1 when a target had no ban (after lifting the rest).

use ipnet::IpNet;

use super::remote::{RemoteArgs, emit, unexpected};
use super::replay::parse_net;
use super::{CliError, CliResult};
use crate::sys::control::protocol::{Request, Response, net_text};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  sudo autoblock unban 203.0.113.7 2001:db8:42::/64")]
pub struct UnbanArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Banned addresses or networks, exactly as `autoblock list` shows them
    #[arg(required = true, value_name = "IP|CIDR", value_parser = parse_net)]
    pub targets: Vec<IpNet>,
}

/// Lifts the bans named.
pub fn run(args: &UnbanArgs) -> CliResult {
    let req = Request::Unban {
        targets: args.targets.clone(),
    };
    let (removed, not_found) = match args.remote.call(&req)? {
        Response::Unbanned { removed, not_found } => (removed, not_found),
        other => return Err(unexpected(other)),
    };
    let mut out = String::new();
    for net in &removed {
        out.push_str(&format!("unbanned {}\n", net_text(net)));
    }
    emit(&out);
    if not_found.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = not_found
        .iter()
        .map(|n| format!("not banned: {}", net_text(n)))
        .collect();
    Err(CliError::runtime(anyhow::anyhow!(lines.join("\n"))))
}
