//! The control protocol (pure): one JSON object per line each way over a Unix stream socket.
//!
//! A line is `{"v":1,"type":"<kind>","data":<payload>}`; `data` is absent for requests without
//! one (`{"v":1,"type":"status"}`). Every line carries the protocol version: a line with another
//! `v`, or none, is refused with a [`ProtocolError`] naming both versions, before its body is
//! looked at, so a CLI and a daemon from different releases say so instead of guessing.
//!
//! Networks travel as text: a plain address for a /32 or /128 (`"203.0.113.7"`), CIDR otherwise
//! (`"2001:db8::/64"`); host bits are cleared on reading. Times are RFC 3339 strings. Field names
//! are snake_case and stable: add fields with `#[serde(default)]`, never rename; a change that
//! old peers would misread bumps [`VERSION`].

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u64 = 1;

/// What a CLI asks the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Request {
    Status,
    List,
    /// Manual ban of one or many targets (bulk: one request for a whole list).
    Ban {
        #[serde(with = "nets")]
        targets: Vec<IpNet>,
        /// `None`: the configured `[enforce] ban`.
        #[serde(default)]
        duration_secs: Option<u64>,
        #[serde(default)]
        reason: Option<String>,
        /// Ban even an allowlisted target (never a local address).
        #[serde(default)]
        force: bool,
    },
    Unban {
        #[serde(with = "nets")]
        targets: Vec<IpNet>,
    },
    /// Why is (or isn't) this address banned: its counters against every rule.
    Explain {
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
    Status(StatusInfo),
    List(Vec<BanInfo>),
    Banned {
        applied: Vec<BanInfo>,
        refused: Vec<Refusal>,
    },
    Unbanned {
        #[serde(with = "nets")]
        removed: Vec<IpNet>,
        #[serde(with = "nets")]
        not_found: Vec<IpNet>,
    },
    Explain(Explanation),
    /// The request could not be served (bad line, engine gone, ...); `message` is for humans.
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// The daemon's `CARGO_PKG_VERSION`.
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    /// The configuration file the daemon loaded.
    pub config: String,
    /// `iptables` or `ipset`.
    pub backend: String,
    pub chain: String,
    /// Decisions are logged, the kernel is left alone.
    pub dry_run: bool,
    pub interfaces: Vec<InterfaceStats>,
    pub tracked_sources: u64,
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
}

/// Capture counters of one interface, as libpcap reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    pub name: String,
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
    #[serde(with = "net")]
    pub target: IpNet,
    /// The rule that fired, or the operator's reason for a manual ban.
    pub reason: String,
    /// RFC 3339.
    pub since: String,
    /// RFC 3339.
    pub until: String,
    pub remaining_secs: u64,
    /// 1 for a first offense; repeat offenders get longer bans.
    pub offense: u32,
    /// Set by `autoblock ban`, not by a rule.
    pub manual: bool,
}

/// A ban target the daemon would not ban, and why ("allowlisted (use --force)", "local
/// address", "cap of 50000 active bans reached").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    #[serde(with = "net")]
    pub target: IpNet,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub addr: IpAddr,
    pub allowlisted: bool,
    /// The `[allow]` network that matched, when `allowlisted`.
    #[serde(with = "opt_net")]
    pub allowlisted_by: Option<IpNet>,
    /// One of our own addresses: never counted, never banned.
    pub local: bool,
    pub rules: Vec<RuleWindow>,
    /// The active ban covering `addr` (possibly on a prefix), if any.
    pub ban: Option<BanInfo>,
    /// Offenses remembered within `[enforce] repeat_window`.
    pub offenses: u32,
    /// RFC 3339.
    pub last_offense: Option<String>,
}

/// `addr` seen through one rule: its current window value against the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleWindow {
    pub rule: String,
    /// `packets`, `bytes`, `dst_ports` or `dst_addrs`.
    pub metric: String,
    /// The count in the current window.
    pub value: u64,
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
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("not a protocol line: expected a JSON object with \"v\":{VERSION}")]
    NoVersion,
    #[error(
        "protocol version mismatch: the peer speaks v{peer}, this autoblock speaks v{VERSION}; \
         run the CLI and the daemon from the same release"
    )]
    Version { peer: String },
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
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

/// A CIDR, or a plain address meaning /32 or /128; host bits are cleared.
pub fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .ok()
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
mod net {
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
mod opt_net {
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
