//! What `fire` would do for a source that is already banned, remembered until it can change
//! (pure). A flood from a banned source is over threshold on every packet; `fire` then looks
//! the ban up, tests the target against the allowlist and our own nets, computes the ban
//! length and finds nothing to do until the next extension step. The cache keeps, per (target,
//! rule), the earliest time at which `fire` could do more than raise the ban's peak, valid
//! while the target's ban is unchanged: a change to a ban forgets what was cached for its
//! target alone ([`BanTable::take_changes`]), so one new ban no longer sends every banned
//! flooder back through `fire`.
//!
//! Invariant: a cached answer is only used when `fire` would have left everything but the
//! ban's peak unchanged; the peak is raised here exactly as `fire` raises it. So decisions and
//! events are those of `fire` alone (tested against it on random streams in `tests.rs`).

use std::collections::HashMap;
use std::time::Duration;

use foldhash::fast::RandomState;
use ipnet::IpNet;

use super::BanSettings;
use super::bans::BanTable;
use super::fire::{ban_length, lifted_by_protection, unbannable};
use super::rules::CompiledRule;
use crate::engine::sources::SourceKey;
use crate::time::Timestamp;
use crate::trust::peers::PeerSet;

#[derive(Clone, Copy, Debug)]
struct Cached {
    /// From this time on, `fire` may extend or upgrade the ban.
    recheck_at: Timestamp,
    /// The ban is this rule's: its peak follows the rule's value.
    peak_rule: bool,
    peak: u64,
}

/// Entries of the direct-mapped front: `1 << FRONT_BITS` (~115 kB). A few sources flooding
/// under a few rules each find theirs there without hashing; so do most of a wide attack's
/// (2,048 entries: with 256, zipf's banned attackers went to the hash map for 287k of 2M
/// packets, ~107 instructions a look-up).
const FRONT_BITS: u32 = 11;
const FRONT: usize = 1 << FRONT_BITS;

/// A front entry: a (target, rule) pair and its answer; `ri == usize::MAX` when free.
#[derive(Clone, Copy, Debug)]
struct Front {
    key: SourceKey,
    ri: usize,
    cached: Cached,
}

const FREE: Front = Front {
    key: SourceKey::UNSPECIFIED,
    ri: usize::MAX,
    cached: Cached {
        recheck_at: Timestamp(0),
        peak_rule: false,
        peak: 0,
    },
};

/// Most (target, rule) pairs kept outside the front: a bound on the cache's memory with
/// 100k bans. A pair learnt when the map is full empties it first: pairs of banned sources
/// that went quiet stay until their ban changes, and must not keep a long attack's newer
/// flooders out (each would pay `fire` on every packet).
const ENTRIES_KEPT: usize = 16_384;

/// Invariant: a (target, rule) pair is in at most one of `front` (at [`front_index`]) and
/// `entries`; nothing cached predates a change to its target's ban that
/// [`BanTable::take_changes`] has reported, and the cache has taken every change up to the
/// ban table's generation `synced`.
#[derive(Debug)]
pub(super) struct BanCache {
    front: Box<[Front; FRONT]>,
    entries: HashMap<(SourceKey, usize), Cached, RandomState>,
    /// The ban table's generation when the cache last took its changes.
    synced: u64,
    /// One more than the highest rule number ever cached (the rules a target's change forgets).
    rules: usize,
    /// [`ENTRIES_KEPT`] (tests lower it).
    kept: usize,
    /// Tests compare the engine with and without the cache.
    #[cfg(test)]
    pub(super) off: bool,
    /// Tests: times every entry was forgotten at once.
    #[cfg(test)]
    pub(super) cleared: usize,
}

impl Default for BanCache {
    fn default() -> BanCache {
        BanCache {
            front: Box::new([FREE; FRONT]),
            entries: HashMap::default(),
            synced: 0,
            rules: 0,
            kept: ENTRIES_KEPT,
            #[cfg(test)]
            off: false,
            #[cfg(test)]
            cleared: 0,
        }
    }
}

