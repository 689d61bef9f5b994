//! Bans from the fleet (pure): another node's block, extend or unblock, applied through the same
//! ban table and the same checks as a manual ban here ([`Engine::refusal`]), tagged with the
//! node it came from, and never forced.
//!
//! Rules: the end is `min(until, now + max_ban)`; a ban in force that ends as late or later is
//! left alone (a repeat, or a node that is behind); an earlier one is extended and becomes that
//! node's ban (the node that set the end time owns it, as the rule that set it is named); our
//! own addresses and the allowlist refuse it (a `suppressed` decision with the origin); a new
//! ban needs room under `max_active_bans` and a token of the fleet's own rate bucket. A ban the
//! bucket holds back waits here, in arrival order, and is retried ([`Engine::retry_fleet`])
//! until it goes in or its end passes: the broker has been told it arrived, so it must not be
//! lost. A remote unblock lifts only a ban whose origin is that node (waiting ones included).
//!
//! The fleet's bucket is separate from the one of local detection, so bans from other nodes can
//! never starve our own: it refills at `max_new_bans_per_sec` like the local one, with a burst
//! of [`FLEET_BURST_SECS`] seconds' worth, so the catch-up after an outage (up to that many
//! seconds of another node's own maximum rate) goes in at once; `max_active_bans` bounds the
//! total either way.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::admin::RefuseReason;
use super::{Decision, Engine, SuppressReason, UnblockReason, Verdict};
use crate::cluster::{BanKind, BanMessage};
use crate::engine::ban_rate::BanRate;
use crate::engine::bans::ActiveBan;
use crate::engine::sources::SourceKey;
use crate::time::Timestamp;

/// The fleet bucket's burst, in seconds of `max_new_bans_per_sec`.
pub const FLEET_BURST_SECS: u32 = 10;

/// What one message from the fleet did here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    /// A ban went in, was extended, or was lifted (its decision is in `out`).
    Applied,
    /// A ban in force ends as late or later, or there is no ban of that node to lift.
    Unchanged,
    /// Our own addresses, the allowlist or the cap refused it (a `suppressed` decision is in
    /// `out`).
    Refused(SuppressReason),
    /// Held back by the fleet's rate limit: retried until its end.
    Waiting,
    /// Its end has passed.
    Expired,
}

/// The fleet's side of the engine: its rate bucket and the bans waiting for it.
pub(super) struct Fleet {
    rate: BanRate,
    waiting: VecDeque<BanMessage>,
}

impl Fleet {
    pub(super) fn new(per_sec: u32) -> Fleet {
        Fleet {
            rate: fleet_rate(per_sec),
            waiting: VecDeque::new(),
        }
    }

    /// A new `max_new_bans_per_sec` (reload); waiting bans stay.
    pub(super) fn set_rate(&mut self, per_sec: u32) {
        self.rate = fleet_rate(per_sec);
    }
}

fn fleet_rate(per_sec: u32) -> BanRate {
    BanRate::with_burst(per_sec, per_sec.saturating_mul(FLEET_BURST_SECS))
}

impl Engine {
    /// Applies `m`, a ban event of another node, at `ts`; decisions go to `out`. Never blocks:
    /// a ban the fleet's rate limit holds back waits (see [`Engine::retry_fleet`]).
    pub fn apply_remote(
        &mut self,
        m: &BanMessage,
        ts: Timestamp,
        out: &mut Vec<Decision>,
    ) -> Remote {
        let now = self.advance(ts);
        match m.kind {
            BanKind::Unblock => self.lift_remote(m, now, out),
            BanKind::Block | BanKind::Extend => {
                // Behind bans that wait already: the fleet's order is kept.
                if !self.fleet.waiting.is_empty() && self.bans.get(&key_of(m)).is_none() {
                    return self.hold(m, now, out);
                }
                self.ban_remote(m, now, out, false)
            }
        }
    }

    /// Retries the bans waiting for the fleet's rate limit, oldest first, as far as it allows
    /// at `ts`; ones whose end passed meanwhile are dropped.
    pub fn retry_fleet(&mut self, ts: Timestamp, out: &mut Vec<Decision>) {
        if self.fleet.waiting.is_empty() {
            return;
        }
        let now = self.advance(ts);
        while let Some(m) = self.fleet.waiting.pop_front() {
            if self.ban_remote(&m, now, out, true) == Remote::Waiting {
                self.fleet.waiting.push_front(m);
                return;
            }
        }
    }

    /// Bans from the fleet waiting for its rate limit.
    pub fn fleet_waiting(&self) -> usize {
        self.fleet.waiting.len()
    }

