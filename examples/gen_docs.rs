//! Generates the packaged documentation from the sources it describes, so it can never drift:
//! man pages from `autoblock::docs` (autoblock(8) and autoblock-<subcommand>(8) from the CLI
//! definition, with FILES, SIGNALS, EXIT STATUS and EVENTS; autoblock-rules.toml(5) from the
//! config keys) and shell completions for bash, zsh and fish (via clap_complete).
//!
//! Run by `make deb` before `cargo deb` (kept out of build.rs so a plain build stays fast):
//!
//! ```text
//! cargo run --example gen-docs -- target/assets
//! ```
//!
//! Layout written under OUTDIR: `man/man8/*.8`, `man/man5/*.5` (a MANPATH entry),
//! `completions/autoblock.bash`,
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
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)?;
    for (path, text) in autoblock::docs::man_pages() {
        let path = man.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, text)?;
    }

    let cmd = autoblock::cli::Cli::command();

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
