//! Small conversions shared by the daemon and the CLI: config -> firewall options, kernel bans
//! -> engine bans.

use std::sync::Arc;
use std::time::Duration;

use crate::bans::Ban;
use crate::config::{BackendKind, Config};
use crate::counters::SourceKey;
use crate::firewall::{self, Backend, FirewallOptions};
use crate::time::Timestamp;

/// The firewall the configuration describes.
pub fn firewall_options(config: &Config) -> FirewallOptions {
    let e = &config.enforce;
    let backend = match e.backend {
        BackendKind::Iptables => Backend::Iptables,
        BackendKind::Ipset => Backend::Ipset,
        BackendKind::Nftables => Backend::Nftables,
    };
    FirewallOptions::new(backend, e.chain.clone())
        .hooks(e.hooks.iter().cloned())
        .maxelem(u32::try_from(e.max_active_bans).unwrap_or(u32::MAX))
        .priority(e.priority)
}

/// A ban read from the kernel, as the engine keeps it. Its start and offense are unknown, so
/// the remaining time is taken as its length and the offense as the first.
pub fn adopted_ban(b: &firewall::Ban, now: Timestamp, manual: bool) -> Ban {
    let until = Timestamp::from_secs(b.until);
    Ban {
        key: SourceKey::from_net(b.net),
        until,
        since: now,
        rule: Arc::from(b.reason.as_str()),
        offense: 1,
        duration: until.since(now).max(Duration::from_secs(1)),
        peak: 0,
        manual,
    }
}
