//! Command-line interface: one file per subcommand; `main` parses, sets up logging, dispatches
//! here and prints the one error a subcommand returns ([`CliError`]).

mod attacks;
pub(crate) mod ban;
mod check;
mod error;
pub(crate) mod explain;
pub(crate) mod flush;
pub(crate) mod list;
mod logging;
pub(crate) mod reload;
pub(crate) mod remote;
pub(crate) mod replay;
mod replay_peaks;
mod replay_report;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod top;
pub(crate) mod unban;

use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigError};

use clap::{Parser, Subcommand};

pub use error::{CliError, CliResult, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE};
pub use logging::init_logs;

#[derive(Debug, Parser)]
#[command(
    name = "autoblock",
    version,
    about = "A server under heavy load defends itself in real time",
    after_help = "Exit codes:\n  \
0  success\n  \
1  runtime error (I/O, firewall command, capture, daemon not reachable)\n  \
2  usage or configuration error\n\n\
Example:\n  \
autoblock check --config /etc/autoblock/rules.toml\n  \
sudo systemctl start autoblock && sudo autoblock status\n\n\
Each subcommand has its own --help with examples."
)]
/// The command line: one subcommand.
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: capture, decide and block in real time.
    Run(run::RunArgs),
    /// Validate rules.toml and print a one-line summary per rule.
    Check(CheckArgs),
    /// Replay capture files through the engine and report what would have been blocked.
    Replay(replay::ReplayArgs),
    /// Remove everything autoblock created in the kernel (jumps, chain, sets), nothing else; the
    /// state file forgets its bans (they would come back at the next start).
    Flush(flush::FlushArgs),
    /// Show the running daemon's state: capture, rules, bans, the last reload, errors.
    Status(status::StatusArgs),
    /// Watch the running daemon live: capture, each rule's top sources, bans, events.
    Top(top::TopArgs),
    /// Make the running daemon read its configuration again; wait for the result.
    Reload(reload::ReloadArgs),
    /// List the active bans.
    List(list::ListArgs),
    /// Ban addresses or networks now, by hand or from a list file.
    Ban(ban::BanArgs),
    /// Lift bans now: some, one rule's, or all.
    Unban(unban::UnbanArgs),
    /// Show how an address stands against the allowlist and every rule, and why it is banned.
    Explain(explain::ExplainArgs),
}

/// How a subcommand prints its answer (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people
    Table,
    /// JSON for scripts
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  autoblock check --config /etc/autoblock/rules.toml && \
sudo systemctl reload autoblock"
)]
/// `autoblock check`.
pub struct CheckArgs {
    /// Configuration file [default: ./rules.toml if present, else /etc/autoblock/rules.toml]
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::run(&args),
        Command::Replay(args) => replay::run(args),
        Command::Flush(args) => flush::run(args),
        Command::Status(args) => status::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Reload(args) => reload::run(&args),
        Command::List(args) => list::run(&args),
        Command::Ban(args) => ban::run(&args),
        Command::Unban(args) => unban::run(&args),
        Command::Explain(args) => explain::run(&args),
    }
}

/// Loads and validates the configuration; an invalid, missing or directory path is a usage
/// error (exit 2) listing every problem, an unreadable file a runtime error. Warnings are
/// logged.
pub fn load_config(path: Option<&Path>) -> Result<Config, CliError> {
    let path = path
        .map(Path::to_path_buf)
        .unwrap_or_else(config::default_path);
    match config::load(&path) {
        Ok(config) => {
            for w in &config.warnings {
                tracing::warn!("{w}");
            }
            Ok(config)
        }
        Err(e @ ConfigError::Invalid { .. }) => Err(CliError::usage(anyhow::anyhow!(
            "invalid configuration: {} (see `autoblock check`)\n{e}",
            path.display()
        ))),
        Err(e) if e.is_usage() => Err(CliError::usage(e)),
        Err(e) => Err(CliError::runtime(e)),
    }
}
