//! `autoblock ban`: ban addresses or networks now, from arguments and/or a list file.
//!
//! Everything is checked before anything is sent: one bad line in `--file` means exit 2 and no
//! ban at all. Large lists go in several requests of [`CHUNK`] targets (under the server's line
//! limit). Exit 1 when the daemon refused any target (the others are banned): the error lists
//! every refusal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::remote::{RemoteArgs, emit, human_secs, parse_duration, unexpected};
use super::replay::parse_net;
use super::{CliError, CliResult};
use crate::config::duration::Formatted;
use crate::sys::control::protocol::{BanInfo, Refusal, Request, Response, check_reason, net_text};

/// Targets per request: 10k of the longest IPv6 CIDR text stay well under 1 MiB.
pub const CHUNK: usize = 10_000;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Banning a banned target again never shortens its ban (the longer one is kept, and said so)\n\
unless --replace. A ban longer than [enforce] max_ban is capped, and said so.\n\n\
Example:\n  sudo autoblock ban 203.0.113.7 --for 2h --reason 'abuse report #12'\n  \
sudo autoblock ban --file /etc/autoblock/blocklist.txt --for 1d\n  \
sort -u reported.txt | sudo autoblock ban --file - --reason 'abuse reports'"
)]
pub struct BanArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Addresses or networks to ban
    #[arg(value_name = "IP|CIDR", value_parser = parse_net, required_unless_present = "file")]
    pub targets: Vec<IpNet>,
    /// Ban length, e.g. 90s, 10m, 2h, 1d [default: `[enforce] ban` of the daemon]
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_ban_duration)]
    pub duration: Option<Duration>,
    /// Why: shown by `autoblock list`, kept in the kernel rule's comment, and in events as
    /// `comment` (the ban's rule is `manual`)
    #[arg(long, value_name = "TEXT", value_parser = reason_arg)]
    pub reason: Option<String>,
    /// Ban even allowlisted targets (our own addresses are never banned)
    #[arg(long)]
    pub force: bool,
    /// Set this length even when a target is already banned until later (banning again
    /// otherwise never shortens a ban: the longer one is kept, and said so)
    #[arg(long)]
    pub replace: bool,
    /// Also ban every target in LIST: one address or CIDR per line, `#` starts a comment;
    /// `-` reads standard input
    #[arg(long, value_name = "LIST")]
    pub file: Option<PathBuf>,
}

/// The protocol's bound on reasons, checked before anything is sent (exit 2).
fn reason_arg(text: &str) -> Result<String, String> {
    check_reason(text).map(|()| text.to_owned())
}

/// A ban of at least one second; fractions round up (the protocol counts whole seconds).
fn parse_ban_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err("a ban lasts at least 1s".to_owned());
    }
    Ok(d)
}

/// One bad line of a list file: its 1-based number and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub text: String,
}

/// Reads a list: one address or CIDR per line; blank lines and `#` comments (whole-line or
/// trailing) are skipped. Every bad line is reported.
pub fn parse_list(text: &str) -> Result<Vec<IpNet>, Vec<BadLine>> {
    let mut nets = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        match parse_net(content) {
            Ok(net) => nets.push(net),
            Err(_) => bad.push(BadLine {
                line: i + 1,
                text: content.to_owned(),
            }),
        }
    }
    if bad.is_empty() { Ok(nets) } else { Err(bad) }
}

fn read_list(path: &Path) -> Result<String, std::io::Error> {
    if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
}

/// Bans the targets named on the command line and in `--file`.
pub fn run(args: &BanArgs) -> CliResult {
    let targets = targets(args)?;
    let duration_secs = args
        .duration
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
    let mut applied: Vec<BanInfo> = Vec::new();
    let mut refused: Vec<Refusal> = Vec::new();
    let mut kept: Vec<BanInfo> = Vec::new();
    let mut state_error = None;
    let mut failed = None;
    for chunk in targets.chunks(CHUNK) {
        let req = Request::Ban {
            targets: chunk.to_vec(),
            duration_secs,
            reason: args.reason.clone(),
            force: args.force,
            replace: args.replace,
        };
        match args.remote.call(&req) {
            Ok(Response::Banned {
                applied: a,
                refused: r,
                kept: k,
                state_error: e,
            }) => {
                applied.extend(a);
                refused.extend(r);
                kept.extend(k);
                state_error = state_error.or(e);
            }
            Ok(other) => failed = Some(unexpected(other)),
            Err(e) => failed = Some(e),
        }
        if failed.is_some() {
            break;
        }
    }
    let asked = Asked {
        secs: duration_secs,
        text: args.duration.map(|d| Formatted(d).to_string()),
    };
    report(&applied, &kept, refused.len(), targets.len(), &asked);
    if let Some(why) = state_error
        && !applied.is_empty()
    {
        eprintln!("warning: not persisted: {why}; these bans end at a restart");
    }
    match failed {
        Some(e) => Err(e),
        None if refused.is_empty() => Ok(()),
        None => Err(refusals(&refused, targets.len())),
    }
}

