//! Every event the daemon and replay write, in one enum: the event schema lives in this file
//! (pure: it renders lines; the sink in `sys::events` writes them).
//!
//! One JSON object per line, `ts` first, then `event` (the kind), then the kind's fields in the
//! order written here. `ip` is an address, or a CIDR when the rule aggregates by prefix. Field
//! names are a contract with log watchers: add, never rename. A kind with several shapes
//! (`enforcer_error`, `state_error`) has one variant per shape, each renamed to the kind. The
//! flood detectors' kinds have their fields in `flood.rs`.

use std::fmt::Display;
use std::sync::Arc;

use serde::{Serialize, Serializer};

mod flood;
mod peaks;
mod spoofed;
pub use flood::{AttackEndFields, AttackFields, MitigateFields, flood_event};
pub use peaks::PeaksFields;
pub use spoofed::{FEW_PACKETS, Spoofed};

use crate::config::Metric;
use crate::engine::{Decision, SuppressReason, Verdict};
use crate::time::Timestamp;

/// What `reload_failed` says about the configuration in force.
pub const KEEPS_RUNNING: &str = "the previous configuration keeps running";
/// What `capture_drops` says about detection.
pub const PARTLY_BLIND: &str =
    "detection is partly blind: packets were lost before autoblock saw them";

/// One event, without its time (see [`Stamped`]).
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A source was banned.
    Block(DecisionFields),
    /// A banned source still over its threshold: its ban now ends later.
    Extend(DecisionFields),
    /// A source fired but was not banned (`reason`: allowlist, local, peer, link_local,
    /// martian, cap, rate, log).
    Suppressed(DecisionFields),
    /// A ban ended (`reason`: expired, manual, protected).
    Unblock(UnblockFields),
    /// Suppressed events left out by the rate limit since the last summary.
    SuppressedDropped {
        /// How many were left out.
        count: u64,
    },
    /// An output fell behind or failed (`output`: `stdout` or `file`): this many lines were
    /// left out of it since the last such event. Written to that output once it works again.
    EventsDropped {
        /// How many lines were left out.
        count: u64,
        /// Which output lost them.
        output: &'static str,
    },
    /// The kernel got a batch of changes.
    Applied {
        /// Bans added or extended.
        blocks: usize,
        /// Bans removed.
        unblocks: usize,
        /// How long the commit took, in milliseconds.
        commit_ms: f64,
        /// From the slowest block's threshold crossing to the kernel; `null` without blocks.
        reaction_ms: Option<f64>,
    },
    /// The daemon runs.
    Started(Box<StartedFields>),
    /// The daemon stopped cleanly.
    Stopped {
        /// Bans were left in the kernel (`keep_on_exit`, not a dry run).
        kept_bans: bool,
        /// The chain and sets were removed.
        flushed: bool,
        /// How long stopping took.
        stop_secs: f64,
    },
    /// A new configuration is in force (SIGHUP).
    Reloaded {
        /// The file read.
        config: String,
        /// Its rule names.
        rules: Vec<String>,
    },
    /// A reload was refused; the previous configuration keeps running.
    ReloadFailed {
        /// The file read.
        config: String,
        /// Every problem, one per entry.
        errors: Vec<String>,
        /// Always [`KEEPS_RUNNING`].
        message: &'static str,
    },
    /// Outside damage to the kernel state was found and repaired.
    Repaired {
        /// What was repaired, in words.
        repairs: Vec<String>,
    },
    /// A commit to the kernel failed; everything staged is kept and retried.
    #[serde(rename = "enforcer_error")]
    CommitFailed {
        /// The firewall error.
        error: String,
        /// Changes waiting for the kernel.
        pending: usize,
        /// When the next try is due; `null` when no retry is scheduled.
        retry_in_secs: Option<f64>,
    },
    /// The periodic check of the kernel state failed.
    #[serde(rename = "enforcer_error")]
    CheckFailed {
        /// The firewall error.
        error: String,
        /// Always `check`.
        during: &'static str,
    },
    /// The firewall's guard refused a change (not retried).
    #[serde(rename = "enforcer_error")]
    Refused {
        /// What was refused and why.
        error: String,
        /// Always `commit`.
        during: &'static str,
    },
    /// The firewall could not be cleaned up at exit.
    EnforcerError {
        /// What went wrong.
        error: String,
    },
    /// More than 1% of the packets were lost before autoblock saw them, over a minute.
    CaptureDrops {
        /// The interface.
        interface: String,
        /// Packets received over the window.
        received: u64,
        /// Packets lost over the window.
        lost: u64,
        /// `lost` of all, in percent, one decimal.
        loss_percent: f64,
        /// The window, in seconds.
        window_secs: u64,
        /// Always [`PARTLY_BLIND`].
        message: &'static str,
    },
    /// A capture ended with an error when it was stopped.
    CaptureError {
        /// The capture error.
        error: String,
    },
    /// Our own addresses changed.
    LocalAddresses {
        /// The new set.
        addresses: Vec<String>,
    },
    /// The state file could not be read at start.
    #[serde(rename = "state_error")]
    StateLoadFailed {
        /// The state error.
        error: String,
        /// True when state is still saved (a corrupt file is replaced); false when the file
        /// exists but could not be read (it is then never overwritten).
        saving: bool,
    },
    /// The state file could not be written.
    #[serde(rename = "state_error")]
    StateSaveFailed {
        /// The state error.
        error: String,
    },
    /// A worker thread or a capture ended: the daemon exits 1 so that it is restarted.
    Fatal {
        /// What ended.
        error: String,
    },
    /// The control socket server stopped.
    ControlError {
        /// Why.
        error: String,
    },
    /// A flood detector crossed its threshold: an attack on `target` began (fingerprint,
    /// action, or why the action was refused).
    Attack(Box<AttackFields>),
    /// A flood signature went into the kernel.
    Mitigate(MitigateFields),
    /// A flood signature left the kernel (its attack ended).
    Unmitigate(MitigateFields),
    /// An attack ended: it has not crossed for its detector's `ban` (or was cut short).
    AttackEnd(AttackEndFields),
    /// What replay says after each file.
    Summary(Summary),
    /// Replay, after each file: per rule, the highest value any source reached (`peaks.rs`).
    Peaks(PeaksFields),
}

