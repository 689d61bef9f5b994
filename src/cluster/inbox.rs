//! What to do with one payload from the fleet (pure; `now` is an argument): apply it, or skip
//! it as our own, as already over, as a repeat, or as malformed.
//!
//! Our own: published under our node name. One made since we started that does not carry our
//! message-id prefix comes from another process using the same name (a cloned machine keeps
//! its host name): its bans would never reach us, so that is reported, not silently skipped.
//!
//! Repeats: JetStream delivers at least once (a redelivery after a missed ack, a replay after
//! a restart of this process are possible), so the last [`Inbox::new`]`(cap)` applied events
//! are remembered by (origin, kind, target, until): one event is applied once however often it
//! arrives. Across restarts of this node the engine's own rule covers it: a ban that is already
//! active with the same or a later end is not applied again.

use std::collections::{HashSet, VecDeque};

use ipnet::IpNet;

use super::message::{BanKind, BanMessage, DecodeError, decode};
use crate::time::Timestamp;

/// The verdict on one payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A valid, current event of another node, seen for the first time.
    Apply(BanMessage),
    /// Published by this node.
    Own,
    /// Published under this node's name by someone else, since we started.
    NameClash,
    /// Its end time has passed (for an unblock: the lifted ban would have ended by now).
    Expired,
    /// Already applied.
    Repeat,
    /// Not a valid message (or one published on another node's subject).
    Malformed(DecodeError),
}

type EventKey = (String, BanKind, IpNet, Timestamp);

/// Judges payloads for one node.
#[derive(Debug)]
pub struct Inbox {
    node: String,
    /// Our messages' ids start with this (`<node>-<boot>-`).
    own_ids: String,
    started: Timestamp,
    cap: usize,
    seen: HashSet<EventKey>,
    order: VecDeque<EventKey>,
}

