//! `autoblock ban`: ban addresses or networks now, from arguments and/or a list file.
//!
//! Everything is checked before anything is sent: one bad line in `--file` means exit 2 and no
//! ban at all. Large lists go in several requests of [`CHUNK`] targets (under the server's line
//! limit). Exit 1 when the daemon refused any target (the others are banned).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::remote::{RemoteArgs, emit, human_secs, parse_duration, unexpected};
use super::replay::parse_net;
use super::{EXIT_OK, EXIT_RUNTIME, EXIT_USAGE};
use crate::sys::control::protocol::{BanInfo, Refusal, Request, Response, check_reason, net_text};

/// Targets per request: 10k of the longest IPv6 CIDR text stay well under 1 MiB.
pub const CHUNK: usize = 10_000;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  sudo autoblock ban 203.0.113.7 --for 2h --reason 'abuse report #12'\n  \
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
    /// Why, shown by `autoblock list` and in events
    #[arg(long, value_name = "TEXT", value_parser = reason_arg)]
    pub reason: Option<String>,
    /// Ban even allowlisted targets (our own addresses are never banned)
    #[arg(long)]
    pub force: bool,
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

pub fn run(args: &BanArgs) -> i32 {
    let mut targets = args.targets.clone();
    if let Some(path) = &args.file {
        let name = if path == Path::new("-") {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        let text = match read_list(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read {name}: {e}");
                return EXIT_RUNTIME;
            }
        };
        match parse_list(&text) {
            Ok(nets) => targets.extend(nets),
            Err(bad) => {
                for b in &bad {
                    eprintln!(
                        "{name}:{}: `{}` is not an IP address or CIDR",
                        b.line, b.text
                    );
                }
                let n = bad.len();
                let s = if n == 1 { "" } else { "s" };
                eprintln!("nothing banned: {n} bad line{s} in {name}");
                return EXIT_USAGE;
            }
        }
    }
    if targets.is_empty() {
        eprintln!("nothing to ban: the list is empty");
        return EXIT_USAGE;
    }
    let duration_secs = args
        .duration
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
    let mut applied: Vec<BanInfo> = Vec::new();
    let mut refused: Vec<Refusal> = Vec::new();
    let mut code = EXIT_OK;
    for chunk in targets.chunks(CHUNK) {
        let req = Request::Ban {
            targets: chunk.to_vec(),
            duration_secs,
            reason: args.reason.clone(),
            force: args.force,
        };
        match args.remote.call(&req) {
            Ok(Response::Banned {
                applied: a,
                refused: r,
            }) => {
                applied.extend(a);
                refused.extend(r);
            }
            Ok(other) => {
                code = unexpected(other);
                break;
            }
            Err(c) => {
                code = c;
                break;
            }
        }
    }
    report(&applied, &refused, targets.len());
    if refused.is_empty() {
        code
    } else {
        EXIT_RUNTIME
    }
}

fn report(applied: &[BanInfo], refused: &[Refusal], asked: usize) {
    let mut out = String::new();
    for b in applied {
        out.push_str(&format!(
            "banned {} for {} (until {})\n",
            net_text(&b.target),
            human_secs(b.remaining_secs),
            b.until
        ));
    }
    emit(&out);
    for r in refused {
        eprintln!("refused {}: {}", net_text(&r.target), r.reason);
    }
    if asked > 1 {
        eprintln!(
            "{} banned, {} refused, of {asked}",
            applied.len(),
            refused.len()
        );
    }
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
