//! The fleet's wire format (pure): one ban event of one node as versioned JSON, and the only
//! decoder of what other nodes send.
//!
//! ```json
//! {"v":1,"id":"web-1-18f3a2c4d5e-42","kind":"block","target":"203.0.113.7",
//!  "until_ms":1795514400123,"at_ms":1795513800123,"rule":"syn-flood","offense":2,
//!  "manual":false,"origin":"web-1"}
//! ```
//!
//! Invariants of a [`BanMessage`], checked by [`decode`] and kept by [`BanMessage::new`]:
//! the target is canonical (host bits cleared; an IPv4-mapped IPv6 target is the IPv4 one);
//! `origin` is a node name and `id` a short token; `rule` is 1-128 bytes without control
//! characters; `offense` >= 1; a block or extend does not end before it was made. Decoding
//! never panics: the payload is size-checked first ([`MAX_MESSAGE_BYTES`]), then parsed
//! strictly (unknown fields rejected, a version other than [`VERSION`] refused).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::{NODE_NAME_MAX, is_cluster_name};
use crate::time::Timestamp;

/// The schema version this code writes and reads.
pub const VERSION: u32 = 1;
/// Largest payload accepted (the stream refuses larger ones too).
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Longest `rule` (bytes); longer reasons are cut when sending.
pub const RULE_MAX: usize = 128;
/// Longest message id.
pub const ID_MAX: usize = 128;
/// Latest time accepted (ms): later ones would overflow the engine's microseconds.
const MAX_MS: u64 = u64::MAX / 1000;

/// What happened to a ban at its origin.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BanKind {
    /// A new ban.
    Block,
    /// The ban now ends at `until` (later than before).
    Extend,
    /// The origin lifted its ban (by hand); `until` is when it would have ended.
    Unblock,
}

impl BanKind {
    /// `block`, `extend` or `unblock`, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            BanKind::Block => "block",
            BanKind::Extend => "extend",
            BanKind::Unblock => "unblock",
        }
    }
}

/// One of our own decisions, as the fleet will hear it ([`crate::cluster::ClusterHandle::publish`]
/// adds the origin and a message id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanNotice {
    /// Block, extend or unblock.
    pub kind: BanKind,
    /// The banned address or network.
    pub target: IpNet,
    /// When the ban ends (for an unblock: when the lifted ban would have ended).
    pub until: Timestamp,
    /// When the decision was made.
    pub at: Timestamp,
    /// The rule that fired, or the operator's reason.
    pub rule: String,
    /// The offense number that set the ban's length.
    pub offense: u32,
    /// Made by an operator, not by a rule.
    pub manual: bool,
}

/// One validated ban event of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanMessage {
    /// Unique per message (`<node>-<boot>-<seq>`): the broker's de-duplication key.
    pub id: String,
    /// Block, extend or unblock.
    pub kind: BanKind,
    /// Canonical: see [`canonical_target`].
    pub target: IpNet,
    /// When the ban ends (absolute, so every node ends it at the same moment).
    pub until: Timestamp,
    /// When the origin made the decision.
    pub at: Timestamp,
    /// The rule that fired, or the operator's reason.
    pub rule: String,
    /// The offense number that set the ban's length at the origin.
    pub offense: u32,
    /// Set by an operator at the origin, not by a rule.
    pub manual: bool,
    /// The node that made it.
    pub origin: String,
}

/// Why a payload was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Larger than [`MAX_MESSAGE_BYTES`] (its size).
    #[error("message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not JSON, or not the object of this schema (serde's reason).
    #[error("not a ban message: {0}")]
    Json(String),
    /// Another schema version.
    #[error("schema version {0} is not supported (this node reads version {VERSION})")]
    Version(u64),
    /// A field with a value outside the schema.
    #[error("field `{field}`: {why}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// The JSON object as sent, field for field.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    id: String,
    kind: BanKind,
    target: String,
    until_ms: u64,
    at_ms: u64,
    rule: String,
    offense: u32,
    manual: bool,
    origin: String,
}

/// Only the version, read first so that a newer schema is reported as such.
#[derive(Deserialize)]
struct Versioned {
    v: u64,
}

