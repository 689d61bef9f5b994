//! The control protocol (pure): one JSON object per line each way over a Unix stream socket.
//!
//! A line is `{"v":1,"type":"<kind>","data":<payload>}`; `data` is absent for requests without
//! one (`{"v":1,"type":"status"}`). Every line carries the protocol version: a line with another
//! `v`, or none, is refused with a [`ProtocolError`] naming both versions, before its body is
//! looked at, so a CLI and a daemon from different releases say so instead of guessing.
//!
//! Networks travel as text: a plain address for a /32 or /128 (`"203.0.113.7"`), CIDR otherwise
//! (`"2001:db8::/64"`); host bits are cleared on reading, and IPv4-mapped addresses are read as
//! IPv4. A manual ban's reason is bounded and free of control characters (`edge.rs`). Times are
//! RFC 3339 strings. Field names
//! are snake_case and stable: add fields with `#[serde(default)]`, never rename; a change that
//! old peers would misread bumps [`VERSION`].

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

mod edge;
mod views;

pub use edge::{MAX_REASON_BYTES, check_reason};
pub use views::{
    AttackInfo, Covered, FloodWindow, ReloadInfo, RuleStatus, RuleTopInfo, SourceValue, TopInfo,
};

/// The protocol version this build speaks.
pub const VERSION: u64 = 1;

/// Sources per rule (and bans) `top` returns by default.
pub const TOP_DEFAULT: usize = 5;

fn top_default() -> usize {
    TOP_DEFAULT
}

/// What a CLI asks the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Request {
    /// The daemon's state in numbers.
    Status,
    /// Every active ban.
    List,
    /// Manual ban of one or many targets (bulk: one request for a whole list).
    Ban {
        /// What to ban.
        #[serde(with = "nets")]
        targets: Vec<IpNet>,
        /// `None`: the configured `[enforce] ban`.
        #[serde(default)]
        duration_secs: Option<u64>,
        /// Shown by `list` and in events; `None`: "manual". At most [`MAX_REASON_BYTES`], no
        /// control characters ([`check_reason`]).
        #[serde(default, deserialize_with = "edge::reason")]
        reason: Option<String>,
        /// Ban even an allowlisted target (never a local address).
        #[serde(default)]
        force: bool,
        /// Set this length even when a ban in force ends later (by default banning again
        /// never shortens a ban).
        #[serde(default)]
        replace: bool,
    },
    /// Lift bans now.
    Unban {
        /// Banned targets, exactly as `list` shows them.
        #[serde(with = "nets", default)]
        targets: Vec<IpNet>,
        /// A target inside a broader ban (an address in a banned /48) lifts that ban.
        #[serde(default)]
        covering: bool,
        /// Lift every ban.
        #[serde(default)]
        all: bool,
        /// Lift every ban this rule set (`manual` for manual bans).
        #[serde(default)]
        rule: Option<String>,
    },
    /// Read the configuration file again and apply it (as SIGHUP does), and say how it went.
    Reload,
    /// Each rule's leading sources and the newest bans, for `autoblock top`.
    Top {
        /// Sources per rule, and bans, at most.
        #[serde(default = "top_default")]
        per_rule: usize,
    },
    /// Why is (or isn't) this address banned: its counters against every rule.
    Explain {
        /// The address.
        #[serde(deserialize_with = "edge::addr")]
        addr: IpAddr,
    },
}

