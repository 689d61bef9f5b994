//! The enforcer thread: decisions in, batched kernel commits out, never on the packet path.
//! Also checks the kernel every `check_interval` and repairs outside damage (a flushed chain,
//! a deleted set, a removed jump), emitting `repaired`; the watch thread (`watch_loop.rs`) asks
//! for a check at once when nf_tables reports a deletion. Errors are events; nothing is
//! dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::DaemonState;
use super::floods::SignatureCounters;
use super::workers::EndGuard;
use crate::engine::Decision;
use crate::engine::flood::FloodDecision;
use crate::event::Event;
use crate::firewall::Firewall;
use crate::sys::clock::wall_now;
use crate::sys::enforcer::Enforcer;
use crate::time::Timestamp;

/// What the engine thread sends the enforcer thread.
pub enum EnforceMsg {
    /// A decision to put into the kernel.
    Decision(Decision),
    /// A kernel change decided at start (a lost ban put back, a protected one lifted).
    Op(crate::sys::enforcer::KernelOp),
    /// The allowlist or our own addresses changed: the firewall refuses bans on these.
    Protect(Vec<ipnet::IpNet>),
    /// Something of ours may have been deleted: check (and repair) now, not at the next poll.
    CheckNow,
    /// Commit what is staged, then end the thread.
    Stop,
}

/// Checks asked for by the watch are at least this far apart (a burst of outside changes, or
/// our own iptables rebuilds, which the watch sees too, cost one check this often at most).
const CHECK_GAP: Duration = Duration::from_millis(250);

/// The enforcer thread's state.
pub struct EnforceLoop {
    /// The kernel's firewall.
    pub fw: Arc<Firewall>,
    /// Decisions from the engine thread.
    pub rx: Receiver<EnforceMsg>,
    /// Events and metrics.
    pub shared: Arc<DaemonState>,
    /// How often the kernel is checked for outside damage.
    pub check_interval: Duration,
}

impl EnforceLoop {
    /// Runs until [`EnforceMsg::Stop`] (after a last commit); `_ended` reports the thread's
    /// end, however it ends.
    pub fn run(self, _ended: EndGuard) {
        let mut enforcer = Enforcer::new(Some(self.fw.clone()));
        // Crossing times of the blocks staged since the last commit (reaction time).
        let mut crossings: Vec<Timestamp> = Vec::new();
        let mut signatures = SignatureCounters::default();
        let mut next_check = later(self.check_interval);
        let mut last_check = Instant::now();
        let mut stopping = false;
        loop {
            let now = Instant::now();
            let mut wake = next_check;
            if let Some(r) = enforcer.retry_at() {
                wake = wake.min(r);
            }
            let wait = wake
                .saturating_duration_since(now)
                .min(Duration::from_secs(1));
            let first = if enforcer.pending() > 0 && enforcer.retry_at().is_none() {
                self.rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            } else {
                self.rx.recv_timeout(wait)
            };
            let mut asked = Asked::default();
            match first {
                Ok(m) => {
                    signatures.note(&m);
                    take(m, &mut enforcer, &mut crossings, &mut asked);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stopping = true,
            }
            while let Ok(m) = self.rx.try_recv() {
                signatures.note(&m);
                take(m, &mut enforcer, &mut crossings, &mut asked);
            }
            stopping |= asked.stop;
            if asked.check {
                next_check = next_check.min(last_check + CHECK_GAP);
            }
            if stopping {
                // One last try, whatever the backoff says: leave nothing staged.
                enforcer.retry_now();
            }
            // The counters of a signature about to go are read before it goes.
            signatures.read_if_due(&self.fw, &self.shared.metrics);
            if !self.commit(&mut enforcer, &mut crossings) {
                // The kernel may not hold what memory says (someone emptied one of our ban
                // chains, which the watch does not report): check soon, so the retry finds
                // the damage repaired instead of failing until the next periodic check.
                next_check = next_check.min(last_check + CHECK_GAP);
            }
            if Instant::now() >= next_check && !stopping {
                next_check = later(self.check_interval);
                self.check();
                last_check = Instant::now();
            }
            self.shared
                .pending
                .store(enforcer.pending() as u64, Ordering::Relaxed);
            if stopping {
                return;
            }
        }
    }

    /// Commits what is staged (if a retry is due); false when the commit failed.
    fn commit(&self, enforcer: &mut Enforcer, crossings: &mut Vec<Timestamp>) -> bool {
        match enforcer.commit(wall_now(), Instant::now()) {
            Ok(Some(applied)) => {
                for refused in &applied.refused {
                    self.shared.metrics.enforcer_error();
                    self.shared.events.emit_now(Event::Refused {
                        error: refused.to_string(),
                        during: "commit",
                    });
                }
                let done = wall_now();
                let mut slowest = Duration::ZERO;
                for at in crossings.drain(..) {
                    let reaction = done.since(at);
                    slowest = slowest.max(reaction);
                    self.shared.metrics.observe_reaction(reaction);
                }
                // When the kernel got it: the other half of explaining a decision.
                self.shared.events.emit_now(Event::Applied {
                    blocks: applied.blocks,
                    unblocks: applied.unblocks,
                    commit_ms: ms(applied.took),
                    reaction_ms: (applied.blocks > 0).then(|| ms(slowest)),
                });
                true
            }
            Ok(None) => true,
            Err(e) => {
                self.shared.metrics.enforcer_error();
                self.shared.events.emit_now(Event::CommitFailed {
                    error: e.to_string(),
                    pending: enforcer.pending(),
                    retry_in_secs: enforcer
                        .retry_at()
                        .map(|t| t.saturating_duration_since(Instant::now()).as_secs_f64()),
                });
                false
            }
        }
    }

    fn check(&self) {
        match self.fw.check_and_repair() {
            Ok(repairs) if repairs.is_empty() => {}
            Ok(repairs) => {
                self.shared.metrics.repair();
                let what: Vec<String> = repairs.iter().map(ToString::to_string).collect();
                self.shared
                    .events
                    .emit_now(Event::Repaired { repairs: what });
            }
            Err(e) => {
                self.shared.metrics.enforcer_error();
                self.shared.events.emit_now(Event::CheckFailed {
                    error: e.to_string(),
                    during: "check",
                });
            }
        }
    }
}

/// `now + d`, or far ahead when that does not fit.
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(3600))
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// What the messages of one round asked for besides decisions.
#[derive(Default)]
struct Asked {
    stop: bool,
    check: bool,
}

/// Stages one message, or notes what it asks for.
fn take(m: EnforceMsg, enforcer: &mut Enforcer, crossings: &mut Vec<Timestamp>, asked: &mut Asked) {
    match m {
        EnforceMsg::Decision(d) => {
            // Reaction time is ours: a ban from the fleet crossed no threshold here.
            match &d {
                Decision::Block(v) if v.origin.is_none() => crossings.push(v.at),
                Decision::Flood(FloodDecision::Mitigate(m)) if !m.refresh => crossings.push(m.at),
                _ => {}
            }
            enforcer.stage(&d);
        }
        EnforceMsg::Op(op) => enforcer.stage_op(op),
        EnforceMsg::Protect(nets) => enforcer.set_protected(nets),
        EnforceMsg::CheckNow => asked.check = true,
        EnforceMsg::Stop => asked.stop = true,
    }
}