impl BanMessage {
    /// A message about one of our own bans: the target is canonicalised, the rule cleaned
    /// (control characters dropped, cut to [`RULE_MAX`] bytes, `"manual"` when empty),
    /// `offense` at least 1 and `until` not before `at` for a block or extend.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        origin: String,
        kind: BanKind,
        target: IpNet,
        until: Timestamp,
        at: Timestamp,
        rule: &str,
        offense: u32,
        manual: bool,
    ) -> BanMessage {
        let until = if kind == BanKind::Unblock {
            until
        } else {
            until.max(at)
        };
        BanMessage {
            id,
            kind,
            target: canonical_net(target),
            until: to_ms_precision(until),
            at: to_ms_precision(at),
            rule: clean_rule(rule),
            offense: offense.max(1),
            manual,
            origin,
        }
    }

    /// The JSON payload (at most a few hundred bytes for valid fields).
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            v: VERSION,
            id: self.id.clone(),
            kind: self.kind,
            target: target_text(self.target),
            until_ms: (self.until.as_micros() / 1000).min(MAX_MS),
            at_ms: (self.at.as_micros() / 1000).min(MAX_MS),
            rule: self.rule.clone(),
            offense: self.offense,
            manual: self.manual,
            origin: self.origin.clone(),
        };
        // Serializing plain strings and integers cannot fail; an empty payload would be
        // refused by every receiver.
        serde_json::to_vec(&wire).unwrap_or_default()
    }
}

/// Reads a payload from the fleet; any problem is an error, never a panic.
pub fn decode(payload: &[u8]) -> Result<BanMessage, DecodeError> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(payload.len()));
    }
    let version: Versioned =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
    if version.v != u64::from(VERSION) {
        return Err(DecodeError::Version(version.v));
    }
    let w: Wire = serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
    let field = |field: &'static str, why: &str| DecodeError::Field {
        field,
        why: why.to_owned(),
    };
    if !is_message_id(&w.id) {
        return Err(field("id", "must be 1-128 of A-Z a-z 0-9 _ - . :"));
    }
    if !is_cluster_name(&w.origin, NODE_NAME_MAX) {
        return Err(field(
            "origin",
            "must be a node name (1-64 of A-Z a-z 0-9 _ -)",
        ));
    }
    let target = canonical_target(&w.target)
        .ok_or_else(|| field("target", "must be an address or a network in CIDR form"))?;
    if w.rule.is_empty() || w.rule.len() > RULE_MAX || w.rule.chars().any(char::is_control) {
        return Err(field(
            "rule",
            "must be 1-128 bytes without control characters",
        ));
    }
    if w.offense == 0 {
        return Err(field("offense", "must be at least 1"));
    }
    if w.until_ms == 0 || w.until_ms > MAX_MS || w.at_ms > MAX_MS {
        return Err(field(
            "until_ms",
            "must be a time after 1970 in milliseconds",
        ));
    }
    if w.kind != BanKind::Unblock && w.until_ms < w.at_ms {
        return Err(field("until_ms", "a ban cannot end before it was made"));
    }
    Ok(BanMessage {
        id: w.id,
        kind: w.kind,
        target,
        until: Timestamp(w.until_ms * 1000),
        at: Timestamp(w.at_ms * 1000),
        rule: w.rule,
        offense: w.offense,
        manual: w.manual,
        origin: w.origin,
    })
}

/// An address or CIDR in canonical form: host bits cleared, IPv4-mapped IPv6 (`::ffff:a.b.c.d`,
/// or a prefix of at least /96 inside `::ffff:0:0/96`) turned into IPv4. `None` when it is
/// neither an address nor a network.
pub fn canonical_target(text: &str) -> Option<IpNet> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    Some(canonical_net(net))
}

/// See [`canonical_target`].
pub fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(n.trunc());
    }
    net.trunc()
}

/// `203.0.113.7` for a host, `2001:db8::/64` for a network (as events name targets).
pub fn target_text(net: IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

fn is_message_id(text: &str) -> bool {
    (1..=ID_MAX).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// Control characters dropped, cut to [`RULE_MAX`] bytes on a character boundary.
fn clean_rule(rule: &str) -> String {
    let mut out = String::new();
    for c in rule.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > RULE_MAX {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push_str("manual");
    }
    out
}

/// The wire carries milliseconds: round down so that what we keep equals what others read.
fn to_ms_precision(t: Timestamp) -> Timestamp {
    Timestamp((t.as_micros() / 1000).min(MAX_MS) * 1000)
}
