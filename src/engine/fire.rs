//! What happens when a rule fires for a source: block, extend, or suppress (pure).

use std::collections::HashMap;
use std::time::Duration;

use foldhash::fast::RandomState;
use ipnet::IpNet;

use super::rules::CompiledRule;
use super::{BanSettings, Decision, SuppressReason, Verdict};
use crate::engine::ban_rate::BanRate;
use crate::engine::bans::{ActiveBan, BanTable};
use crate::engine::sources::SourceKey;
use crate::time::Timestamp;
use crate::trust::martian::{SourceCheck, check_source};
use crate::trust::peers::PeerSet;

/// Most (target, rule) pairs whose suppression is remembered.
pub(super) const MAX_QUIET: usize = 10_000;

/// The mutable parts `fire` needs, borrowed apart from the source tables.
pub(super) struct FireCtx<'a> {
    pub(super) settings: &'a BanSettings,
    pub(super) allow: &'a [IpNet],
    pub(super) local: &'a [IpNet],
    /// The verified peers (`trust::peers`): never banned on evidence a spoofer can forge.
    pub(super) peers: &'a PeerSet,
    pub(super) bans: &'a mut BanTable,
    pub(super) offenses: &'a mut HashMap<SourceKey, (u32, Timestamp), RandomState>,
    pub(super) quiet: &'a mut HashMap<(SourceKey, usize), Timestamp, RandomState>,
    pub(super) rate: &'a mut BanRate,
}

/// A rule fired for `key`, which is banned already: record the peak and extend the ban (at
/// most once per tenth of its length), upgrading it when this rule earns a longer one.
fn extend_active(
    rule: &CompiledRule,
    key: SourceKey,
    value: u64,
    now: Timestamp,
    cx: &mut FireCtx<'_>,
    out: &mut Vec<Decision>,
) {
    let s = cx.settings;
    let Some(ban) = cx.bans.get(&key) else {
        return;
    };
    // A protected target is never extended (its ban is lifted on reload or adoption).
    if lifted_by_protection(ban, cx.allow, cx.local) {
        return;
    }
    // Nor is a verified peer's: the evidence may be forged (the ban then runs out).
    if unbannable(rule, key, cx.peers).is_some() {
        return;
    }
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
        // `list`, `explain` and the kernel comment name the rule that set the end time; a ban
        // that came from the fleet is ours from now on (a remote unblock no longer lifts it).
        cx.bans.set_rule(&key, rule.name.clone());
        cx.bans.set_origin(&key, None);
        if upgrade {
            cx.bans.set_duration(&key, duration);
        }
        out.push(Decision::Extend(verdict(
            rule, key, value, duration, new_until, offense, now,
        )));
    }
}

