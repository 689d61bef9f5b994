//! `autoblock replay`: run the engine over capture files on capture time and report what would
//! have been blocked, as a table (default) or as JSON event lines.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use ipnet::IpNet;

use super::{EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, load_config};
use crate::config::Metric;
use crate::event::decision_json;
use crate::replay::{ReplayOptions, ReplayReport, replay_file};

/// Files larger than this show progress on a terminal.
const PROGRESS_BYTES: u64 = 64 << 20;
/// Top talkers listed in the table.
const TOP_TALKERS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  tcpdump -i eth0 -w /tmp/today.pcap -c 1000000\n  \
autoblock replay --local 203.0.113.10 /tmp/today.pcap\n  \
autoblock replay --format json /tmp/today.pcap | jq 'select(.event==\"block\")'"
)]
pub struct ReplayArgs {
    /// Configuration file [default: ./rules.toml if present, else /etc/autoblock/rules.toml]
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Our own address or network (repeatable): traffic from it is never counted or blocked
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub local: Vec<IpNet>,
    /// Output: a human table, or one JSON event per line (then a summary event per file)
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Capture files (pcap or pcapng; the format is read from the bytes)
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// A CIDR, or a plain address meaning /32 or /128.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<std::net::IpAddr>().map(IpNet::from).map_err(|_| {
        format!("`{s}` is not an IP address or CIDR (e.g. 203.0.113.7 or 2001:db8::/64)")
    })
}

pub fn run(args: ReplayArgs) -> i32 {
    let config = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut code = EXIT_OK;
    for path in &args.files {
        let big = std::fs::metadata(path).is_ok_and(|m| m.len() >= PROGRESS_BYTES);
        let opts = ReplayOptions {
            local: args.local.clone(),
            progress: big && std::io::stderr().is_terminal(),
        };
        let json = args.format == Format::Json;
        let mut write_err = None;
        let mut on_decision = |d: &crate::engine::Decision| {
            if json && let Err(e) = writeln!(out, "{}", decision_json(d, false)) {
                write_err.get_or_insert(e);
            }
        };
        let report = match replay_file(&config, path, &opts, &mut on_decision) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                code = EXIT_RUNTIME;
                continue;
            }
        };
        let mut report = report;
        report.summary.peak_rss_bytes = crate::sys::proc::peak_rss_bytes();
        if let Some(e) = write_err {
            // stdout closed (e.g. `| head`): stop quietly with an error code.
            eprintln!("error: writing to stdout: {e}");
            return EXIT_RUNTIME;
        }
        if !report.summary.complete {
            eprintln!(
                "error: {}",
                report
                    .summary
                    .error
                    .as_deref()
                    .unwrap_or("capture incomplete")
            );
            code = EXIT_RUNTIME;
        }
        let written = if json {
            writeln!(out, "{}", report.summary.json())
        } else {
            write_table(&mut out, &report)
        };
        if let Err(e) = written.and_then(|_| out.flush()) {
            eprintln!("error: writing to stdout: {e}");
            return EXIT_RUNTIME;
        }
    }
    let _ = EXIT_USAGE;
    code
}

fn write_table(out: &mut impl Write, r: &ReplayReport) -> std::io::Result<()> {
    let s = &r.summary;
    writeln!(
        out,
        "{}: {} packets ({} parsed, {} unparsed), {}{} sources, {} blocked{}",
        s.file,
        s.packets,
        s.parsed,
        s.unparsed,
        if s.sources_estimated { "~" } else { "" },
        s.sources,
        s.blocked,
        if s.complete { "" } else { ", INCOMPLETE" }
    )?;
    if s.local_packets > 0 {
        writeln!(
            out,
            "  {} packets from local addresses were not counted",
            s.local_packets
        )?;
    }
    if s.untracked_packets > 0 {
        writeln!(
            out,
            "  {} packets from sources beyond limits.max_tracked_sources were not tracked",
            s.untracked_packets
        )?;
    }
    if r.offenders.is_empty() {
        writeln!(out, "  nothing would be blocked")?;
    } else {
        writeln!(
            out,
            "  {:<11} {:<26} {:<14} {:<9} {:>9} {:>9}  {:<24} {:<24} {:>9}",
            "ACTION",
            "TARGET",
            "RULE",
            "METRIC",
            "OBSERVED",
            "THRESHOLD",
            "FIRST SEEN",
            "LAST SEEN",
            "PACKETS"
        )?;
        for o in &r.offenders {
            let action = match o.suppressed {
                None => "block".to_string(),
                Some(reason) => format!("skip:{reason}"),
            };
            writeln!(
                out,
                "  {:<11} {:<26} {:<14} {:<9} {:>9} {:>9}  {:<24} {:<24} {:>9}",
                action,
                o.key.to_string(),
                o.rule,
                o.metric.map_or("manual", Metric::as_str),
                o.observed,
                o.threshold,
                o.first_seen.to_string(),
                o.last_seen.to_string(),
                at_least(o.packets, o.approx)
            )?;
        }
    }
    writeln!(out, "  top talkers:")?;
    for t in r.talkers.iter().take(TOP_TALKERS) {
        writeln!(
            out,
            "    {:<40} {:>10} packets {:>12} bytes  {} .. {}",
            t.addr.to_string(),
            at_least(t.packets - t.err, t.err > 0),
            t.bytes,
            t.first,
            t.last
        )?;
    }
    writeln!(out)
}

/// `N`, or `>=N` when only a lower bound is known (the report's summary is bounded).
fn at_least(n: u64, lower_bound: bool) -> String {
    if lower_bound {
        format!(">={n}")
    } else {
        n.to_string()
    }
}
