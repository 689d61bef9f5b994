//! `autoblock replay`: run the engine over capture files on capture time and report what would
//! have been blocked, as a table (default) or as JSON event lines.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use ipnet::IpNet;

use super::remote::table;
use super::{CliError, CliResult, OutputFormat, load_config};
use crate::config::Metric;
use crate::config::{self, Config};
use crate::event::{PeaksFields, TalkerFields, decision_json};
use crate::replay::{ReplayOptions, ReplayReport, replay_file};
use crate::sys::capture::CaptureError;

/// Files larger than this show progress on a terminal.
const PROGRESS_BYTES: u64 = 64 << 20;
/// Top talkers listed in the table.
const TOP_TALKERS: usize = 10;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Frames are read through [capture] bpf_filter, as live. The table lists each \
offender (OBSERVED: the window value when it was blocked, as the event's `observed`; PEAK: the \
highest while it fired or was banned; `121+`: a distinct count stops at 2x threshold + 1), then \
per rule the highest value any source reached and its share of the threshold (JSON: a `peaks` \
event after each file), flood attacks, a line when the sources look spoofed, top talkers.\n\n\
Example:\n  tcpdump -i eth0 -w /tmp/today.pcap -c 1000000\n  \
autoblock replay --local 203.0.113.10 /tmp/today.pcap\n  \
autoblock replay --format json /tmp/today.pcap | jq 'select(.event==\"block\")'\n  \
autoblock replay --format json /tmp/today.pcap | jq -c 'select(.event==\"peaks\").rules[]'\n  \
autoblock replay --report /tmp/today.html /tmp/today.pcap"
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
    pub format: OutputFormat,
    /// Also draw, per rule, the values of its top sources over capture time against the
    /// threshold, bans and flood attacks marked: FILE.html (a page with the peaks and the
    /// charts) or FILE.svg; self-contained, opens in any browser (each capture is read twice)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Capture files (pcap or pcapng; the format is read from the bytes); `-` reads standard
    /// input (`tcpdump -w - | autoblock replay -`)
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

/// Replays every file; a file that cannot be opened or read to the end is reported (exit 1)
/// after the others were replayed.
pub fn run(args: ReplayArgs) -> CliResult {
    let config = load_config(args.config.as_deref())?;
    let report_kind = args
        .report
        .as_deref()
        .map(|r| super::replay_report::kind_of(r, &args.files))
        .transpose()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failures = Vec::new();
    let mut drawn = Vec::new();
    for path in &args.files {
        if let Some(failure) = replay_one(&config, &args, path, &mut out, &mut drawn)? {
            failures.push(failure);
        }
    }
    if let (Some(path), Some(kind)) = (&args.report, report_kind) {
        super::replay_report::write(path, kind, &drawn)?;
    }
    let text = match failures.as_slice() {
        [] => return Ok(()),
        [one] => one.clone(),
        many => format!(
            "{} of {} files failed\n{}",
            many.len(),
            args.files.len(),
            many.join("\n")
        ),
    };
    Err(CliError::runtime(anyhow::anyhow!(text)))
}

/// Replays one file into `out`. `Ok(Some(why))` when the file could not be opened or read to
/// the end; `Err` when stdout failed (e.g. `| head` closed it): then the run stops.
fn replay_one(
    config: &Config,
    args: &ReplayArgs,
    path: &std::path::Path,
    out: &mut impl Write,
    drawn: &mut Vec<crate::replay_report::FileReport>,
) -> Result<Option<String>, CliError> {
    let big = std::fs::metadata(path).is_ok_and(|m| m.len() >= PROGRESS_BYTES);
    let opts = ReplayOptions {
        local: args.local.clone(),
        progress: big && std::io::stderr().is_terminal(),
        trace: None,
        peak_sources: if args.report.is_some() {
            crate::engine::peaks::TOP
        } else {
            1
        },
    };
    let json = args.format == OutputFormat::Json;
    let mut write_err = None;
    let mut on_decision = |d: &crate::engine::Decision| {
        if json
            && let Some(line) = decision_json(d, false)
            && let Err(e) = writeln!(out, "{line}")
        {
            write_err.get_or_insert(e);
        }
    };
    let mut report = match replay_file(config, path, &opts, &mut on_decision) {
        Ok(r) => r,
        Err(e @ CaptureError::Filter { .. }) => return Err(filter_error(args, &e)),
        Err(e) => return not_replayed(path, &e, json, out),
    };
    report.summary.peak_rss_bytes = crate::sys::proc::peak_rss_bytes();
    report.summary.top_talkers = report
        .talkers
        .iter()
        .take(TOP_TALKERS)
        .map(|t| TalkerFields {
            ip: t.addr.to_string(),
            // A lower bound when the talker was not exact (see the README).
            packets: t.packets - t.err,
            bytes: t.bytes,
        })
        .collect();
    let stdout_failed =
        |e: std::io::Error| CliError::runtime(anyhow::Error::new(e).context("writing to stdout"));
    if let Some(e) = write_err {
        return Err(stdout_failed(e));
    }
    let failure = (!report.summary.complete).then(|| {
        report
            .summary
            .error
            .clone()
            .unwrap_or_else(|| "capture incomplete".to_string())
    });
    let written = if json {
        let peaks = PeaksFields::new(report.summary.file.clone(), &report.peaks);
        writeln!(out, "{}", peaks.json(report.summary.ts))
            .and_then(|_| writeln!(out, "{}", report.summary.json()))
    } else {
        write_table(out, &report, !config.floods.is_empty())
    };
    written.and_then(|_| out.flush()).map_err(stdout_failed)?;
    if args.report.is_some() {
        drawn.push(super::replay_report::trace_file(
            config,
            path,
            &args.local,
            &report,
        )?);
    }
    Ok(failure)
}

/// A file that could not be opened: still a summary (JSON) or a line (table), so it is never
/// silently absent; `Ok(Some(why))`, or `Err` when stdout failed.
fn not_replayed(
    path: &std::path::Path,
    e: &CaptureError,
    json: bool,
    out: &mut impl Write,
) -> Result<Option<String>, CliError> {
    let why = e.to_string();
    let mut summary = crate::event::Summary::new(path.display().to_string(), Default::default());
    summary.complete = false;
    summary.error = Some(why.clone());
    let written = if json {
        writeln!(out, "{}", summary.json())
    } else {
        writeln!(out, "{}: not replayed: {why}\n", path.display())
    };
    written
        .and_then(|_| out.flush())
        .map_err(|e| CliError::runtime(anyhow::Error::new(e).context("writing to stdout")))?;
    Ok(Some(why))
}

/// `[capture] bpf_filter` does not compile for a file: a configuration error (exit 2) that
/// names the file, line, column and key, as `check` does.
fn filter_error(args: &ReplayArgs, e: &CaptureError) -> CliError {
    let path = args.config.clone().unwrap_or_else(config::default_path);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let problem = config::Problem {
        file: path.display().to_string(),
        position: config::locate(&text, "capture", "bpf_filter"),
        key: "capture.bpf_filter".into(),
        message: e.to_string(),
    };
    CliError::usage(anyhow::anyhow!("{problem}"))
}

fn write_table(
    out: &mut impl Write,
    r: &ReplayReport,
    flood_detectors: bool,
) -> std::io::Result<()> {
    let s = &r.summary;
    writeln!(
        out,
        "{}: {} ({} parsed, {} unparsed), {}{}, {} blocked{}",
        s.file,
        count(s.packets, "packet"),
        s.parsed,
        s.unparsed,
        if s.sources_estimated { "~" } else { "" },
        count(s.sources, "source"),
        s.blocked,
        if s.complete { "" } else { ", INCOMPLETE" }
    )?;
    write_notes(out, s)?;
    if r.offenders.is_empty() {
        writeln!(out, "  nothing would be blocked")?;
    } else {
        write!(out, "{}", indent(&offenders_table(&r.offenders)))?;
        writeln!(
            out,
            "  (OBSERVED: the rule's window value when it first blocked, the event's `observed`; PEAK: the highest while it fired or was banned; `+`: a distinct count stops at 2×threshold+1)"
        )?;
    }
    super::replay_peaks::write_peaks(out, &r.peaks)?;
    if flood_detectors {
        super::attacks::write_replay(out, &r.attacks, r.flood_untracked)?;
    }
    if !r.talkers.is_empty() {
        let shown = r.talkers.len().min(TOP_TALKERS);
        writeln!(
            out,
            "  top talkers (the {shown} source{} that sent the most packets, of {}{}):",
            if shown == 1 { "" } else { "s" },
            if s.sources_estimated { "~" } else { "" },
            s.sources
        )?;
        let rows: Vec<Vec<String>> = r
            .talkers
            .iter()
            .take(TOP_TALKERS)
            .map(|t| {
                vec![
                    t.addr.to_string(),
                    at_least(t.packets - t.err, t.err > 0),
                    t.bytes.to_string(),
                    t.first.to_string(),
                    t.last.to_string(),
                ]
            })
            .collect();
        let text = table(
            &["SOURCE", "PACKETS", "BYTES", "FIRST SEEN", "LAST SEEN"],
            &rows,
        );
        write!(out, "{}", indent(&indent(&text)))?;
    }
    writeln!(out)
}

/// What was read but not counted, and the filter applied.
fn write_notes(out: &mut impl Write, s: &crate::event::Summary) -> std::io::Result<()> {
    if let Some(spoofed) = &s.spoofed {
        writeln!(out, "  {}", spoofed.line())?;
    }
    if let Some(filter) = &s.bpf_filter {
        writeln!(
            out,
            "  capture.bpf_filter `{filter}` applied: only the frames it matches were read, as live"
        )?;
    }
    if s.local_packets > 0 {
        writeln!(
            out,
            "  {} from local addresses {} not counted",
            count(s.local_packets, "packet"),
            if s.local_packets == 1 { "was" } else { "were" }
        )?;
    }
    let beyond = s
        .untracked_packets
        .saturating_sub(s.untracked_distinct_packets);
    if beyond > 0 {
        writeln!(
            out,
            "  {} from sources beyond limits.max_tracked_sources {} not tracked",
            count(beyond, "packet"),
            if beyond == 1 { "was" } else { "were" }
        )?;
    }
    if s.untracked_distinct_packets > 0 {
        writeln!(
            out,
            "  {} had a destination port or address that a dst_ports/dst_addrs window could not store: the pool of distinct-value sets (one word per limits.max_tracked_sources, 8 MB at least) was spent, so those windows' counts may be low",
            count(s.untracked_distinct_packets, "packet"),
        )?;
    }
    Ok(())
}

/// The offenders, in columns as wide as their widest cell (long IPv6 prefixes included).
fn offenders_table(offenders: &[crate::replay::Offender]) -> String {
    let rows: Vec<Vec<String>> = offenders
        .iter()
        .map(|o| {
            vec![
                match o.suppressed {
                    None => "block".to_string(),
                    Some(reason) => format!("skip:{reason}"),
                },
                o.key.to_string(),
                o.rule.to_string(),
                o.metric.map_or("manual", Metric::as_str).to_string(),
                o.observed.to_string(),
                crate::engine::peaks::peak_text(
                    o.peak,
                    o.metric
                        .and_then(|m| crate::engine::peaks::value_cap(m, o.threshold))
                        .is_some_and(|cap| o.peak >= cap),
                ),
                o.threshold.to_string(),
                o.first_seen.to_string(),
                o.last_seen.to_string(),
                at_least(o.packets, o.approx),
            ]
        })
        .collect();
    table(
        &[
            "ACTION",
            "TARGET",
            "RULE",
            "METRIC",
            "OBSERVED",
            "PEAK",
            "THRESHOLD",
            "FIRST SEEN",
            "LAST SEEN",
            "PACKETS",
        ],
        &rows,
    )
}

/// `1 packet`, `2 packets`.
fn count(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Every line two spaces in.
fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// `N`, or `>=N` when only a lower bound is known (the report's summary is bounded).
fn at_least(n: u64, lower_bound: bool) -> String {
    if lower_bound {
        format!(">={n}")
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Summary;
    use crate::time::Timestamp;

    fn notes(s: &Summary) -> String {
        let mut out = Vec::new();
        write_notes(&mut out, s).expect("writes to a vector");
        String::from_utf8(out).expect("text")
    }

    #[test]
    fn untracked_packets_are_told_apart_by_what_ran_out() {
        let mut s = Summary::new("f.pcap".into(), Timestamp(0));
        assert!(!notes(&s).contains("not tracked"));
        s.untracked_packets = 7;
        s.untracked_distinct_packets = 5;
        let text = notes(&s);
        assert!(
            text.contains(
                "2 packets from sources beyond limits.max_tracked_sources were not tracked"
            ),
            "{text}"
        );
        assert!(
            text.contains("5 packets had a destination port or address that a dst_ports/dst_addrs window could not store"),
            "{text}"
        );
        s.untracked_packets = 5;
        let text = notes(&s);
        assert!(
            !text.contains("beyond limits"),
            "the pool alone ran out: {text}"
        );
    }
}
