//! Loads a blocklist file (an abuse feed) into the firewall in one commit, through
//! `autoblock::firewall`, and keeps it in sync: entries loaded earlier with the same reason that
//! are no longer in the file are unblocked in that same commit.
//!
//! ```text
//! blocklist_load --file PATH --chain NAME --backend ipset|iptables [--netns NS]
//!                [--ttl 1d] [--reason feed] [--skip-bad]
//! ```
//!
//! Every listed net is (re)blocked for `--ttl` from now, so running it from cron more often
//! than the TTL keeps the list in force. Bad lines are all reported with their line numbers;
//! without `--skip-bad` the program then exits 2 before touching the kernel. Exit status: 0
//! loaded, 1 firewall error (with the command, its exit status and stderr), 2 bad arguments,
//! unreadable file or bad lines.

mod list;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use autoblock::config::duration;
use autoblock::firewall::{Backend, Firewall, FirewallError, FirewallOptions, IpNet};
use clap::{Parser, ValueEnum};

#[derive(Debug, Parser)]
#[command(about = "Load a blocklist file into the firewall in one commit")]
struct Args {
    /// One address or CIDR per line; `#` comments.
    #[arg(long)]
    file: PathBuf,
    /// Our iptables chain (the ipset backend names its sets after it).
    #[arg(long)]
    chain: String,
    /// How bans are held in the kernel.
    #[arg(long, value_enum)]
    backend: BackendArg,
    /// Manage the firewall of this network namespace instead of the host's.
    #[arg(long)]
    netns: Option<String>,
    /// How long each ban lasts from this run.
    #[arg(long, default_value = "1d", value_parser = duration::parse)]
    ttl: Duration,
    /// Tags this list's bans (1-64 of `[A-Za-z0-9_.:-]`); bans with this reason that are not in
    /// the file are removed.
    #[arg(long, default_value = "feed", value_parser = reason)]
    reason: String,
    /// Skip bad lines (still reported) instead of refusing the whole file.
    #[arg(long)]
    skip_bad: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    Ipset,
    Iptables,
}

/// Accepts only reasons the library keeps unchanged, so bans can be matched back to this list.
fn reason(s: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err("1-64 characters of [A-Za-z0-9_.:-]".into())
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
            println!(
                "blocked {} nets ({} new), unblocked {} no longer listed, skipped {} bad lines; commit took {:.3} s",
                parsed.nets.len(),
                report.new,
                report.removed,
                parsed.bad.len(),
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
    commit: Duration,
}

/// Opens the firewall, and in one commit blocks every net in `nets` and unblocks the nets
/// carrying our reason that are not in it.
fn load(args: &Args, nets: &BTreeSet<IpNet>) -> Result<Report, FirewallError> {
    let backend = match args.backend {
        BackendArg::Ipset => Backend::Ipset,
        BackendArg::Iptables => Backend::Iptables,
    };
    // Room for the list twice over (applies when the sets are created).
    let maxelem = u32::try_from(nets.len().saturating_mul(2))
        .unwrap_or(u32::MAX)
        .max(100_000);
    let mut opts = FirewallOptions::new(backend, &args.chain).maxelem(maxelem);
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
    let mut batch = fw.batch();
    for net in nets {
        batch.block(*net, args.ttl, &args.reason);
    }
    let stale: Vec<&IpNet> = ours.difference(nets).collect();
    for net in &stale {
        batch.unblock(**net);
    }
    let start = Instant::now();
    batch.commit()?;
    Ok(Report {
        new: nets.difference(&ours).count(),
        removed: stale.len(),
        commit: start.elapsed(),
    })
}
