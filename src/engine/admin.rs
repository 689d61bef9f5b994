//! What operators and the daemon do to the engine besides feeding packets (pure): manual bans
//! (never silently shortening one in force) and unbans (one target, a covering prefix, all, or
//! one rule's), adopting bans found in the kernel at start, explaining a source, reloading the
//! configuration without losing counters, and saving/restoring offense history.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::fire::lifted_by_protection;
use super::rules;
use super::{BanSettings, Decision, Engine, UnblockReason, Verdict};
use crate::config::{Config, Metric};
use crate::engine::ban_rate::BanRate;
use crate::engine::bans::{ActiveBan, BanTable, MANUAL};
use crate::engine::sources::SourceKey;
use crate::time::Timestamp;
use crate::trust::peers::{PeerSet, Protection};

/// Why a manual ban was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefuseReason {
    /// Overlaps this allowlisted net (`--force` overrides).
    Allowlisted(IpNet),
    /// Contains one of our own addresses (never overridden: it would lock us out).
    Local(IpNet),
    /// `max_active_bans` reached.
    Cap,
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefuseReason::Allowlisted(n) => write!(f, "overlaps allowlisted {n} (use --force)"),
            RefuseReason::Local(n) => write!(f, "contains our own address {n}: never banned"),
            RefuseReason::Cap => write!(f, "max_active_bans reached"),
        }
    }
}

/// One rule's current value for a source.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleValue {
    pub rule: Arc<str>,
    pub metric: Metric,
    pub value: u64,
    pub threshold: u64,
    pub window: Duration,
    /// What the address is counted under (itself, or its aggregate prefix).
    pub key: SourceKey,
}

/// Everything the engine knows about one address.
#[derive(Clone, Debug, PartialEq)]
pub struct Explained {
    pub addr: IpAddr,
    pub allowlisted: Option<IpNet>,
    pub local: bool,
    /// Why it is a verified peer (its own entry, or none): rules without
    /// `ban_verified_peers` never ban it.
    pub peer: Option<Protection>,
    /// Rules whose `exempt` nets hold it (they do not count it).
    pub exempt: Vec<Arc<str>>,
    pub rules: Vec<RuleValue>,
    /// The ban covering it (its own, or its prefix's).
    pub ban: Option<ActiveBan>,
    /// Rule offenses: remembered within `repeat_window`, and never fewer than the offense
    /// number of the rule ban in force.
    pub offenses: u32,
    pub last_offense: Option<Timestamp>,
}

/// What a manual ban did.
#[derive(Clone, Debug, PartialEq)]
pub enum ManualBan {
    /// Banned (or re-banned for longer): the decision to dispatch.
    Banned(Decision),
    /// Already banned until later than asked: nothing changed (`replace` shortens).
    Kept(ActiveBan),
}

/// What an unban of one target did.
#[derive(Clone, Debug, PartialEq)]
pub enum Unbanned {
    /// Its ban was lifted: the decision to dispatch.
    Removed(Decision),
    /// Not banned itself, but inside this broader ban (kept unless `covering` was asked).
    Covered(ActiveBan),
    /// No ban on it or around it.
    NotFound,
}

impl Engine {
    /// Bans `net` by hand for `duration` (default `[enforce].ban`, capped at `max_ban`), with
    /// the operator's `reason` as its comment (its rule is [`MANUAL`]). Refused when it
    /// overlaps the allowlist (unless `force`), when it contains one of our own addresses
    /// (always: that is a lockout), or when the cap is reached. A ban already in force that
    /// ends later is kept as it is unless `replace`: banning again never silently shortens.
    pub fn ban_manual(
        &mut self,
        net: IpNet,
        duration: Option<Duration>,
        reason: &str,
        force: bool,
        replace: bool,
        ts: Timestamp,
    ) -> Result<ManualBan, RefuseReason> {
        let now = self.advance(ts);
        let key = SourceKey::from_net(net);
        let net = key.net();
        if let Some(why) = self.refusal(net, force) {
            return Err(why);
        }
        if self.bans.get(&key).is_none() && self.bans.len() >= self.settings.max_active_bans {
            return Err(RefuseReason::Cap);
        }
        let duration = duration
            .unwrap_or(self.settings.ban)
            .min(self.settings.max_ban);
        let until = now.saturating_add(duration);
        if let Some(old) = self.bans.get(&key)
            && old.until > until
            && !replace
        {
            return Ok(ManualBan::Kept(old.clone()));
        }
        let rule: Arc<str> = Arc::from(MANUAL);
        let comment = (!reason.is_empty() && reason != MANUAL).then(|| Arc::<str>::from(reason));
        self.bans.insert(ActiveBan {
            key,
            until,
            since: now,
            rule: rule.clone(),
            comment: comment.clone(),
            offense: 1,
            duration,
            peak: 0,
            manual: true,
            origin: None,
        });
        Ok(ManualBan::Banned(Decision::Block(Verdict {
            key,
            rule,
            comment,
            metric: None,
            observed: 0,
            threshold: 0,
            window: Duration::ZERO,
            ban: duration,
            until,
            offense: 1,
            at: now,
            origin: None,
        })))
    }

