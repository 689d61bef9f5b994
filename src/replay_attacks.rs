//! The attacks of one replay (pure): every flood detector's attack, from its `attack`
//! decision to its `attack_end` (at the latest the end of the file: replay ends what is still
//! going), with the kernel rule it got. The table's attacks section is drawn by the CLI.

use crate::engine::Decision;
use crate::engine::flood::{AttackStart, EndReason, FloodDecision, Target};
use crate::time::Timestamp;

/// One attack as replay saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackReport {
    /// The `attack` decision: detector, target, fingerprint, action.
    pub start: AttackStart,
    /// The signature put in, in iptables words.
    pub kernel_rule: Option<String>,
    /// The last time it was over threshold.
    pub last_over: Timestamp,
    /// What the detector counted toward the target during the attack.
    pub packets: u64,
    /// Bytes of those packets.
    pub bytes: u64,
    /// The highest window value, per second.
    pub peak_pps: f64,
    /// The same, in bits per second.
    pub peak_bps: f64,
    /// How it ended (`FileEnded`: still going at the end of the file); `None` before it ends.
    pub ended: Option<EndReason>,
}

/// Collects attacks from the decisions of one replay.
#[derive(Default)]
pub struct AttackLog(Vec<AttackReport>);

impl AttackLog {
    /// Takes one decision (only flood decisions matter).
    pub fn note(&mut self, d: &Decision) {
        let Decision::Flood(f) = d else {
            return;
        };
        match f {
            FloodDecision::Attack(a) => self.0.push(AttackReport {
                start: (**a).clone(),
                kernel_rule: None,
                last_over: a.at,
                packets: a.fingerprint.packets,
                bytes: a.fingerprint.bytes,
                peak_pps: 0.0,
                peak_bps: 0.0,
                ended: None,
            }),
            FloodDecision::Mitigate(m) => {
                if let Some(r) = self.open(&m.rule, m.target) {
                    r.kernel_rule.get_or_insert_with(|| m.signature.to_string());
                }
            }
            FloodDecision::AttackEnd(e) => {
                if let Some(r) = self.open(&e.rule, e.target) {
                    r.ended = Some(e.reason);
                    r.last_over = e.last_over;
                    r.packets = e.packets;
                    r.bytes = e.bytes;
                    r.peak_pps = e.peak_pps;
                    r.peak_bps = e.peak_bps;
                }
            }
            FloodDecision::Unmitigate(_) | FloodDecision::BanSources { .. } => {}
        }
    }

    /// The attack of `rule` on `target` still in progress.
    fn open(&mut self, rule: &str, target: Target) -> Option<&mut AttackReport> {
        self.0
            .iter_mut()
            .rev()
            .find(|r| r.ended.is_none() && &*r.start.rule == rule && r.start.target == target)
    }

    /// The attacks, by start time.
    pub fn finish(self) -> Vec<AttackReport> {
        self.0
    }
}
