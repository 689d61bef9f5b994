//! Rules x counters -> decisions (pure). The engine never reads the clock: live capture passes
//! wall-clock time, replay passes capture time, and both run exactly this code.
//!
//! Per packet: sources that are ours (`local`) are skipped entirely; every other source is
//! counted by each matching rule; a rule *fires* when its window value exceeds the threshold.
//! A firing source that is already banned gets its ban extended (the capture sees packets
//! before netfilter drops them); an allowlisted one, or a prefix that overlaps an allowlisted
//! or local net, is `suppressed`; beyond `max_active_bans` it is suppressed with reason `cap`;
//! otherwise it is blocked for the rule's ban, times `repeat_multiplier` per earlier offense
//! within `repeat_window`, capped at `max_ban`.

mod admin;
mod ban_cache;
pub mod ban_rate;
pub mod bans;
pub mod digest;
mod fire;
pub mod flood;
pub mod flood_stage;
mod flood_wiring;
pub mod leaders;
mod nets;
pub mod peaks;
mod remote;
mod rules;
pub mod sources;
pub mod table;
pub mod time;
mod top;
pub mod window;

pub use admin::{Explained, ManualBan, Unbanned};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;
use ipnet::IpNet;

use crate::config::{Config, Metric};
use crate::engine::ban_rate::BanRate;
use crate::engine::bans::{ActiveBan, BanTable};
use crate::engine::sources::SourceKey;
use crate::engine::table::Slot;
use crate::packet::PacketMeta;
use crate::time::Timestamp;
use crate::trust::peers::{Kinds, PeerSet};
use digest::{Digester, Digests};
use fire::{FireCtx, fire};
use nets::NetSet;
use rules::{CompiledRule, Group};

/// Packets per pass of a batch: the lines a pass touches (records, index, sets: ~25 KB)
/// stay in the L1/L2 caches until the counting pass reads them, and the pass's prefetches
/// fit the misses a core keeps in flight. 64 rather than 256: within noise on the machines
/// measured before, 4-15% less wall time on mixed and zipf replay on an AMD EPYC host
/// (BENCHMARKS.md, session of 2026-12-03, thirteenth).
const PASS: usize = 64;

/// A batch entry for a packet that is ours, was not tracked, or that the group does not count.
const NO_SLOT: u32 = u32::MAX;
/// In the look-ahead's guesses: the packet gets no slot in the group (its source is skipped,
/// or no window of the group counts it). Neither a slot nor [`table::NO_GUESS`].
const UNCOUNTED: u32 = u32::MAX - 1;

/// A chunk's view of its batch's digests: the chunk starts at packet `from` of `len`.
#[derive(Copy, Clone)]
struct Digested<'a> {
    digests: &'a Digests,
    from: usize,
    len: usize,
}

impl<'a> Digested<'a> {
    /// The marks of the chunk's `n` packets.
    #[inline]
    fn marks(self, n: usize) -> &'a [u8] {
        &self.digests.marks[self.from..self.from + n]
    }

    /// The chunk's `n` hashes in group `g`.
    #[inline]
    fn hashes(self, g: usize, n: usize) -> &'a [u64] {
        let at = g * self.len + self.from;
        &self.digests.hashes[at..at + n]
    }
}

/// A backward time step longer than this is a clock reset, not jitter.
const CLOCK_RESET: Duration = Duration::from_secs(60);
/// How often [`Engine::tick`] does its housekeeping (and ticks the flood detectors).
const MAINTENANCE: Duration = Duration::from_secs(1);

/// The engine's clock rule: a packet at `ts` moves the clock from `now` forward always, and
/// backward only past a clock reset (jitter and slightly late packets leave it).
fn clock_moves(now: Timestamp, ts: Timestamp) -> bool {
    ts >= now || now.since(ts) > CLOCK_RESET
}

