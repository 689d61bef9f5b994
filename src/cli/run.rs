//! `autoblock run`: the live daemon (see `crate::daemon`).

use std::path::PathBuf;

use super::{CliError, CliResult, load_config};
use crate::daemon::{RunOptions, run as run_daemon};

/// How logs on stderr are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per message
    Text,
    /// One JSON object per message
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Events (JSON lines) go to stdout; logs go to stderr.\n\nExamples:\n  \
autoblock run --dry-run                 # watch what it would block, touch nothing\n  \
autoblock run --interface eth0 | jq 'select(.event==\"block\")'"
)]
pub struct RunArgs {
    /// Configuration file [default: ./rules.toml if present, else /etc/autoblock/rules.toml]
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Capture on this interface (repeatable); overrides [capture] interfaces
    #[arg(long = "interface", short = 'i', value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Log every decision as usual (with "dry_run":true) but never touch the kernel
    #[arg(long)]
    pub dry_run: bool,
    /// Format of the logs on stderr
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Runs the daemon until it is asked to stop.
pub fn run(args: RunArgs) -> CliResult {
    // Before anything else: from here on a SIGHUP or SIGTERM waits for the daemon to be ready.
    let signals = crate::daemon::Signals::install().map_err(CliError::runtime)?;
    let path = args
        .config
        .clone()
        .unwrap_or_else(crate::config::default_path);
    let config = load_config(Some(&path))?;
    if args.interfaces.iter().any(|i| i.is_empty()) {
        return Err(CliError::usage(anyhow::anyhow!("--interface needs a name")));
    }
    let opts = RunOptions {
        config_path: path,
        interfaces: args.interfaces,
        dry_run: args.dry_run,
    };
    run_daemon(opts, config, signals).map_err(|e| {
        let error = CliError::runtime(e);
        if running_as_root() {
            error
        } else {
            error.hint(NOT_ROOT)
        }
    })
}

/// The hint for a daemon that failed without root.
const NOT_ROOT: &str = "(autoblock run needs root, or the capabilities CAP_NET_RAW (capture) and \
CAP_NET_ADMIN (iptables, ipset): run it with sudo, or start the packaged service with \
`sudo systemctl start autoblock`; --dry-run still needs CAP_NET_RAW)";

/// True when the effective user is root: `/proc/self` belongs to it (no libc call needed).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
