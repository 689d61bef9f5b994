//! What the flood detectors decide and report (pure): attacks starting and ending, signature
//! rules to put in and take out, sources to ban, and attacks in progress for status.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::attack::Attack;
use super::fingerprint::Fingerprint;
use super::signature::{Refusal, Signature};
use crate::config::{FloodAction, FloodMetric};
use crate::time::Timestamp;

/// Where an attack is aimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Addr(IpAddr),
    /// Every protected destination together (`scope = "total"`).
    Total,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Total => f.write_str("total"),
        }
    }
}

/// An attack began.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackStart {
    pub rule: Arc<str>,
    pub target: Target,
    pub metric: FloodMetric,
    /// The window value that crossed.
    pub observed: u64,
    pub threshold: u64,
    pub window: Duration,
    pub fingerprint: Fingerprint,
    pub spoofed: bool,
    /// What is done: the configured action, or `Alert` when it was refused.
    pub action: FloodAction,
    pub refused: Option<Refusal>,
    pub at: Timestamp,
}

/// A signature rule to put in (or keep in) the kernel, or to take out.
#[derive(Clone, Debug, PartialEq)]
pub struct Mitigation {
    pub rule: Arc<str>,
    pub target: Target,
    pub signature: Signature,
    /// Until when the kernel keeps it without a refresh (a daemon that dies leaves no rule
    /// forever); the attack's end removes it earlier.
    pub until: Timestamp,
    /// The detector's `ban`: how long it stays after the attack was last over threshold.
    pub hold: Duration,
    /// A refresh of a rule already in place (no event).
    pub refresh: bool,
    pub at: Timestamp,
}

/// Why an attack ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// It has not crossed for its detector's `ban`: it is over.
    Quiet,
    /// Replay: it was still going when the capture file ended.
    FileEnded,
    /// The daemon stopped watching (it stops; its signature goes with it).
    Stopped,
    /// A reload changed or removed its detector.
    Reload,
}

impl EndReason {
    /// The word in `attack_end`'s `reason` (`None` for an attack that went quiet).
    pub fn word(self) -> Option<&'static str> {
        match self {
            EndReason::Quiet => None,
            EndReason::FileEnded => Some("file_ended"),
            EndReason::Stopped => Some("stopped"),
            EndReason::Reload => Some("reload"),
        }
    }
}

/// An attack ended.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackEnd {
    pub rule: Arc<str>,
    pub target: Target,
    pub started: Timestamp,
    /// The last time it was over threshold.
    pub last_over: Timestamp,
    /// Packets and bytes the detector counted toward the target during the attack.
    pub packets: u64,
    pub bytes: u64,
    /// Highest window values, per second (bits per second for bytes).
    pub peak_pps: f64,
    pub peak_bps: f64,
    /// Whether it went quiet, or was cut short (file end, stop, reload).
    pub reason: EndReason,
    pub at: Timestamp,
}

impl AttackEnd {
    pub fn duration(&self) -> Duration {
        self.last_over.since(self.started)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum FloodDecision {
    Attack(Box<AttackStart>),
    Mitigate(Mitigation),
    Unmitigate(Mitigation),
    AttackEnd(AttackEnd),
    /// `sources`: ban these through the normal ban path (the engine turns this into block,
    /// extend or suppressed decisions; it never leaves the engine).
    BanSources {
        detector: usize,
        sources: Vec<IpAddr>,
        observed: u64,
        at: Timestamp,
    },
}

/// An attack in progress, for status, explain and reports.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveAttack {
    pub rule: Arc<str>,
    pub target: Target,
    pub threshold: u64,
    pub window: Duration,
    /// The detector's current window value toward the target.
    pub value: u64,
    /// When it ends unless it crosses again.
    pub ends_at: Timestamp,
    pub attack: Attack,
}

/// One detector's current value toward one address (explain).
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorValue {
    pub rule: Arc<str>,
    pub metric: FloodMetric,
    pub value: u64,
    pub threshold: u64,
    pub window: Duration,
}
