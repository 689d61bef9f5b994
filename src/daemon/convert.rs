//! Engine facts -> control-protocol answers (pure).

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Explained;
use crate::engine::bans::{ActiveBan, MANUAL};
use crate::engine::sources::SourceKey;
use crate::firewall;
use crate::sys::control::protocol::{BanInfo, Explanation, RuleWindow};
use crate::sys::enforcer::split_origin;
use crate::sys::state::SavedBan;
use crate::time::Timestamp;

/// A ban for `list`, `explain`, `ban` and `top`; `dry_run` marks a decision the kernel never
/// got. `reason` is the operator's text of a manual ban, else the rule.
pub fn ban_info(b: &ActiveBan, now: Timestamp, dry_run: bool) -> BanInfo {
    BanInfo {
        target: b.key.net(),
        reason: b.comment.as_deref().unwrap_or(&b.rule).to_string(),
        since: b.since.to_string(),
        until: b.until.to_string(),
        remaining_secs: b.until.since(now).as_secs(),
        offense: b.offense,
        manual: b.manual,
        rule: b.rule.to_string(),
        dry_run,
        origin: b.origin.as_deref().map(str::to_owned),
    }
}

pub fn explanation(x: &Explained, now: Timestamp, dry_run: bool) -> Explanation {
    Explanation {
        addr: x.addr,
        allowlisted: x.allowlisted.is_some(),
        allowlisted_by: x.allowlisted,
        local: x.local,
        peer: x.peer.map(|p| p.kinds.to_string()),
        exempt: x.exempt.iter().map(ToString::to_string).collect(),
        rules: x
            .rules
            .iter()
            .map(|r| RuleWindow {
                rule: r.rule.to_string(),
                metric: r.metric.as_str().to_string(),
                value: r.value,
                threshold: r.threshold,
                window_secs: r.window.as_secs_f64(),
                key: r.key.net(),
            })
            .collect(),
        ban: x.ban.as_ref().map(|b| ban_info(b, now, dry_run)),
        offenses: x.offenses,
        last_offense: x.last_offense.map(|t| t.to_string()),
        floods: Vec::new(),
        attacks: Vec::new(),
    }
}

/// `Some(d)` for a requested duration in seconds (0 means the default).
pub fn requested_duration(secs: Option<u64>) -> Option<Duration> {
    secs.filter(|s| *s > 0).map(Duration::from_secs)
}

/// A ban read from the kernel, as the engine keeps it. Its start and offense are unknown, so
/// the remaining time is taken as its length and the offense as the first. The kernel
/// comment is the rule of a rule ban, the operator's reason of a manual one, and names the
/// fleet node of a ban from the fleet (see [`split_origin`]).
pub fn adopted_ban(b: &firewall::Ban, now: Timestamp, manual: bool) -> ActiveBan {
    adopted(b.net, b.until, &b.reason, now, manual)
}

/// [`adopted_ban`] from the kernel ban's parts.
fn adopted(
    net: ipnet::IpNet,
    until_secs: u64,
    comment: &str,
    now: Timestamp,
    manual: bool,
) -> ActiveBan {
    let until = Timestamp::from_secs(until_secs);
    let (origin, reason) = split_origin(comment);
    let (rule, comment) = if manual {
        let text = (reason != MANUAL).then(|| Arc::from(reason));
        (Arc::from(MANUAL), text)
    } else {
        (Arc::from(reason), None)
    };
    ActiveBan {
        key: SourceKey::from_net(net),
        until,
        since: now,
        rule,
        comment,
        offense: 1,
        duration: until.since(now).max(Duration::from_secs(1)),
        peak: 0,
        manual,
        origin: origin.map(Arc::from),
    }
}

/// An active ban as the state file keeps it.
pub fn saved_ban(b: &ActiveBan) -> SavedBan {
    SavedBan {
        target: b.key.net(),
        until_us: b.until.as_micros(),
        since_us: b.since.as_micros(),
        rule: b.rule.clone(),
        offense: b.offense,
        ban_secs: b.duration.as_secs(),
        manual: b.manual,
        comment: b.comment.clone(),
        origin: b.origin.clone(),
    }
}

/// A saved ban as the engine keeps it. A start or length the file does not know (version 1)
/// is taken as now and the remaining time, as for a ban adopted from the kernel.
pub fn restored_ban(s: &SavedBan, now: Timestamp) -> ActiveBan {
    let until = Timestamp(s.until_us);
    let left = until.since(now).max(Duration::from_secs(1));
    ActiveBan {
        key: SourceKey::from_net(s.target),
        until,
        since: if s.since_us == 0 {
            now
        } else {
            Timestamp(s.since_us)
        },
        rule: s.rule.clone(),
        offense: s.offense.max(1),
        duration: if s.ban_secs == 0 {
            left
        } else {
            Duration::from_secs(s.ban_secs)
        },
        peak: 0,
        manual: s.manual,
        comment: s.comment.clone(),
        origin: s.origin.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::enforcer::fleet_comment;

    #[test]
    fn adoption_reads_a_fleet_bans_origin_from_the_kernel_comment() {
        let text = fleet_comment("syn-flood", Some("web-1"));
        let net = "203.0.113.7/32".parse().expect("net");
        let adopted = adopted(net, 2_000, &text, Timestamp::from_secs(1_000), false);
        assert_eq!(
            (adopted.origin.as_deref(), &*adopted.rule),
            (Some("web-1"), "syn-flood")
        );
    }
}
