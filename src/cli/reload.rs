//! `autoblock reload`: ask the running daemon to read its configuration again and wait for the
//! answer: exit 0 when the new file is in force (with what changed), 2 with every problem when
//! it was refused (the previous configuration keeps running). The unit's `ExecReload`.

use super::remote::{RemoteArgs, emit, unexpected};
use super::{CliError, CliResult};
use crate::sys::control::protocol::{Request, Response};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 applied, 2 refused (the previous configuration keeps running), 1 no answer.\n\n\
Example:\n  sudoedit /etc/autoblock/rules.toml && sudo autoblock reload\n  \
sudo systemctl reload autoblock            # runs `autoblock reload`"
)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Reloads and reports.
pub fn run(args: &ReloadArgs) -> CliResult {
    let info = match args.remote.call(&Request::Reload)? {
        Response::Reloaded(info) => info,
        other => return Err(unexpected(other)),
    };
    if !info.ok {
        let n = info.errors.len();
        return Err(CliError::usage(anyhow::anyhow!(
            "reload refused ({n} problem{}); the previous configuration keeps running\n{}",
            if n == 1 { "" } else { "s" },
            info.errors.join("\n")
        )));
    }
    let mut out = String::from("reloaded");
    if info.changes.is_empty() {
        out.push_str(": nothing changed\n");
    } else {
        out.push_str(&format!(
            ": {} change{}\n",
            info.changes.len(),
            if info.changes.len() == 1 { "" } else { "s" }
        ));
        for c in &info.changes {
            out.push_str(&format!("  {c}\n"));
        }
    }
    emit(&out);
    Ok(())
}
