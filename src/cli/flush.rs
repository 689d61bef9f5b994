//! `autoblock flush`: remove everything autoblock created in the kernel (jumps, chain, sets)
//! and nothing else, and say what was there. Bans are lost; run it after stopping the daemon.
//! A table it cannot read, or anything of ours left afterwards, is an error (exit 1).

use super::{EXIT_OK, EXIT_RUNTIME, load_config};
use crate::firewall::Firewall;
use crate::sys::enforcer::firewall_options;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  systemctl stop autoblock && autoblock flush")]
pub struct FlushArgs {
    /// Configuration file (names the backend, chain and hooks to remove)
    #[arg(long, short)]
    pub config: Option<std::path::PathBuf>,
}

pub fn run(args: FlushArgs) -> i32 {
    let config = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Removes what is there without opening (which would create what is missing first).
    match Firewall::remove(firewall_options(&config)) {
        Ok(flushed) => {
            println!("chain {}: {flushed}", config.enforce.chain);
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_RUNTIME
        }
    }
}
