//! The `autoblock` binary: parse arguments, set up logging, run a subcommand, print its one
//! error (with its causes) and exit with its code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = autoblock::cli::Cli::parse();
    autoblock::cli::init_logs(&cli);
    match autoblock::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(u8::try_from(e.code()).unwrap_or(1))
        }
    }
}