/// Why a firing source was not blocked.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SuppressReason {
    /// The source, or a prefix containing it, overlaps `[allow] nets`.
    Allowlist,
    /// The target prefix contains one of our own addresses.
    Local,
    /// `max_active_bans` bans are already active.
    Cap,
    /// More than `max_new_bans_per_sec` new bans: a spoofed flood must not become a rule storm.
    Rate,
    /// The rule is in `mode = "log"`: it decides and reports, never bans.
    Log,
    /// The target is (or covers) a verified peer, of these kinds: its packets may be forged
    /// with the peer's address (rules with `ban_verified_peers` still ban it).
    Peer(Kinds),
    /// A link-local source (`169.254/16`, `fe80::/10`): a neighbour, never banned.
    LinkLocal,
    /// A source that cannot come from the network (`127/8`, multicast, ...).
    Martian,
}

impl SuppressReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressReason::Allowlist => "allowlist",
            SuppressReason::Local => "local",
            SuppressReason::Cap => "cap",
            SuppressReason::Rate => "rate",
            SuppressReason::Log => "log",
            SuppressReason::Peer(_) => "peer",
            SuppressReason::LinkLocal => "link_local",
            SuppressReason::Martian => "martian",
        }
    }
}

/// The facts behind a decision: enough to explain it.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub key: SourceKey,
    /// The rule that fired ([`bans::MANUAL`] for a manual ban).
    pub rule: Arc<str>,
    /// The operator's reason of a manual ban.
    pub comment: Option<Arc<str>>,
    /// `None` for a manual ban.
    pub metric: Option<Metric>,
    /// The rule's window value when it fired.
    pub observed: u64,
    pub threshold: u64,
    pub window: Duration,
    /// The ban this offense earns (or would have earned).
    pub ban: Duration,
    /// When the ban ends (for suppressed: would have ended).
    pub until: Timestamp,
    pub offense: u32,
    pub at: Timestamp,
    /// The fleet node that made it (`None`: made here). Never published again.
    pub origin: Option<Arc<str>>,
}

impl Verdict {
    /// Set by an operator: here (no metric), or at its origin (a fleet ban's rule is then
    /// [`bans::MANUAL`]).
    pub fn manual(&self) -> bool {
        self.metric.is_none() && (self.origin.is_none() || *self.rule == *bans::MANUAL)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Block(Verdict),
    /// A banned source still over its threshold: the ban now ends at `until`.
    Extend(Verdict),
    /// The ban ended: it expired, or an operator lifted it.
    Unblock {
        ban: ActiveBan,
        at: Timestamp,
        reason: UnblockReason,
    },
    Suppressed {
        verdict: Verdict,
        reason: SuppressReason,
    },
    /// A flood detector's attack, mitigation or end (see [`flood`]).
    Flood(flood::FloodDecision),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnblockReason {
    Expired,
    Manual,
    /// The allowlist or our own addresses now cover it (reload, adoption, address change).
    Protected,
}

impl UnblockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnblockReason::Expired => "expired",
            UnblockReason::Manual => "manual",
            UnblockReason::Protected => "protected",
        }
    }
}

/// Ban-length and guard settings, from `[enforce]`.
#[derive(Clone, Debug, PartialEq)]
pub struct BanSettings {
    pub ban: Duration,
    pub max_ban: Duration,
    pub repeat_window: Duration,
    pub repeat_multiplier: f64,
    pub max_active_bans: usize,
    pub extend_while_active: bool,
}

impl BanSettings {
    fn from_config(config: &Config) -> BanSettings {
        let e = &config.enforce;
        BanSettings {
            ban: e.ban,
            max_ban: e.max_ban,
            repeat_window: e.repeat_window,
            repeat_multiplier: e.repeat_multiplier,
            max_active_bans: e.max_active_bans,
            extend_while_active: e.extend_while_active,
        }
    }
}

/// Counters the engine keeps about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineStats {
    pub packets: u64,
    /// Packets from our own addresses: never counted.
    pub local_packets: u64,
    /// Packets from martian sources (`trust::martian`: loopback, multicast, ...): spoofed or
    /// broken, never counted.
    pub martian_packets: u64,
    /// Packets whose source could not be tracked (table full).
    pub untracked: u64,
    /// Packets with a destination port or address a distinct window could not store (the
    /// set pool was spent): those windows' counts may be low.
    pub untracked_distinct: u64,
    pub tracked_sources: usize,
    pub evicted: u64,
    /// Not filled by [`Engine::stats`] (it walks every tracked source): see
    /// [`Engine::memory_bytes`].
    pub memory_bytes: usize,
    pub active_bans: usize,
}

