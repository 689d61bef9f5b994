//! Unit tests of the two ways a batch is counted: with look-ahead passes (large tables) and
//! packet by packet (tables that stay in cache) decide exactly alike, also across the switch.

use super::tests::{rate_scan_sweep_config, syn};
use super::*;
use crate::time::Timestamp;

const SEC: u64 = 1_000_000;

/// Floods from a few sources (banned, extended, expiring), ours among them, then thousands of
/// new sources that grow the table past the cache-resident size mid-run: the engine that
/// always takes the look-ahead passes, the default one and one fed packet by packet make the
/// same decisions and counts.
#[test]
fn resident_and_lookahead_batches_decide_alike() {
    let mut c = rate_scan_sweep_config();
    c.limits.max_tracked_sources = 100_000;
    let local = vec!["10.9.9.9/32".parse().unwrap()];
    let mut lookahead = Engine::new(&c, local.clone());
    lookahead.lookahead_always = true;
    let mut default = Engine::new(&c, local.clone());
    let mut one = Engine::new(&c, local);
    let mut items = Vec::new();
    for i in 0..20_000u32 {
        let src = match i {
            _ if i % 13 == 0 => "10.9.9.9".to_string(),
            0..6000 => format!("203.0.113.{}", i % 7),
            _ => format!("198.18.{}.{}", (i / 250) % 200, i % 250),
        };
        let dst = format!("10.0.{}.{}", (i / 250) % 4, i % 250);
        let p = syn(&src, &dst, (i % 40) as u16 + 1);
        items.push((p, Timestamp(SEC + u64::from(i) * 397)));
    }
    let (mut a, mut b, mut d) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in items.chunks(300) {
        lookahead.observe_batch(chunk, &mut a);
        default.observe_batch(chunk, &mut b);
    }
    for (p, ts) in &items {
        one.observe(p, *ts, &mut d);
    }
    assert!(a.iter().any(|d| matches!(d, Decision::Block(_))));
    assert!(a.iter().any(|d| matches!(d, Decision::Extend(_))));
    assert!(a.iter().any(|d| matches!(d, Decision::Unblock { .. })));
    assert!(
        !default.groups[0].table.cache_resident(),
        "the run ends past the switch"
    );
    assert_eq!(a, b);
    assert_eq!(a, d);
    assert_eq!(lookahead.stats(), default.stats());
    assert_eq!(lookahead.stats(), one.stats());
}
