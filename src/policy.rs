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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;
use ipnet::IpNet;

use crate::bans::{Ban, BanTable};
use crate::config::{Config, Metric, Protocol, TcpFlagsFilter};
use crate::counters::{SourceKey, SourceTable, WindowKind};
use crate::packet::{PacketMeta, Proto, tcp_flag};
use crate::time::Timestamp;
use crate::window::Span;

/// A backward time step longer than this is a clock reset, not jitter.
const CLOCK_RESET: Duration = Duration::from_secs(60);
/// Distinct-value windows keep at most this many values per source.
const MAX_DISTINCT_CAP: u64 = 16_384;

/// Why a firing source was not blocked.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SuppressReason {
    /// The source, or a prefix containing it, overlaps `[allow] nets`.
    Allowlist,
    /// The target prefix contains one of our own addresses.
    Local,
    /// `max_active_bans` bans are already active.
    Cap,
}

impl SuppressReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressReason::Allowlist => "allowlist",
            SuppressReason::Local => "local",
            SuppressReason::Cap => "cap",
        }
    }
}

/// The facts behind a decision: enough to explain it.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub key: SourceKey,
    pub rule: Arc<str>,
    pub metric: Metric,
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
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Block(Verdict),
    /// A banned source still over its threshold: the ban now ends at `until`.
    Extend(Verdict),
    /// The ban ended (its expiry passed).
    Unblock {
        ban: Ban,
        at: Timestamp,
    },
    Suppressed {
        verdict: Verdict,
        reason: SuppressReason,
    },
}

/// Ban-length and guard settings, from `[enforce]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub ban: Duration,
    pub max_ban: Duration,
    pub repeat_window: Duration,
    pub repeat_multiplier: f64,
    pub max_active_bans: usize,
    pub extend_while_active: bool,
}

/// A rule ready to match packets.
#[derive(Debug)]
struct CompiledRule {
    name: Arc<str>,
    protocol: Protocol,
    syn_only: bool,
    /// Sorted destination ports; `None` matches all.
    ports: Option<Vec<u16>>,
    /// Skip replies: service port (< 1024) -> ephemeral port (>= 1024).
    skip_replies: bool,
    metric: Metric,
    threshold: u64,
    window: Duration,
    ban: Duration,
}

impl CompiledRule {
    fn matches(&self, p: &PacketMeta) -> bool {
        let proto_ok = match self.protocol {
            Protocol::Any => true,
            Protocol::Tcp => p.proto == Proto::Tcp,
            Protocol::Udp => p.proto == Proto::Udp,
            Protocol::Icmp => matches!(p.proto, Proto::Icmp | Proto::Icmpv6),
        };
        if !proto_ok {
            return false;
        }
        if self.syn_only && (p.tcp_flags & tcp_flag::SYN == 0 || p.tcp_flags & tcp_flag::ACK != 0) {
            return false;
        }
        if self.skip_replies
            && let (Some(sp), Some(dp)) = (p.src_port, p.dst_port)
            && sp < 1024
            && dp >= 1024
        {
            return false;
        }
        match (&self.ports, p.dst_port) {
            (None, _) => true,
            (Some(ports), Some(port)) => ports.binary_search(&port).is_ok(),
            (Some(_), None) => false,
        }
    }
}

/// Rules that share one aggregation share one source table.
#[derive(Debug)]
struct Group {
    agg_v4: u8,
    agg_v6: u8,
    table: SourceTable,
    /// Rule indexes, in table slot order.
    rules: Vec<usize>,
}

/// Counters the engine keeps about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineStats {
    pub packets: u64,
    /// Packets from our own addresses: never counted.
    pub local_packets: u64,
    /// Packets whose source could not be tracked (table full).
    pub untracked: u64,
    pub tracked_sources: usize,
    pub evicted: u64,
    pub memory_bytes: usize,
    pub active_bans: usize,
}

