//! `autoblock run`: the live daemon (see `crate::daemon`).

use std::path::PathBuf;

use super::{EXIT_USAGE, load_config};
use crate::daemon::{RunOptions, run as run_daemon};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
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

pub fn run(args: RunArgs) -> i32 {
    init_logs(args.log_format);
    let path = args
        .config
        .clone()
        .unwrap_or_else(crate::config::default_path);
    let config = match load_config(Some(&path)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if args.interfaces.iter().any(|i| i.is_empty()) {
        eprintln!("error: --interface needs a name");
        return EXIT_USAGE;
    }
    match run_daemon(
        RunOptions {
            config_path: path,
            interfaces: args.interfaces,
            dry_run: args.dry_run,
        },
        config,
    ) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUTOBLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