/// What the daemon answers; one per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Response {
    /// Answers `status`.
    Status(StatusInfo),
    /// Answers `list`.
    List(Vec<BanInfo>),
    /// Answers `ban`.
    Banned {
        /// The bans now in force.
        applied: Vec<BanInfo>,
        /// The targets not banned, and why.
        refused: Vec<Refusal>,
        /// Targets already banned until later than asked: left as they are.
        #[serde(default)]
        kept: Vec<BanInfo>,
        /// Set when manual bans cannot be saved (`[state] dir`): they will not survive a
        /// restart.
        #[serde(default)]
        state_error: Option<String>,
    },
    /// Answers `unban`.
    Unbanned {
        /// Targets whose ban was lifted.
        #[serde(with = "nets")]
        removed: Vec<IpNet>,
        /// Targets that had no ban.
        #[serde(with = "nets")]
        not_found: Vec<IpNet>,
        /// Targets with no ban of their own inside a broader ban, which is named (and kept).
        #[serde(default)]
        covered: Vec<Covered>,
    },
    /// Answers `reload`.
    Reloaded(ReloadInfo),
    /// Answers `top`.
    Top(TopInfo),
    /// Answers `explain`.
    Explain(Explanation),
    /// The request could not be served (bad line, engine gone, ...); `message` is for humans.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// The daemon's state, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatusInfo {
    /// The daemon's `CARGO_PKG_VERSION`.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// The configuration file the daemon loaded.
    pub config: String,
    /// The backend in use: `iptables`, `ipset` or `nftables` (`none (dry run)`).
    pub backend: String,
    /// `enforce.backend` as configured: `auto` or the backend's name.
    #[serde(default)]
    pub backend_config: String,
    /// With `auto`: the better backends passed over, each with why (`nftables: ...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_skipped: Vec<String>,
    /// The chain bans live in.
    pub chain: String,
    /// Decisions are logged, the kernel is left alone.
    pub dry_run: bool,
    /// Capture counters per interface.
    pub interfaces: Vec<InterfaceStats>,
    /// Sources in the counter table.
    pub tracked_sources: u64,
    /// Packets since start not fully counted, as replay's `untracked_packets`: their source
    /// because the full table turned it away, or a destination port or address because the
    /// distinct-value set pool was spent (those also in `untracked_distinct_packets`). Absent
    /// from older daemons.
    #[serde(default)]
    pub untracked_packets: u64,
    /// Of `untracked_packets`, those with a destination port or address a
    /// `dst_ports`/`dst_addrs` window could not store.
    #[serde(default)]
    pub untracked_distinct_packets: u64,
    /// Bans in force.
    pub active_bans: u64,
    /// Bans applied since the daemon started (manual ones included).
    pub bans_total: u64,
    /// Events dropped by the rate limit on new bans or the active-ban cap.
    pub events_suppressed: u64,
    /// RFC 3339 time of the last successful reload; `None` if never reloaded.
    pub last_reload: Option<String>,
    /// Firewall commands that failed since start.
    pub enforcer_errors: u64,
    /// Decisions queued for the enforcer, not yet in the kernel.
    pub pending_decisions: u64,
    /// Event lines an output (stdout, the events file) lost since start because it fell
    /// behind or failed; absent from older daemons.
    #[serde(default)]
    pub events_dropped: u64,
    /// The last reload tried (SIGHUP or `autoblock reload`), applied or refused.
    #[serde(default)]
    pub reload: Option<ReloadInfo>,
    /// Every rule: mode, current top value, bans, suppressions.
    #[serde(default)]
    pub rules: Vec<RuleStatus>,
    /// Set while `[state] dir` cannot be written: manual bans and offense history are not
    /// saved.
    #[serde(default)]
    pub state_error: Option<String>,
    /// Flood attacks in progress, with their mitigations (empty without any).
    #[serde(default)]
    pub attacks: Vec<AttackInfo>,
    /// The newest event lines (JSON), oldest first.
    #[serde(default)]
    pub recent_events: Vec<String>,
    /// The fleet link (`[cluster]`), when sharing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Box<crate::cluster::ClusterStatus>>,
}

/// Capture counters of one interface, as libpcap reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    /// The interface.
    pub name: String,
    /// Frames captured.
    pub packets: u64,
    /// Dropped by the kernel because our buffer was full: we are too slow.
    pub kernel_drops: u64,
    /// Dropped by the interface or its driver.
    pub interface_drops: u64,
    /// Captured but thrown away because the engine's queue was full: detection is behind.
    #[serde(default)]
    pub queue_drops: u64,
}

/// One active ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    /// The banned address or prefix.
    #[serde(with = "net")]
    pub target: IpNet,
    /// The rule that set its end time, or the operator's reason for a manual ban.
    pub reason: String,
    /// RFC 3339.
    pub since: String,
    /// RFC 3339.
    pub until: String,
    /// Seconds until it ends.
    pub remaining_secs: u64,
    /// 1 for a first offense; repeat offenders get longer bans.
    pub offense: u32,
    /// Set by `autoblock ban`, not by a rule.
    pub manual: bool,
    /// The rule that set its end time (`manual` for a manual ban).
    #[serde(default)]
    pub rule: String,
    /// The daemon runs in dry run: the ban is a decision only, not in the kernel.
    #[serde(default)]
    pub dry_run: bool,
    /// The fleet node the ban came from; absent for a ban made here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// A ban target the daemon would not ban, and why ("allowlisted (use --force)", "local
/// address", "cap of 50000 active bans reached").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The target refused.
    #[serde(with = "net")]
    pub target: IpNet,
    /// Why, in words.
    pub reason: String,
}

