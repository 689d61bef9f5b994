//! Generates the packaged documentation from the CLI definition, so it can never drift from
//! `--help`: man pages (`autoblock.1` and `autoblock-<subcommand>.1`, via clap_mangen) and shell
//! completions for bash, zsh and fish (via clap_complete).
//!
//! Run by `make deb` before `cargo deb` (kept out of build.rs so a plain build stays fast):
//!
//! ```text
//! cargo run --example gen-docs -- target/assets
//! ```
//!
//! Layout written under OUTDIR: `man/man1/*.1` (a MANPATH entry), `completions/autoblock.bash`,
//! `completions/_autoblock` (zsh), `completions/autoblock.fish`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: gen-docs OUTDIR");
        return ExitCode::from(2);
    };
    match generate(PathBuf::from(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(out: PathBuf) -> std::io::Result<()> {
    let man = out.join("man").join("man1");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;

    let cmd = autoblock::cli::Cli::command();
    clap_mangen::generate_to(cmd.clone(), &man)?;

    for (shell, file) in [
        (Shell::Bash, "autoblock.bash"),
        (Shell::Zsh, "_autoblock"),
        (Shell::Fish, "autoblock.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "autoblock", &mut buf);
        std::fs::write(completions.join(file), buf)?;
    }
    println!(
        "wrote man pages to {} and completions to {}",
        man.display(),
        completions.display()
    );
    Ok(())
}
