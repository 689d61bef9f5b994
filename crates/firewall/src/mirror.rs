//! The in-memory mirror of our entries (pure): one per key (a ban's net, a typed rule's
//! matches), ordered by key for stable rendering, plus an expiry index for `take_due` /
//! `next_expiry`. Time is always passed in.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::ban::{Ban, Family, RuleEntry};
use super::rule::Rule;

/// An entry the mirror can hold: bans by net, typed rules by their matches.
pub(crate) trait Keyed: Clone + PartialEq {
    type Key: Ord + Copy + std::fmt::Debug;
    fn key(&self) -> Self::Key;
    fn until(&self) -> u64;
    fn key_family(key: &Self::Key) -> Family;
    fn family(&self) -> Family {
        Self::key_family(&self.key())
    }
    /// What a block of `new` on the same key leaves when the longer expiry is kept.
    fn keep_longer(&self, new: &Self) -> Self;
}

impl Keyed for Ban {
    type Key = IpNet;
    fn key(&self) -> IpNet {
        self.net
    }
    fn until(&self) -> u64 {
        self.until
    }
    fn key_family(key: &IpNet) -> Family {
        Family::of(key)
    }
    fn keep_longer(&self, new: &Ban) -> Ban {
        if new.until > self.until { new } else { self }.clone()
    }
}

impl Keyed for RuleEntry {
    type Key = Rule;
    fn key(&self) -> Rule {
        self.rule.key()
    }
    fn until(&self) -> u64 {
        self.until
    }
    fn key_family(key: &Rule) -> Family {
        key.family().unwrap_or(Family::V4)
    }
    /// The new action always applies; expiry and reason only when the new one lasts longer.
    fn keep_longer(&self, new: &RuleEntry) -> RuleEntry {
        if new.until > self.until {
            new.clone()
        } else {
            RuleEntry {
                rule: new.rule,
                ..self.clone()
            }
        }
    }
}

/// Our entries of one kind as we believe the kernel holds them.
#[derive(Debug, Clone)]
pub(crate) struct Mirror<E: Keyed> {
    entries: BTreeMap<E::Key, E>,
    /// (until, key) for every entry.
    by_expiry: BTreeSet<(u64, E::Key)>,
}

impl<E: Keyed> Default for Mirror<E> {
    fn default() -> Self {
        Mirror {
            entries: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }
}

impl<E: Keyed> Mirror<E> {
    /// Adopts entries read from the kernel: one per key (the latest expiry wins), none that
    /// ended at or before `now`.
    pub(crate) fn adopt(entries: impl IntoIterator<Item = E>, now: u64) -> Self {
        let mut m: Mirror<E> = Mirror::default();
        for e in entries {
            if e.until() <= now {
                continue;
            }
            if m.get(&e.key())
                .is_some_and(|old: &E| old.until() >= e.until())
            {
                continue;
            }
            m.insert(e);
        }
        m
    }

    pub(crate) fn get(&self, key: &E::Key) -> Option<&E> {
        self.entries.get(key)
    }

    /// Inserts or replaces; returns the previous entry for that key.
    pub(crate) fn insert(&mut self, e: E) -> Option<E> {
        let key = e.key();
        let old = self.remove(&key);
        self.by_expiry.insert((e.until(), key));
        self.entries.insert(key, e);
        old
    }

    pub(crate) fn remove(&mut self, key: &E::Key) -> Option<E> {
        let e = self.entries.remove(key)?;
        self.by_expiry.remove(&(e.until(), *key));
        Some(e)
    }

    /// Removes and returns every entry whose `until <= now`, earliest first.
    pub(crate) fn take_due(&mut self, now: u64) -> Vec<E> {
        let due: Vec<E::Key> = self
            .by_expiry
            .iter()
            .take_while(|(until, _)| *until <= now)
            .map(|(_, k)| *k)
            .collect();
        due.iter().filter_map(|k| self.remove(k)).collect()
    }

    /// The earliest `until`, if any.
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        self.by_expiry.first().map(|(until, _)| *until)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries of one family, ordered by key.
    pub(crate) fn family(&self, family: Family) -> impl Iterator<Item = &E> + '_ {
        self.entries.values().filter(move |e| e.family() == family)
    }

    pub(crate) fn count(&self, family: Family) -> usize {
        self.family(family).count()
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &E> + '_ {
        self.entries.values()
    }
}

impl Mirror<Ban> {
    /// The ban covering `addr` (the longest prefix wins), if any ends after `now`.
    pub(crate) fn covering(&self, addr: std::net::IpAddr, now: u64) -> Option<&Ban> {
        let host = IpNet::from(addr);
        (0..=host.max_prefix_len())
            .rev()
            .filter_map(|len| IpNet::new(addr, len).ok())
            .filter_map(|net| self.get(&net.trunc()))
            .find(|b| b.until > now)
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

    #[test]
    fn covering_finds_the_longest_live_prefix() {
        let m = Mirror::adopt(
            [
                ban("198.51.100.0/24", 100, "net"),
                ban("198.51.100.7/32", 50, "host"),
                ban("2001:db8::/32", 100, "v6"),
            ],
            0,
        );
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(m.covering(ip("198.51.100.7"), 10).unwrap().reason, "host");
        assert_eq!(m.covering(ip("198.51.100.7"), 60).unwrap().reason, "net");
        assert!(m.covering(ip("198.51.101.7"), 10).is_none());
        assert_eq!(m.covering(ip("2001:db8:1::9"), 10).unwrap().reason, "v6");
        assert!(m.covering(ip("198.51.100.7"), 100).is_none());
    }
}
