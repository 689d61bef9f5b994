//! `autoblock flush`: remove everything autoblock created in the kernel (jumps, chain, sets, or
//! the nftables table) and nothing else. Bans are lost; run it after stopping the daemon. With
//! `backend = "auto"` it flushes every backend `auto` may have chosen on this host.

use super::{CliError, CliResult, load_config};
use crate::config::{BackendChoice, Config};
use crate::firewall::{Backend, Firewall};
use crate::sys::backend::probe;
use crate::sys::enforcer::firewall_options;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  systemctl stop autoblock && autoblock flush")]
pub struct FlushArgs {
    /// Configuration file (names the backend, chain and hooks to remove)
    #[arg(long, short)]
    pub config: Option<std::path::PathBuf>,
}

/// Removes the chain, its jumps and sets.
pub fn run(args: FlushArgs) -> CliResult {
    let config = load_config(args.config.as_deref())?;
    for backend in to_flush(&config) {
        let fw = Firewall::open(firewall_options(&config, backend)).map_err(CliError::runtime)?;
        let n = fw.len();
        fw.flush().map_err(CliError::runtime)?;
        let on = match config.enforce.backend {
            BackendChoice::Auto => format!(" ({backend})"),
            BackendChoice::Fixed(_) => String::new(),
        };
        super::remote::emit(&format!(
            "removed chain {}{on} ({} bans), its jumps and sets\n",
            config.enforce.chain, n
        ));
    }
    Ok(())
}

/// The configured backend; with `auto`, nftables when it works here, and ipset (whose flush
/// also takes an iptables-backend chain with it) or else iptables: whatever `auto` chose when
/// the daemon started, nothing of ours is left.
fn to_flush(config: &Config) -> Vec<Backend> {
    match config.enforce.backend {
        BackendChoice::Fixed(backend) => vec![backend],
        BackendChoice::Auto => {
            let mut all = Vec::new();
            if probe(Backend::Nftables).is_ok() {
                all.push(Backend::Nftables);
            }
            all.push(match probe(Backend::Ipset) {
                Ok(()) => Backend::Ipset,
                Err(_) => Backend::Iptables,
            });
            all
        }
    }
}
