//! Active bans ordered by expiry (pure): who is banned, until when, and why.
//!
//! Invariant: `by_key` and `by_expiry` always hold the same bans; the earliest expiry is the
//! next deadline the caller has to wake up for.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;

use crate::engine::sources::SourceKey;
use crate::time::Timestamp;

/// The `rule` of a manual ban.
pub const MANUAL: &str = "manual";

/// One active ban.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveBan {
    pub key: SourceKey,
    /// When it ends.
    pub until: Timestamp,
    /// When it started (the first block of this offense).
    pub since: Timestamp,
    /// The rule that set its end time ([`MANUAL`] for a manual ban no rule extended).
    pub rule: Arc<str>,
    /// The operator's reason of a manual ban (`autoblock ban --reason`): free text, never a
    /// rule name or a metrics label.
    pub comment: Option<Arc<str>>,
    /// The offense number that set its length (1 = first).
    pub offense: u32,
    /// The ban length this offense earned; an extension pushes `until` to now + this.
    pub duration: Duration,
    /// The highest value `rule` observed for this source while banned (reports).
    pub peak: u64,
    /// Set by an operator (`autoblock ban`), not by a rule.
    pub manual: bool,
    /// The fleet node whose ban this is (it set the current end time); `None` for a ban made
    /// here. A remote unblock lifts only a ban of its own origin.
    pub origin: Option<Arc<str>>,
}

/// Most keys kept as changed between two calls of [`BanTable::take_changes`]; past it, every
/// ban counts as changed.
const CHANGES_KEPT: usize = 1024;

#[derive(Debug, Default)]
pub struct BanTable {
    by_key: HashMap<SourceKey, ActiveBan, RandomState>,
    by_expiry: BTreeSet<(Timestamp, SourceKey)>,
    /// The earliest expiry (read per packet: kept here, not looked up in `by_expiry`).
    next: Option<Timestamp>,
    /// Changes with every change to a ban other than its peak: what the ban cache checks.
    generation: u64,
    /// The keys whose ban changed since [`BanTable::take_changes`] last ran, in order (what
    /// the ban cache forgets); `changed_all` once more piled up, or every ban moved.
    changes: Vec<SourceKey>,
    changed_all: bool,
}

impl BanTable {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn get(&self, key: &SourceKey) -> Option<&ActiveBan> {
        self.by_key.get(key)
    }

    /// Adds or replaces the ban for its key; returns the one it replaced.
    pub fn insert(&mut self, ban: ActiveBan) -> Option<ActiveBan> {
        // Old entry out before the new one goes in: with equal ends they are the same entry.
        let (until, key) = (ban.until, ban.key);
        let old = self.by_key.insert(key, ban);
        if let Some(o) = &old {
            self.by_expiry.remove(&(o.until, o.key));
        }
        self.by_expiry.insert((until, key));
        self.changed(Some(key));
        old
    }

    /// After a change to `key`'s ban (`None`: to every ban), its end included.
    fn changed(&mut self, key: Option<SourceKey>) {
        self.next = self.by_expiry.first().map(|(t, _)| *t);
        self.touched(key);
    }

    /// After a change to `key`'s ban (`None`: to every ban) other than its peak.
    fn touched(&mut self, key: Option<SourceKey>) {
        self.generation += 1;
        match key {
            // One extension changes a ban's end, rule, origin and length in turn: one entry.
            Some(k) if !self.changed_all && self.changes.last() == Some(&k) => {}
            Some(k) if !self.changed_all && self.changes.len() < CHANGES_KEPT => {
                self.changes.push(k)
            }
            Some(_) if self.changed_all => {}
            _ => {
                self.changed_all = true;
                self.changes.clear();
            }
        }
    }