/// How one address stands, for `explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The address asked about.
    pub addr: IpAddr,
    /// It falls under `[allow] nets`.
    pub allowlisted: bool,
    /// The `[allow]` network that matched, when `allowlisted`.
    #[serde(with = "opt_net")]
    pub allowlisted_by: Option<IpNet>,
    /// One of our own addresses: never counted, never banned.
    pub local: bool,
    /// Why it is a verified peer (`gateway, established`), if it is: rules without
    /// `ban_verified_peers` report it instead of banning it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Rules that do not count it (their `exempt` nets hold it).
    #[serde(default)]
    pub exempt: Vec<String>,
    /// Every rule that counts it.
    pub rules: Vec<RuleWindow>,
    /// The active ban covering `addr` (possibly on a prefix), if any.
    pub ban: Option<BanInfo>,
    /// Offenses remembered within `[enforce] repeat_window`.
    pub offenses: u32,
    /// RFC 3339.
    pub last_offense: Option<String>,
    /// The address as a flood target: every detector's window toward it (a protected
    /// address; empty otherwise).
    #[serde(default)]
    pub floods: Vec<FloodWindow>,
    /// Flood attacks on the address (or on all protected addresses together) in progress.
    #[serde(default)]
    pub attacks: Vec<AttackInfo>,
}

/// `addr` seen through one rule: its current window value against the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleWindow {
    /// The rule's name.
    pub rule: String,
    /// `packets`, `bytes`, `dst_ports` or `dst_addrs`.
    pub metric: String,
    /// The count in the current window.
    pub value: u64,
    /// The rule fires above this.
    pub threshold: u64,
    /// Fractional for sub-second windows.
    pub window_secs: f64,
    /// What the rule counts under: the address itself or its aggregated prefix.
    #[serde(with = "net")]
    pub key: IpNet,
}

/// A line that is not a request or response of this protocol version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// JSON without a protocol version.
    #[error("not a protocol line: expected a JSON object with \"v\":{VERSION}")]
    NoVersion,
    /// Another protocol version: the CLI and the daemon come from different releases.
    #[error(
        "protocol version mismatch: the peer speaks v{peer}, this autoblock speaks v{VERSION}; \
         run the CLI and the daemon from the same release"
    )]
    Version {
        /// The version the peer speaks.
        peer: String,
    },
    /// A line of this version that does not hold a request or response.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// `request` or `response`.
        what: &'static str,
        /// What serde said.
        detail: String,
    },
}

/// The request as one line, without the trailing newline.
pub fn encode_request(req: &Request) -> String {
    encode(req)
}

/// The response as one line, without the trailing newline.
pub fn encode_response(resp: &Response) -> String {
    encode(resp)
}

/// Reads one request line (a trailing `\n` or `\r\n` is ignored).
pub fn decode_request(line: &[u8]) -> Result<Request, ProtocolError> {
    decode(line, "request")
}

/// Reads one response line (a trailing `\n` or `\r\n` is ignored).
pub fn decode_response(line: &[u8]) -> Result<Response, ProtocolError> {
    decode(line, "response")
}

/// The text of a target: a bare address for a host route, CIDR otherwise.
pub fn net_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// A CIDR, or a plain address meaning /32 or /128; host bits are cleared, and an IPv4-mapped
/// address or prefix (`::ffff:192.0.2.7`) is IPv4.
pub fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .ok()
        .map(edge::canonical_net)
}

fn encode<T: Serialize>(body: &T) -> String {
    // Both enums serialize to a JSON object with only string keys: this cannot fail.
    let mut value = serde_json::to_value(body).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("v".to_owned(), VERSION.into());
    }
    value.to_string()
}

fn decode<T: serde::de::DeserializeOwned>(
    line: &[u8],
    what: &'static str,
) -> Result<T, ProtocolError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| ProtocolError::Json(e.to_string()))?;
    let obj = value.as_object_mut().ok_or(ProtocolError::NoVersion)?;
    match obj.remove("v") {
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(v) => {
            return Err(ProtocolError::Version {
                peer: v.to_string(),
            });
        }
        None => return Err(ProtocolError::NoVersion),
    }
    serde_json::from_value(value).map_err(|e| ProtocolError::Malformed {
        what,
        detail: e.to_string(),
    })
}

fn net_de_error<E: serde::de::Error>(text: &str) -> E {
    E::custom(format!("`{text}` is not an IP address or CIDR"))
}

/// `IpNet` as [`net_text`].
pub(crate) mod net {
    use super::*;

    pub fn serialize<S: serde::Serializer>(n: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&net_text(n))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let text = String::deserialize(d)?;
        parse_net(&text).ok_or_else(|| net_de_error(&text))
    }
}

/// `Option<IpNet>` as text or `null`.
pub(crate) mod opt_net {
    use super::*;

    pub fn serialize<S: serde::Serializer>(n: &Option<IpNet>, s: S) -> Result<S::Ok, S::Error> {
        n.as_ref().map(net_text).serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<IpNet>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => parse_net(&text)
                .map(Some)
                .ok_or_else(|| net_de_error(&text)),
        }
    }
}

/// `Vec<IpNet>` as a list of texts.
mod nets {
    use super::*;

    pub fn serialize<S: serde::Serializer>(v: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(net_text))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| parse_net(t).ok_or_else(|| net_de_error(t)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