pub struct Engine {
    rules: Vec<CompiledRule>,
    groups: Vec<Group>,
    allow: Vec<IpNet>,
    local: Vec<IpNet>,
    /// `local` and each group's key prefixes and hasher, for the per-packet look-ahead (a copy
    /// goes to replay's reader thread); remade when they change.
    digester: Digester,
    /// Verified peers (`trust::peers`), refreshed by the daemon; empty in replay.
    peers: Arc<PeerSet>,
    settings: BanSettings,
    bans: BanTable,
    /// Offense count and time of the last one, for escalation.
    offenses: HashMap<SourceKey, (u32, Timestamp), RandomState>,
    /// (target, rule) pairs whose suppression was reported, and until when to stay quiet.
    quiet: HashMap<(SourceKey, usize), Timestamp, RandomState>,
    /// `max_new_bans_per_sec`, on passed-in time.
    rate: BanRate,
    /// Bans from the fleet: their own rate bucket, and those waiting for it.
    fleet: remote::Fleet,
    /// Per rule (by index): the sources with the highest values, for `autoblock top`.
    leaders: Vec<leaders::Leaders>,
    /// Per rule: the highest values of the run, for replay's tuning help (`peaks.rs`).
    peaks: peaks::Peaks,
    /// The tables report every value, not only those above the leaders' floor: tests (the
    /// leaders see all, as without report levels) and replay's `--report` trace.
    report_all: bool,
    /// No leaders are kept (replay: nothing asks for `top`); the tables then report values
    /// above each rule's peak so far (or its threshold), all that the peaks and `fire` need.
    no_leaders: bool,
    /// What `fire` would do for sources already banned.
    ban_cache: ban_cache::BanCache,
    /// Reused per batch: each packet's slot in each group (`NO_SLOT`: ours, or untracked),
    /// group by group (packet `i` of group `g` at `g * len + i`).
    scratch: Vec<u32>,
    /// Reused per batch: its digests when the caller brings none.
    digests: Digests,
    /// Reused per packet: the rules of a group that fired, with their values.
    fired: Vec<(usize, u64)>,
    /// The latest time seen (time never runs backwards here except on a clock reset).
    now: Timestamp,
    next_maintenance: Timestamp,
    packets: u64,
    local_packets: u64,
    martian_packets: u64,
    /// The `[[flood]]` detectors (`flood_wiring.rs`).
    flood: flood_wiring::FloodState,
    /// Tests take the look-ahead passes even for tables that stay in cache.
    #[cfg(test)]
    lookahead_always: bool,
}

impl Engine {
    /// An engine for `config`'s rules; `local` are our own addresses (never counted or banned).
    pub fn new(config: &Config, local: Vec<IpNet>) -> Engine {
        let settings = BanSettings::from_config(config);
        let (rules, groups) = rules::compile(config);
        let mut engine = Engine {
            leaders: rules.iter().map(|_| leaders::Leaders::default()).collect(),
            peaks: peaks::Peaks::new(rules.len()),
            report_all: false,
            no_leaders: false,
            rules,
            groups,
            allow: config.allow.nets.iter().map(IpNet::trunc).collect(),
            digester: Digester::new(NetSet::default(), Vec::new()),
            local: local.iter().map(IpNet::trunc).collect(),
            peers: Arc::default(),
            settings,
            bans: BanTable::default(),
            offenses: HashMap::with_hasher(RandomState::default()),
            quiet: HashMap::with_hasher(RandomState::default()),
            rate: BanRate::new(config.enforce.max_new_bans_per_sec),
            ban_cache: ban_cache::BanCache::default(),
            fleet: remote::Fleet::new(config.enforce.max_new_bans_per_sec),
            scratch: Vec::new(),
            digests: Digests::default(),
            fired: Vec::new(),
            now: Timestamp(0),
            next_maintenance: Timestamp(0),
            packets: 0,
            local_packets: 0,
            martian_packets: 0,
            flood: flood_wiring::FloodState::new(config, &local),
            #[cfg(test)]
            lookahead_always: false,
        };
        engine.sync_reports();
        engine.remake_digester();
        engine
    }