/// The targets from the arguments and `--file`, all checked.
fn targets(args: &BanArgs) -> Result<Vec<IpNet>, CliError> {
    let mut targets = args.targets.clone();
    if let Some(path) = &args.file {
        let name = if path == Path::new("-") {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        let text = read_list(path).map_err(|e| {
            CliError::runtime(anyhow::Error::new(e).context(format!("cannot read {name}")))
        })?;
        match parse_list(&text) {
            Ok(nets) => targets.extend(nets),
            Err(bad) => {
                let n = bad.len();
                let s = if n == 1 { "" } else { "s" };
                let lines: Vec<String> = bad
                    .iter()
                    .map(|b| {
                        format!(
                            "{name}:{}: `{}` is not an IP address or CIDR",
                            b.line, b.text
                        )
                    })
                    .collect();
                return Err(CliError::usage(anyhow::anyhow!(
                    "nothing banned: {n} bad line{s} in {name}\n{}",
                    lines.join("\n")
                )));
            }
        }
    }
    if targets.is_empty() {
        return Err(CliError::usage(anyhow::anyhow!(
            "nothing to ban: the list is empty"
        )));
    }
    Ok(targets)
}

/// The length asked for, to tell a capped ban from the rest.
struct Asked {
    secs: Option<u64>,
    text: Option<String>,
}

/// What was banned (or, in dry run, would have been), what was kept as it was, on stdout;
/// with several targets, a count line too. A ban shorter than asked was capped by
/// `[enforce] max_ban`, and says so.
fn report(applied: &[BanInfo], kept: &[BanInfo], refused: usize, asked: usize, want: &Asked) {
    let mut out = String::new();
    for b in applied {
        let verb = if b.dry_run { "would ban" } else { "banned" };
        out.push_str(&format!(
            "{verb} {} for {} (until {})",
            net_text(&b.target),
            human_secs(b.remaining_secs),
            b.until
        ));
        if let (Some(secs), Some(text)) = (want.secs, &want.text)
            && b.remaining_secs + 1 < secs
        {
            out.push_str(&format!("; capped by [enforce] max_ban: {text} was asked"));
        }
        if b.dry_run {
            out.push_str(" [dry run: nothing enforced]");
        }
        out.push('\n');
    }
    for b in kept {
        out.push_str(&format!(
            "kept {}: already banned until {} by {} ({} left, longer than asked); --replace sets the new length\n",
            net_text(&b.target),
            b.until,
            if b.rule.is_empty() { &b.reason } else { &b.rule },
            human_secs(b.remaining_secs),
        ));
    }
    if asked > 1 {
        out.push_str(&format!(
            "{} banned, {} kept, {refused} refused, of {asked}\n",
            applied.len(),
            kept.len()
        ));
    }
    emit(&out);
}

/// The error listing every refused target and why.
fn refusals(refused: &[Refusal], asked: usize) -> CliError {
    let lines: Vec<String> = refused
        .iter()
        .map(|r| format!("refused {}: {}", net_text(&r.target), r.reason))
        .collect();
    let text = match lines.as_slice() {
        [one] => one.clone(),
        _ => format!(
            "{} of {asked} targets refused\n{}",
            lines.len(),
            lines.join("\n")
        ),
    };
    CliError::runtime(anyhow::anyhow!(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_skips_comments_and_reports_every_bad_line() {
        let text =
            "# blocklist\n203.0.113.7\n\n2001:db8::/64  # a whole net\nnot-an-ip\n  10.0.0.1/33\n";
        assert_eq!(
            parse_list(text),
            Err(vec![
                BadLine {
                    line: 5,
                    text: "not-an-ip".into()
                },
                BadLine {
                    line: 6,
                    text: "10.0.0.1/33".into()
                },
            ])
        );
        let good = "203.0.113.7\r\n2001:db8::1/64 # trailing\n#x\n";
        let nets = parse_list(good).expect("good list");
        assert_eq!(
            nets.iter().map(net_text).collect::<Vec<_>>(),
            ["203.0.113.7", "2001:db8::/64"]
        );
    }
}