pub struct Engine {
    rules: Vec<CompiledRule>,
    groups: Vec<Group>,
    allow: Vec<IpNet>,
    local: Vec<IpNet>,
    settings: Settings,
    bans: BanTable,
    /// Offense count and time of the last one, for escalation.
    offenses: HashMap<SourceKey, (u32, Timestamp), RandomState>,
    /// (target, rule) pairs whose suppression was reported, and until when to stay quiet.
    quiet: HashMap<(SourceKey, usize), Timestamp, RandomState>,
    /// The latest time seen (time never runs backwards here except on a clock reset).
    now: Timestamp,
    next_maintenance: Timestamp,
    packets: u64,
    local_packets: u64,
}

impl Engine {
    /// An engine for `config`'s rules; `local` are our own addresses (never counted or banned).
    pub fn new(config: &Config, local: Vec<IpNet>) -> Engine {
        let e = &config.enforce;
        let settings = Settings {
            ban: e.ban,
            max_ban: e.max_ban,
            repeat_window: e.repeat_window,
            repeat_multiplier: e.repeat_multiplier,
            max_active_bans: e.max_active_bans,
            extend_while_active: e.extend_while_active,
        };
        let mut groups: Vec<Group> = Vec::new();
        let mut kinds: Vec<Vec<(WindowKind, Span)>> = Vec::new();
        let mut rules = Vec::new();
        for (i, r) in config.rules.iter().enumerate() {
            let gi = match groups
                .iter()
                .position(|g| g.agg_v4 == r.aggregate_v4 && g.agg_v6 == r.aggregate_v6)
            {
                Some(g) => g,
                None => {
                    groups.push(Group {
                        agg_v4: r.aggregate_v4,
                        agg_v6: r.aggregate_v6,
                        table: SourceTable::new(&[], 1),
                        rules: Vec::new(),
                    });
                    kinds.push(Vec::new());
                    groups.len() - 1
                }
            };
            let kind = match r.metric {
                Metric::Packets => WindowKind::Packets,
                Metric::Bytes => WindowKind::Bytes,
                Metric::DstPorts | Metric::DstAddrs => WindowKind::Distinct {
                    cap: usize::try_from(
                        r.threshold
                            .saturating_mul(2)
                            .saturating_add(1)
                            .min(MAX_DISTINCT_CAP),
                    )
                    .unwrap_or(usize::MAX),
                },
            };
            kinds[gi].push((kind, Span::new(r.window)));
            groups[gi].rules.push(i);
            let mut ports = r.dst_ports.clone();
            if let Some(p) = &mut ports {
                p.sort_unstable();
                p.dedup();
            }
            rules.push(CompiledRule {
                name: Arc::from(r.name.as_str()),
                protocol: r.protocol,
                syn_only: r.tcp_flags == Some(TcpFlagsFilter::Syn),
                ports,
                skip_replies: r.skip_replies,
                metric: r.metric,
                threshold: r.threshold,
                window: r.window,
                ban: r.ban.unwrap_or(e.ban),
            });
        }
        for (g, k) in groups.iter_mut().zip(&kinds) {
            g.table = SourceTable::new(k, config.limits.max_tracked_sources);
        }
        Engine {
            rules,
            groups,
            allow: config.allow.nets.iter().map(IpNet::trunc).collect(),
            local: local.iter().map(IpNet::trunc).collect(),
            settings,
            bans: BanTable::default(),
            offenses: HashMap::with_hasher(RandomState::default()),
            quiet: HashMap::with_hasher(RandomState::default()),
            now: Timestamp(0),
            next_maintenance: Timestamp(0),
            packets: 0,
            local_packets: 0,
        }
    }

