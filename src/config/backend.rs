//! `enforce.backend`: one of the firewall library's backends, or `auto` (the shipped value and
//! the default): the best usable one, chosen when the daemon starts — nftables, else ipset,
//! else iptables. What `auto` may pick is decided here from the configuration alone (pure:
//! a backend that cannot hold the hooks or the longest ban is passed over); whether a backend
//! works on this host is the probe's business (`sys::backend`).

use std::time::Duration;

use super::duration;
use crate::firewall::Backend;

/// `enforce.backend` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// The first usable of [`BackendChoice::AUTO_ORDER`], decided at start.
    Auto,
    /// This backend, whatever the host offers.
    Fixed(Backend),
}

impl BackendChoice {
    /// What `auto` tries, best first: constant cost per packet and kernel expiry first
    /// (nftables, ipset), the linear chain last.
    pub const AUTO_ORDER: [Backend; 3] = [Backend::Nftables, Backend::Ipset, Backend::Iptables];

    /// `auto`, `iptables`, `ipset` or `nftables`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Fixed(b) => b.as_str(),
        }
    }

    /// Reads a configured value.
    pub fn parse(text: &str) -> Result<BackendChoice, String> {
        if text == "auto" {
            return Ok(BackendChoice::Auto);
        }
        text.parse().map(BackendChoice::Fixed).map_err(|_| {
            format!("unknown backend `{text}`, expected `auto`, `iptables`, `ipset` or `nftables`")
        })
    }
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest timeout an ipset entry can carry.
pub(super) const IPSET_MAX_TIMEOUT: Duration = Duration::from_secs(2_147_483);

/// The longest element timeout `nft` accepts (see the firewall's nftables backend).
pub(super) const NFT_MAX_TIMEOUT: Duration = Duration::from_secs(99_999_999);

/// Hooks nftables has, as `table:CHAIN` (the firewall maps them to base chains).
pub(super) const NFT_HOOKS: [&str; 10] = [
    "filter:INPUT",
    "filter:FORWARD",
    "filter:OUTPUT",
    "raw:PREROUTING",
    "raw:OUTPUT",
    "mangle:PREROUTING",
    "mangle:INPUT",
    "mangle:FORWARD",
    "mangle:OUTPUT",
    "mangle:POSTROUTING",
];

/// `INPUT` -> `filter:INPUT`; `raw:PREROUTING` as it is.
pub(super) fn qualified(hook: &str) -> String {
    if hook.contains(':') {
        hook.to_string()
    } else {
        format!("filter:{hook}")
    }
}

/// The kernel's longest timeout for `backend`, if it has one.
pub(super) fn timeout_limit(backend: Backend) -> Option<Duration> {
    match backend {
        Backend::Ipset => Some(IPSET_MAX_TIMEOUT),
        Backend::Nftables => Some(NFT_MAX_TIMEOUT),
        Backend::Iptables => None,
    }
}

/// Why `backend` cannot hold bans as `chain`, `hooks` and `max_ban` ask, or `None` when it can.
pub fn unfit(backend: Backend, chain: &str, hooks: &[String], max_ban: Duration) -> Option<String> {
    let max_chain = crate::firewall::IPTABLES_MAX_CHAIN_LEN;
    if backend == Backend::Iptables && chain.len() > max_chain {
        return Some(format!(
            "chain `{chain}` is longer than its {max_chain} characters"
        ));
    }
    if backend == Backend::Nftables
        && let Some(h) = hooks
            .iter()
            .find(|h| !NFT_HOOKS.contains(&qualified(h).as_str()))
    {
        return Some(format!("hook `{h}` is not an nftables hook"));
    }
    let limit = timeout_limit(backend)?;
    (max_ban > limit).then(|| {
        format!(
            "max_ban {} is longer than its longest timeout ({})",
            duration::format(max_ban),
            duration::format(limit)
        )
    })
}

/// `auto`'s candidates for a configuration, best first, each with why it does not fit.
pub fn auto_candidates(
    chain: &str,
    hooks: &[String],
    max_ban: Duration,
) -> Vec<(Backend, Option<String>)> {
    BackendChoice::AUTO_ORDER
        .into_iter()
        .map(|b| (b, unfit(b, chain, hooks, max_ban)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(BackendChoice::parse("auto"), Ok(BackendChoice::Auto));
        assert_eq!(
            BackendChoice::parse("nftables"),
            Ok(BackendChoice::Fixed(Backend::Nftables))
        );
        let e = BackendChoice::parse("pf").unwrap_err();
        assert!(e.contains("expected `auto`, `iptables`"), "{e}");
        assert_eq!(BackendChoice::Fixed(Backend::Ipset).to_string(), "ipset");
    }

    #[test]
    fn auto_passes_over_what_cannot_hold_the_configuration() {
        let day = Duration::from_secs(86_400);
        let hooks = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all_fit = auto_candidates("AUTOBLOCK", &hooks(&["INPUT", "raw:PREROUTING"]), day);
        assert!(all_fit.iter().all(|(_, why)| why.is_none()), "{all_fit:?}");
        let docker = auto_candidates("AUTOBLOCK", &hooks(&["INPUT", "DOCKER-USER"]), day);
        assert_eq!(
            docker[0],
            (
                Backend::Nftables,
                Some("hook `DOCKER-USER` is not an nftables hook".into())
            )
        );
        assert_eq!(docker[1], (Backend::Ipset, None));
        let long = auto_candidates("AUTOBLOCK", &hooks(&["INPUT"]), 30 * day);
        assert_eq!(long[0].1, None);
        assert!(
            long[1]
                .1
                .as_deref()
                .is_some_and(|w| w.starts_with("max_ban 30d is longer")),
            "{long:?}"
        );
        assert_eq!(long[2], (Backend::Iptables, None));
        // The iptables backend's ban chains need a chain name of at most 20 characters.
        let name = auto_candidates(&"A".repeat(21), &hooks(&["INPUT"]), day);
        assert_eq!(name[0].1, None);
        assert_eq!(
            name[2],
            (
                Backend::Iptables,
                Some(format!(
                    "chain `{}` is longer than its 20 characters",
                    "A".repeat(21)
                ))
            )
        );
    }
}