/// The fields of `block`, `extend` and `suppressed`; absent fields are omitted.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct DecisionFields {
    /// The target: an address, or a CIDR when the rule aggregates.
    pub ip: String,
    /// The rule that fired; `manual` for a manual ban.
    pub rule: Arc<str>,
    /// Why it was suppressed (`suppressed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Why the target is a verified peer (`established`, `ssh`, `gateway`, `resolver`,
    /// comma-separated), with reason `peer` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The rule's metric, window value, threshold and window; absent for a manual ban.
    #[serde(flatten)]
    pub measure: Option<Measure>,
    /// The ban this offense earns (or would have earned).
    pub ban_secs: u64,
    /// The offense number (1 = first).
    pub offense: u32,
    /// When the ban ends (or would have ended).
    #[serde(serialize_with = "display")]
    pub until: Timestamp,
    /// Set by an operator, not by a rule.
    #[serde(skip_serializing_if = "is_false")]
    pub manual: bool,
    /// The operator's reason of a manual ban (`autoblock ban --reason`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<Arc<str>>,
    /// The fleet node the ban came from; absent for a decision made here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Arc<str>>,
    /// Logged only: the kernel is not touched.
    #[serde(skip_serializing_if = "is_false")]
    pub dry_run: bool,
}

/// What a rule measured when it fired.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Measure {
    /// `packets`, `bytes`, `dst_ports` or `dst_addrs`.
    pub metric: &'static str,
    /// The window value.
    pub observed: u64,
    /// The rule's threshold.
    pub threshold: u64,
    /// The rule's window.
    pub window_secs: f64,
}

/// The fields of `unblock`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct UnblockFields {
    /// The target that was banned.
    pub ip: String,
    /// The rule that set the ban's end time; `manual` for a manual ban.
    pub rule: Arc<str>,
    /// `expired`, `manual` or `protected`.
    pub reason: &'static str,
    /// The ban's offense number.
    pub offense: u32,
    /// The ban was manual.
    #[serde(skip_serializing_if = "is_false")]
    pub manual: bool,
    /// The operator's reason of a manual ban.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<Arc<str>>,
    /// The fleet node whose ban it was; absent for a ban made here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Arc<str>>,
    /// Logged only: the kernel is not touched.
    #[serde(skip_serializing_if = "is_false")]
    pub dry_run: bool,
}