    /// Why a ban on `net` that no rule here made (a manual ban, a ban from the fleet) may not
    /// go in, if it may not: the one place these checks live, for both. Our own addresses:
    /// never, not even with `force` (that is a lockout); the allowlist: unless `force` (only an
    /// operator here forces; the fleet never does).
    pub(super) fn refusal(&self, net: IpNet, force: bool) -> Option<RefuseReason> {
        if let Some(l) = self
            .local
            .iter()
            .find(|l| l.contains(&net) || net.contains(*l))
        {
            return Some(RefuseReason::Local(*l));
        }
        if !force
            && let Some(a) = self
                .allow
                .iter()
                .find(|a| a.contains(&net) || net.contains(*a))
        {
            return Some(RefuseReason::Allowlisted(*a));
        }
        None
    }

    /// Lifts the ban on exactly `net`. When `net` has none but lies inside a broader ban, that
    /// ban is named, and lifted too when `covering`.
    pub fn unban(&mut self, net: IpNet, covering: bool, ts: Timestamp) -> Unbanned {
        let now = self.advance(ts);
        let key = SourceKey::from_net(net);
        let target = match self.bans.get(&key) {
            Some(_) => key,
            None => match self.covering(net) {
                Some(b) if covering => b.key,
                Some(b) => return Unbanned::Covered(b.clone()),
                None => return Unbanned::NotFound,
            },
        };
        match self.bans.remove(&target) {
            Some(ban) => Unbanned::Removed(Decision::Unblock {
                ban,
                at: now,
                reason: UnblockReason::Manual,
            }),
            None => Unbanned::NotFound,
        }
    }

    /// Lifts every ban (`rule: None`) or every ban whose rule is `rule`; appends the
    /// decisions to `out` and returns how many.
    pub fn unban_where(
        &mut self,
        rule: Option<&str>,
        ts: Timestamp,
        out: &mut Vec<Decision>,
    ) -> usize {
        let now = self.advance(ts);
        lift_where(&mut self.bans, now, UnblockReason::Manual, out, |b| {
            rule.is_none_or(|r| *b.rule == *r)
        })
    }

    /// The most specific ban on a prefix strictly containing `net` (a /48 around an address,
    /// say). One table lookup per shorter prefix length: at most 128, whatever the number of
    /// bans.
    pub fn covering(&self, net: IpNet) -> Option<&ActiveBan> {
        let net = net.trunc();
        (0..net.prefix_len())
            .rev()
            .find_map(|len| self.bans.get(&SourceKey::new(net.addr(), len, len)))
    }

    /// Takes over a ban found in the kernel at start (or restored from state) without an
    /// event: it expires, extends and shows in `list` like any other.
    pub fn adopt(&mut self, ban: ActiveBan) {
        if self.bans.get(&ban.key).is_none_or(|b| b.until < ban.until) {
            self.bans.insert(ban);
        }
    }

    /// Current window values, ban and history of `addr`, as of `now`.
    pub fn explain(&self, addr: IpAddr, now: Timestamp) -> Explained {
        let now_us = now.as_micros();
        let rules = self
            .rules
            .iter()
            .map(|r| {
                let g = &self.groups[r.group];
                let key = SourceKey::new(addr, g.agg_v4, g.agg_v6);
                RuleValue {
                    rule: r.name.clone(),
                    metric: r.metric,
                    value: g.table.rule_value(key, r.slot, now_us),
                    threshold: r.threshold,
                    window: r.window,
                    key,
                }
            })
            .collect::<Vec<_>>();
        let host = SourceKey::new(addr, 32, 128);
        let ban = self
            .bans
            .get(&host)
            .or_else(|| self.covering(host.net()))
            .cloned();
        // The history of what the ban is on, else of the address or its rules' prefixes.
        let offense = ban
            .as_ref()
            .and_then(|b| self.offenses.get(&b.key))
            .or_else(|| self.offenses.get(&host))
            .or_else(|| rules.iter().find_map(|r| self.offenses.get(&r.key)));
        // A rule ban outlives its history when it is longer than `repeat_window`: its own
        // offense number still counts, so the two never disagree.
        let from_ban = ban.as_ref().filter(|b| !b.manual).map_or(0, |b| b.offense);
        Explained {
            addr,
            allowlisted: self.allow.iter().find(|n| n.contains(&addr)).copied(),
            local: self.local.iter().any(|n| n.contains(&addr)),
            peer: self.peers.protection(addr),
            exempt: self
                .rules
                .iter()
                .filter(|r| r.exempts(addr))
                .map(|r| r.name.clone())
                .collect(),
            rules,
            ban,
            offenses: offense.map_or(0, |o| o.0).max(from_ban),
            last_offense: offense.map(|o| o.1),
        }
    }