/// The one front entry a (target, rule) pair may use: a multiplicative hash of its words
/// (unseeded: crafted collisions only send pairs to the hash map, as without the front).
#[inline]
fn front_index(key: SourceKey, ri: usize) -> usize {
    let (hi, lo, _) = key.words();
    let x =
        (lo ^ hi.rotate_left(29) ^ (ri as u64).rotate_right(8)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> (64 - FRONT_BITS)) as usize
}

impl BanCache {
    /// True when rule `ri` firing for `key` with `value` at `now` needs no call to `fire`
    /// (the peak, if it is the ban's rule, is raised here). Always inlined into its one
    /// caller, the engine's per-packet path: with `#[inline]` alone, whether it was depended
    /// on how unrelated code split into codegen units (outlined: ~27 instructions per packet
    /// more on the zipf mix).
    #[inline(always)]
    pub(super) fn settle(
        &mut self,
        key: SourceKey,
        ri: usize,
        value: u64,
        now: Timestamp,
        bans: &mut BanTable,
    ) -> bool {
        #[cfg(test)]
        if self.off {
            return false;
        }
        if self.synced != bans.generation() {
            self.sync(bans);
        }
        let f = &mut self.front[front_index(key, ri)];
        let c = if f.ri == ri && f.key == key {
            &mut f.cached
        } else if self.entries.is_empty() {
            return false;
        } else if let Some(c) = self.entries.get_mut(&(key, ri)) {
            c
        } else {
            return false;
        };
        if now >= c.recheck_at {
            return false;
        }
        if c.peak_rule && value > c.peak {
            bans.record_peak(&key, value);
            c.peak = value;
        }
        true
    }

    /// After `fire` ran for (`key`, rule `ri`) at `now`: remembers until when the answer
    /// stays the same, if `key` is banned.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn learn(
        &mut self,
        key: SourceKey,
        ri: usize,
        rule: &CompiledRule,
        settings: &BanSettings,
        allow: &[IpNet],
        local: &[IpNet],
        peers: &PeerSet,
        bans: &mut BanTable,
    ) {
        // What `fire` just changed is already in what is learnt here.
        self.sync(bans);
        self.rules = self.rules.max(ri + 1);
        let Some(ban) = bans.get(&key) else {
            self.forget(key, ri);
            return;
        };
        // A protected target is left alone by `fire` (peak included); a log-only rule never
        // touches a ban; without extensions only the peak moves.
        // A verified peer's ban is not extended on evidence that may be forged (nor its peak).
        let protected =
            lifted_by_protection(ban, allow, local) || unbannable(rule, key, peers).is_some();
        let recheck_at = if protected || rule.log_only || !settings.extend_while_active {
            Timestamp(u64::MAX)
        } else {
            // `fire` extends when now + d >= until + step, or (an upgrade) now + d > until.
            let earned = ban_length(rule.ban, ban.offense, settings);
            let d = ban.duration.max(earned);
            let step = (d / 10).max(Duration::from_secs(1));
            let extend = Timestamp(
                ban.until
                    .saturating_add(step)
                    .0
                    .saturating_sub(Timestamp(0).saturating_add(d).0),
            );
            if earned > ban.duration {
                let upgrade = Timestamp(
                    ban.until
                        .0
                        .saturating_sub(Timestamp(0).saturating_add(d).0)
                        .saturating_add(1),
                );
                extend.min(upgrade)
            } else {
                extend
            }
        };
        let cached = Cached {
            recheck_at,
            peak_rule: !protected && !rule.log_only && *ban.rule == *rule.name,
            peak: ban.peak,
        };
        let f = &mut self.front[front_index(key, ri)];
        if f.ri == ri && f.key == key {
            f.cached = cached;
        } else if f.ri == usize::MAX {
            self.entries.remove(&(key, ri));
            *f = Front { key, ri, cached };
        } else if let Some(c) = self.entries.get_mut(&(key, ri)) {
            *c = cached;
        } else {
            if self.entries.len() >= self.kept {
                self.entries.clear();
            }
            self.entries.insert((key, ri), cached);
        }
    }

    /// Forgets what was cached for (`key`, rule `ri`).
    fn forget(&mut self, key: SourceKey, ri: usize) {
        forget_in(&mut self.front, &mut self.entries, key, ri);
    }

    /// Forgets what the bans' changes since the last call made stale: the entries of each
    /// changed target (every entry when the table lost count).
    #[cold]
    #[inline(never)]
    pub(super) fn sync(&mut self, bans: &mut BanTable) {
        let (front, entries, rules) = (&mut self.front, &mut self.entries, self.rules);
        #[cfg(test)]
        let cleared = &mut self.cleared;
        bans.take_changes(|changed| match changed {
            Some(&key) => (0..rules).for_each(|ri| forget_in(front, entries, key, ri)),
            None => {
                front.fill(FREE);
                entries.clear();
                #[cfg(test)]
                {
                    *cleared += 1;
                }
            }
        });
        self.synced = bans.generation();
    }
}

