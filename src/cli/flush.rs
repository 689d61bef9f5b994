//! `autoblock flush`: remove everything autoblock created in the kernel (jumps, chain, sets)
//! and nothing else. Bans are lost: the state file forgets them too (its offense history
//! stays), so the next start does not put them back. Run it after stopping the daemon.

use super::{CliError, CliResult, load_config};
use crate::firewall::Firewall;
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
    let fw = Firewall::open(firewall_options(&config)).map_err(CliError::runtime)?;
    let n = fw.len();
    fw.flush().map_err(CliError::runtime)?;
    super::remote::emit(&format!(
        "removed chain {} ({} bans), its jumps and sets\n",
        config.enforce.chain, n
    ));
    let forgotten = crate::sys::state::forget_bans(&config.state.dir).map_err(CliError::runtime)?;
    if forgotten > 0 {
        super::remote::emit(&format!(
            "forgot {forgotten} saved bans in {}\n",
            config.state.dir.display()
        ));
    }
    Ok(())
}
