//! [`Batch`]: changes collected by the caller and applied in one [`Batch::commit`], plus the
//! pure planning step that turns them, against the mirror, into additions, replacements and
//! removals.

use std::time::Duration;

use ipnet::IpNet;

use super::ban::{Ban, Family, sanitize_reason};
use super::mirror::Mirror;
use super::{Firewall, FirewallError};

/// One requested change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Block {
        net: IpNet,
        ttl_secs: u64,
        reason: String,
    },
    Unblock {
        net: IpNet,
    },
}

/// A set of changes for one [`Firewall`], applied together by [`Batch::commit`].
///
/// Later calls for the same net override earlier ones in the same batch. Nothing reaches the
/// kernel until `commit`; dropping an uncommitted batch discards it.
///
/// ```no_run
/// # use autoblock_firewall::{Backend, Firewall, FirewallOptions};
/// # use std::{net::IpAddr, time::Duration};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fw = Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP"))?;
/// let mut batch = fw.batch();
/// batch.block("203.0.113.7".parse::<IpAddr>()?, Duration::from_secs(600), "login-abuse");
/// batch.block("2001:db8:bad::/48".parse::<ipnet::IpNet>()?, Duration::from_secs(3600), "feed");
/// batch.unblock("198.51.100.9".parse::<IpAddr>()?);
/// batch.commit()?;
/// # Ok(()) }
/// ```
#[must_use = "a batch does nothing until committed"]
pub struct Batch<'a> {
    pub(crate) fw: &'a Firewall,
    pub(crate) ops: Vec<Op>,
}

impl Batch<'_> {
    /// Blocks `net` (an address or a prefix; host bits are cleared) for `ttl` from commit time,
    /// rounded up to whole seconds (at least 1). Blocking a net that is already blocked replaces
    /// its expiry and reason: the latest call wins, shorter or longer. `reason` is reduced to
    /// `[A-Za-z0-9_.:-]` (others become `_`) and cut to 64 characters.
    pub fn block(&mut self, net: impl Into<IpNet>, ttl: Duration, reason: &str) -> &mut Self {
        let ttl_secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        self.ops.push(Op::Block {
            net: net.into().trunc(),
            ttl_secs: ttl_secs.max(1),
            reason: sanitize_reason(reason),
        });
        self
    }

    /// Removes the ban on exactly `net` (not on nets inside or around it). Unblocking a net
    /// that is not blocked does nothing.
    pub fn unblock(&mut self, net: impl Into<IpNet>) -> &mut Self {
        self.ops.push(Op::Unblock {
            net: net.into().trunc(),
        });
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

    /// Applies every change: with [`Backend::Iptables`](super::Backend::Iptables) one
    /// `iptables-restore` / `ip6tables-restore` call per family that changed (pure additions are
    /// appended; any removal or replacement rebuilds the chain), with
    /// [`Backend::Ipset`](super::Backend::Ipset) one `ipset restore` call. On error the kernel
    /// and the mirror keep their previous state for the family that failed.
    pub fn commit(self) -> Result<(), FirewallError> {
        self.fw.apply(&self.ops)
    }
}

/// What a batch means against the current mirror.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Nets not currently banned.
    pub(crate) add: Vec<Ban>,
    /// Nets banned now whose expiry or reason changes.
    pub(crate) replace: Vec<Ban>,
    /// Nets banned now that are to be unbanned.
    pub(crate) remove: Vec<IpNet>,
}

impl Plan {
    /// True when the family needs more than appends.
    pub(crate) fn rebuilds(&self, family: Family) -> bool {
        self.replace.iter().any(|b| Family::of(&b.net) == family)
            || self.remove.iter().any(|n| Family::of(n) == family)
    }

    pub(crate) fn touches(&self, family: Family) -> bool {
        self.rebuilds(family) || self.add.iter().any(|b| Family::of(&b.net) == family)
    }

    /// The mirror after this plan, for one family (others untouched).
    pub(crate) fn apply_to(&self, mirror: &mut Mirror, family: Family) {
        for net in self.remove.iter().filter(|n| Family::of(n) == family) {
            mirror.remove(net);
        }
        for ban in self
            .add
            .iter()
            .chain(&self.replace)
            .filter(|b| Family::of(&b.net) == family)
        {
            mirror.insert(ban.clone());
        }
    }
}

