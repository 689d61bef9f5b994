//! Loads a blocklist file (an abuse feed) into the firewall in one commit, through
//! `autoblock_firewall` alone, and keeps it in sync: entries loaded earlier with the same reason
//! that are no longer in the file are unblocked in that same commit.
//!
//! ```text
//! blocklist_load --file PATH --chain NAME --backend ipset|iptables [--netns NS]
//!                [--ttl 1d] [--reason feed] [--skip-bad]
//! ```
//!
//! Every listed net is blocked for `--ttl` from now (a ban that already lasts longer is kept),
//! so running it from cron more often than the TTL keeps the list in force. Lines that are not
//! addresses are all reported with their line numbers; without `--skip-bad` the program then
//! exits 2 before touching the kernel. Entries the firewall refuses to block (`0.0.0.0/0`,
//! loopback, ...) are reported one by one and the rest is loaded: one bad line does not sink
//! the feed. Exit status: 0 loaded, 1 firewall error (with the command, its exit status and
//! stderr), 2 bad arguments, unreadable file or bad lines.

mod list;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use autoblock_firewall::{
    Backend, Batch, Firewall, FirewallError, FirewallOptions, IpNet, Refused,
};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Load a blocklist file into the firewall in one commit")]
struct Args {
    /// One address or CIDR per line; `#` comments.
    #[arg(long)]
    file: PathBuf,
    /// Our iptables chain (the ipset backend names its sets after it).
    #[arg(long)]
    chain: String,
    /// How bans are held in the kernel: ipset or iptables.
    #[arg(long, value_parser = |s: &str| s.parse::<Backend>())]
    backend: Backend,
    /// Manage the firewall of this network namespace instead of the host's.
    #[arg(long)]
    netns: Option<String>,
    /// How long each ban lasts from this run: a whole number of s, m, h or d.
    #[arg(long, default_value = "1d", value_parser = ttl)]
    ttl: Duration,
    /// Tags this list's bans (1-128 bytes, no `"`, no control characters; kept verbatim); bans
    /// with this reason that are not in the file are removed.
    #[arg(long, default_value = "feed", value_parser = reason)]
    reason: String,
    /// Skip bad lines (still reported) instead of refusing the whole file.
    #[arg(long)]
    skip_bad: bool,
}

/// `90s`, `10m`, `2h`, `1d`.
fn ttl(s: &str) -> Result<Duration, String> {
    let bad = || format!("expected a duration such as 90s, 10m, 2h or 1d, found `{s}`");
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let n: u64 = n.parse().map_err(|_| bad())?;
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(bad)
}

/// Accepts what the firewall keeps verbatim, so bans can be matched back to this list.
fn reason(s: &str) -> Result<String, String> {
    let ok = (1..=128).contains(&s.len()) && !s.contains('"') && !s.chars().any(char::is_control);
    if ok {
        Ok(s.to_string())
    } else {
        Err("1-128 bytes, no `\"`, no control characters".into())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let parsed = list::parse(&text);
    for (line, why) in &parsed.bad {
        eprintln!("{}:{line}: {why}", args.file.display());
    }
    if !parsed.bad.is_empty() && !args.skip_bad {
        eprintln!(
            "error: {} bad line(s); nothing changed (use --skip-bad to load the rest)",
            parsed.bad.len()
        );
        return ExitCode::from(2);
    }
    match load(&args, &parsed.nets) {
        Ok(report) => {
            for r in &report.refused {
                eprintln!("{}: {r}", args.file.display());
            }
            println!(
                "blocked {} nets ({} new), unblocked {} no longer listed, skipped {} bad lines, {} refused; commit took {:.3} s",
                parsed.nets.len() - report.refused.len(),
                report.new,
                report.removed,
                parsed.bad.len(),
                report.refused.len(),
                report.commit.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// What one load changed.
struct Report {
    new: usize,
    removed: usize,
    refused: Vec<Refused>,
    commit: Duration,
}

/// Opens the firewall, and in one commit blocks every net in `nets` and unblocks the nets
/// carrying our reason that are not in it.
fn load(args: &Args, nets: &BTreeSet<IpNet>) -> Result<Report, FirewallError> {
    // Room for the list twice over (applies when the sets are created).
    let maxelem = u32::try_from(nets.len().saturating_mul(2))
        .unwrap_or(u32::MAX)
        .max(100_000);
    let mut opts = FirewallOptions::new(args.backend, &args.chain).maxelem(maxelem);
    if let Some(ns) = &args.netns {
        opts = opts.netns(ns);
    }
    let fw = Firewall::open(opts)?;
    let ours: BTreeSet<IpNet> = fw
        .list()?
        .into_iter()
        .filter(|b| b.reason == args.reason)
        .map(|b| b.net)
        .collect();
    let mut batch = Batch::new();
    for net in nets {
        batch.block(*net, args.ttl, &args.reason);
    }
    let stale: Vec<&IpNet> = ours.difference(nets).collect();
    for net in &stale {
        batch.unblock(**net);
    }
    let start = Instant::now();
    let refused = fw.commit(batch)?.refused;
    let is_refused = |net: &IpNet| refused.iter().any(|r| r.rule.src == Some(*net));
    Ok(Report {
        new: nets.difference(&ours).filter(|n| !is_refused(n)).count(),
        removed: stale.len(),
        refused,
        commit: start.elapsed(),
    })
}
