//! `autoblock list`: the active bans, soonest to expire first, as a table or JSON.

use super::remote::{RemoteArgs, human_secs, show, table, unexpected};
use super::{CliResult, OutputFormat};
use crate::sys::control::protocol::{BanInfo, Request, Response, net_text};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  sudo autoblock list\n  \
sudo autoblock list --format json | jq -r '.[] | select(.manual) | .target'")]
pub struct ListArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

pub fn run(args: &ListArgs) -> CliResult {
    match args.remote.call(&Request::List) {
        Ok(Response::List(mut bans)) => {
            bans.sort_by_key(|b| b.remaining_secs);
            show(args.format, &bans, |b| render(b))
        }
        Ok(other) => Err(unexpected(other)),
        Err(e) => Err(e),
    }
}

/// The human view: one row per ban, or a line saying there is none.
pub fn render(bans: &[BanInfo]) -> String {
    if bans.is_empty() {
        return "no active bans\n".to_owned();
    }
    let rows: Vec<Vec<String>> = bans.iter().map(row).collect();
    let mut out = table(
        &["TARGET", "REASON", "LEFT", "UNTIL", "OFFENSE", "BY"],
        &rows,
    );
    let n = bans.len();
    out.push_str(&format!(
        "{n} active ban{}\n",
        if n == 1 { "" } else { "s" }
    ));
    out
}

fn row(b: &BanInfo) -> Vec<String> {
    vec![
        net_text(&b.target),
        b.reason.clone(),
        human_secs(b.remaining_secs),
        b.until.clone(),
        b.offense.to_string(),
        if b.manual { "manual" } else { "rule" }.to_owned(),
    ]
}