/// A rule fired for `key` with `value`: block, extend, or suppress.
pub(super) fn fire(
    rule: &CompiledRule,
    ri: usize,
    key: SourceKey,
    value: u64,
    now: Timestamp,
    mut cx: FireCtx<'_>,
    out: &mut Vec<Decision>,
) {
    let s = cx.settings;
    let banned = cx.bans.get(&key).is_some();
    if banned && !rule.log_only {
        extend_active(rule, key, value, now, &mut cx, out);
        return;
    }
    let net = key.net();
    let reason = if rule.log_only {
        // Decide and report, never ban (nor extend a ban another rule made).
        if banned {
            return;
        }
        Some(SuppressReason::Log)
    } else if overlaps_any(net, cx.allow) {
        Some(SuppressReason::Allowlist)
    } else if overlaps_any(net, cx.local) {
        Some(SuppressReason::Local)
    } else if let Some(reason) = unbannable(rule, key, cx.peers) {
        Some(reason)
    } else if cx.bans.len() >= s.max_active_bans {
        Some(SuppressReason::Cap)
    } else if !cx.rate.allow(now) {
        Some(SuppressReason::Rate)
    } else {
        None
    };
    let offense = match cx.offenses.get(&key) {
        Some(&(n, last)) if now.since(last) <= s.repeat_window => n.saturating_add(1),
        _ => 1,
    };
    let ban = ban_length(rule.ban, offense, s);
    let verdict = verdict(rule, key, value, ban, now.saturating_add(ban), offense, now);
    if let Some(reason) = reason {
        // Report once per would-be ban, not once per packet. The memory of what was reported
        // is bounded: past it (a spoofed flood) every suppression is reported, and the event
        // sink's own rate limit summarizes them.
        if cx.quiet.len() >= MAX_QUIET && !cx.quiet.contains_key(&(key, ri)) {
            out.push(Decision::Suppressed { verdict, reason });
            return;
        }
        let quiet_until = cx.quiet.entry((key, ri)).or_insert(Timestamp(0));
        if *quiet_until <= now {
            *quiet_until = verdict.until;
            out.push(Decision::Suppressed { verdict, reason });
        }
        return;
    }
    cx.offenses.insert(key, (offense, now));
    cx.bans.insert(ActiveBan {
        key,
        until: verdict.until,
        since: now,
        rule: rule.name.clone(),
        comment: None,
        offense,
        duration: ban,
        peak: value,
        manual: false,
        origin: None,
    });
    out.push(Decision::Block(verdict));
}

/// Why `rule` must not ban `key` although it fired: a source that is not a host on the
/// network (link-local, martian), or one covering a verified peer unless the rule says
/// `ban_verified_peers` (its packets may be forged with the peer's address).
pub(super) fn unbannable(
    rule: &CompiledRule,
    key: SourceKey,
    peers: &PeerSet,
) -> Option<SuppressReason> {
    let net = key.net();
    match check_source(net.network()) {
        SourceCheck::Ordinary => {}
        SourceCheck::LinkLocal(_) => return Some(SuppressReason::LinkLocal),
        SourceCheck::Martian(_) => return Some(SuppressReason::Martian),
    }
    if rule.ban_verified_peers {
        return None;
    }
    peers.covered_by(net).map(|p| SuppressReason::Peer(p.kinds))
}

/// What `rule` saw for `key`, and the ban it calls for.
fn verdict(
    rule: &CompiledRule,
    key: SourceKey,
    observed: u64,
    ban: Duration,
    until: Timestamp,
    offense: u32,
    at: Timestamp,
) -> Verdict {
    Verdict {
        key,
        rule: rule.name.clone(),
        comment: None,
        metric: Some(rule.metric),
        observed,
        threshold: rule.threshold,
        window: rule.window,
        ban,
        until,
        offense,
        at,
        origin: None,
    }
}

/// `base` x multiplier^(offense-1), capped at `max_ban`.
pub fn ban_length(base: Duration, offense: u32, s: &BanSettings) -> Duration {
    let exp = i32::try_from(offense.saturating_sub(1)).unwrap_or(i32::MAX);
    let factor = s.repeat_multiplier.max(1.0).powi(exp);
    let secs = base.as_secs_f64() * factor;
    if !secs.is_finite() || secs >= s.max_ban.as_secs_f64() {
        return s.max_ban.max(base.min(s.max_ban));
    }
    Duration::from_secs_f64(secs)
}

/// A ban that must go because it covers our own addresses, or (unless an operator here forced
/// it) an allowlisted net. A ban from the fleet is never forced, even a manual one.
pub(super) fn lifted_by_protection(ban: &ActiveBan, allow: &[IpNet], local: &[IpNet]) -> bool {
    let net = ban.key.net();
    let forced = ban.manual && ban.origin.is_none();
    overlaps_any(net, local) || (!forced && overlaps_any(net, allow))
}

/// True when `net` and any of `nets` share an address.
pub(super) fn overlaps_any(net: IpNet, nets: &[IpNet]) -> bool {
    nets.iter().any(|n| n.contains(&net) || net.contains(n))
}
