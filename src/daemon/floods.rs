//! The daemon's side of the flood detectors: attacks for `status`, `top` and `explain`, the
//! host's ports kept fresh for the engine (read on a thread of their own: a busy host's
//! socket tables are large), the attack counter, and the kernel's counters of our signatures
//! for the metrics (read by the enforcer thread, which owns the firewall calls).
//!
//! Signatures never outlive their attack: its end, a reload that changes its detector and the
//! daemon's stop remove them (the engine ends every attack before it stops); a daemon killed
//! with -9 leaves them until its next start, which removes every typed rule in our chain
//! (`startup`). The kernel has no timer for them (a typed rule is an iptables rule).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::enforce_loop::EnforceMsg;
use crate::engine::flood::{ActiveAttack, FloodDecision, Target};
use crate::engine::{Decision, Engine};
use crate::firewall::{Firewall, FirewallError, Rule};
use crate::sys::control::protocol::{AttackInfo, FloodWindow};
use crate::sys::metrics::Metrics;
use crate::sys::peers::{ProcFiles, host_ports};
use crate::time::Timestamp;
use crate::trust::proc_net::HostPorts;

/// How often the host's ports are read again.
const HOST_PORTS_EVERY: Duration = Duration::from_secs(10);
/// How often the signatures' counters are read while any is in the kernel.
const COUNTERS_EVERY: Duration = Duration::from_secs(2);

/// Counts what a flood decision means for the metrics (an attack started).
pub fn count(d: &FloodDecision, metrics: &Metrics) {
    if let FloodDecision::Attack(a) = d {
        metrics.attack(&a.rule);
    }
}

/// True for the decisions that change the attacks `status` shows.
pub fn changes_attacks(d: &Decision) -> bool {
    matches!(
        d,
        Decision::Flood(FloodDecision::Attack(_) | FloodDecision::AttackEnd(_))
    )
}

/// An attack in progress, as the control protocol shows it.
pub fn attack_info(a: &ActiveAttack, now: Timestamp) -> AttackInfo {
    let at = &a.attack;
    AttackInfo {
        rule: a.rule.to_string(),
        target: a.target.to_string(),
        since: at.start.to_string(),
        last_over: at.last_over.to_string(),
        value: a.value,
        threshold: a.threshold,
        window_ms: u64::try_from(a.window.as_millis()).unwrap_or(u64::MAX),
        packets: at.packets,
        sources: at.fingerprint.sources,
        spoofed: at.spoofed,
        fingerprint: at.fingerprint.words(),
        action: at.action.as_str().to_string(),
        kernel_rule: at.signature.map(|s| s.to_string()),
        refused: at.refused.as_ref().map(ToString::to_string),
        ends_in_secs: a.ends_at.since(now).as_secs(),
    }
}

/// Every attack in progress.
pub fn attacks(engine: &Engine, now: Timestamp) -> Vec<AttackInfo> {
    engine
        .floods()
        .attacks(now)
        .iter()
        .map(|a| attack_info(a, now))
        .collect()
}

/// `addr` as a flood target: each detector's window toward it, and the attacks on it (or on
/// all protected addresses together).
pub fn explain(
    engine: &Engine,
    addr: IpAddr,
    now: Timestamp,
) -> (Vec<FloodWindow>, Vec<AttackInfo>) {
    let windows = engine
        .floods()
        .explain(addr, now)
        .into_iter()
        .map(|v| FloodWindow {
            rule: v.rule.to_string(),
            metric: v.metric.as_str().to_string(),
            value: v.value,
            threshold: v.threshold,
            window_secs: v.window.as_secs_f64(),
        })
        .collect();
    let attacks = engine
        .floods()
        .attacks(now)
        .iter()
        .filter(|a| a.target == Target::Addr(addr) || a.target == Target::Total)
        .map(|a| attack_info(a, now))
        .collect();
    (windows, attacks)
}

/// Reads the host's ports now and every [`HOST_PORTS_EVERY`] on a thread of its own, until
/// the receiver is gone; `None` when the thread cannot start (the detectors then learn the
/// ports from the traffic alone).
pub fn spawn_host_ports() -> Option<Receiver<HostPorts>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<HostPorts>(1);
    let spawned = std::thread::Builder::new()
        .name("host-ports".into())
        .spawn(move || host_ports_loop(&tx));
    spawned.ok().map(|_| rx)
}

fn host_ports_loop(tx: &SyncSender<HostPorts>) {
    loop {
        match tx.try_send(host_ports(&ProcFiles::own())) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => return,
        }
        std::thread::sleep(HOST_PORTS_EVERY);
    }
}

/// The newest host ports waiting on `rx`, if any.
pub fn latest(rx: &Receiver<HostPorts>) -> Option<HostPorts> {
    rx.try_iter().last()
}

/// The enforcer's reader of the signatures' kernel counters: every [`COUNTERS_EVERY`] while
/// any signature is in, and before one is taken out (its last drops counted). The kernel's
/// per-rule counters restart when a rule is put back; the metrics get the differences.
#[derive(Default)]
pub struct SignatureCounters {
    /// Signatures staged in and not yet taken out.
    live: usize,
    /// A signature is about to be taken out.
    removing: bool,
    next: Option<Instant>,
    /// The last counts read, per rule.
    last: HashMap<Rule, (u64, u64)>,
    /// The backend cannot read them (every backend of the library can today): said once,
    /// never tried again.
    unsupported: bool,
}

impl SignatureCounters {
    /// Notes what a message to the enforcer does to our signatures.
    pub fn note(&mut self, m: &EnforceMsg) {
        match m {
            EnforceMsg::Decision(Decision::Flood(FloodDecision::Mitigate(m))) if !m.refresh => {
                self.live += 1;
            }
            EnforceMsg::Decision(Decision::Flood(FloodDecision::Unmitigate(_))) => {
                self.removing = true;
            }
            _ => {}
        }
    }

    /// Reads the counters when due (before the next commit) and adds what each signature
    /// dropped since the last read to its detector's metrics.
    pub fn read_if_due(&mut self, fw: &Firewall, metrics: &Metrics) {
        let due = self.removing || (self.live > 0 && self.next.is_none_or(|t| Instant::now() >= t));
        if !due || self.unsupported {
            return;
        }
        self.next = Some(Instant::now() + COUNTERS_EVERY);
        if self.removing {
            self.live = self.live.saturating_sub(1);
            self.removing = false;
        }
        match fw.rule_counters() {
            Ok(counters) => self.update(counters, metrics),
            Err(e @ FirewallError::Unsupported { .. }) => {
                tracing::warn!("packets dropped by flood signatures are not counted: {e}");
                self.unsupported = true;
            }
            // A failed read only delays the metric; the next one catches up.
            Err(e) => tracing::debug!("cannot read the signatures' counters: {e}"),
        }
    }

    fn update(&mut self, counters: Vec<crate::firewall::RuleCounter>, metrics: &Metrics) {
        let mut seen = HashMap::new();
        for c in counters {
            let (p0, b0) = self.last.get(&c.rule).copied().unwrap_or((0, 0));
            // Lower than last time: the rule was put back and counts from zero.
            let (dp, db) = if c.packets >= p0 && c.bytes >= b0 {
                (c.packets - p0, c.bytes - b0)
            } else {
                (c.packets, c.bytes)
            };
            if dp > 0 || db > 0 {
                metrics.signature_drops(&c.reason, dp, db);
            }
            seen.insert(c.rule, (c.packets, c.bytes));
        }
        self.last = seen;
    }
}
