//! [`Batch`]: changes collected by the caller and applied by
//! [`Firewall::commit`](super::Firewall::commit), which reports what it refused
//! ([`Committed`]); plus the pure steps behind it: checking every change against the guard
//! (`check`) and planning the rest against the mirror (`plan`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::ban::{Ban, RuleEntry};
use super::guard::{Guard, Refused, canonical_rule};
use super::mirror::{Keyed, Mirror};
use super::rule::Rule;

/// One requested change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Block {
        rule: Rule,
        ttl_secs: u64,
        reason: String,
    },
    Unblock {
        rule: Rule,
    },
}

/// Changes to apply together with [`Firewall::commit`](super::Firewall::commit).
///
/// A batch is a plain value: build it anywhere (another thread, a `spawn_blocking` closure),
/// commit it on any handle. Later changes to the same target override earlier ones in the same
/// batch; nothing reaches the kernel until the commit.
///
/// By default a block never shortens a ban that already lasts longer ("keep the longer": a feed
/// reloaded with a 1 h TTL leaves a 1 d ban of the same net alone); [`Batch::exact`] sets
/// expiries exactly instead.
///
/// ```no_run
/// use autoblock_firewall::{Backend, Batch, Firewall, FirewallOptions, IpNet};
/// use std::{net::Ipv4Addr, time::Duration};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fw = Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP"))?;
/// let mut batch = Batch::new();
/// batch.block(Ipv4Addr::new(203, 0, 113, 7), Duration::from_secs(600), "login-abuse");
/// batch.block("2001:db8:bad::/48".parse::<IpNet>()?, Duration::from_secs(3600), "feed");
/// batch.unblock(Ipv4Addr::new(198, 51, 100, 9));
/// let committed = fw.commit(batch)?;
/// for refused in &committed.refused {
///     eprintln!("{refused}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a batch does nothing until committed"]
pub struct Batch {
    pub(crate) ops: Vec<Op>,
    pub(crate) exact: bool,
    pub(crate) override_protected: bool,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Blocks `target` for `ttl` from commit time, rounded up to whole seconds (at least 1).
    ///
    /// `target` is an address or a prefix (a plain ban on that source) or a [`Rule`]. An
    /// IPv4-mapped IPv6 address (`::ffff:203.0.113.7`, as a dual-stack socket reports IPv4
    /// peers) is blocked as the IPv4 address it is. `reason` is stored verbatim (1-128 bytes,
    /// no `"`, no control characters); the commit refuses what breaks a rule, see
    /// [`Refusal`](super::Refusal).
    pub fn block(&mut self, target: impl Into<Rule>, ttl: Duration, reason: &str) -> &mut Self {
        let ttl_secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        self.ops.push(Op::Block {
            rule: target.into(),
            ttl_secs: ttl_secs.max(1),
            reason: reason.to_string(),
        });
        self
    }

    /// Removes the entry for exactly `target` (a ban on exactly that net, not on nets inside or
    /// around it; a rule with exactly those matches, whatever its action). Removing what is
    /// not blocked does nothing.
    pub fn unblock(&mut self, target: impl Into<Rule>) -> &mut Self {
        self.ops.push(Op::Unblock {
            rule: target.into(),
        });
        self
    }

    /// Every block in this batch sets its expiry exactly, shortening a longer ban (for a
    /// program that keeps the authoritative end times itself, like autoblock's daemon).
    pub fn exact(mut self) -> Batch {
        self.exact = true;
        self
    }

    /// Blocks in this batch may cover protected nets. Meant for an operator's explicit,
    /// confirmed decision; every other guard still applies.
    pub fn override_protected(mut self) -> Batch {
        self.override_protected = true;
        self
    }

    /// Number of changes queued.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// What [`Firewall::commit`](super::Firewall::commit) did with a batch: every change was applied
/// except those in `refused`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "refused changes are only reported here"]
pub struct Committed {
    /// Changes refused before anything reached the kernel, each with the reason; the rest of
    /// the batch was applied.
    pub refused: Vec<Refused>,
}

/// Set or remove one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Desired<E: Keyed> {
    Set(E),
    Remove(E::Key),
}

/// A batch after the guard: the last change per target, split into bans and typed rules.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub(crate) bans: Vec<Desired<Ban>>,
    pub(crate) rules: Vec<Desired<RuleEntry>>,
    pub(crate) refused: Vec<Refused>,
}