    /// Hands `forget` each key whose ban changed (other than its peak) since the last call,
    /// in order, or `None` once if every ban may have; then starts a new list.
    pub(super) fn take_changes(&mut self, mut forget: impl FnMut(Option<&SourceKey>)) {
        if self.changed_all {
            forget(None);
        } else {
            self.changes.iter().for_each(|k| forget(Some(k)));
        }
        self.changes.clear();
        self.changed_all = false;
    }

    /// Changes whenever a ban is added, removed or changed (except its peak).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Moves a ban's end to `until`; false when `key` is not banned.
    pub fn set_until(&mut self, key: &SourceKey, until: Timestamp) -> bool {
        let Some(b) = self.by_key.get_mut(key) else {
            return false;
        };
        self.by_expiry.remove(&(b.until, b.key));
        b.until = until;
        self.by_expiry.insert((until, *key));
        self.changed(Some(*key));
        true
    }

    pub fn remove(&mut self, key: &SourceKey) -> Option<ActiveBan> {
        let b = self.by_key.remove(key)?;
        self.by_expiry.remove(&(b.until, b.key));
        self.changed(Some(b.key));
        Some(b)
    }

    /// The earliest expiry, if any ban is active.
    #[inline]
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.next
    }

    /// Moves every ban's end `by` earlier (the clock was set back: each keeps the time it had
    /// left, as the kernel's relative timeouts do).
    pub fn shift_earlier(&mut self, by: Duration) {
        self.by_expiry.clear();
        for b in self.by_key.values_mut() {
            b.until = b.until.saturating_sub(by);
            b.since = b.since.saturating_sub(by);
            self.by_expiry.insert((b.until, b.key));
        }
        self.changed(None);
    }

    /// Removes and returns every ban whose end is at or before `now`, earliest first.
    pub fn pop_expired(&mut self, now: Timestamp, out: &mut Vec<ActiveBan>) {
        while let Some(&(t, key)) = self.by_expiry.first() {
            if t > now {
                break;
            }
            self.by_expiry.pop_first();
            if let Some(b) = self.by_key.remove(&key) {
                out.push(b);
            }
            self.changed(Some(key));
        }
    }

    /// Sets the length later extensions use (a longer ban earned by another rule).
    pub fn set_duration(&mut self, key: &SourceKey, duration: Duration) {
        if let Some(b) = self.by_key.get_mut(key) {
            b.duration = duration;
            self.touched(Some(*key));
        }
    }

    /// Names the rule that set the ban's end time (an extension by another rule).
    pub fn set_rule(&mut self, key: &SourceKey, rule: Arc<str>) {
        if let Some(b) = self.by_key.get_mut(key) {
            b.rule = rule;
            self.touched(Some(*key));
        }
    }

    /// Names the node whose ban it now is (`None`: ours, when a rule here extended it).
    pub fn set_origin(&mut self, key: &SourceKey, origin: Option<Arc<str>>) {
        if let Some(b) = self.by_key.get_mut(key) {
            b.origin = origin;
            self.touched(Some(*key));
        }
    }

    /// Raises the ban's `peak` to `value` if higher.
    pub fn record_peak(&mut self, key: &SourceKey, value: u64) {
        if let Some(b) = self.by_key.get_mut(key) {
            b.peak = b.peak.max(value);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &ActiveBan> {
        self.by_key.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(ip: &str, until: u64) -> ActiveBan {
        ActiveBan {
            key: SourceKey::new(ip.parse().unwrap(), 32, 128),
            until: Timestamp::from_secs(until),
            since: Timestamp::from_secs(0),
            rule: Arc::from("r"),
            comment: None,
            offense: 1,
            duration: Duration::from_secs(until),
            peak: 0,
            manual: false,
            origin: None,
        }
    }

    #[test]
    fn expires_in_order_and_keeps_indexes_in_step() {
        let mut t = BanTable::default();
        t.insert(ban("10.0.0.1", 30));
        t.insert(ban("10.0.0.2", 10));
        t.insert(ban("10.0.0.3", 20));
        assert_eq!(t.next_deadline(), Some(Timestamp::from_secs(10)));
        // Replacing a ban moves its deadline.
        t.insert(ban("10.0.0.2", 40));
        assert_eq!(t.next_deadline(), Some(Timestamp::from_secs(20)));
        let k = ban("10.0.0.3", 0).key;
        assert!(t.set_until(&k, Timestamp::from_secs(35)));
        let mut out = Vec::new();
        t.pop_expired(Timestamp::from_secs(35), &mut out);
        let ips: Vec<String> = out.iter().map(|b| b.key.to_string()).collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_deadline(), Some(Timestamp::from_secs(40)));
        assert!(t.remove(&ban("10.0.0.2", 0).key).is_some());
        assert!(t.len() == 0 && t.next_deadline().is_none());
    }

    fn changes(t: &mut BanTable) -> Vec<Option<String>> {
        let mut seen = Vec::new();
        t.take_changes(|k| seen.push(k.map(|k| k.to_string())));
        seen
    }

    #[test]
    fn changes_name_each_changed_key_in_order_until_too_many() {
        let mut t = BanTable::default();
        t.insert(ban("10.0.0.1", 30));
        t.insert(ban("10.0.0.2", 10));
        let k1 = ban("10.0.0.1", 0).key;
        t.record_peak(&k1, 99);
        assert_eq!(
            changes(&mut t),
            [Some("10.0.0.1".into()), Some("10.0.0.2".into())],
            "a peak is no change"
        );
        assert!(changes(&mut t).is_empty(), "taken once");
        let g = t.generation();
        t.set_rule(&k1, Arc::from("other"));
        t.set_origin(&k1, Some(Arc::from("node-b")));
        t.set_duration(&k1, Duration::from_secs(9));
        t.set_until(&k1, Timestamp::from_secs(40));
        assert_eq!(t.generation(), g + 4);
        assert_eq!(
            changes(&mut t),
            [Some("10.0.0.1".into())],
            "one key changed four times in a row is named once"
        );
        t.set_until(&k1, Timestamp::from_secs(41));
        t.set_until(&ban("10.0.0.2", 0).key, Timestamp::from_secs(10));
        t.set_until(&k1, Timestamp::from_secs(42));
        assert_eq!(
            changes(&mut t),
            [
                Some("10.0.0.1".into()),
                Some("10.0.0.2".into()),
                Some("10.0.0.1".into())
            ],
            "not in a row: named each time"
        );
        let mut out = Vec::new();
        t.pop_expired(Timestamp::from_secs(10), &mut out);
        t.remove(&k1);
        assert_eq!(
            changes(&mut t),
            [Some("10.0.0.2".into()), Some("10.0.0.1".into())]
        );
        // Every ban moves: one `None`.
        t.insert(ban("10.0.0.3", 30));
        t.shift_earlier(Duration::from_secs(1));
        t.insert(ban("10.0.0.4", 30));
        assert_eq!(changes(&mut t), [None]);
        // More than the table keeps: one `None`, then a fresh list.
        for i in 0..=CHANGES_KEPT {
            t.insert(ban(&format!("10.1.{}.{}", i / 256, i % 256), 50));
        }
        assert_eq!(changes(&mut t), [None]);
        t.insert(ban("10.0.0.5", 30));
        assert_eq!(changes(&mut t), [Some("10.0.0.5".into())]);
    }

    #[test]
    fn replacing_a_ban_with_the_same_end_keeps_its_deadline() {
        // Finding 2: `ban 10.44.6.6 10.44.6.6/32` inserts the same key twice with one end.
        let mut t = BanTable::default();
        t.insert(ban("10.44.6.6", 2));
        assert!(t.insert(ban("10.44.6.6", 2)).is_some());
        assert_eq!(t.next_deadline(), Some(Timestamp::from_secs(2)));
        let mut out = Vec::new();
        t.pop_expired(Timestamp::from_secs(2), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(t.len(), 0);
    }
}
