//! `autoblock status`: the running daemon's state in a few lines (or its JSON): the last
//! reload and whether it failed, whether state is saved, capture per interface, and per rule
//! its mode, current top value, bans and suppressions; flood attacks in progress with their
//! fingerprint and mitigation.

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
    let chosen = if s.backend_config == "auto" {
        " (auto)"
    } else {
        ""
    };
    let mut out = format!(
        "autoblock {}, pid {}, up {}\n\
         config:            {}\n\
         last reload:       {}\n\
         enforce:           {}{chosen}, chain {}{mode}\n\
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
    if s.untracked_packets > 0 {
        out.push_str(&format!(
            "untracked:         {} packets from sources the full table turned away (limits.max_tracked_sources), {} with a port or address no distinct-value set had room for\n",
            s.untracked_packets.saturating_sub(s.untracked_distinct_packets),
            s.untracked_distinct_packets
        ));
    }
    if let Some(c) = &s.cluster {
        out.push_str(&cluster_lines(c));
    }
    if let Some(why) = &s.state_error {
        out.push_str(&format!("state:             NOT SAVED: {why}\n"));
    }
    if let Some(r) = s.reload.as_ref().filter(|r| !r.ok) {
        for e in &r.errors {
            out.push_str(&format!("  {e}\n"));
        }
    }
    for why in &s.backend_skipped {
        out.push_str(&format!("  auto passed over {why}\n"));
    }
    out.push_str(&interfaces_table(s));
    if !s.rules.is_empty() {
        out.push('\n');
        out.push_str(&rules_table(s));
    }
    out.push_str(&super::attacks::render_attacks(&s.attacks));
    out
}

/// Capture per interface: frames, kernel and interface drops, engine-queue drops.
fn interfaces_table(s: &StatusInfo) -> String {
    if s.interfaces.is_empty() {
        return "no interface captured\n".to_string();
    }
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
    format!(
        "\n{}",
        table(
            &[
                "INTERFACE",
                "PACKETS",
                "KERNEL DROPS",
                "INTERFACE DROPS",
                "QUEUE DROPS",
            ],
            &rows,
        )
    )
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

/// The fleet link: who we are, whether the broker is reachable, what went out and came in.
fn cluster_lines(c: &crate::cluster::ClusterStatus) -> String {
    let state = if c.connected {
        "connected"
    } else {
        "NOT CONNECTED (bans are queued)"
    };
    let mut out = format!(
        "fleet:             {} as node {}, {state}\n\
         fleet sent:        {} published, {} queued, {} dropped, {} stale\n\
         fleet received:    {} applied, {} lag, {} waiting (rate), {} malformed, {} reconnects\n",
        c.fleet,
        c.node,
        c.published,
        c.queued,
        c.dropped,
        c.stale,
        c.received,
        c.pending,
        c.waiting,
        c.malformed,
        c.reconnects,
    );
    if let Some(e) = &c.last_error {
        out.push_str(&format!("fleet last error:  {e}\n"));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterStatus;

    #[test]
    fn the_fleet_link_has_its_lines_only_when_sharing_is_on() {
        let mut s = StatusInfo::default();
        assert!(!render(&s).contains("fleet"));
        s.cluster = Some(Box::new(ClusterStatus {
            fleet: "web".into(),
            node: "web-1".into(),
            published: 12,
            received: 30,
            waiting: 2,
            last_error: Some("2026-11-24T10:00:00.000Z: NATS: disconnected".into()),
            ..ClusterStatus::default()
        }));
        let text = render(&s);
        assert!(
            text.contains(
                "fleet:             web as node web-1, NOT CONNECTED (bans are queued)\n\
                 fleet sent:        12 published, 0 queued, 0 dropped, 0 stale\n\
                 fleet received:    30 applied, 0 lag, 2 waiting (rate), 0 malformed, 0 reconnects\n\
                 fleet last error:  2026-11-24T10:00:00.000Z: NATS: disconnected\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn untracked_packets_have_a_line_only_when_there_are_some() {
        let mut s = StatusInfo::default();
        assert!(!render(&s).contains("untracked"));
        s.untracked_packets = 43;
        s.untracked_distinct_packets = 40;
        let text = render(&s);
        assert!(
            text.contains(
                "untracked:         3 packets from sources the full table turned away \
                 (limits.max_tracked_sources), 40 with a port or address no distinct-value set \
                 had room for\n"
            ),
            "{text}"
        );
    }
}
