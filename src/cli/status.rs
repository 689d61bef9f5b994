//! `autoblock status`: the running daemon's state in a few lines (or its JSON).

use super::remote::{Format, RemoteArgs, human_secs, show, table, unexpected};
use crate::sys::control::protocol::{Request, Response, StatusInfo};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  sudo autoblock status\n  \
sudo autoblock status --format json | jq .active_bans")]
pub struct StatusArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub fn run(args: &StatusArgs) -> i32 {
    match args.remote.call(&Request::Status) {
        Ok(Response::Status(info)) => show(args.format, &info, render),
        Ok(other) => unexpected(other),
        Err(code) => code,
    }
}

/// The human view.
pub fn render(s: &StatusInfo) -> String {
    let mode = if s.dry_run {
        " (dry run: nothing is enforced)"
    } else {
        ""
    };
    let mut out = format!(
        "autoblock {}, pid {}, up {}\n\
         config:            {} (last reload: {})\n\
         enforce:           {}, chain {}{mode}\n\
         tracked sources:   {}\n\
         active bans:       {} ({} since start)\n\
         events suppressed: {}\n\
         enforcer errors:   {}\n\
         pending decisions: {}\n",
        s.version,
        s.pid,
        human_secs(s.uptime_secs),
        s.config,
        s.last_reload.as_deref().unwrap_or("never"),
        s.backend,
        s.chain,
        s.tracked_sources,
        s.active_bans,
        s.bans_total,
        s.events_suppressed,
        s.enforcer_errors,
        s.pending_decisions,
    );
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
    out
}