impl Inbox {
    /// For node `node`, whose messages since `started` have ids starting with `own_ids`,
    /// remembering the last `cap` applied events.
    pub fn new(node: &str, own_ids: &str, started: Timestamp, cap: usize) -> Inbox {
        Inbox {
            node: node.to_owned(),
            own_ids: own_ids.to_owned(),
            started,
            cap: cap.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Judges `payload`, published on `subject`: a node publishes on its own subject only
    /// (`...bans.<node>`; with per-node NATS permissions that makes `origin` trustworthy), so
    /// an origin that does not match the subject's last token is malformed.
    pub fn judge(&mut self, subject: &str, payload: &[u8], now: Timestamp) -> Incoming {
        let m = match decode(payload) {
            Ok(m) => m,
            Err(e) => return Incoming::Malformed(e),
        };
        if subject.rsplit('.').next() != Some(m.origin.as_str()) {
            return Incoming::Malformed(DecodeError::Field {
                field: "origin",
                why: format!("`{}` does not match the subject {subject}", m.origin),
            });
        }
        if m.origin == self.node {
            if m.at >= self.started && !m.id.starts_with(&self.own_ids) {
                return Incoming::NameClash;
            }
            return Incoming::Own;
        }
        if m.until <= now {
            return Incoming::Expired;
        }
        let key = (m.origin.clone(), m.kind, m.target, m.until);
        if !self.seen.insert(key.clone()) {
            return Incoming::Repeat;
        }
        self.order.push_back(key);
        if self.order.len() > self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        Incoming::Apply(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(origin: &str, kind: BanKind, target: &str, until_s: u64) -> Vec<u8> {
        BanMessage::new(
            format!("{origin}-1-{until_s}"),
            origin.into(),
            kind,
            target.parse().expect("net"),
            Timestamp::from_secs(until_s),
            Timestamp::from_secs(100),
            "syn-flood",
            1,
            false,
        )
        .encode()
    }

    const NOW: Timestamp = Timestamp(500_000_000);

    #[test]
    fn current_bans_of_others_are_applied_once() {
        let mut inbox = Inbox::new("b", "b-1f-", Timestamp::from_secs(300), 100);
        let p = payload("a", BanKind::Block, "192.0.2.1/32", 600);
        let Incoming::Apply(m) = inbox.judge("x.bans.a", &p, NOW) else {
            panic!("not applied");
        };
        assert_eq!(
            (m.origin.as_str(), m.until),
            ("a", Timestamp::from_secs(600))
        );
        assert_eq!(
            inbox.judge("x.bans.a", &p, NOW),
            Incoming::Repeat,
            "redelivery"
        );
        // The same event under another id (a re-send) is still a repeat...
        let mut again = decode(&p).expect("valid");
        again.id = "a-2-1".into();
        assert_eq!(
            inbox.judge("x.bans.a", &again.encode(), NOW),
            Incoming::Repeat
        );
        // ...but an extension, an unblock, or another node's ban on the same target are not.
        for (subject, p) in [
            (
                "x.bans.a",
                payload("a", BanKind::Extend, "192.0.2.1/32", 900),
            ),
            (
                "x.bans.a",
                payload("a", BanKind::Unblock, "192.0.2.1/32", 900),
            ),
            (
                "x.bans.c",
                payload("c", BanKind::Block, "192.0.2.1/32", 600),
            ),
        ] {
            assert!(matches!(inbox.judge(subject, &p, NOW), Incoming::Apply(_)));
        }
    }

    #[test]
    fn own_expired_forged_and_malformed_are_skipped() {
        let mut inbox = Inbox::new("b", "b-1f-", Timestamp::from_secs(300), 100);
        // Ours: made by us (our prefix), or before we started (a previous run).
        let mut own = decode(&payload("b", BanKind::Block, "192.0.2.1/32", 600)).expect("valid");
        own.id = "b-1f-7".into();
        assert_eq!(inbox.judge("x.bans.b", &own.encode(), NOW), Incoming::Own);
        let earlier = payload("b", BanKind::Block, "192.0.2.1/32", 600);
        assert_eq!(inbox.judge("x.bans.b", &earlier, NOW), Incoming::Own);
        // Someone else under our name, since we started.
        let mut clash = own.clone();
        clash.id = "b-2a-1".into();
        clash.at = Timestamp::from_secs(400);
        let verdict = inbox.judge("x.bans.b", &clash.encode(), NOW);
        assert_eq!(verdict, Incoming::NameClash);
        let over = payload("a", BanKind::Block, "192.0.2.1/32", 500);
        let ended = inbox.judge("x.bans.a", &over, NOW);
        assert_eq!(ended, Incoming::Expired, "ends exactly now");
        let lifted = payload("a", BanKind::Unblock, "192.0.2.1/32", 400);
        assert_eq!(inbox.judge("x.bans.a", &lifted, NOW), Incoming::Expired);
        assert!(matches!(
            inbox.judge("x.bans.a", b"{\"v\":1}", NOW),
            Incoming::Malformed(DecodeError::Json(_))
        ));
        // Node c cannot speak for node a.
        let forged = payload("a", BanKind::Block, "192.0.2.9/32", 600);
        let Incoming::Malformed(e) = inbox.judge("x.bans.c", &forged, NOW) else {
            panic!("forged origin accepted");
        };
        assert_eq!(
            e.to_string(),
            "field `origin`: `a` does not match the subject x.bans.c"
        );
    }

    #[test]
    fn memory_is_bounded_oldest_first() {
        let mut inbox = Inbox::new("b", "b-1f-", Timestamp::from_secs(300), 2);
        let targets = ["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"];
        for t in targets {
            let p = payload("a", BanKind::Block, t, 600);
            assert!(matches!(
                inbox.judge("x.bans.a", &p, NOW),
                Incoming::Apply(_)
            ));
        }
        assert_eq!(inbox.seen.len(), 2);
        let newest = payload("a", BanKind::Block, targets[2], 600);
        assert_eq!(inbox.judge("x.bans.a", &newest, NOW), Incoming::Repeat);
        let oldest = payload("a", BanKind::Block, targets[0], 600);
        assert!(matches!(
            inbox.judge("x.bans.a", &oldest, NOW),
            Incoming::Apply(_)
        ));
    }
}
