//! `autoblock unban`: lift bans now. Exit 1 when a target had no ban (after lifting the rest).

use ipnet::IpNet;

use super::remote::{RemoteArgs, emit, unexpected};
use super::replay::parse_net;
use super::{EXIT_OK, EXIT_RUNTIME};
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

pub fn run(args: &UnbanArgs) -> i32 {
    let req = Request::Unban {
        targets: args.targets.clone(),
    };
    match args.remote.call(&req) {
        Ok(Response::Unbanned { removed, not_found }) => {
            let mut out = String::new();
            for net in &removed {
                out.push_str(&format!("unbanned {}\n", net_text(net)));
            }
            emit(&out);
            for net in &not_found {
                eprintln!("not banned: {}", net_text(net));
            }
            if not_found.is_empty() {
                EXIT_OK
            } else {
                EXIT_RUNTIME
            }
        }
        Ok(other) => unexpected(other),
        Err(code) => code,
    }
}