/// The fields of `started`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct StartedFields {
    /// The program's version.
    pub version: &'static str,
    /// The daemon's process id.
    pub pid: u32,
    /// The configuration file.
    pub config: String,
    /// Interfaces captured.
    pub interfaces: Vec<String>,
    /// The backend in use: `iptables`, `ipset`, `nftables`, or `none (dry run)`.
    pub backend: &'static str,
    /// The chain the bans live in.
    pub chain: String,
    /// Nothing is enforced.
    pub dry_run: bool,
    /// Bans found in the kernel and kept.
    pub adopted_bans: usize,
    /// Saved bans the kernel had lost (a reboot, a wiped firewall), put back.
    pub restored_bans: usize,
    /// Our own addresses (never counted or banned).
    pub local_addresses: Vec<String>,
    /// How many rules are in force.
    pub rules: usize,
    /// `enforce.backend` as configured: `auto` or the backend's name.
    pub backend_config: &'static str,
    /// With `auto`: the better backends passed over, each with why (`nftables: ...`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backend_skipped: Vec<String>,
}

/// What replay says after each file (the `summary` event).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Summary {
    /// The capture time of the last packet (the event's `ts`).
    #[serde(skip)]
    pub ts: Timestamp,
    /// The file replayed.
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
    /// `sources` is an estimate (absent when exact).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sources_estimated: bool,
    /// Distinct targets blocked.
    pub blocked: u64,
    /// Packets from `--local` addresses (never counted).
    pub local_packets: u64,
    /// Packets not fully tracked: their source because the table was full, or a destination
    /// port or address because the distinct windows' set pool was spent (the latter also in
    /// `untracked_distinct_packets`).
    pub untracked_packets: u64,
    /// Of `untracked_packets`, those whose source was tracked but a distinct window could not
    /// store their destination port or address (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub untracked_distinct_packets: u64,
    /// Highest estimate of the source table's memory, in bytes.
    pub peak_table_bytes: u64,
    /// The process's peak resident memory so far (Linux `VmHWM`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// False when libpcap stopped before the end of the file.
    pub complete: bool,
    /// Why libpcap stopped early (or could not open the file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The sources that sent the most packets, most first (at most 10; absent without any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_talkers: Vec<TalkerFields>,
    /// `[capture] bpf_filter` when one is set: only the frames it matches were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf_filter: Option<String>,
    /// Present when the file's sources look spoofed (`spoofed.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spoofed: Option<Spoofed>,
}

/// One of the top talkers of a replayed file.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct TalkerFields {
    /// The source address.
    pub ip: String,
    /// Packets it sent.
    pub packets: u64,
    /// Bytes it sent (on the wire).
    pub bytes: u64,
}

impl Summary {
    /// An empty summary of `file`.
    pub fn new(file: String, at: Timestamp) -> Summary {
        Summary {
            ts: at,
            file,
            packets: 0,
            parsed: 0,
            unparsed: 0,
            sources: 0,
            sources_estimated: false,
            blocked: 0,
            local_packets: 0,
            untracked_packets: 0,
            untracked_distinct_packets: 0,
            peak_table_bytes: 0,
            peak_rss_bytes: None,
            complete: true,
            error: None,
            top_talkers: Vec::new(),
            bpf_filter: None,
            spoofed: None,
        }
    }

    /// The `summary` event line (no trailing newline).
    pub fn json(&self) -> String {
        Event::Summary(self.clone()).at(self.ts).line()
    }
}

