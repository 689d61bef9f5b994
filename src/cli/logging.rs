//! Logs (tracing) to stderr for every subcommand: text, or JSON for `run --log-format json`;
//! colours only when stderr is a terminal. `AUTOBLOCK_LOG` overrides the level (`info` for the
//! daemon, `warn` for the one-shot commands, which have nothing to chat about).

use std::io::IsTerminal;

use super::run::LogFormat;
use super::{Cli, Command};

/// Sets up logging for the command `cli` runs (once; a second call changes nothing).
pub fn init_logs(cli: &Cli) {
    let (format, level) = match &cli.command {
        Command::Run(args) => (args.log_format, "info"),
        _ => (LogFormat::Text, "warn"),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUTOBLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
