//! `autoblock status`: the running daemon's state in a few lines (or its JSON): the last
//! reload and whether it failed, whether state is saved, capture per interface, and per rule
//! its mode, current top value, bans and suppressions.

use super::remote::{RemoteArgs, human_secs, show, table, unexpected};
use super::{CliResult, OutputFormat};
use crate::sys::control::protocol::{Request, Response, StatusInfo, net_text};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  sudo autoblock status\n  \
sudo autoblock status --format json | jq .active_bans")]
pub struct StatusArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Output: aligned text for people, or the status as one JSON document for scripts
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

pub fn run(args: &StatusArgs) -> CliResult {
    match args.remote.call(&Request::Status) {
        Ok(Response::Status(info)) => show(args.format, &info, render),
        Ok(other) => Err(unexpected(other)),
        Err(e) => Err(e),
    }
}

/// The human view: the daemon, the last reload, state, capture per interface, and one line per
/// rule (mode, its leading source's value against the threshold, bans, suppressions).
pub fn render(s: &StatusInfo) -> String {
    let mode = if s.dry_run {
        " (dry run: nothing is enforced)"
    } else {
        ""
    };
    let mut out = format!(
        "autoblock {}, pid {}, up {}\n\
         config:            {}\n\
         last reload:       {}\n\
         enforce:           {}, chain {}{mode}\n\
         tracked sources:   {}\n\
         active bans:       {} ({} since start)\n\
         events suppressed: {}\n\
         events dropped:    {}\n\
         enforcer errors:   {}\n\
         pending decisions: {}\n",
        s.version,
        s.pid,
        human_secs(s.uptime_secs),
        s.config,
        reload_line(s),
        s.backend,
        s.chain,
        s.tracked_sources,
        s.active_bans,
        s.bans_total,
        s.events_suppressed,
        s.events_dropped,
        s.enforcer_errors,
        s.pending_decisions,
    );
    if let Some(why) = &s.state_error {
        out.push_str(&format!("state:             NOT SAVED: {why}\n"));
    }
    if let Some(r) = s.reload.as_ref().filter(|r| !r.ok) {
        for e in &r.errors {
            out.push_str(&format!("  {e}\n"));
        }
    }
    if s.interfaces.is_empty() {
        out.push_str("no interface captured\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .interfaces
            .iter()
            .map(|i| {
                vec![
                    i.name.clone(),
                    i.packets.to_string(),
                    i.kernel_drops.to_string(),
                    i.interface_drops.to_string(),
                    i.queue_drops.to_string(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(
            &[
                "INTERFACE",
                "PACKETS",
                "KERNEL DROPS",
                "INTERFACE DROPS",
                "QUEUE DROPS",
            ],
            &rows,
        ));
    }
    if !s.rules.is_empty() {
        out.push('\n');
        out.push_str(&rules_table(s));
    }
    out
}

/// `2026-11-24T10:00:00.000Z: applied (2 changes)`, `...: FAILED, the previous configuration
/// keeps running (1 error)`, or `never`.
fn reload_line(s: &StatusInfo) -> String {
    let Some(r) = &s.reload else {
        return match &s.last_reload {
            Some(at) => format!("{at}: applied"),
            None => "never".to_owned(),
        };
    };
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let by = if r.by.is_empty() {
        String::new()
    } else {
        format!(" by {}", r.by)
    };
    if r.ok {
        format!(
            "{}: applied{by} ({})",
            r.at,
            plural(r.changes.len(), "change")
        )
    } else {
        format!(
            "{}: FAILED{by}, the previous configuration keeps running ({})",
            r.at,
            plural(r.errors.len(), "error")
        )
    }
}

fn rules_table(s: &StatusInfo) -> String {
    let rows: Vec<Vec<String>> = s
        .rules
        .iter()
        .map(|r| {
            let top = match &r.top_source {
                Some(src) => format!("{} / {} ({})", r.top_value, r.threshold, net_text(src)),
                None => format!("0 / {}", r.threshold),
            };
            vec![
                r.rule.clone(),
                r.mode.clone(),
                r.metric.clone(),
                top,
                r.active_bans.to_string(),
                r.bans.to_string(),
                r.suppressed.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "RULE",
            "MODE",
            "METRIC",
            "TOP NOW / LIMIT",
            "ACTIVE BANS",
            "BANS",
            "SUPPRESSED",
        ],
        &rows,
    )
}