impl Event {
    /// The event's kind: its `event` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Block(_) => "block",
            Event::Extend(_) => "extend",
            Event::Suppressed(_) => "suppressed",
            Event::Unblock(_) => "unblock",
            Event::SuppressedDropped { .. } => "suppressed_dropped",
            Event::EventsDropped { .. } => "events_dropped",
            Event::Applied { .. } => "applied",
            Event::Started(_) => "started",
            Event::Stopped { .. } => "stopped",
            Event::Reloaded { .. } => "reloaded",
            Event::ReloadFailed { .. } => "reload_failed",
            Event::Repaired { .. } => "repaired",
            Event::CommitFailed { .. }
            | Event::CheckFailed { .. }
            | Event::Refused { .. }
            | Event::EnforcerError { .. } => "enforcer_error",
            Event::CaptureDrops { .. } => "capture_drops",
            Event::CaptureError { .. } => "capture_error",
            Event::LocalAddresses { .. } => "local_addresses",
            Event::StateLoadFailed { .. } | Event::StateSaveFailed { .. } => "state_error",
            Event::Fatal { .. } => "fatal",
            Event::ControlError { .. } => "control_error",
            Event::Attack(_) => "attack",
            Event::Mitigate(_) => "mitigate",
            Event::Unmitigate(_) => "unmitigate",
            Event::AttackEnd(_) => "attack_end",
            Event::Summary(_) => "summary",
            Event::Peaks(_) => "peaks",
        }
    }

    /// `reload_failed` for `config` with these problems.
    pub fn reload_failed(config: String, errors: Vec<String>) -> Event {
        Event::ReloadFailed {
            config,
            errors,
            message: KEEPS_RUNNING,
        }
    }

    /// This event at time `ts`.
    pub fn at(self, ts: Timestamp) -> Stamped {
        Stamped { ts, event: self }
    }

    /// The event for a decision, at the decision's time; `None` for a decision that makes
    /// none (a flood signature's refresh). `dry_run` adds `"dry_run":true`.
    pub fn decision(d: &Decision, dry_run: bool) -> Option<Stamped> {
        Some(match d {
            Decision::Block(v) => Event::Block(fields(v, None, dry_run)).at(v.at),
            Decision::Extend(v) => Event::Extend(fields(v, None, dry_run)).at(v.at),
            Decision::Suppressed { verdict, reason } => {
                let mut f = fields(verdict, Some(reason.as_str()), dry_run);
                if let SuppressReason::Peer(kinds) = reason {
                    f.peer = Some(kinds.to_string());
                }
                Event::Suppressed(f).at(verdict.at)
            }
            Decision::Unblock { ban, at, reason } => Event::Unblock(UnblockFields {
                ip: ban.key.to_string(),
                rule: ban.rule.clone(),
                reason: reason.as_str(),
                offense: ban.offense,
                manual: ban.manual,
                comment: ban.comment.clone(),
                origin: ban.origin.clone(),
                dry_run,
            })
            .at(*at),
            Decision::Flood(f) => return flood_event(f, dry_run),
        })
    }
}

fn fields(v: &Verdict, reason: Option<&'static str>, dry_run: bool) -> DecisionFields {
    DecisionFields {
        ip: v.key.to_string(),
        rule: v.rule.clone(),
        reason,
        peer: None,
        measure: v.metric.map(|metric| Measure {
            metric: Metric::as_str(metric),
            observed: v.observed,
            threshold: v.threshold,
            window_secs: v.window.as_secs_f64(),
        }),
        ban_secs: v.ban.as_secs(),
        offense: v.offense,
        until: v.until,
        manual: v.manual(),
        comment: v.comment.clone(),
        origin: v.origin.clone(),
        dry_run,
    }
}

/// An event with its time: `{"ts":...,"event":kind,...fields}` on the wire.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Stamped {
    /// When it happened: capture time in replay, the wall clock live.
    #[serde(serialize_with = "display")]
    pub ts: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

impl Stamped {
    /// The JSON line (no trailing newline).
    pub fn line(&self) -> String {
        // Serializing these plain values cannot fail; keep a valid line if it ever did.
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"event\":\"error\",\"error\":\"{e}\"}}"))
    }
}

/// The JSON line for a decision (no trailing newline); `None` when it makes no event.
/// `dry_run` adds `"dry_run":true`.
pub fn decision_json(d: &Decision, dry_run: bool) -> Option<String> {
    Event::decision(d, dry_run).map(|e| e.line())
}

fn display<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests;

/// For `skip_serializing_if`: a count field that is absent when zero.
fn is_zero(n: &u64) -> bool {
    *n == 0
}
