//! The in-memory mirror of our bans (pure): one entry per net, ordered by net for stable
//! rendering, plus an expiry index for `take_due` / `next_expiry`. Time is always passed in.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::ban::{Ban, Family};

/// Our bans as we believe the kernel holds them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Mirror {
    /// net -> (until, reason).
    bans: BTreeMap<IpNet, (u64, String)>,
    /// (until, net) for every entry of `bans`.
    by_expiry: BTreeSet<(u64, IpNet)>,
}

impl Mirror {
    /// Adopts bans read from the kernel: one per net (the latest expiry wins), none that ended
    /// at or before `now`.
    pub(crate) fn adopt(bans: impl IntoIterator<Item = Ban>, now: u64) -> Mirror {
        let mut m = Mirror::default();
        for ban in bans {
            if ban.until <= now {
                continue;
            }
            if m.get(&ban.net).is_some_and(|old| old.until >= ban.until) {
                continue;
            }
            m.insert(ban);
        }
        m
    }

    pub(crate) fn get(&self, net: &IpNet) -> Option<Ban> {
        self.bans.get(net).map(|(until, reason)| Ban {
            net: *net,
            until: *until,
            reason: reason.clone(),
        })
    }

    /// Inserts or replaces; returns the previous ban for that net.
    pub(crate) fn insert(&mut self, ban: Ban) -> Option<Ban> {
        let old = self.remove(&ban.net);
        self.by_expiry.insert((ban.until, ban.net));
        self.bans.insert(ban.net, (ban.until, ban.reason));
        old
    }

    pub(crate) fn remove(&mut self, net: &IpNet) -> Option<Ban> {
        let (until, reason) = self.bans.remove(net)?;
        self.by_expiry.remove(&(until, *net));
        Some(Ban {
            net: *net,
            until,
            reason,
        })
    }

    /// Removes and returns every ban whose `until <= now`, earliest first.
    pub(crate) fn take_due(&mut self, now: u64) -> Vec<Ban> {
        let due: Vec<IpNet> = self
            .by_expiry
            .iter()
            .take_while(|(until, _)| *until <= now)
            .map(|(_, net)| *net)
            .collect();
        due.iter().filter_map(|net| self.remove(net)).collect()
    }

    /// The earliest `until`, if any.
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        self.by_expiry.first().map(|(until, _)| *until)
    }

    pub(crate) fn len(&self) -> usize {
        self.bans.len()
    }

    /// Bans of one family, ordered by net.
    pub(crate) fn family(&self, family: Family) -> impl Iterator<Item = Ban> + '_ {
        self.bans
            .iter()
            .filter(move |(net, _)| Family::of(net) == family)
            .map(|(net, (until, reason))| Ban {
                net: *net,
                until: *until,
                reason: reason.clone(),
            })
    }

    pub(crate) fn count(&self, family: Family) -> usize {
        self.bans
            .keys()
            .filter(|net| Family::of(net) == family)
            .count()
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = Ban> + '_ {
        self.family(Family::V4).chain(self.family(Family::V6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::ban;

    #[test]
    fn adopt_dedupes_keeping_latest_and_drops_expired() {
        let m = Mirror::adopt(
            [
                ban("203.0.113.7/32", 100, "a"),
                ban("203.0.113.7/32", 300, "b"),
                ban("203.0.113.7/32", 200, "c"),
                ban("10.0.0.0/8", 50, "old"),
                ban("2001:db8::/32", 51, "v6"),
            ],
            50,
        );
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.get(&"203.0.113.7/32".parse().unwrap()).unwrap().reason,
            "b"
        );
        assert!(m.get(&"10.0.0.0/8".parse().unwrap()).is_none());
        assert_eq!(m.count(Family::V6), 1);
        assert_eq!(m.next_expiry(), Some(51));
    }

    #[test]
    fn expiry_index_follows_replacements() {
        let mut m = Mirror::default();
        m.insert(ban("192.0.2.1/32", 10, "a"));
        m.insert(ban("192.0.2.2/32", 20, "a"));
        m.insert(ban("fd00::/64", 15, "a"));
        assert_eq!(m.insert(ban("192.0.2.1/32", 30, "b")).unwrap().until, 10);
        assert_eq!(m.next_expiry(), Some(15));
        let due = m.take_due(20);
        assert_eq!(
            due.iter().map(|b| b.net.to_string()).collect::<Vec<_>>(),
            ["fd00::/64", "192.0.2.2/32"]
        );
        assert_eq!(m.next_expiry(), Some(30));
        assert!(m.take_due(29).is_empty());
        assert_eq!(
            m.remove(&"192.0.2.1/32".parse().unwrap()).unwrap().reason,
            "b"
        );
        assert_eq!(m.next_expiry(), None);
    }

    #[test]
    fn family_iteration_is_ordered() {
        let m = Mirror::adopt(
            [
                ban("10.0.0.2/32", 9, "x"),
                ban("10.0.0.1/32", 9, "x"),
                ban("::1/128", 9, "x"),
            ],
            0,
        );
        let v4: Vec<String> = m.family(Family::V4).map(|b| b.net.to_string()).collect();
        assert_eq!(v4, ["10.0.0.1/32", "10.0.0.2/32"]);
        assert_eq!(m.all().count(), 3);
    }
}
