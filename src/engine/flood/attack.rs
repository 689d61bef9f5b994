//! One attack's life (pure): it starts when a detector's window toward a target crosses the
//! threshold (fingerprint, action, mitigation), is reviewed while it stays over (kernel rule
//! kept alive, new carrying sources banned), and ends once it has not crossed for the
//! detector's `ban`: the signature is removed (`unmitigate`), then `attack_end` with its
//! totals. If it comes back, it is a new attack and gets its rule again.

use std::net::IpAddr;
use std::time::Duration;

use super::cell::Window;
use super::detector::Detector;
use super::fingerprint::Fingerprint;
use super::signature::{PortFacts, Refusal, Signature, signature};
use super::table::Entry;
use super::{AttackEnd, AttackStart, EndReason, FloodDecision, Mitigation, Target};
use crate::config::{FloodAction, FloodMetric, FloodScope};
use crate::time::Timestamp;

/// Least time between two reviews of an attack.
const MIN_REVIEW: Duration = Duration::from_millis(100);
/// A source carrying less than 1 / this of the attack is not banned by `sources`.
const MIN_SOURCE_SHARE: u64 = 100;

/// The state of an attack in progress.
#[derive(Clone, Debug, PartialEq)]
pub struct Attack {
    pub start: Timestamp,
    /// The last time the window was over the threshold.
    pub last_over: Timestamp,
    /// The window value that crossed.
    pub observed: u64,
    /// Packets and bytes since the window that crossed began.
    pub packets: u64,
    pub bytes: u64,
    /// Highest window values seen, packets and bytes.
    pub peak_packets: u64,
    pub peak_bytes: u64,
    pub fingerprint: Fingerprint,
    pub spoofed: bool,
    /// What is done (`Alert` when the configured action was refused).
    pub action: FloodAction,
    pub refused: Option<Refusal>,
    /// The rule in the kernel, and until when the kernel keeps it without a refresh.
    pub signature: Option<Signature>,
    pub kernel_until: Timestamp,
    pub next_review: Timestamp,
}

impl Attack {
    /// When it ends unless it crosses again.
    pub fn ends_at(&self, ban: Duration) -> Timestamp {
        self.last_over.saturating_add(ban)
    }
}

/// Where an entry's attack is aimed.
pub fn target(e: &Entry, det: &Detector) -> Target {
    match det.scope {
        FloodScope::Destination => Target::Addr(e.target.net().addr()),
        FloodScope::Total => Target::Total,
    }
}

/// What the detector sees now, for one entry.
pub struct Seen {
    /// The window value (packets or bytes, as the detector counts).
    pub value: u64,
    pub ts_us: u64,
    pub now: Timestamp,
}

/// The window of `e` crossed with no attack in progress: describe it, decide, mitigate.
/// `handshakes`: its sources were seen completing TCP handshakes (real hosts).
#[cold]
#[inline(never)]
pub fn start(
    e: &mut Entry,
    det: &Detector,
    di: usize,
    seen: &Seen,
    facts: &PortFacts,
    handshakes: bool,
    out: &mut Vec<FloodDecision>,
) {
    let now = seen.now;
    let w = window(e, det, seen.ts_us);
    let fp = Fingerprint::of(&w);
    let spoofed = fp.one_packet_each() && !handshakes;
    let target = target(e, det);
    let decided = match (det.action, target) {
        (FloodAction::Signature, Target::Addr(dst)) => signature(&fp, dst, facts).map(Some),
        (FloodAction::Sources, _) if spoofed => Err(Refusal::Spoofed {
            sources: fp.sources,
            packets: fp.packets,
        }),
        _ => Ok(None),
    };
    let (action, refused, sig) = match decided {
        Ok(sig) => (det.action, None, sig),
        Err(r) => (FloodAction::Alert, Some(r), None),
    };
    out.push(FloodDecision::Attack(Box::new(AttackStart {
        rule: det.name.clone(),
        target,
        metric: det.metric,
        observed: seen.value,
        threshold: det.threshold,
        window: det.window,
        fingerprint: fp.clone(),
        spoofed,
        action,
        refused: refused.clone(),
        at: now,
    })));
    let kernel_until = now.saturating_add(det.ban * 2);
    if let Some(signature) = sig {
        out.push(FloodDecision::Mitigate(mitigation(
            det,
            target,
            signature,
            kernel_until,
            now,
            false,
        )));
    }
    let attack = Attack {
        start: now,
        last_over: now,
        observed: seen.value,
        packets: w.packets,
        bytes: w.bytes,
        peak_packets: w.packets,
        peak_bytes: w.bytes,
        fingerprint: fp,
        spoofed,
        action,
        refused,
        signature: sig,
        kernel_until,
        next_review: now.saturating_add(review_every(det)),
    };
    if action == FloodAction::Sources {
        ban_sources(&w.srcs_addrs(), w.packets, di, seen, out);
    }
    e.attack = Some(Box::new(attack));
}