    /// Counts one packet seen at `ts`; appends any decisions to `out`.
    pub fn observe(&mut self, p: &PacketMeta, ts: Timestamp, out: &mut Vec<Decision>) {
        let now = self.advance(ts);
        self.packets += 1;
        if self.local.iter().any(|n| n.contains(&p.src)) {
            self.local_packets += 1;
            return;
        }
        if self.bans.next_deadline().is_some_and(|d| d <= now) || now >= self.next_maintenance {
            self.tick(now, out);
        }
        let now_us = now.as_micros();
        for gi in 0..self.groups.len() {
            let g = &mut self.groups[gi];
            let key = SourceKey::new(p.src, g.agg_v4, g.agg_v6);
            let Some(slot) = g.table.slot(key, now_us) else {
                continue;
            };
            for (r, &ri) in g.rules.iter().enumerate() {
                let rule = &self.rules[ri];
                if !rule.matches(p) {
                    continue;
                }
                let value = match rule.metric {
                    Metric::Packets => g.table.add_rate(slot, r, now_us, 1),
                    Metric::Bytes => g.table.add_rate(slot, r, now_us, u64::from(p.len)),
                    Metric::DstPorts => match p.dst_port {
                        Some(port) => g.table.add_distinct(slot, r, now_us, u32::from(port)),
                        None => continue,
                    },
                    Metric::DstAddrs => g.table.add_distinct(slot, r, now_us, fold(p.dst)),
                };
                if value > rule.threshold {
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
                            bans: &mut self.bans,
                            offenses: &mut self.offenses,
                            quiet: &mut self.quiet,
                        },
                        out,
                    );
                }
            }
        }
    }

    /// Expires bans due at `now` (appending `Unblock`s) and does periodic housekeeping.
    pub fn tick(&mut self, ts: Timestamp, out: &mut Vec<Decision>) {
        let now = self.advance(ts);
        let mut expired = Vec::new();
        self.bans.pop_expired(now, &mut expired);
        out.extend(
            expired
                .into_iter()
                .map(|ban| Decision::Unblock { ban, at: now }),
        );
        if now >= self.next_maintenance {
            self.next_maintenance = now.saturating_add(Duration::from_secs(1));
            for g in &mut self.groups {
                g.table.maybe_sweep(now.as_micros());
            }
            let rw = self.settings.repeat_window;
            self.offenses
                .retain(|_, (_, last)| last.saturating_add(rw) >= now && *last <= now);
            self.quiet.retain(|_, until| *until > now);
        }
    }

    /// When the engine next needs a [`Engine::tick`] even if no packet arrives.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.bans.next_deadline()
    }

    pub fn bans(&self) -> &BanTable {
        &self.bans
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            packets: self.packets,
            local_packets: self.local_packets,
            untracked: self.groups.iter().map(|g| g.table.untracked).sum(),
            tracked_sources: self.groups.iter().map(|g| g.table.len()).sum(),
            evicted: self.groups.iter().map(|g| g.table.evicted).sum(),
            memory_bytes: self.groups.iter().map(|g| g.table.memory_bytes()).sum(),
            active_bans: self.bans.len(),
        }
    }

    /// Monotonic time: small backward steps are jitter (held at the latest time); a large one
    /// is a clock reset and is followed.
    fn advance(&mut self, ts: Timestamp) -> Timestamp {
        if ts >= self.now || self.now.since(ts) > CLOCK_RESET {
            if ts < self.now {
                self.next_maintenance = ts;
            }
            self.now = ts;
        }
        self.now
    }
}

/// The mutable parts `fire` needs, borrowed apart from the source tables.
struct FireCtx<'a> {
    settings: &'a Settings,
    allow: &'a [IpNet],
    local: &'a [IpNet],
    bans: &'a mut BanTable,
    offenses: &'a mut HashMap<SourceKey, (u32, Timestamp), RandomState>,
    quiet: &'a mut HashMap<(SourceKey, usize), Timestamp, RandomState>,
}