    /// A block or an extension from the fleet. `retrying`: it comes from the waiting line (on
    /// failure the caller puts it back in front).
    fn ban_remote(
        &mut self,
        m: &BanMessage,
        now: Timestamp,
        out: &mut Vec<Decision>,
        retrying: bool,
    ) -> Remote {
        let key = key_of(m);
        let until = m.until.min(now.saturating_add(self.settings.max_ban));
        if until <= now {
            return Remote::Expired;
        }
        let origin: Arc<str> = Arc::from(m.origin.as_str());
        let verdict = remote_verdict(m, key, until, now, origin.clone());
        if let Some(why) = self.refusal(key.net(), false) {
            return self.refuse(verdict, suppress_reason(&why), out);
        }
        // Another node's rule may have acted on packets forged with the address of a peer we
        // verified here (issue 11): as with our own rules, reported, never banned. An
        // operator's manual ban is not evidence from packets: it goes in.
        if !m.manual
            && let Some(p) = self.peers.covered_by(key.net())
        {
            return self.refuse(verdict, SuppressReason::Peer(p.kinds), out);
        }
        if let Some(old) = self.bans.get(&key) {
            if old.until >= until {
                return Remote::Unchanged;
            }
            self.bans.set_until(&key, until);
            self.bans.set_rule(&key, verdict.rule.clone());
            self.bans.set_origin(&key, Some(origin));
            out.push(Decision::Extend(verdict));
            return Remote::Applied;
        }
        if self.bans.len() >= self.settings.max_active_bans {
            return self.refuse(verdict, SuppressReason::Cap, out);
        }
        if !self.fleet.rate.allow(now) {
            return if retrying {
                Remote::Waiting
            } else {
                self.hold(m, now, out)
            };
        }
        self.bans.insert(ActiveBan {
            key,
            until,
            since: now,
            rule: verdict.rule.clone(),
            comment: None,
            offense: verdict.offense,
            duration: verdict.ban,
            peak: 0,
            manual: m.manual,
            origin: Some(origin),
        });
        out.push(Decision::Block(verdict));
        Remote::Applied
    }

    /// Puts `m` in the waiting line; a line as long as `max_active_bans` refuses it (they
    /// could not all go in anyway).
    fn hold(&mut self, m: &BanMessage, now: Timestamp, out: &mut Vec<Decision>) -> Remote {
        if self.fleet.waiting.len() >= self.settings.max_active_bans {
            let key = key_of(m);
            let until = m.until.min(now.saturating_add(self.settings.max_ban));
            let v = remote_verdict(m, key, until, now, Arc::from(m.origin.as_str()));
            return self.refuse(v, SuppressReason::Cap, out);
        }
        self.fleet.waiting.push_back(m.clone());
        Remote::Waiting
    }

    fn refuse(
        &mut self,
        verdict: Verdict,
        reason: SuppressReason,
        out: &mut Vec<Decision>,
    ) -> Remote {
        out.push(Decision::Suppressed { verdict, reason });
        Remote::Refused(reason)
    }

    /// A remote unblock: lifts the ban on its target when that node's, and forgets that node's
    /// waiting bans on it.
    fn lift_remote(&mut self, m: &BanMessage, now: Timestamp, out: &mut Vec<Decision>) -> Remote {
        let key = key_of(m);
        self.fleet
            .waiting
            .retain(|w| !(w.origin == m.origin && w.target == m.target));
        let theirs = self
            .bans
            .get(&key)
            .is_some_and(|b| b.origin.as_deref() == Some(m.origin.as_str()));
        if !theirs {
            return Remote::Unchanged;
        }
        match self.bans.remove(&key) {
            Some(ban) => {
                out.push(Decision::Unblock {
                    ban,
                    at: now,
                    reason: UnblockReason::Manual,
                });
                Remote::Applied
            }
            None => Remote::Unchanged,
        }
    }
}

fn key_of(m: &BanMessage) -> SourceKey {
    SourceKey::from_net(m.target)
}

/// The facts of a ban from the fleet: no metric (it was measured elsewhere), the origin's rule,
/// offense and length, our end and time.
fn remote_verdict(
    m: &BanMessage,
    key: SourceKey,
    until: Timestamp,
    now: Timestamp,
    origin: Arc<str>,
) -> Verdict {
    Verdict {
        key,
        rule: Arc::from(m.rule.as_str()),
        comment: None,
        metric: None,
        observed: 0,
        threshold: 0,
        window: Duration::ZERO,
        ban: m.until.since(m.at).max(Duration::from_secs(1)),
        until,
        offense: m.offense.max(1),
        at: now,
        origin: Some(origin),
    }
}

/// The `suppressed` reason of a refusal: every refusal of a manual ban refuses a fleet ban too.
fn suppress_reason(why: &RefuseReason) -> SuppressReason {
    match why {
        RefuseReason::Allowlisted(_) => SuppressReason::Allowlist,
        RefuseReason::Local(_) => SuppressReason::Local,
        RefuseReason::Cap => SuppressReason::Cap,
    }
}
