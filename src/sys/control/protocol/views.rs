//! The answers added for the operator's views (`reload`, `top`, the per-rule lines of
//! `status`, flood attacks in `status`, `top` and `explain`): plain data, serialized like the
//! rest of the protocol.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{BanInfo, net};

/// The outcome of a reload (`autoblock reload`, SIGHUP): in `status` as the last one, and the
/// answer to a `reload` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadInfo {
    /// When it was tried (RFC 3339).
    pub at: String,
    /// The new configuration is in force.
    pub ok: bool,
    /// Why it was refused (every problem), empty when applied.
    #[serde(default)]
    pub errors: Vec<String>,
    /// What changed, one line each (`rule conn-burst: threshold 28 -> 40`), when applied.
    #[serde(default)]
    pub changes: Vec<String>,
    /// `signal` (SIGHUP) or `control` (`autoblock reload`).
    #[serde(default)]
    pub by: String,
}

/// One rule in `status`: its mode and counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStatus {
    /// The rule's name.
    pub rule: String,
    /// `enforce` or `log`.
    pub mode: String,
    /// What it counts.
    pub metric: String,
    /// It fires above this.
    pub threshold: u64,
    /// The highest current value of any source (refreshed a few times a second).
    pub top_value: u64,
    /// The source with that value.
    #[serde(default, with = "super::opt_net")]
    pub top_source: Option<IpNet>,
    /// Bans in force whose end time this rule set.
    pub active_bans: u64,
    /// Bans it started since the daemon started.
    pub bans: u64,
    /// Times it fired and was suppressed (allowlist, local, cap, rate, log) since start.
    pub suppressed: u64,
}

/// The answer to `top`: each rule's leading sources and the newest bans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopInfo {
    /// Every rule, in file order.
    pub rules: Vec<RuleTopInfo>,
    /// The most recently started bans, newest first (at most as many as asked for).
    pub bans: Vec<BanInfo>,
    /// Bans in force, all of them.
    pub active_bans: u64,
}

/// One rule and its leading sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleTopInfo {
    /// The rule's name.
    pub rule: String,
    /// `enforce` or `log`.
    pub mode: String,
    /// What it counts.
    pub metric: String,
    /// It fires above this.
    pub threshold: u64,
    /// Its window, in seconds.
    pub window_secs: f64,
    /// Sources by current value, highest first.
    pub sources: Vec<SourceValue>,
}

/// A source and its current value under one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceValue {
    /// The address, or the prefix the rule counts under.
    #[serde(with = "net")]
    pub source: IpNet,
    /// Its window value now.
    pub value: u64,
}

/// An unban target with no ban of its own inside a broader ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Covered {
    /// The target asked for.
    #[serde(with = "net")]
    pub target: IpNet,
    /// The ban around it (`--covering` lifts it).
    pub by: BanInfo,
}

/// A flood attack in progress (`status`, `top`, `explain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackInfo {
    /// The `[[flood]]` detector.
    pub rule: String,
    /// The protected address, or `total`.
    pub target: String,
    /// When it crossed (RFC 3339).
    pub since: String,
    /// The last time it was over threshold (RFC 3339).
    pub last_over: String,
    /// The detector's window value toward the target now.
    pub value: u64,
    /// The detector's threshold.
    pub threshold: u64,
    /// The detector's window, in milliseconds.
    pub window_ms: u64,
    /// Packets counted toward the target since it began.
    pub packets: u64,
    /// Distinct sources of the window that crossed.
    pub sources: u64,
    /// The sources look spoofed.
    pub spoofed: bool,
    /// The fingerprint in words (`udp, sport 4500 (100%), ...`).
    pub fingerprint: String,
    /// `signature`, `sources` or `alert` (also when the configured action was refused).
    pub action: String,
    /// The signature in the kernel (or that would be, in dry run), in iptables words.
    pub kernel_rule: Option<String>,
    /// Why the configured action was not taken.
    pub refused: Option<String>,
    /// Seconds until it ends unless it crosses again.
    pub ends_in_secs: u64,
}

/// An address seen through one flood detector (`explain`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloodWindow {
    /// The `[[flood]]` detector.
    pub rule: String,
    /// `packets` or `bytes`.
    pub metric: String,
    /// All sources together toward the address, in the current window.
    pub value: u64,
    /// The detector crosses above this.
    pub threshold: u64,
    /// Its window, in seconds.
    pub window_secs: f64,
}
