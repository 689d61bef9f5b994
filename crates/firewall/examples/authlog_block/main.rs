//! Blocks addresses that fail sshd logins too often, from the auth log, through
//! `autoblock_firewall` alone (the library, without autoblock's packet detector).
//!
//! ```text
//! authlog_block --log /var/log/auth.log --chain SSHGUARD --backend ipset|iptables
//!               [--netns NS] [--failures 5] [--window 60s] [--ban 10m] [--poll 1s] [--once|--follow]
//! ```
//!
//! `--follow` (the default) starts at the end of the log, like `tail -F`, and keeps reading
//! appended lines; it reopens the file when it is truncated or rotated. `--once` reads the whole
//! file once and exits. An address is blocked on its `--failures`-th failed login within
//! `--window`.
//!
//! Clock: a failure is counted at the time its line is *read*, not at the time the log line
//! states (syslog stamps have no year or zone). In follow mode the two differ by at most one
//! poll interval; `--once` treats the whole file as arriving now, so use it on fresh logs.
//!
//! Changes go to the kernel in one batch per read cycle, not per line. With the iptables
//! backend the example also expires bans itself each cycle (`expire_due`); ipset bans end in
//! the kernel. An address the library refuses (loopback, a protected net...) is reported and
//! skipped. Exit status: 0 done, 1 firewall error (the message has the command, its exit status
//! and stderr), 2 bad arguments or unreadable log.

mod duration;
mod sshd;
mod tail;
mod window;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use autoblock_firewall::{Backend, Batch, Firewall, FirewallError, FirewallOptions};
use clap::Parser;

use tail::Tail;
use window::Failures;

/// The reason recorded with every ban this example sets.
const REASON: &str = "sshd-failures";

#[derive(Debug, Parser)]
#[command(about = "Block addresses with too many failed sshd logins, from the auth log")]
struct Args {
    /// The sshd log to read (e.g. /var/log/auth.log).
    #[arg(long)]
    log: PathBuf,
    /// Our iptables chain (the ipset backend names its sets after it).
    #[arg(long)]
    chain: String,
    /// How bans are held in the kernel: ipset or iptables.
    #[arg(long, value_parser = |s: &str| s.parse::<Backend>())]
    backend: Backend,
    /// Manage the firewall of this network namespace instead of the host's.
    #[arg(long)]
    netns: Option<String>,
    /// Block on this many failures within the window.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    failures: u32,
    /// The sliding window failures are counted in.
    #[arg(long, default_value = "60s", value_parser = duration::parse)]
    window: Duration,
    /// How long a ban lasts.
    #[arg(long, default_value = "10m", value_parser = duration::parse)]
    ban: Duration,
    /// How often follow mode looks for new lines.
    #[arg(long, default_value = "1s", value_parser = duration::parse)]
    poll: Duration,
    /// Read the whole file once, then exit.
    #[arg(long, conflicts_with = "follow")]
    once: bool,
    /// Keep reading lines appended to the log (the default).
    #[arg(long)]
    follow: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut tail = match Tail::open(&args.log, !args.once) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.log.display());
            return ExitCode::from(2);
        }
    };
    let mut opts = FirewallOptions::new(args.backend, &args.chain);
    if let Some(ns) = &args.netns {
        opts = opts.netns(ns);
    }
    let fw = match Firewall::open(opts) {
        Ok(fw) => fw,
        Err(e) => return firewall_failed(&e),
    };
    if !args.once {
        println!("following {}", args.log.display());
    }
    let mut failures = Failures::new(args.failures as usize, args.window);
    loop {
        let mut lines = match tail.read_new() {
            Ok(lines) => lines,
            Err(e) => {
                eprintln!("error: reading {}: {e}", args.log.display());
                return ExitCode::from(2);
            }
        };
        if args.once {
            lines.extend(tail.take_partial());
        }
        if let Err(e) = cycle(&fw, &args, &mut failures, &lines) {
            return firewall_failed(&e);
        }
        if args.once {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(args.poll.max(Duration::from_millis(10)));
    }
}

/// One read cycle: count the failures in `lines`, block every address that reached the limit
/// in one commit, and (iptables) remove expired bans.
fn cycle(
    fw: &Firewall,
    args: &Args,
    failures: &mut Failures,
    lines: &[String],
) -> Result<(), FirewallError> {
    let now = Instant::now();
    let mut batch = Batch::new();
    let mut blocked = Vec::new();
    for addr in lines.iter().filter_map(|l| sshd::failed_login(l)) {
        if failures.record(addr, now) {
            batch.block(addr, args.ban, REASON);
            blocked.push(addr);
        }
    }
    if !batch.is_empty() {
        let refused = fw.commit(batch)?.refused;
        for r in &refused {
            eprintln!("{r}");
        }
        let was_refused = |addr: &std::net::IpAddr| {
            refused
                .iter()
                .any(|r| r.rule == autoblock_firewall::Rule::from(*addr))
        };
        for addr in blocked.into_iter().filter(|a| !was_refused(a)) {
            println!(
                "blocked {addr} for {} ({} failures within {})",
                duration::format(args.ban),
                args.failures,
                duration::format(args.window)
            );
        }
    }
    failures.prune(now);
    for ban in fw.expire_due(SystemTime::now())?.bans {
        let net = ban.net;
        if net.prefix_len() == net.max_prefix_len() {
            println!("unblocked {} (expired; {})", net.addr(), ban.reason);
        } else {
            println!("unblocked {net} (expired; {})", ban.reason);
        }
    }
    Ok(())
}

fn firewall_failed(e: &FirewallError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}
