//! Command-line interface: one file per subcommand; `main` only parses and dispatches here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: a runtime error (I/O, a capture that could not be read to the end, ...).
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code: bad usage or an invalid configuration.
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "autoblock",
    version,
    about = "A server under heavy load defends itself in real time"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate rules.toml and print a one-line summary per rule.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Configuration file [default: ./rules.toml if present, else /etc/autoblock/rules.toml]
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Check(_args) => EXIT_OK,
    }
}