/// Collapses `ops` (last per net wins) into a [`Plan`] at `now`, capping TTLs at `max_ttl`.
pub(crate) fn plan(ops: &[Op], mirror: &Mirror, now: u64, max_ttl: u64) -> Plan {
    let mut last: std::collections::BTreeMap<IpNet, &Op> = Default::default();
    for op in ops {
        let net = match op {
            Op::Block { net, .. } | Op::Unblock { net } => *net,
        };
        last.insert(net, op);
    }
    let mut plan = Plan::default();
    for (net, op) in last {
        let current = mirror.get(&net);
        match op {
            Op::Block {
                ttl_secs, reason, ..
            } => {
                let ban = Ban {
                    net,
                    until: now.saturating_add((*ttl_secs).min(max_ttl)),
                    reason: reason.clone(),
                };
                match current {
                    None => plan.add.push(ban),
                    Some(cur) if cur == ban => {}
                    Some(_) => plan.replace.push(ban),
                }
            }
            Op::Unblock { .. } => {
                if current.is_some() {
                    plan.remove.push(net);
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(net: &str, ttl_secs: u64, reason: &str) -> Op {
        Op::Block {
            net: net.parse().unwrap(),
            ttl_secs,
            reason: reason.into(),
        }
    }
    fn unblock(net: &str) -> Op {
        Op::Unblock {
            net: net.parse().unwrap(),
        }
    }

    #[test]
    fn last_op_per_net_wins_and_noops_vanish() {
        let mirror = Mirror::adopt(
            [
                Ban {
                    net: "192.0.2.1/32".parse().unwrap(),
                    until: 1100,
                    reason: "a".into(),
                },
                Ban {
                    net: "192.0.2.2/32".parse().unwrap(),
                    until: 1100,
                    reason: "a".into(),
                },
                Ban {
                    net: "fd00::/64".parse().unwrap(),
                    until: 1100,
                    reason: "a".into(),
                },
            ],
            1000,
        );
        let ops = [
            block("192.0.2.1/32", 100, "a"), // same expiry and reason: nothing to do
            block("192.0.2.2/32", 50, "a"),  // shorter: replace
            block("10.9.0.0/16", 60, "new"), // add
            unblock("10.9.0.0/16"),          // ...then unblock, of a net not banned: nothing
            block("10.8.0.0/16", 60, "x"),   // add
            unblock("fd00::/64"),            // remove
            unblock("fd00:1::/64"),          // not banned: nothing
        ];
        let p = plan(&ops, &mirror, 1000, u64::MAX);
        assert_eq!(
            p.add,
            vec![Ban {
                net: "10.8.0.0/16".parse().unwrap(),
                until: 1060,
                reason: "x".into()
            }]
        );
        assert_eq!(
            p.replace,
            vec![Ban {
                net: "192.0.2.2/32".parse().unwrap(),
                until: 1050,
                reason: "a".into()
            }]
        );
        assert_eq!(p.remove, vec!["fd00::/64".parse::<IpNet>().unwrap()]);
        assert!(p.rebuilds(Family::V4) && p.rebuilds(Family::V6));
        let mut m = mirror.clone();
        p.apply_to(&mut m, Family::V6);
        assert_eq!(m.count(Family::V6), 0);
        assert_eq!(m.get(&"192.0.2.2/32".parse().unwrap()).unwrap().until, 1100);
    }

    #[test]
    fn pure_additions_only_append_and_ttl_is_capped() {
        let p = plan(
            &[block("10.0.0.0/8", 10_000_000, "x")],
            &Mirror::default(),
            5,
            2_147_483,
        );
        assert_eq!(p.add[0].until, 5 + 2_147_483);
        assert!(!p.rebuilds(Family::V4));
        assert!(p.touches(Family::V4) && !p.touches(Family::V6));
    }

    #[test]
    fn block_normalizes_and_rounds_up() {
        let fw = crate::tests_support::fake_firewall();
        let mut b = fw.batch();
        b.block(
            "10.1.2.3/8".parse::<IpNet>().unwrap(),
            Duration::from_millis(1500),
            "a b",
        )
        .block(std::net::IpAddr::from([192, 0, 2, 1]), Duration::ZERO, "");
        assert_eq!(b.ops[0], block("10.0.0.0/8", 2, "a_b"));
        assert_eq!(b.ops[1], block("192.0.2.1/32", 1, "-"));
        assert_eq!(b.len(), 2);
    }
}
