//! `autoblock flush`: remove everything autoblock created in the kernel (jumps, chain, sets, or
//! the nftables table) and nothing else, and say exactly what was there. With `backend =
//! "auto"` it flushes every backend `auto` may have chosen on this host. Refused while a daemon
//! runs: it owns the chain and would put its bans back (its control socket answers, or it holds
//! the chain's lock). Bans are lost: the state file forgets them too (its offense history
//! stays), so the next start does not put them back. A table it cannot read, or anything of
//! ours left afterwards, is an error (exit 1).

use std::time::Duration;

use super::remote::emit;
use super::{CliError, CliResult, load_config};
use crate::config::{BackendChoice, Config};
use crate::firewall::{Backend, Family, Firewall, FirewallError, Flushed};
use crate::sys::backend::probe;
use crate::sys::control::{client, protocol};
use crate::sys::enforcer::firewall_options;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  sudo systemctl stop autoblock && sudo autoblock flush")]
pub struct FlushArgs {
    /// Configuration file (names the backend, chain, hooks and the daemon's socket)
    #[arg(long, short)]
    pub config: Option<std::path::PathBuf>,
}

/// Removes the chain, its jumps and sets, after making sure no daemon owns them.
pub fn run(args: FlushArgs) -> CliResult {
    let config = load_config(args.config.as_deref())?;
    let socket = &config.control.socket;
    let asked = client::request(socket, &protocol::Request::Status, Duration::from_secs(2));
    if let Ok(protocol::Response::Status(s)) = asked {
        return Err(running(format!(
            "pid {}, socket {}",
            s.pid,
            socket.display()
        )));
    }
    for backend in to_flush(&config) {
        let removed = match Firewall::remove(firewall_options(&config, backend)) {
            Ok(r) => r,
            Err(FirewallError::ChainInUse { holder, .. }) => return Err(running(holder)),
            Err(e) => return Err(CliError::runtime(e)),
        };
        let on = match config.enforce.backend {
            BackendChoice::Auto => format!("{backend}: "),
            BackendChoice::Fixed(_) => String::new(),
        };
        emit(&format!(
            "{on}{}",
            describe(&config.enforce.chain, &removed)
        ));
    }
    let forgotten = crate::sys::state::forget_bans(&config.state.dir).map_err(CliError::runtime)?;
    if forgotten > 0 {
        emit(&format!(
            "forgot {forgotten} saved bans in {}\n",
            config.state.dir.display()
        ));
    }
    Ok(())
}

/// A daemon owns the chain: nothing was touched.
fn running(who: String) -> CliError {
    CliError::runtime(anyhow::anyhow!(
        "nothing removed: an autoblock daemon is running ({who}); it owns the chain and would put its bans back"
    ))
    .hint("(stop it first: `sudo systemctl stop autoblock`, or end `autoblock run`)")
}

/// `filter (ipv4), filter (ipv6)`.
fn places(list: &[(Family, String)]) -> String {
    let names: Vec<String> = list.iter().map(|(f, t)| format!("{t} ({f})")).collect();
    names.join(", ")
}

/// One line saying what was removed, or that nothing was there.
fn describe(chain: &str, r: &Flushed) -> String {
    if r.is_empty() {
        return format!("nothing to remove: no chain {chain}, no jump to it, no set of ours\n");
    }
    let mut parts = Vec::new();
    if !r.chains.is_empty() {
        parts.push(format!("chain {chain} in {}", places(&r.chains)));
    }
    if !r.tables.is_empty() {
        parts.push(format!("table {}", r.tables.join(", ")));
    }
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    parts.push(plural(r.entries - r.rules.min(r.entries), "ban"));
    if r.rules > 0 {
        parts.push(plural(r.rules, "typed rule"));
    }
    if r.tables.is_empty() {
        parts.push(plural(r.jumps, "jump"));
    }
    if r.ban_chains > 0 {
        parts.push(plural(r.ban_chains, "ban chain"));
    }
    if !r.sets.is_empty() {
        parts.push(format!("sets {}", r.sets.join(", ")));
    }
    let mut out = format!("removed {}\n", parts.join(", "));
    if !r.kept.is_empty() {
        out.push_str(&format!(
            "kept chain {chain} in {}: it holds rules that are not ours\n",
            places(&r.kept)
        ));
    }
    out
}

/// The configured backend; with `auto`, nftables when it works here, and ipset (whose flush
/// also takes an iptables-backend chain with it) or else iptables: whatever `auto` chose when
/// the daemon started, nothing of ours is left.
fn to_flush(config: &Config) -> Vec<Backend> {
    match config.enforce.backend {
        BackendChoice::Fixed(backend) => vec![backend],
        BackendChoice::Auto => {
            let mut all = Vec::new();
            if probe(Backend::Nftables).is_ok() {
                all.push(Backend::Nftables);
            }
            all.push(match probe(Backend::Ipset) {
                Ok(()) => Backend::Ipset,
                Err(_) => Backend::Iptables,
            });
            all
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_was_there() {
        assert_eq!(
            describe("AUTOBLOCK", &Flushed::default()),
            "nothing to remove: no chain AUTOBLOCK, no jump to it, no set of ours\n"
        );
        let mut r = Flushed::default();
        r.chains = vec![(Family::V4, "filter".into()), (Family::V6, "filter".into())];
        r.jumps = 2;
        r.entries = 1;
        r.sets = vec!["autoblock4".into(), "autoblock6".into()];
        assert_eq!(
            describe("AUTOBLOCK", &r),
            "removed chain AUTOBLOCK in filter (ipv4), filter (ipv6), 1 ban, 2 jumps, sets autoblock4, autoblock6\n"
        );
        let mut n = Flushed::default();
        n.tables = vec!["inet autoblock".into()];
        n.entries = 3;
        n.sets = vec!["v4_32".into()];
        assert_eq!(
            describe("AUTOBLOCK", &n),
            "removed table inet autoblock, 3 bans, sets v4_32\n"
        );
    }
}