/// [`BanCache::forget`] on the cache's parts.
fn forget_in(
    front: &mut [Front; FRONT],
    entries: &mut HashMap<(SourceKey, usize), Cached, RandomState>,
    key: SourceKey,
    ri: usize,
) {
    let f = &mut front[front_index(key, ri)];
    if f.ri == ri && f.key == key {
        *f = FREE;
        return;
    }
    if !entries.is_empty() {
        entries.remove(&(key, ri));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::config::{Metric, Protocol, TcpFlagsFilter};
    use crate::engine::tests::{config, rule, syn};
    use crate::engine::{Decision, Engine};
    use crate::time::Timestamp;

    /// Two flooders whose (source, rule) pairs share a front entry: one pair lives in the hash
    /// map; bans with short extension steps (extensions, expiry, a second offense) come out
    /// the same with and without the cache.
    #[test]
    fn pairs_sharing_a_front_entry_decide_alike() {
        use super::{SourceKey, front_index};
        let first = SourceKey::new("203.0.113.1".parse().unwrap(), 32, 128);
        let other = (2..u32::MAX)
            .map(|i| std::net::IpAddr::from((0xC633_0000u32 | (i & 0xffff)).to_be_bytes()))
            .find(|a| front_index(SourceKey::new(*a, 32, 128), 0) == front_index(first, 0))
            .expect("a colliding source among 64k");
        let mut a = rule("a", Metric::Packets, 5, 1000);
        a.protocol = Protocol::Tcp;
        a.tcp_flags = Some(TcpFlagsFilter::Syn);
        a.ban = Some(std::time::Duration::from_secs(20));
        let c = config(vec![a]);
        let mut cached = Engine::new(&c, vec![]);
        let mut plain = Engine::new(&c, vec![]);
        plain.ban_cache.off = true;
        let (mut x, mut y) = (Vec::<Decision>::new(), Vec::<Decision>::new());
        let mut in_map = false;
        for i in 0..40_000u64 {
            let src = if i % 3 == 0 {
                "203.0.113.1".to_string()
            } else {
                other.to_string()
            };
            let p = syn(&src, "10.0.0.1", 80);
            // 10 ms apart, with a pause of 30 s every 8000 packets (the bans expire).
            let t = Timestamp(1_000_000_000 + i * 10_000 + (i / 8000) * 30_000_000);
            cached.observe(&p, t, &mut x);
            plain.observe(&p, t, &mut y);
            in_map |= !cached.ban_cache.entries.is_empty();
        }
        assert!(in_map, "one pair went to the map");
        assert!(x.iter().any(|d| matches!(d, Decision::Extend(_))));
        assert!(x.iter().filter(|d| matches!(d, Decision::Block(_))).count() >= 4);
        assert_eq!(x, y);
    }

    /// A SYN rule over 5 packets a second, banning for `ban_ms`.
    fn syn_rule(ban_ms: u64) -> crate::config::Rule {
        let mut a = rule("a", Metric::Packets, 5, 1000);
        a.protocol = Protocol::Tcp;
        a.tcp_flags = Some(TcpFlagsFilter::Syn);
        a.ban = Some(std::time::Duration::from_millis(ban_ms));
        a
    }

    /// [`syn_rule`] in a config with room for thousands of bans made within a second.
    fn wide_attack(ban_ms: u64, tracked: usize) -> crate::config::Config {
        let mut c = config(vec![syn_rule(ban_ms)]);
        c.enforce.max_active_bans = 5_000;
        c.enforce.max_new_bans_per_sec = 100_000;
        c.limits.max_tracked_sources = tracked;
        c
    }

    fn cached(e: &Engine, src: &str) -> bool {
        let key = super::SourceKey::new(src.parse().unwrap(), 32, 128);
        let f = &e.ban_cache.front[super::front_index(key, 0)];
        (f.ri == 0 && f.key == key) || e.ban_cache.entries.contains_key(&(key, 0))
    }

    /// A new ban, or a change to one, forgets only what was cached for its own target: the
    /// other flooders' answers stay (before, every ban change sent them all back to `fire`).
    #[test]
    fn a_change_to_one_ban_keeps_the_other_targets_answers() {
        let mut e = Engine::new(&config(vec![syn_rule(60_000)]), vec![]);
        let mut out = Vec::<Decision>::new();
        let mut t = 1_000_000_000u64;
        let mut send = |e: &mut Engine, src: &str, n: usize| {
            for _ in 0..n {
                t += 1_000;
                e.observe(&syn(src, "10.0.0.1", 80), Timestamp(t), &mut out);
            }
        };
        send(&mut e, "203.0.113.1", 10);
        send(&mut e, "203.0.113.2", 10);
        assert!(cached(&e, "203.0.113.1") && cached(&e, "203.0.113.2"));
        // A third source is banned (the second's packet takes the change), then the first's
        // ban is lifted by hand.
        send(&mut e, "203.0.113.3", 10);
        send(&mut e, "203.0.113.2", 1);
        assert!(cached(&e, "203.0.113.1") && cached(&e, "203.0.113.3"));
        let first = super::SourceKey::new("203.0.113.1".parse().unwrap(), 32, 128);
        e.bans.remove(&first);
        send(&mut e, "203.0.113.2", 1);
        assert!(!cached(&e, "203.0.113.1"), "its ban changed");
        assert!(cached(&e, "203.0.113.2") && cached(&e, "203.0.113.3"));
        assert_eq!(e.ban_cache.cleared, 0);
    }

    /// More bans end at once than the ban table names one by one: the cache forgets all, and
    /// the decisions are still those without the cache.
    #[test]
    fn many_bans_ending_at_once_clear_the_cache_and_decide_alike() {
        let c = wide_attack(2_000, 4_000);
        let mut cached = Engine::new(&c, vec![]);
        let mut plain = Engine::new(&c, vec![]);
        plain.ban_cache.off = true;
        let (mut x, mut y) = (Vec::<Decision>::new(), Vec::<Decision>::new());
        let src = |i: u32| std::net::IpAddr::from((0xC633_0000u32 | i).to_be_bytes()).to_string();
        let mut t = 1_000_000_000u64;
        // 1,500 sources banned within ~1 s; then, 3 s later, all of them end at once and a
        // few come back.
        for round in 0..2u32 {
            let sources = if round == 0 { 1_500 } else { 40 };
            for i in 0..sources {
                for _ in 0..8 {
                    t += 80;
                    let p = syn(&src(i), "10.0.0.1", 80);
                    cached.observe(&p, Timestamp(t), &mut x);
                    plain.observe(&p, Timestamp(t), &mut y);
                }
            }
            t += 3_000_000_000;
        }
        assert!(cached.ban_cache.cleared >= 1, "the table lost count");
        let blocks = x.iter().filter(|d| matches!(d, Decision::Block(_))).count();
        assert_eq!(blocks, 1_540);
        assert_eq!(x, y);
    }

    /// A long attack: 3,000 flooders banned, then silent (their pairs stay cached until their
    /// bans change) fill the map past its cap; a newer flooder whose front entry is taken is
    /// still cached (the full map was emptied for it), and the decisions are those without
    /// the cache.
    #[test]
    fn a_full_map_makes_room_for_a_new_flooder() {
        let c = wide_attack(600_000, 8_000);
        let mut with = Engine::new(&c, vec![]);
        with.ban_cache.kept = 64;
        let mut plain = Engine::new(&c, vec![]);
        plain.ban_cache.off = true;
        let (mut x, mut y) = (Vec::<Decision>::new(), Vec::<Decision>::new());
        let src = |i: u32| std::net::IpAddr::from((0xC633_0000u32 | i).to_be_bytes());
        let mut t = 1_000_000_000u64;
        let mut flood = |e: &mut Engine, i: u32, n: usize| {
            for _ in 0..n {
                t += 80;
                let p = syn(&src(i).to_string(), "10.0.0.1", 80);
                e.observe(&p, Timestamp(t), &mut x);
                plain.observe(&p, Timestamp(t), &mut y);
            }
        };
        for i in 0..3_000 {
            flood(&mut with, i, 8);
        }
        assert!(with.ban_cache.entries.len() <= 64);
        // A newer flooder whose front entry another (silent) pair holds.
        let taken = |i: u32| {
            let key = super::SourceKey::new(src(i), 32, 128);
            let f = &with.ban_cache.front[super::front_index(key, 0)];
            f.ri == 0 && f.key != key
        };
        let late = (3_000..8_000)
            .find(|&i| taken(i))
            .expect("a taken front entry");
        flood(&mut with, late, 8);
        assert!(
            cached(&with, &src(late).to_string()),
            "cached despite a full map"
        );
        assert_eq!(with.ban_cache.cleared, 0, "only the map was emptied");
        assert_eq!(
            x.iter().filter(|d| matches!(d, Decision::Block(_))).count(),
            3_001
        );
        assert_eq!(x, y);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        /// Floods from a few sources (one allowlisted), two rules with different bans on the
        /// same packets (upgrades), short bans (expiry, repeat offenses), a third rule that only
        /// logs (or not): the same decisions, in the same order, with and without the cache.
        #[test]
        fn the_cache_changes_no_decision(
            t1 in 2..40u64, t2 in 2..40u64,
            ban1 in 100..40_000u64, ban2 in 100..40_000u64, max_ban in 1000..120_000u64,
            extend in any::<bool>(), mult in 1.0..3.0f64, log in any::<bool>(), t3 in 2..40u64,
            stream in prop::collection::vec(
                (0..4u8, prop_oneof![9 => 0..3000u32, 1 => 100_000..3_000_000u32]),
                300..2500,
            ),
        ) {
            let mut a = rule("a", Metric::Packets, t1, 1000);
            a.protocol = Protocol::Tcp;
            a.tcp_flags = Some(TcpFlagsFilter::Syn);
            a.ban = Some(std::time::Duration::from_millis(ban1));
            let mut b = a.clone();
            b.name = "b".into();
            b.threshold = t2;
            b.ban = Some(std::time::Duration::from_millis(ban2));
            let mut l = b.clone();
            l.name = "l".into();
            l.threshold = t3;
            if log {
                l.mode = crate::config::RuleMode::Log;
            }
            let mut c = config(vec![a, b, l]);
            c.allow.nets = vec!["192.0.2.0/24".parse().unwrap()];
            c.enforce.extend_while_active = extend;
            c.enforce.repeat_multiplier = mult;
            c.enforce.max_ban = std::time::Duration::from_millis(max_ban.max(ban1).max(ban2));
            let mut cached = Engine::new(&c, vec![]);
            let mut plain = Engine::new(&c, vec![]);
            plain.ban_cache.off = true;
            let srcs = ["203.0.113.1", "203.0.113.2", "192.0.2.5", "2001:db8::7"];
            let (mut x, mut y) = (Vec::<Decision>::new(), Vec::<Decision>::new());
            let mut ts = 1_000_000_000u64;
            for (src, gap) in &stream {
                ts += u64::from(*gap);
                let p = syn(srcs[usize::from(*src)], "10.0.0.1", 80);
                cached.observe(&p, Timestamp(ts), &mut x);
                plain.observe(&p, Timestamp(ts), &mut y);
            }
            prop_assert_eq!(x, y);
        }
    }
}