    /// Applies a new configuration: rules, thresholds, allowlist and ban settings take effect
    /// at once; active bans, offense history and the counters of every group whose window
    /// layout (aggregation, metric kinds, windows) is unchanged are kept. Rule bans that the
    /// new allowlist covers are lifted (appended to `out` as `Unblock`s).
    pub fn reconfigure(&mut self, config: &Config, ts: Timestamp, out: &mut Vec<Decision>) {
        let (rules, mut groups) = rules::compile(config);
        let mut old = std::mem::take(&mut self.groups);
        for g in &mut groups {
            if let Some(i) = old.iter().position(|o| {
                o.agg_v4 == g.agg_v4
                    && o.agg_v6 == g.agg_v6
                    && o.table.layout.same_shape(&g.table.layout)
            }) {
                let mut table = old.swap_remove(i).table;
                // Same records; thresholds and the rules' mapping to windows may be new.
                table.layout = g.table.layout.clone();
                table.set_max_sources(config.limits.max_tracked_sources);
                g.table = table;
            }
        }
        self.leaders = rules
            .iter()
            .map(|_| super::leaders::Leaders::default())
            .collect();
        self.peaks = super::peaks::Peaks::new(rules.len());
        self.rules = rules;
        self.groups = groups;
        self.sync_reports();
        self.remake_digester();
        self.allow = config.allow.nets.iter().map(IpNet::trunc).collect();
        self.settings = BanSettings::from_config(config);
        self.rate = BanRate::new(config.enforce.max_new_bans_per_sec);
        self.fleet.set_rate(config.enforce.max_new_bans_per_sec);
        self.quiet.clear();
        // Rules, settings and the allowlist changed: nothing cached about bans still holds.
        self.ban_cache = Default::default();
        self.reconfigure_floods(config, ts, out);
        self.lift_protected(ts, out);
    }

    /// Lifts every rule ban on a target that overlaps the allowlist or our own addresses (after
    /// a reload, after adopting the kernel's bans, after our addresses changed). Manual bans an
    /// operator forced onto an allowlisted net stay; none can cover our own addresses.
    pub fn lift_protected(&mut self, ts: Timestamp, out: &mut Vec<Decision>) {
        let now = self.advance(ts);
        let (allow, local) = (&self.allow, &self.local);
        lift_where(&mut self.bans, now, UnblockReason::Protected, out, |b| {
            lifted_by_protection(b, allow, local)
        });
    }

    /// Replaces our own addresses (they can change while running) and lifts bans that now
    /// cover one of them.
    pub fn set_local(&mut self, local: Vec<IpNet>, ts: Timestamp, out: &mut Vec<Decision>) {
        self.ban_cache = Default::default();
        self.local = local.iter().map(IpNet::trunc).collect();
        self.remake_digester();
        self.flood.floods.set_protected(&self.local);
        self.lift_protected(ts, out);
    }

    /// The verified peers changed (the daemon's refresh from the kernel's tables): from now
    /// on a rule without `ban_verified_peers` reports them instead of banning them. Bans in
    /// force are kept (not extended on such evidence, they run out).
    pub fn set_peers(&mut self, peers: Arc<PeerSet>) {
        // What `fire` does for a banned peer changes with the set: nothing cached holds.
        self.ban_cache = Default::default();
        self.peers = peers;
    }

    /// What no automatic ban may touch: the allowlist and our own addresses (the firewall's
    /// guard gets the same list).
    pub fn protected(&self) -> Vec<IpNet> {
        self.allow.iter().chain(&self.local).copied().collect()
    }

    /// Offense history, for saving across restarts: (target, count, last offense), unordered.
    pub fn offenses(&self) -> Vec<(IpNet, u32, Timestamp)> {
        self.offenses
            .iter()
            .map(|(k, (n, t))| (k.net(), *n, *t))
            .collect()
    }

    /// Restores saved offense history (entries older than `repeat_window` are dropped later).
    pub fn restore_offenses(&mut self, saved: &[(IpNet, u32, Timestamp)]) {
        for (net, n, t) in saved {
            self.offenses.insert(SourceKey::from_net(*net), (*n, *t));
        }
    }
}

/// Lifts every ban of `bans` that `doomed` picks, at `now`, appending an `Unblock` for `reason`
/// each; returns how many. In key order: the same events in the same order on every run (the
/// table's own order is its hash map's).
fn lift_where(
    bans: &mut BanTable,
    now: Timestamp,
    reason: UnblockReason,
    out: &mut Vec<Decision>,
    doomed: impl Fn(&ActiveBan) -> bool,
) -> usize {
    let mut keys: Vec<SourceKey> = bans.iter().filter(|b| doomed(b)).map(|b| b.key).collect();
    keys.sort_unstable();
    for key in &keys {
        if let Some(ban) = bans.remove(key) {
            out.push(Decision::Unblock {
                ban,
                at: now,
                reason,
            });
        }
    }
    keys.len()
}