    /// A copy of the per-packet configuration, for [`Engine::observe_digested`]'s callers.
    pub fn digester(&self) -> Digester {
        self.digester.clone()
    }

    /// Makes the digester anew from `local` and the groups (after either changed).
    fn remake_digester(&mut self) {
        let groups = self
            .groups
            .iter()
            .map(|g| (g.prefixes, g.table.hasher(), g.table.counted_classes()))
            .collect();
        self.digester = Digester::new(NetSet::new(&self.local), groups);
    }

    /// Counts one packet seen at `ts`; appends any decisions to `out`. (The daemon and replay
    /// use [`Engine::observe_batch`]; this is for callers with one packet at a time.)
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn observe(&mut self, p: &PacketMeta, ts: Timestamp, out: &mut Vec<Decision>) {
        let mark = self.digester.mark(p);
        if digest::skipped(mark) {
            // Ours or martian: counted as such (the flood detectors see it), and no
            // housekeeping runs on its time (as in a batch).
            let now = self.advance(ts);
            self.packets += 1;
            self.observe_floods(p, ts, now, out);
            self.count_ignored(mark);
            return;
        }
        self.observe_batch(std::slice::from_ref(&(*p, ts)), out);
    }

    /// Counts a batch of packets in arrival order: the same decisions as [`Engine::observe`]
    /// on each in turn, but the sources of the whole batch are looked up first (which loads
    /// each record), so their cache misses overlap instead of queueing. Table sweeps happen
    /// only between batches, so slots stay valid within one.
    pub fn observe_batch(&mut self, items: &[(PacketMeta, Timestamp)], out: &mut Vec<Decision>) {
        let mut digests = std::mem::take(&mut self.digests);
        self.digester.digest(items, &mut digests);
        self.observe_digested(items, &digests, out);
        self.digests = digests;
    }

    /// [`Engine::observe_batch`] with the batch's digests made by a copy of
    /// [`Engine::digester`] (replay's reader thread makes them while this counts the batch
    /// before). Digests from an older digester (a reload came between) are made anew here.
    pub fn observe_digested(
        &mut self,
        items: &[(PacketMeta, Timestamp)],
        digests: &Digests,
        out: &mut Vec<Decision>,
    ) {
        if !digests.made_by(&self.digester, items.len()) {
            return self.observe_batch(items, out);
        }
        let Some(&(_, first)) = items.first() else {
            return;
        };
        let now = self.advance(first);
        // Housekeeping (which ticks the flood detectors) once a second, on the batch's first
        // packet's time only: a detached `FloodStage` ticks on the same schedule.
        if now >= self.next_maintenance {
            self.tick(now, out);
        } else if self.bans.next_deadline().is_some_and(|d| d <= now) {
            self.expire(now, out);
        }
        for g in &mut self.groups {
            g.table.sweep_if_full(now.as_micros());
        }
        let now_us = now.as_micros();
        for (k, chunk) in items.chunks(PASS).enumerate() {
            let batch = Digested {
                digests,
                from: k * PASS,
                len: items.len(),
            };
            if self.tables_resident() {
                self.observe_chunk_resident(chunk, batch, now_us, out);
            } else {
                self.observe_chunk(chunk, batch, now_us, out);
            }
        }
    }

