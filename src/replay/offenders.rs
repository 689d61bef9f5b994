//! Replay's offenders: each decision noted against its target (first decision, blocks, peak
//! value), then each one's own traffic from the talker summary, in report order.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use super::Offender;
use super::talkers::Talkers;
use crate::engine::Decision;
use crate::engine::sources::SourceKey;
use crate::time::Timestamp;

pub(super) fn note_offender(
    offenders: &mut HashMap<SourceKey, Offender, RandomState>,
    d: &Decision,
) {
    let (v, suppressed) = match d {
        Decision::Block(v) | Decision::Extend(v) => (v, None),
        Decision::Suppressed { verdict, reason } => (verdict, Some(reason.as_str())),
        Decision::Unblock { ban, .. } => {
            if let Some(o) = offenders.get_mut(&ban.key) {
                o.peak = o.peak.max(ban.peak);
            }
            return;
        }
        Decision::Flood(_) => return,
    };
    let o = offenders.entry(v.key).or_insert_with(|| Offender {
        key: v.key,
        rule: v.rule.clone(),
        metric: v.metric,
        observed: v.observed,
        peak: 0,
        threshold: v.threshold,
        first_decision: v.at,
        blocks: 0,
        suppressed,
        packets: 0,
        approx: false,
        first_seen: Timestamp(0),
        last_seen: Timestamp(0),
    });
    if o.rule == v.rule {
        o.peak = o.peak.max(v.observed);
    }
    if let Decision::Block(_) = d {
        o.blocks += 1;
        if o.suppressed.is_some() {
            // Blocked after all (e.g. another rule): report it as blocked by that rule.
            o.suppressed = None;
            o.rule = v.rule.clone();
            o.metric = v.metric;
            o.threshold = v.threshold;
            o.observed = v.observed;
            o.peak = v.observed;
        }
    }
}

/// Adds each offender's own traffic (from the talker summary: exact for sources that entered
/// it while it had room, a lower bound otherwise) and orders them for the report.
pub(super) fn finish_offenders(
    offenders: HashMap<SourceKey, Offender, RandomState>,
    talkers: &Talkers,
) -> Vec<Offender> {
    // Each talker is added to the offender that covers it, one pass per distinct prefix
    // length: linear in talkers, however many prefix offenders a flood produced.
    let mut totals: HashMap<SourceKey, (u64, Timestamp, Timestamp, bool), RandomState> =
        HashMap::default();
    let mut lengths: Vec<(u8, bool)> = offenders
        .keys()
        .map(|k| (k.net().prefix_len(), k.net().addr().is_ipv6()))
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    for t in talkers.entries() {
        for &(len, v6) in &lengths {
            if t.addr.is_ipv6() != v6 {
                continue;
            }
            let key = SourceKey::new(t.addr, len, len);
            if offenders.contains_key(&key) {
                // A prefix may have lost addresses the summary replaced; a host entry is exact
                // unless it entered by replacing another.
                let host = key.is_host();
                let e =
                    totals
                        .entry(key)
                        .or_insert((0, t.first, t.last, talkers.replaced && !host));
                e.0 += t.packets - t.err;
                e.1 = e.1.min(t.first);
                e.2 = e.2.max(t.last);
                e.3 |= t.err > 0;
            }
        }
    }
    let mut out: Vec<Offender> = offenders.into_values().collect();
    for o in &mut out {
        match totals.get(&o.key) {
            Some(&(packets, first, last, approx)) => {
                o.packets = packets;
                o.first_seen = first;
                o.last_seen = last;
                o.approx = approx;
            }
            None => o.approx = talkers.replaced,
        }
    }
    out.sort_by(|a, b| {
        (a.suppressed.is_some(), a.first_decision, a.key).cmp(&(
            b.suppressed.is_some(),
            b.first_decision,
            b.key,
        ))
    });
    out
}
