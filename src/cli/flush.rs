//! `autoblock flush`: remove everything autoblock created in the kernel (jumps, chain, sets)
//! and nothing else. Bans are lost; run it after stopping the daemon.

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
    let opened = Firewall::open(firewall_options(&config));
    match opened.and_then(|fw| {
        let n = fw.len();
        fw.flush().map(|()| n)
    }) {
        Ok(n) => {
            println!(
                "removed chain {} ({} bans), its jumps and sets",
                config.enforce.chain, n
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_RUNTIME
        }
    }
}