    /// Counts up to [`PASS`] packets of a batch: three passes that start the cache misses of
    /// the whole chunk at once (prefetch the index lines; prefetch the records they point to;
    /// look up or create each source's record and prefetch its distinct sets), then the
    /// counting pass on warm lines. `now_us` is the batch's start (new records' last-seen time
    /// at the earliest).
    fn observe_chunk(
        &mut self,
        items: &[(PacketMeta, Timestamp)],
        d: Digested,
        now_us: u64,
        out: &mut Vec<Decision>,
    ) {
        let len = items.len();
        if len == 0 {
            return;
        }
        let marks = d.marks(len);
        let slots = self.look_up_chunk(items, d, now_us);
        for (i, ((p, ts), &mark)) in items.iter().zip(marks).enumerate() {
            let now = self.advance(*ts);
            self.packets += 1;
            // Consumers of every packet, ours included, in arrival order.
            self.observe_floods(p, *ts, now, out);
            if digest::skipped(mark) {
                self.count_ignored(mark);
                continue;
            }
            if self.bans.next_deadline().is_some_and(|d| d <= now) {
                self.expire(now, out);
            }
            let c = mark & digest::CLASS;
            for gi in 0..self.groups.len() {
                let slot = slots[gi * len + i];
                if slot != NO_SLOT {
                    self.count(gi, Slot(slot), None, p, c, *ts, now, out);
                }
            }
        }
        self.scratch = slots;
    }

    /// The look-ahead passes of [`Engine::observe_chunk`] over `items` (not empty): each
    /// packet's slot in each group (`NO_SLOT`: ours or untracked; group by group, packet `i`
    /// of group `g` at `g * len + i`).
    fn look_up_chunk(
        &mut self,
        items: &[(PacketMeta, Timestamp)],
        d: Digested,
        now_us: u64,
    ) -> Vec<u32> {
        let len = items.len();
        let marks = d.marks(len);
        // Each pass runs group by group over the chunk; each group's look-ups stay in packet
        // order (a group's table sees only its own).
        for (gi, g) in self.groups.iter().enumerate() {
            for &h in d.hashes(gi, len) {
                g.table.prefetch_index(h);
            }
        }
        // The slot each look-up will most likely find (prefetching its record), then the look-ups.
        let mut slots = std::mem::take(&mut self.scratch);
        slots.clear();
        for (gi, g) in self.groups.iter().enumerate() {
            let hs = d.hashes(gi, len).iter().zip(marks).zip(items);
            slots.extend(hs.map(|((&h, &m), (p, _))| {
                if digest::skipped(m) || !g.table.counts(m & digest::CLASS, p) {
                    UNCOUNTED
                } else {
                    g.table.prefetch(h)
                }
            }));
        }
        for ((gi, g), ss) in self
            .groups
            .iter_mut()
            .enumerate()
            .zip(slots.chunks_exact_mut(len))
        {
            let hs = d.hashes(gi, len);
            for ((&h, s), (p, ts)) in hs.iter().zip(ss).zip(items) {
                if *s == UNCOUNTED {
                    *s = NO_SLOT;
                    continue;
                }
                let key = g.prefixes.key(p.src);
                // A source found has its distinct sets loaded ahead (its record is in cache now).
                *s = match g
                    .table
                    .slot_with(key, h, *s, ts.as_micros().max(now_us), true)
                {
                    Some(found) => found.0,
                    None => NO_SLOT,
                };
            }
        }
        slots
    }

    /// Whether every source table stays in cache, so that a chunk is counted in one pass
    /// ([`Engine::observe_chunk_resident`]) rather than with the look-ahead passes.
    fn tables_resident(&self) -> bool {
        #[cfg(test)]
        if self.lookahead_always {
            return false;
        }
        self.groups.iter().all(|g| g.table.cache_resident())
    }

    /// [`Engine::observe_chunk`] for tables that stay in cache (few sources): each packet is
    /// looked up and counted in turn, without the look-ahead passes (loads that would hit
    /// anyway) and their per-packet vectors. The same decisions: a look-up touches only the
    /// index, a record's key and last-seen time and the table's bounds, which counting, firing,
    /// the flood detectors and expiry never change (no sweep runs within a batch).
    fn observe_chunk_resident(
        &mut self,
        items: &[(PacketMeta, Timestamp)],
        d: Digested,
        now_us: u64,
        out: &mut Vec<Decision>,
    ) {
        let len = items.len();
        for (i, ((p, ts), &mark)) in items.iter().zip(d.marks(len)).enumerate() {
            let now = self.advance(*ts);
            self.packets += 1;
            self.observe_floods(p, *ts, now, out);
            if digest::skipped(mark) {
                self.count_ignored(mark);
                continue;
            }
            if self.bans.next_deadline().is_some_and(|d| d <= now) {
                self.expire(now, out);
            }
            let c = mark & digest::CLASS;
            let seen_us = ts.as_micros().max(now_us);
            for gi in 0..self.groups.len() {
                let hash = d.hashes(gi, len)[i];
                let g = &mut self.groups[gi];
                if !g.table.counts(c, p) {
                    continue;
                }
                let key = g.prefixes.key(p.src);
                let guess = g.table.guess(hash);
                if let Some(slot) = g.table.slot_hashed(key, hash, guess, seen_us) {
                    self.count(gi, slot, Some(key), p, c, *ts, now, out);
                }
            }
        }
    }

