//! Which of our own decisions go to the fleet (pure): blocks, extensions and operator unbans of
//! the kinds in `[cluster] share`. Expiries are not sent (every node ends a ban at the same
//! absolute time by itself); nor are lifts by our own allowlist (they say nothing about the
//! source) or suppressed bans.

use super::message::{BanKind, BanNotice};
use crate::config::ShareKinds;
use crate::engine::{Decision, UnblockReason, Verdict};

/// The notice for `decision`, when `share` says it goes to the fleet. Call it only for
/// decisions made here: a ban that came from the fleet is never sent back.
pub(crate) fn notice_for(decision: &Decision, share: ShareKinds) -> Option<BanNotice> {
    let shared = |manual: bool| if manual { share.manual } else { share.rules };
    let from_verdict = |kind: BanKind, v: &Verdict| {
        let manual = v.metric.is_none();
        shared(manual).then(|| BanNotice {
            kind,
            target: v.key.net(),
            until: v.until,
            at: v.at,
            rule: v.rule.to_string(),
            offense: v.offense,
            manual,
        })
    };
    match decision {
        Decision::Block(v) => from_verdict(BanKind::Block, v),
        Decision::Extend(v) => from_verdict(BanKind::Extend, v),
        Decision::Unblock {
            ban,
            at,
            reason: UnblockReason::Manual,
        } => shared(ban.manual).then(|| BanNotice {
            kind: BanKind::Unblock,
            target: ban.key.net(),
            until: ban.until,
            at: *at,
            rule: ban.rule.to_string(),
            offense: ban.offense,
            manual: ban.manual,
        }),
        // A `sources` detector's bans come as Block decisions; signatures stay on this host.
        Decision::Unblock { .. } | Decision::Suppressed { .. } | Decision::Flood(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::Metric;
    use crate::engine::SuppressReason;
    use crate::engine::bans::ActiveBan;
    use crate::engine::sources::SourceKey;
    use crate::time::Timestamp;

    const BOTH: ShareKinds = ShareKinds {
        rules: true,
        manual: true,
    };

    fn verdict(manual: bool) -> Verdict {
        Verdict {
            key: SourceKey::from_net("198.51.100.0/24".parse().expect("net")),
            rule: Arc::from("syn-flood"),
            metric: (!manual).then_some(Metric::Packets),
            observed: 900,
            threshold: 500,
            window: Duration::from_secs(1),
            ban: Duration::from_secs(600),
            until: Timestamp::from_secs(1600),
            offense: 3,
            at: Timestamp::from_secs(1000),
            comment: None,
            origin: None,
        }
    }

    fn unblock(manual: bool, reason: UnblockReason) -> Decision {
        let v = verdict(manual);
        Decision::Unblock {
            ban: ActiveBan {
                key: v.key,
                until: v.until,
                since: v.at,
                rule: v.rule,
                offense: v.offense,
                duration: v.ban,
                peak: 0,
                manual,
                comment: None,
                origin: None,
            },
            at: Timestamp::from_secs(1200),
            reason,
        }
    }

    #[test]
    fn blocks_extends_and_operator_unbans_are_shared() {
        let n = notice_for(&Decision::Block(verdict(false)), BOTH).expect("shared");
        assert_eq!(
            n,
            BanNotice {
                kind: BanKind::Block,
                target: "198.51.100.0/24".parse().expect("net"),
                until: Timestamp::from_secs(1600),
                at: Timestamp::from_secs(1000),
                rule: "syn-flood".into(),
                offense: 3,
                manual: false,
            }
        );
        let n = notice_for(&Decision::Extend(verdict(true)), BOTH).expect("shared");
        assert_eq!((n.kind, n.manual), (BanKind::Extend, true));
        let n = notice_for(&unblock(false, UnblockReason::Manual), BOTH).expect("shared");
        assert_eq!(
            (n.kind, n.until, n.at),
            (
                BanKind::Unblock,
                Timestamp::from_secs(1600),
                Timestamp::from_secs(1200)
            )
        );
    }

    #[test]
    fn expiries_local_lifts_and_suppressions_are_not() {
        assert_eq!(
            notice_for(&unblock(false, UnblockReason::Expired), BOTH),
            None
        );
        assert_eq!(
            notice_for(&unblock(true, UnblockReason::Protected), BOTH),
            None
        );
        let suppressed = Decision::Suppressed {
            verdict: verdict(false),
            reason: SuppressReason::Allowlist,
        };
        assert_eq!(notice_for(&suppressed, BOTH), None);
    }

    #[test]
    fn share_picks_the_kinds() {
        let rules_only = ShareKinds {
            rules: true,
            manual: false,
        };
        assert!(notice_for(&Decision::Block(verdict(false)), rules_only).is_some());
        assert!(notice_for(&Decision::Block(verdict(true)), rules_only).is_none());
        assert!(notice_for(&unblock(true, UnblockReason::Manual), rules_only).is_none());
        let none = ShareKinds {
            rules: false,
            manual: false,
        };
        assert!(notice_for(&Decision::Extend(verdict(false)), none).is_none());
    }
}