/// Runs every change of `batch` past `guard` at `now`, caps ban TTLs at `max_ban_ttl`, and keeps
/// the last change per target.
pub(crate) fn check(batch: &Batch, guard: &Guard, now: u64, max_ban_ttl: u64) -> Checked {
    let mut bans: BTreeMap<_, Desired<Ban>> = BTreeMap::new();
    let mut rules: BTreeMap<_, Desired<RuleEntry>> = BTreeMap::new();
    let mut refused = Vec::new();
    for op in &batch.ops {
        let (asked, checked) = match op {
            Op::Block {
                rule,
                ttl_secs,
                reason,
            } => (
                rule,
                guard
                    .check_block(rule, reason, batch.override_protected)
                    .map(|r| (r, Some((*ttl_secs, reason)))),
            ),
            Op::Unblock { rule } => (rule, canonical_rule(rule).map(|r| (r, None))),
        };
        let (rule, set) = match checked {
            Ok(ok) => ok,
            Err(refusal) => {
                refused.push(Refused {
                    rule: *asked,
                    refusal,
                });
                continue;
            }
        };
        match (rule.is_source_ban().then_some(rule.src).flatten(), set) {
            (Some(net), Some((ttl, reason))) => {
                let until = now.saturating_add(ttl.min(max_ban_ttl));
                let ban = Ban {
                    net,
                    until,
                    reason: reason.clone(),
                };
                bans.insert(net, Desired::Set(ban));
            }
            (Some(net), None) => {
                bans.insert(net, Desired::Remove(net));
            }
            (None, Some((ttl, reason))) => {
                let entry = RuleEntry {
                    rule,
                    until: now.saturating_add(ttl),
                    reason: reason.clone(),
                };
                rules.insert(rule.key(), Desired::Set(entry));
            }
            (None, None) => {
                rules.insert(rule.key(), Desired::Remove(rule.key()));
            }
        }
    }
    Checked {
        bans: bans.into_values().collect(),
        rules: rules.into_values().collect(),
        refused,
    }
}

/// What the desired changes mean against the current mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan<E: Keyed> {
    /// Entries not present now.
    pub(crate) add: Vec<E>,
    /// Entries present now whose expiry, reason or action changes.
    pub(crate) replace: Vec<E>,
    /// Entries present now that are to be removed.
    pub(crate) remove: Vec<E::Key>,
}

impl<E: Keyed> Default for Plan<E> {
    fn default() -> Self {
        Plan {
            add: Vec::new(),
            replace: Vec::new(),
            remove: Vec::new(),
        }
    }
}

impl<E: Keyed> Plan<E> {
    /// True when the family needs more than appends.
    pub(crate) fn rebuilds(&self, family: super::Family) -> bool {
        self.replace.iter().any(|e| e.family() == family)
            || self.remove.iter().any(|k| E::key_family(k) == family)
    }

    pub(crate) fn touches(&self, family: super::Family) -> bool {
        self.rebuilds(family) || self.add.iter().any(|e| e.family() == family)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.add.is_empty() && self.replace.is_empty() && self.remove.is_empty()
    }

    /// The mirror after this plan, for one family (others untouched).
    pub(crate) fn apply_to(&self, mirror: &mut Mirror<E>, family: super::Family) {
        for key in self.remove.iter().filter(|k| E::key_family(k) == family) {
            mirror.remove(key);
        }
        for e in self
            .add
            .iter()
            .chain(&self.replace)
            .filter(|e| e.family() == family)
        {
            mirror.insert(e.clone());
        }
    }
}

/// Plans `desired` against `mirror`: with `exact` a block sets the entry as given, else a block
/// never shortens what is there.
pub(crate) fn plan<E: Keyed>(desired: &[Desired<E>], mirror: &Mirror<E>, exact: bool) -> Plan<E> {
    let mut plan = Plan::default();
    for d in desired {
        match d {
            Desired::Set(e) => match mirror.get(&e.key()) {
                None => plan.add.push(e.clone()),
                Some(cur) => {
                    let want = if exact { e.clone() } else { cur.keep_longer(e) };
                    if &want != cur {
                        plan.replace.push(want);
                    }
                }
            },
            Desired::Remove(key) => {
                if mirror.get(key).is_some() {
                    plan.remove.push(*key);
                }
            }
        }
    }
    plan
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