    /// Counts `p` (class `c`) for every matching rule of group `gi` and fires those that go
    /// over, in rule order. `key` is the source's key when the caller made it already (else it
    /// is made here, only if a rule reports).
    ///
    /// The windows use the packet's own time `ts`: a backlog processed late (the engine was
    /// busy, a wall-clock tick already ran ahead) or a packet slightly out of order is counted
    /// when it happened, not piled into the latest bucket. Bans use the engine's clock `now`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn count(
        &mut self,
        gi: usize,
        slot: Slot,
        key: Option<SourceKey>,
        p: &PacketMeta,
        c: u8,
        ts: Timestamp,
        now: Timestamp,
        out: &mut Vec<Decision>,
    ) {
        let fired = &mut self.fired;
        fired.clear();
        self.groups[gi]
            .table
            .count(slot, p, c, ts.as_micros(), fired);
        if fired.is_empty() {
            return;
        }
        // The source's key, for leaders, peaks and bans (most packets report nothing).
        let key = key.unwrap_or_else(|| self.groups[gi].prefixes.key(p.src));
        // Window order is mostly rule order already (one rule per window, windows laid out
        // in rule order): a check of the pairs is cheaper than a call to the sort.
        if fired.len() > 1 && !fired.is_sorted_by_key(|f| f.0) {
            fired.sort_unstable_by_key(|f| f.0);
        }
        // By index (the list stays in place; nothing below changes it).
        for k in 0..self.fired.len() {
            let (r, value) = self.fired[k];
            let ri = self.groups[gi].rules[r];
            if self.no_leaders {
                self.offer_peak(gi, r, ri, key, value, ts);
            } else {
                self.offer_leader(gi, r, ri, key, value);
                self.peaks.offer(ri, key, value, ts);
            }
            if value <= self.rules[ri].threshold {
                continue;
            }
            if self.ban_cache.settle(key, ri, value, now, &mut self.bans) {
                continue;
            }
            fire(
                &self.rules[ri],
                ri,
                key,
                value,
                now,
                FireCtx {
                    settings: &self.settings,
                    allow: &self.allow,
                    local: &self.local,
                    peers: &self.peers,
                    bans: &mut self.bans,
                    offenses: &mut self.offenses,
                    quiet: &mut self.quiet,
                    rate: &mut self.rate,
                },
                out,
            );
            self.ban_cache.learn(
                key,
                ri,
                &self.rules[ri],
                &self.settings,
                &self.allow,
                &self.local,
                &self.peers,
                &mut self.bans,
            );
        }
    }

    /// Offers `value` to rule `ri`'s leaders (rule `r` of group `gi`); when their floor moved,
    /// the table reports values above the new floor (or the threshold, if lower).
    #[inline]
    fn offer_leader(&mut self, gi: usize, r: usize, ri: usize, key: SourceKey, value: u64) {
        let l = &mut self.leaders[ri];
        let floor = l.floor();
        l.offer(key, value);
        if l.floor() != floor {
            if self.report_all {
                return;
            }
            self.groups[gi].table.layout.set_report(r, l.floor());
        }
    }

    /// Offers `value` to rule `ri`'s peaks when no leaders are kept; when the peak rose, the
    /// table reports values above it (or the threshold, if lower).
    #[inline]
    fn offer_peak(
        &mut self,
        gi: usize,
        r: usize,
        ri: usize,
        key: SourceKey,
        value: u64,
        ts: Timestamp,
    ) {
        let floor = self.peaks.floor(ri);
        // Under a flood nearly every value is at or below the peak: nothing to offer.
        if value <= floor && !self.peaks.tracing() {
            return;
        }
        self.peaks.offer(ri, key, value, ts);
        let now = self.peaks.floor(ri);
        if now != floor && !self.report_all {
            self.groups[gi].table.layout.set_report(r, now);
        }
    }

    /// Expires bans due at `now` (appending `Unblock`s) and does periodic housekeeping.
    pub fn tick(&mut self, ts: Timestamp, out: &mut Vec<Decision>) {
        let now = self.advance(ts);
        self.expire(now, out);
        self.tick_floods(now, out);
        if now >= self.next_maintenance {
            self.next_maintenance = now.saturating_add(MAINTENANCE);
            for g in &mut self.groups {
                g.table.maybe_sweep(now.as_micros());
            }
            let rw = self.settings.repeat_window;
            self.offenses
                .retain(|_, (_, last)| last.saturating_add(rw) >= now && *last <= now);
            self.quiet.retain(|_, until| *until > now);
            self.ban_cache.sync(&mut self.bans);
        }
    }

    /// Ends the bans due at `now` (appending `Unblock`s).
    fn expire(&mut self, now: Timestamp, out: &mut Vec<Decision>) {
        let mut expired = Vec::new();
        self.bans.pop_expired(now, &mut expired);
        out.extend(expired.into_iter().map(|ban| Decision::Unblock {
            ban,
            at: now,
            reason: UnblockReason::Expired,
        }));
    }

    /// When the engine next needs a [`Engine::tick`] even if no packet arrives.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.floods_deadline(self.bans.next_deadline())
    }

    pub fn bans(&self) -> &BanTable {
        &self.bans
    }

    /// Bytes the source tables hold. Walks every tracked source: call it now and then, not
    /// per packet (the daemon's status does not need it; replay samples it).
    pub fn memory_bytes(&self) -> usize {
        let sources: usize = self.groups.iter().map(|g| g.table.memory_bytes()).sum();
        sources + self.flood.floods.memory_bytes()
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            packets: self.packets,
            local_packets: self.local_packets,
            martian_packets: self.martian_packets,
            untracked: self.groups.iter().map(|g| g.table.untracked).sum(),
            untracked_distinct: self.groups.iter().map(|g| g.table.untracked_distinct).sum(),
            tracked_sources: self.groups.iter().map(|g| g.table.len()).sum(),
            evicted: self.groups.iter().map(|g| g.table.evicted).sum(),
            memory_bytes: 0,
            active_bans: self.bans.len(),
        }
    }

    /// True for a source never counted by the rules: one of our own addresses, or a martian
    /// (a source that cannot come from the network, finding 9 of issue 11: a spoofed
    /// `127.0.0.53`).
    #[inline]
    /// Counts a packet the rules leave out (its mark says ours, or martian).
    fn count_ignored(&mut self, mark: u8) {
        if mark & digest::LOCAL != 0 {
            self.local_packets += 1;
        } else {
            self.martian_packets += 1;
        }
    }

    /// Monotonic time: small backward steps are jitter (held at the latest time); a large one
    /// is a clock reset and is followed.
    #[inline]
    fn advance(&mut self, ts: Timestamp) -> Timestamp {
        if clock_moves(self.now, ts) {
            if ts < self.now {
                self.reset_clock(ts);
            }
            self.now = ts;
        }
        self.now
    }

    /// A clock reset to `ts` (before the clock): active bans keep the time they had left. Out
    /// of line, so that [`Engine::advance`] inlines into the per-packet loops.
    #[cold]
    #[inline(never)]
    fn reset_clock(&mut self, ts: Timestamp) {
        self.bans.shift_earlier(self.now.since(ts));
        self.next_maintenance = ts;
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cache_ops;
#[cfg(test)]
mod tests_ops;
#[cfg(test)]
mod tests_paths;
#[cfg(test)]
mod tests_remote;
#[cfg(test)]
mod tests_spoof;
