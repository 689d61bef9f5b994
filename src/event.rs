//! Decisions and reports -> JSON event lines (pure: returns strings; callers write them).
//!
//! One object per line, `ts` and `event` first. `ip` is an address, or a CIDR when the rule
//! aggregates by prefix. Kinds: block, extend, unblock, suppressed, summary (and the daemon's
//! own kinds later). Field names are a contract with log watchers: add, never rename.

use serde::Serialize;

use crate::config::Metric;
use crate::engine::{Decision, Verdict};
use crate::time::Timestamp;

/// The fields of a decision event; absent fields are omitted.
#[derive(Serialize, Debug, Default)]
struct DecisionEvent<'a> {
    ts: String,
    event: &'static str,
    ip: String,
    rule: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ban_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offense: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manual: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<bool>,
}

fn from_verdict<'a>(event: &'static str, v: &'a Verdict) -> DecisionEvent<'a> {
    DecisionEvent {
        ts: v.at.to_string(),
        event,
        ip: v.key.to_string(),
        rule: &v.rule,
        metric: v.metric.map(Metric::as_str),
        observed: v.metric.map(|_| v.observed),
        threshold: v.metric.map(|_| v.threshold),
        window_secs: v.metric.map(|_| v.window.as_secs_f64()),
        manual: v.metric.is_none().then_some(true),
        ban_secs: Some(v.ban.as_secs()),
        offense: Some(v.offense),
        until: Some(v.until.to_string()),
        ..Default::default()
    }
}

/// The JSON line for a decision (no trailing newline). `dry_run` adds `"dry_run":true`.
pub fn decision_json(d: &Decision, dry_run: bool) -> String {
    let mut e = match d {
        Decision::Block(v) => from_verdict("block", v),
        Decision::Extend(v) => from_verdict("extend", v),
        Decision::Suppressed { verdict, reason } => {
            let mut e = from_verdict("suppressed", verdict);
            e.reason = Some(reason.as_str());
            e
        }
        Decision::Unblock { ban, at, reason } => DecisionEvent {
            ts: at.to_string(),
            event: "unblock",
            ip: ban.key.to_string(),
            rule: &ban.rule,
            reason: Some(reason.as_str()),
            offense: Some(ban.offense),
            manual: ban.manual.then_some(true),
            ..Default::default()
        },
    };
    if dry_run {
        e.dry_run = Some(true);
    }
    to_line(&e)
}

/// What replay says after each file.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Summary {
    pub ts: String,
    pub event: &'static str,
    pub file: String,
    /// Frames libpcap delivered.
    pub packets: u64,
    /// Frames parsed to an IP packet.
    pub parsed: u64,
    /// Frames that were not IP or could not be parsed.
    pub unparsed: u64,
    /// Distinct IP source addresses (estimated when `sources_estimated`: more than the
    /// report's bounded summary could keep).
    pub sources: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sources_estimated: bool,
    /// Distinct targets blocked.
    pub blocked: u64,
    /// Packets from `--local` addresses (never counted).
    pub local_packets: u64,
    /// Packets whose source was not tracked because the table was full.
    pub untracked_packets: u64,
    /// Highest estimate of the source table's memory, in bytes.
    pub peak_table_bytes: u64,
    /// The process's peak resident memory so far (Linux `VmHWM`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// False when libpcap stopped before the end of the file.
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Summary {
    pub fn new(file: String, at: Timestamp) -> Summary {
        Summary {
            ts: at.to_string(),
            event: "summary",
            file,
            packets: 0,
            parsed: 0,
            unparsed: 0,
            sources: 0,
            sources_estimated: false,
            blocked: 0,
            local_packets: 0,
            untracked_packets: 0,
            peak_table_bytes: 0,
            peak_rss_bytes: None,
            complete: true,
            error: None,
        }
    }

    pub fn json(&self) -> String {
        to_line(self)
    }
}

fn to_line<T: Serialize>(v: &T) -> String {
    // Serializing these plain structs cannot fail; keep a valid line if it ever did.
    serde_json::to_string(v)
        .unwrap_or_else(|e| format!("{{\"event\":\"error\",\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SuppressReason;
    use crate::engine::sources::SourceKey;
    use std::sync::Arc;
    use std::time::Duration;

    fn verdict() -> Verdict {
        Verdict {
            key: SourceKey::new("203.0.113.7".parse().unwrap(), 32, 128),
            rule: Arc::from("syn-flood"),
            metric: Some(Metric::Packets),
            observed: 2001,
            threshold: 2000,
            window: Duration::from_secs(1),
            ban: Duration::from_secs(600),
            until: Timestamp(1_795_514_400_123_000 + 600_000_000),
            offense: 1,
            at: Timestamp(1_795_514_400_123_000),
        }
    }

    #[test]
    fn block_event_has_the_documented_fields() {
        let line = decision_json(&Decision::Block(verdict()), false);
        assert_eq!(
            line,
            r#"{"ts":"2026-11-24T10:00:00.123Z","event":"block","ip":"203.0.113.7","rule":"syn-flood","metric":"packets","observed":2001,"threshold":2000,"window_secs":1.0,"ban_secs":600,"offense":1,"until":"2026-11-24T10:10:00.123Z"}"#
        );
    }

    #[test]
    fn suppressed_carries_reason_and_dry_run_flag() {
        let d = Decision::Suppressed {
            verdict: verdict(),
            reason: SuppressReason::Allowlist,
        };
        let v: serde_json::Value = serde_json::from_str(&decision_json(&d, true)).unwrap();
        assert_eq!(v["event"], "suppressed");
        assert_eq!(v["reason"], "allowlist");
        assert_eq!(v["dry_run"], true);
    }
}