/// A rule fired for `key` with `value`: block, extend, or suppress.
fn fire(
    rule: &CompiledRule,
    ri: usize,
    key: SourceKey,
    value: u64,
    now: Timestamp,
    cx: FireCtx<'_>,
    out: &mut Vec<Decision>,
) {
    let s = cx.settings;
    if let Some(ban) = cx.bans.get(&key) {
        let (duration, until, offense) = (ban.duration, ban.until, ban.offense);
        if *ban.rule == *rule.name {
            cx.bans.record_peak(&key, value);
        }
        if !s.extend_while_active {
            return;
        }
        // A rule with a longer ban than the one in force upgrades it.
        let earned = ban_length(rule.ban, offense, s);
        let upgrade = earned > duration;
        let duration = duration.max(earned);
        let new_until = now.saturating_add(duration);
        // Extend in steps of a tenth of the ban (at least 1 s): one event, not one per packet.
        let step = (duration / 10).max(Duration::from_secs(1));
        if new_until >= until.saturating_add(step) || (upgrade && new_until > until) {
            cx.bans.set_until(&key, new_until);
            if upgrade {
                cx.bans.set_duration(&key, duration);
            }
            out.push(Decision::Extend(Verdict {
                key,
                rule: rule.name.clone(),
                metric: rule.metric,
                observed: value,
                threshold: rule.threshold,
                window: rule.window,
                ban: duration,
                until: new_until,
                offense,
                at: now,
            }));
        }
        return;
    }
    let net = key.net();
    let reason = if overlaps_any(net, cx.allow) {
        Some(SuppressReason::Allowlist)
    } else if overlaps_any(net, cx.local) {
        Some(SuppressReason::Local)
    } else if cx.bans.len() >= s.max_active_bans {
        Some(SuppressReason::Cap)
    } else {
        None
    };
    let offense = match cx.offenses.get(&key) {
        Some(&(n, last)) if now.since(last) <= s.repeat_window => n.saturating_add(1),
        _ => 1,
    };
    let ban = ban_length(rule.ban, offense, s);
    let verdict = Verdict {
        key,
        rule: rule.name.clone(),
        metric: rule.metric,
        observed: value,
        threshold: rule.threshold,
        window: rule.window,
        ban,
        until: now.saturating_add(ban),
        offense,
        at: now,
    };
    if let Some(reason) = reason {
        // Report once per would-be ban, not once per packet.
        let quiet_until = cx.quiet.entry((key, ri)).or_insert(Timestamp(0));
        if *quiet_until <= now {
            *quiet_until = verdict.until;
            out.push(Decision::Suppressed { verdict, reason });
        }
        return;
    }
    cx.offenses.insert(key, (offense, now));
    cx.bans.insert(Ban {
        key,
        until: verdict.until,
        since: now,
        rule: rule.name.clone(),
        offense,
        duration: ban,
        peak: value,
    });
    out.push(Decision::Block(verdict));
}

/// `base` x multiplier^(offense-1), capped at `max_ban`.
pub fn ban_length(base: Duration, offense: u32, s: &Settings) -> Duration {
    let exp = i32::try_from(offense.saturating_sub(1)).unwrap_or(i32::MAX);
    let factor = s.repeat_multiplier.max(1.0).powi(exp);
    let secs = base.as_secs_f64() * factor;
    if !secs.is_finite() || secs >= s.max_ban.as_secs_f64() {
        return s.max_ban.max(base.min(s.max_ban));
    }
    Duration::from_secs_f64(secs)
}

/// True when `net` and any of `nets` share an address.
fn overlaps_any(net: IpNet, nets: &[IpNet]) -> bool {
    nets.iter().any(|n| n.contains(&net) || net.contains(n))
}

/// A 32-bit fingerprint of an address for distinct counting (a collision only undercounts).
fn fold(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(v) => u32::from(v),
        IpAddr::V6(v) => {
            let x = u128::from(v);
            let h = (x as u64) ^ ((x >> 64) as u64).rotate_left(29);
            (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
