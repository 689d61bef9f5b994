//! The sources with the highest values of one rule (pure), for `autoblock top`: a fixed set of
//! [`CAPACITY`] entries, offered every value the rule counts and refreshed from the windows now
//! and then, so that a request never walks the source table (1M sources would take ~50 ms).
//!
//! Offering costs one comparison for a value at or below the set's floor (almost every packet
//! of a busy host) and a scan of the few entries otherwise. Windows slide, so an entry's value
//! goes stale: [`Leaders::refresh`] reads the current values back and drops sources that went
//! quiet; between refreshes an entry may show a value up to one refresh period old.

use crate::engine::sources::SourceKey;

/// Sources kept per rule.
pub const CAPACITY: usize = 8;

/// The leaders of one rule.
#[derive(Clone, Debug, Default)]
pub struct Leaders {
    /// At most [`CAPACITY`] (source, value) pairs, in no order.
    entries: Vec<(SourceKey, u64)>,
    /// The lowest value in the set when it is full, else 0: an offer at or below it is ignored.
    floor: u64,
}

impl Leaders {
    /// `key` has `value` now.
    #[inline]
    pub fn offer(&mut self, key: SourceKey, value: u64) {
        if value > self.floor {
            self.admit(key, value);
        }
    }

    /// Offers at or below this are ignored (0 while the set has room).
    #[inline]
    pub fn floor(&self) -> u64 {
        self.floor
    }

    #[inline(never)]
    fn admit(&mut self, key: SourceKey, value: u64) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == key) {
            let old = std::mem::replace(&mut e.1, value);
            // The floor is the lowest value of a full set: only the entry that held it can
            // move it (`value` is above it). Most offers are a leader's value going up.
            if old == self.floor && self.entries.len() == CAPACITY {
                self.set_floor();
            }
            return;
        }
        if self.entries.len() < CAPACITY {
            self.entries.push((key, value));
        } else if let Some(low) = self.entries.iter_mut().min_by_key(|e| e.1) {
            *low = (key, value);
        }
        self.set_floor();
    }

    fn set_floor(&mut self) {
        self.floor = if self.entries.len() < CAPACITY {
            0
        } else {
            self.entries.iter().map(|e| e.1).min().unwrap_or(0)
        };
    }

    /// Replaces each entry's value by `current(key)`; sources now at 0 leave the set.
    pub fn refresh(&mut self, current: impl Fn(SourceKey) -> u64) {
        for e in &mut self.entries {
            e.1 = current(e.0);
        }
        self.entries.retain(|e| e.1 > 0);
        self.set_floor();
    }

    /// The entries, highest value first (ties by key).
    pub fn top(&self) -> Vec<(SourceKey, u64)> {
        let mut v = self.entries.clone();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> SourceKey {
        SourceKey::new(std::net::IpAddr::from([10, 0, 0, i]), 32, 128)
    }

    #[test]
    fn keeps_the_highest_and_forgets_the_quiet() {
        let mut l = Leaders::default();
        for i in 1..=20u8 {
            l.offer(key(i), u64::from(i));
        }
        let top = l.top();
        assert_eq!(top.len(), CAPACITY);
        assert_eq!(top[0], (key(20), 20));
        assert_eq!(top[CAPACITY - 1], (key(13), 13));
        // Below the floor: ignored; a new high: admitted in place of the lowest.
        l.offer(key(1), 5);
        l.offer(key(30), 100);
        assert_eq!(l.top()[0], (key(30), 100));
        assert!(!l.top().iter().any(|e| e.0 == key(13)));
        // A known source's value moves up in place.
        l.offer(key(14), 50);
        assert_eq!(l.top()[1], (key(14), 50));
        // After the windows slid: only the still-active stay, the floor drops to 0.
        l.refresh(|k| if k == key(20) { 3 } else { 0 });
        assert_eq!(l.top(), [(key(20), 3)]);
        l.offer(key(2), 1);
        assert_eq!(l.top().len(), 2);
    }
}
