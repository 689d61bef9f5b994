//! The `autoblock` binary: parse arguments, run a subcommand, exit with its code.

use clap::Parser;

fn main() {
    let cli = autoblock::cli::Cli::parse();
    std::process::exit(autoblock::cli::run(cli));
}
