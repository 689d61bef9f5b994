//! Our publications waiting for the broker (pure; `now` is an argument): a bounded FIFO that
//! keeps order (a block must reach the stream before its unblock), takes back unconfirmed
//! messages at its front after a failure, and skips what has ended by the time it can be sent.

use std::collections::VecDeque;

use super::message::BanMessage;
use crate::time::Timestamp;

/// The queue itself.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<BanMessage>,
    cap: usize,
}

impl Outbox {
    /// At most `cap` messages wait; more are refused (and counted by the caller).
    pub fn new(cap: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            cap,
        }
    }

    /// Queues `m` at the back; false (and `m` dropped) when full.
    pub fn push(&mut self, m: BanMessage) -> bool {
        if self.queue.len() >= self.cap {
            return false;
        }
        self.queue.push_back(m);
        true
    }

    /// The next message still worth sending, and how many were skipped because they ended
    /// (a ban over, or the ban an unblock lifts over) before they could be sent.
    pub fn next_due(&mut self, now: Timestamp) -> (Option<BanMessage>, u64) {
        let mut stale = 0;
        while let Some(m) = self.queue.pop_front() {
            if m.until > now {
                return (Some(m), stale);
            }
            stale += 1;
        }
        (None, stale)
    }

    /// Puts unconfirmed messages back at the front, in their order (they go out again first;
    /// the broker drops the copies it already has by message id). May exceed the cap: they
    /// were counted in when first queued.
    pub fn requeue_front(&mut self, unconfirmed: impl DoubleEndedIterator<Item = BanMessage>) {
        for m in unconfirmed.rev() {
            self.queue.push_front(m);
        }
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::message::BanKind;

    fn msg(n: u8, until_s: u64) -> BanMessage {
        BanMessage::new(
            format!("a-1-{n}"),
            "a".into(),
            BanKind::Block,
            format!("192.0.2.{n}/32").parse().expect("net"),
            Timestamp::from_secs(until_s),
            Timestamp::from_secs(1),
            "r",
            1,
            false,
        )
    }

    fn ids(o: &mut Outbox, now: Timestamp) -> Vec<String> {
        std::iter::from_fn(|| o.next_due(now).0.map(|m| m.id)).collect()
    }

    #[test]
    fn bounded_fifo() {
        let mut o = Outbox::new(2);
        assert!(o.push(msg(1, 100)) && o.push(msg(2, 100)));
        assert!(!o.push(msg(3, 100)), "full");
        assert_eq!(o.len(), 2);
        assert_eq!(ids(&mut o, Timestamp::from_secs(10)), ["a-1-1", "a-1-2"]);
        assert!(o.is_empty());
    }

    #[test]
    fn unconfirmed_go_first_in_their_order() {
        let mut o = Outbox::new(2);
        o.push(msg(3, 100));
        o.requeue_front([msg(1, 100), msg(2, 100)].into_iter());
        assert_eq!(o.len(), 3, "may exceed the cap");
        assert_eq!(
            ids(&mut o, Timestamp::from_secs(10)),
            ["a-1-1", "a-1-2", "a-1-3"]
        );
    }

    #[test]
    fn ended_ones_are_skipped_and_counted() {
        let mut o = Outbox::new(10);
        for (n, until) in [(1, 50), (2, 200), (3, 60)] {
            o.push(msg(n, until));
        }
        let now = Timestamp::from_secs(100);
        let (m, stale) = o.next_due(now);
        assert_eq!((m.map(|m| m.id), stale), (Some("a-1-2".into()), 1));
        assert_eq!(o.next_due(now), (None, 1));
    }
}
