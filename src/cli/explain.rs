//! `autoblock explain`: how one address stands: allowlist, local, exempt rules, every rule's
//! current window against its threshold, its ban (its own or a prefix ban around it, by the
//! rule that set its end time) and its rule offenses; as a protected address, the flood
//! detectors' windows toward it and the attacks on it with their mitigation.

use std::net::IpAddr;

use super::remote::{RemoteArgs, human_secs, show, table, unexpected};
use super::{CliResult, OutputFormat};
use crate::config::duration::Formatted;
use crate::sys::control::protocol::{Explanation, Request, Response, net_text};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  sudo autoblock explain 203.0.113.7\n  \
sudo autoblock explain 2001:db8::7 --format json | jq .rules")]
pub struct ExplainArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// The address to explain
    #[arg(value_name = "IP", value_parser = parse_addr)]
    pub addr: IpAddr,
    /// Output: aligned text for people, or the explanation as one JSON document for scripts
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

fn parse_addr(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an IP address (e.g. 203.0.113.7 or 2001:db8::1)"))
}

pub fn run(args: &ExplainArgs) -> CliResult {
    match args.remote.call(&Request::Explain { addr: args.addr }) {
        Ok(Response::Explain(x)) => show(args.format, &x, render),
        Ok(other) => Err(unexpected(other)),
        Err(e) => Err(e),
    }
}

/// The human view.
pub fn render(x: &Explanation) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let allow = match (x.allowlisted, &x.allowlisted_by) {
        (true, Some(net)) => format!("yes (by {})", net_text(net)),
        (b, _) => yes_no(b).to_owned(),
    };
    let ban = ban_line(x);
    let offenses = match &x.last_offense {
        Some(t) => format!("{} (last {t})", x.offenses),
        None => x.offenses.to_string(),
    };
    let mut out = format!(
        "{}\n  allowlisted: {allow}\n  local:       {}\n  banned:      {ban}\n  offenses:    {offenses}\n",
        x.addr,
        yes_no(x.local)
    );
    if let Some(peer) = &x.peer {
        out.push_str(&format!(
            "  verified:    {peer} (reported, never banned on forgeable evidence)\n"
        ));
    }
    if !x.exempt.is_empty() {
        out.push_str(&format!("  exempt from: {}\n", x.exempt.join(", ")));
    }
    let floods = format!(
        "{}{}",
        super::attacks::render_windows(&x.floods),
        super::attacks::render_attacks(&x.attacks)
    );
    if x.rules.is_empty() {
        out.push_str("no rule applies\n");
        out.push_str(&floods);
        return out;
    }
    let rows: Vec<Vec<String>> = x
        .rules
        .iter()
        .map(|r| {
            let window = std::time::Duration::try_from_secs_f64(r.window_secs)
                .map(|d| Formatted(d).to_string())
                .unwrap_or_else(|_| format!("{}s", r.window_secs));
            vec![
                r.rule.clone(),
                net_text(&r.key),
                r.metric.clone(),
                format!("{} / {}", r.value, r.threshold),
                window,
                if x.exempt.contains(&r.rule) {
                    "exempt"
                } else if r.value > r.threshold {
                    "over"
                } else {
                    ""
                }
                .to_owned(),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(
        &["RULE", "COUNTED AS", "METRIC", "NOW / LIMIT", "WINDOW", ""],
        &rows,
    ));
    out.push_str(&floods);
    out
}

/// `yes: TARGET [(a prefix ban around it)] by RULE until ... (LEFT left, offense N | manual:
/// REASON)`, or `no`.
fn ban_line(x: &Explanation) -> String {
    match &x.ban {
        Some(b) => {
            let rule = if b.rule.is_empty() {
                &b.reason
            } else {
                &b.rule
            };
            let what = if b.manual {
                if b.reason == *rule {
                    "manual".to_owned()
                } else {
                    format!("manual: {}", b.reason)
                }
            } else {
                format!("offense {}", b.offense)
            };
            let whose = if b.target.contains(&ipnet::IpNet::from(x.addr))
                && b.target.prefix_len() < b.target.max_prefix_len()
            {
                " (a prefix ban around it)"
            } else {
                ""
            };
            let from = match &b.origin {
                Some(node) => format!(", from fleet node {node}"),
                None => String::new(),
            };
            format!(
                "yes: {}{whose} by {rule} until {} ({} left, {what}{from}){}",
                net_text(&b.target),
                b.until,
                human_secs(b.remaining_secs),
                if b.dry_run {
                    " [dry run: not in the kernel]"
                } else {
                    ""
                }
            )
        }
        None => "no".to_owned(),
    }
}