/// The window of `e` is over the threshold again during its attack.
#[inline(always)]
pub fn over(e: &mut Entry, det: &Detector, di: usize, seen: &Seen, out: &mut Vec<FloodDecision>) {
    let Some(a) = e.attack.as_deref_mut() else {
        return;
    };
    let now = seen.now;
    a.last_over = a.last_over.max(now);
    match det.metric {
        FloodMetric::Packets => a.peak_packets = a.peak_packets.max(seen.value),
        FloodMetric::Bytes => a.peak_bytes = a.peak_bytes.max(seen.value),
    }
    if now >= a.next_review {
        review(e, det, di, seen, out);
    }
}

/// Every bucket or so while an attack lasts: the other unit's peak, the kernel rule kept
/// alive, new carrying sources banned.
#[cold]
#[inline(never)]
fn review(e: &mut Entry, det: &Detector, di: usize, seen: &Seen, out: &mut Vec<FloodDecision>) {
    let target = target(e, det);
    let Some(a) = e.attack.as_deref_mut() else {
        return;
    };
    let now = seen.now;
    a.next_review = now.saturating_add(review_every(det));
    // The other unit's peak, at review resolution (the packet path keeps one window).
    let (packets, bytes) = e
        .cells
        .as_deref_mut()
        .map_or((0, 0), |c| c.totals(seen.ts_us, det.span));
    a.peak_packets = a.peak_packets.max(packets);
    a.peak_bytes = a.peak_bytes.max(bytes);
    if let Some(sig) = a.signature
        && a.kernel_until < now.saturating_add(det.ban)
    {
        a.kernel_until = now.saturating_add(det.ban * 2);
        out.push(FloodDecision::Mitigate(mitigation(
            det,
            target,
            sig,
            a.kernel_until,
            now,
            true,
        )));
    }
    if a.action == FloodAction::Sources {
        let w = window(e, det, seen.ts_us);
        ban_sources(&w.srcs_addrs(), w.packets, di, seen, out);
    }
}

/// Ends `e`'s attack if it has not crossed for the detector's `ban` by `now`.
pub fn end_if_due(e: &mut Entry, det: &Detector, now: Timestamp, out: &mut Vec<FloodDecision>) {
    let Some(a) = e.attack.as_deref_mut() else {
        return;
    };
    // A clock reset: the attack is as recent as now.
    if a.last_over > now {
        a.last_over = now;
    }
    if a.ends_at(det.ban) <= now {
        end(e, det, now, EndReason::Quiet, out);
    }
}

/// Ends `e`'s attack now: it went quiet, or is cut short for `reason`.
pub fn end(
    e: &mut Entry,
    det: &Detector,
    now: Timestamp,
    reason: EndReason,
    out: &mut Vec<FloodDecision>,
) {
    let target = target(e, det);
    let Some(a) = e.attack.take() else {
        return;
    };
    // Its counts were partly paused (see `Cells::add_light`): the next fingerprint starts here,
    // and so does the next sample of its sources.
    if let Some(cells) = e.cells.as_deref_mut() {
        cells.clear();
    }
    e.sampled = false;
    if let Some(sig) = a.signature {
        out.push(FloodDecision::Unmitigate(mitigation(
            det, target, sig, now, now, false,
        )));
    }
    let secs = det.window.as_secs_f64().max(1e-6);
    out.push(FloodDecision::AttackEnd(AttackEnd {
        rule: det.name.clone(),
        target,
        started: a.start,
        last_over: a.last_over,
        packets: a.packets,
        bytes: a.bytes,
        peak_pps: a.peak_packets as f64 / secs,
        peak_bps: a.peak_bytes as f64 * 8.0 / secs,
        reason,
        at: now,
    }));
}

fn mitigation(
    det: &Detector,
    target: Target,
    signature: Signature,
    until: Timestamp,
    now: Timestamp,
    refresh: bool,
) -> Mitigation {
    Mitigation {
        rule: det.name.clone(),
        target,
        signature,
        until,
        hold: det.ban,
        refresh,
        at: now,
    }
}

/// What `e`'s counts say about the window ending at `ts_us` (nothing before they are attached).
fn window(e: &mut Entry, det: &Detector, ts_us: u64) -> Window {
    e.cells
        .as_deref_mut()
        .map(|c| c.window(ts_us, det.span))
        .unwrap_or_default()
}

fn review_every(det: &Detector) -> Duration {
    Duration::from_micros(det.span.bucket_us).max(MIN_REVIEW)
}

/// `sources`: every source carrying at least 1% of the window's `packets` (the attack was not
/// refused as spoofed).
fn ban_sources(
    srcs: &[(IpAddr, u64)],
    packets: u64,
    di: usize,
    seen: &Seen,
    out: &mut Vec<FloodDecision>,
) {
    if packets == 0 {
        return;
    }
    let sources: Vec<IpAddr> = srcs
        .iter()
        .filter(|(_, n)| n * MIN_SOURCE_SHARE >= packets)
        .map(|(a, _)| *a)
        .collect();
    if !sources.is_empty() {
        out.push(FloodDecision::BanSources {
            detector: di,
            sources,
            observed: seen.value,
            at: seen.now,
        });
    }
}
