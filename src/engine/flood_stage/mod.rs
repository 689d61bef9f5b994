//! The flood detectors run apart from the engine (pure): replay's reader thread counts each
//! batch for the `[[flood]]` detectors before the engine thread sees it, and the decisions go
//! along with the batch, each tagged with the number of the packet it follows. The engine
//! hands them out at that packet ([`Engine::feed_floods`]), so the events come out in the
//! same order as when the engine counted the detectors itself, while the detectors' work is
//! off the engine thread (the busier of the two).

use std::collections::VecDeque;

use super::flood::{EndReason, FloodDecision, Floods};
use super::{Engine, MAINTENANCE, clock_moves};
use crate::packet::PacketMeta;
use crate::time::Timestamp;

/// A decision and the number of the packet it follows (the engine's packet count once that
/// packet is counted: the first packet is 1).
pub type Tagged = (u64, FloodDecision);

/// The detectors with the engine's clock, fed the same batches as the engine.
pub struct FloodStage {
    floods: Floods,
    /// The engine's clock, as [`Engine`] advances it (a clock reset included).
    now: Timestamp,
    /// When the engine's housekeeping tick, which ticks the detectors too, is next due.
    next_maintenance: Timestamp,
    /// Packets seen.
    packets: u64,
    pending: Vec<FloodDecision>,
}

impl FloodStage {
    fn new(floods: Floods) -> FloodStage {
        FloodStage {
            floods,
            now: Timestamp(0),
            next_maintenance: Timestamp(0),
            packets: 0,
            pending: Vec::new(),
        }
    }

    /// Counts a batch (the one the engine gets next, whole), appending its decisions to `out`.
    pub fn observe_batch(&mut self, items: &[(PacketMeta, Timestamp)], out: &mut Vec<Tagged>) {
        let Some(&(_, first)) = items.first() else {
            return;
        };
        // The engine ticks between batches once a second; the detectors tick with it.
        let now = self.advance(first);
        if now >= self.next_maintenance {
            self.next_maintenance = now.saturating_add(MAINTENANCE);
            self.floods.tick(now, &mut self.pending);
            self.tag(self.packets + 1, out);
        }
        for (p, ts) in items {
            let now = self.advance(*ts);
            self.packets += 1;
            self.floods.observe(p, *ts, now, &mut self.pending);
            if self.floods.due(now) {
                self.floods.tick(now, &mut self.pending);
            }
            if !self.pending.is_empty() {
                self.tag(self.packets, out);
            }
        }
    }

    /// Ends every attack still going at `at` (the file ended).
    pub fn end_all(&mut self, at: Timestamp, reason: EndReason) -> Vec<FloodDecision> {
        let mut out = Vec::new();
        self.floods.end_all(at, reason, &mut out);
        out
    }

    pub fn floods(&self) -> &Floods {
        &self.floods
    }

    fn tag(&mut self, packet: u64, out: &mut Vec<Tagged>) {
        out.extend(self.pending.drain(..).map(|d| (packet, d)));
    }

    /// [`Engine`]'s clock ([`clock_moves`]); a reset brings the housekeeping tick forward, as
    /// in the engine.
    fn advance(&mut self, ts: Timestamp) -> Timestamp {
        if clock_moves(self.now, ts) {
            if ts < self.now {
                self.next_maintenance = ts;
            }
            self.now = ts;
        }
        self.now
    }
}

/// Decisions from a [`FloodStage`] waiting for their packet.
#[derive(Default)]
pub(super) struct Fed {
    queue: VecDeque<Tagged>,
}

impl Fed {
    /// Moves the decisions due at packet `packet` (and any before it) to `pending`.
    #[inline]
    pub(super) fn take_due(&mut self, packet: u64, pending: &mut Vec<FloodDecision>) {
        while self.queue.front().is_some_and(|(n, _)| *n <= packet) {
            if let Some((_, d)) = self.queue.pop_front() {
                pending.push(d);
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether a decision is due at packet `packet` (or was before it).
    #[inline]
    pub(super) fn due(&self, packet: u64) -> bool {
        self.queue.front().is_some_and(|(n, _)| *n <= packet)
    }
}

impl Engine {
    /// Moves the flood detectors out of the engine into a [`FloodStage`] (`None` without
    /// detectors). From then on the engine counts no packet for them: it takes their decisions
    /// from [`Engine::feed_floods`], and still bans the sources of a `sources` detector.
    pub fn detach_floods(&mut self) -> Option<FloodStage> {
        if self.flood.floods.is_empty() {
            return None;
        }
        let floods = std::mem::replace(&mut self.flood.floods, Floods::none());
        Some(FloodStage::new(floods))
    }

    /// Decisions of a detached [`FloodStage`] for the batch about to be observed (or earlier).
    pub fn feed_floods(&mut self, decisions: impl IntoIterator<Item = Tagged>) {
        self.flood.fed.queue.extend(decisions);
    }

    /// Decisions of a detached stage outside any packet (its attacks ended with the file).
    pub fn apply_floods(
        &mut self,
        now: Timestamp,
        decisions: Vec<FloodDecision>,
        out: &mut Vec<super::Decision>,
    ) {
        self.flood.pending.extend(decisions);
        self.flood_decisions(now, out);
    }
}

#[cfg(test)]
mod tests;
