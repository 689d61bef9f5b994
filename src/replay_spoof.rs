//! Whether a replayed file's sources look spoofed (pure), so replay says so instead of only
//! counting sources: a spoofed flood cannot be stopped per source, and the operator should
//! know that is why nothing was blocked (issue 14, finding 5).
//!
//! Two signs, either is enough: a flood detector's attack said its sources look spoofed (its
//! fingerprint: about one packet per source, and no handshake completed), or the whole file
//! has about one packet per source (at least 80% as many sources as packets, from at least
//! [`MIN_SOURCES`]). The martian share (sources no host on a network can send from, such as
//! multicast or 240/4: a random spoofer hits them about one time in eight) backs it up.

use std::sync::Arc;

pub use crate::event::Spoofed;
use crate::replay::Talker;
use crate::replay_attacks::AttackReport;
use crate::trust::martian::{SourceCheck, check_source};

/// Fewer sources than this never look spoofed file-wide (a handful of hosts is not a flood);
/// the same floor as the flood detectors' fingerprint.
const MIN_SOURCES: u64 = 32;
use crate::event::FEW_PACKETS;

/// `Some` when the file's sources look spoofed. `sources`: how many the file had (estimated past
/// the summary's bound); `talkers`: those the summary tracked.
pub fn assess<'a>(
    talkers: impl Iterator<Item = &'a Talker> + Clone,
    sources: u64,
    packets: u64,
    attacks: &[AttackReport],
) -> Option<Spoofed> {
    let mut detectors: Vec<Arc<str>> = Vec::new();
    for a in attacks.iter().filter(|a| a.start.spoofed) {
        if !detectors.contains(&a.start.rule) {
            detectors.push(a.start.rule.clone());
        }
    }
    let one_each = sources >= MIN_SOURCES && sources * 5 >= packets * 4;
    if detectors.is_empty() && !one_each {
        return None;
    }
    Some(Spoofed {
        sources,
        few_packet_sources: talkers.clone().filter(|t| t.packets <= FEW_PACKETS).count() as u64,
        martian_sources: talkers
            .filter(|t| matches!(check_source(t.addr), SourceCheck::Martian(_)))
            .count() as u64,
        detectors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use std::net::IpAddr;

    fn talker(addr: IpAddr, packets: u64) -> Talker {
        Talker {
            addr,
            packets,
            err: 0,
            bytes: packets * 60,
            first: Timestamp(0),
            last: Timestamp(0),
        }
    }

    #[test]
    fn one_packet_per_source_looks_spoofed_a_few_busy_hosts_do_not() {
        // 1000 sources of one packet each, one in eight from 224/4 or 240/4.
        let flood: Vec<Talker> = (0..1000u32)
            .map(|i| {
                let first = if i % 8 == 0 {
                    230
                } else {
                    20 + (i % 100) as u8
                };
                talker(IpAddr::from([first, (i >> 8) as u8, i as u8, 1]), 1)
            })
            .collect();
        let s = assess(flood.iter(), 1000, 1000, &[]).expect("spoofed");
        assert_eq!(
            (s.sources, s.few_packet_sources, s.martian_sources),
            (1000, 1000, 125)
        );
        assert!(s.line().contains("125 (12%) martian"), "{}", s.line());
        let busy: Vec<Talker> = (0..40u8)
            .map(|i| talker(IpAddr::from([10, 0, 0, i]), 500))
            .collect();
        assert_eq!(assess(busy.iter(), 40, 20_000, &[]), None);
        assert_eq!(
            assess(flood[..20].iter(), 20, 20, &[]),
            None,
            "too few to tell"
        );
    }
}
