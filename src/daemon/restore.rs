//! What the daemon starts from (pure): the bans the kernel holds and the bans the state file
//! saved, merged into the engine's bans and the kernel changes that make the kernel whole.
//!
//! Rules: a ban in the kernel is adopted (no gap, no duplicate), with its rule, offense and
//! start from the state file when it is there too; when both have it, the later end wins (the
//! kernel is moved only when the state's end is more than [`SLACK`] later: the iptables
//! backend keeps whole seconds). A saved ban the kernel lost (a reboot, a wiped firewall,
//! `keep_on_exit = false`) comes back while it has time left, up to `max_active_bans`.

use std::collections::HashMap;
use std::time::Duration;

use ipnet::IpNet;

#[cfg(doc)]
use super::convert::adopted_ban;
use super::convert::restored_ban;
use crate::engine::bans::ActiveBan;
use crate::engine::sources::SourceKey;
use crate::sys::enforcer::KernelOp;
use crate::sys::state::SavedBan;
use crate::time::Timestamp;

/// How much later a saved end must be than the kernel's before the kernel is moved.
pub const SLACK: Duration = Duration::from_secs(1);

/// The merge of the kernel's and the state file's bans.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Every ban the engine starts with.
    pub bans: Vec<ActiveBan>,
    /// Kernel changes: saved bans put back, kernel ends moved later.
    pub kernel: Vec<KernelOp>,
    /// Bans found in the kernel.
    pub adopted: usize,
    /// Saved bans the kernel had lost, put back.
    pub restored: usize,
}

/// Merges `kernel` (what the firewall holds, see [`adopted_ban`]) and `saved` (the state file)
/// at `now`; at most `max_bans` bans in all.
pub fn plan(kernel: Vec<ActiveBan>, saved: &[SavedBan], now: Timestamp, max_bans: usize) -> Plan {
    let mut live: HashMap<IpNet, &SavedBan> = HashMap::new();
    for s in saved.iter().filter(|s| Timestamp(s.until_us) > now) {
        let net = normal(s.target);
        if live.get(&net).is_none_or(|o| o.until_us < s.until_us) {
            live.insert(net, s);
        }
    }
    let mut plan = Plan::default();
    for found in kernel {
        let ban = match live.remove(&found.key.net()) {
            None => found,
            Some(s) => {
                let mut ban = restored_ban(s, now);
                if ban.until > found.until.saturating_add(SLACK) {
                    plan.kernel.push(block(&ban));
                } else {
                    ban.until = ban.until.max(found.until);
                }
                ban
            }
        };
        plan.bans.push(ban);
        plan.adopted += 1;
    }
    let mut lost: Vec<&SavedBan> = live.into_values().collect();
    // The longest first, should the cap leave no room for all.
    lost.sort_by(|a, b| b.until_us.cmp(&a.until_us).then(a.target.cmp(&b.target)));
    for s in lost {
        if plan.bans.len() >= max_bans {
            break;
        }
        let ban = restored_ban(s, now);
        plan.kernel.push(block(&ban));
        plan.bans.push(ban);
        plan.restored += 1;
    }
    plan
}

fn normal(net: IpNet) -> IpNet {
    SourceKey::from_net(net).net()
}

fn block(b: &ActiveBan) -> KernelOp {
    KernelOp::Block {
        net: b.key.net(),
        until: b.until,
        reason: crate::sys::enforcer::fleet_comment(&b.rule, b.origin.as_deref()),
        manual: b.manual && b.origin.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const NOW: Timestamp = Timestamp(1_795_568_400_000_000);
    const SEC: u64 = 1_000_000;

    fn kernel(net: &str, until_secs: u64) -> ActiveBan {
        ActiveBan {
            key: SourceKey::from_net(net.parse().unwrap()),
            until: Timestamp(until_secs * SEC),
            since: NOW,
            rule: Arc::from("conn-burst"),
            offense: 1,
            duration: Duration::from_secs(until_secs - now_secs()),
            peak: 0,
            manual: false,
            comment: None,
            origin: None,
        }
    }

    fn saved(net: &str, until_us: u64, manual: bool) -> SavedBan {
        SavedBan {
            target: net.parse().unwrap(),
            until_us,
            since_us: NOW.0 - 60 * SEC,
            rule: Arc::from(if manual { "abuse" } else { "port-scan" }),
            offense: 3,
            ban_secs: 600,
            manual,
            comment: None,
            origin: None,
        }
    }

    fn now_secs() -> u64 {
        NOW.0 / SEC
    }

    #[test]
    fn a_ban_the_kernel_lost_comes_back_with_its_end_rule_and_offense() {
        let s = saved("198.51.100.7/32", NOW.0 + 300 * SEC, false);
        let p = plan(Vec::new(), std::slice::from_ref(&s), NOW, 100);
        assert_eq!((p.adopted, p.restored), (0, 1));
        let b = &p.bans[0];
        assert_eq!(b.until, Timestamp(s.until_us));
        assert_eq!(b.since, Timestamp(s.since_us));
        assert_eq!((&*b.rule, b.offense, b.manual), ("port-scan", 3, false));
        assert_eq!(b.duration, Duration::from_secs(600));
        assert_eq!(
            p.kernel,
            [KernelOp::Block {
                net: s.target,
                until: Timestamp(s.until_us),
                reason: "port-scan".into(),
                manual: false,
            }]
        );
    }

    #[test]
    fn an_ended_ban_stays_ended() {
        let s = saved("198.51.100.7/32", NOW.0, true);
        let p = plan(Vec::new(), &[s], NOW, 100);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn a_kernel_ban_is_adopted_with_what_the_state_knows_and_the_later_end_wins() {
        // The state's end is 10 s later: the kernel is moved.
        let later = [saved("198.51.100.7/32", (now_secs() + 310) * SEC, false)];
        let p = plan(
            vec![kernel("198.51.100.7/32", now_secs() + 300)],
            &later,
            NOW,
            100,
        );
        assert_eq!((p.adopted, p.restored), (1, 0));
        assert_eq!(p.bans[0].until, Timestamp((now_secs() + 310) * SEC));
        assert_eq!(p.bans[0].offense, 3);
        assert_eq!(p.kernel.len(), 1);
        // The kernel's end is later: kept, nothing to change.
        let earlier = [saved("198.51.100.7/32", (now_secs() + 200) * SEC, true)];
        let p = plan(
            vec![kernel("198.51.100.7/32", now_secs() + 300)],
            &earlier,
            NOW,
            100,
        );
        assert_eq!(p.bans[0].until, Timestamp((now_secs() + 300) * SEC));
        assert!(p.bans[0].manual, "what the state knows is kept");
        assert!(p.kernel.is_empty());
        // Within a second (the kernel keeps whole seconds): the later end, no kernel change.
        let same = [saved(
            "198.51.100.7/32",
            (now_secs() + 300) * SEC + 700_000,
            false,
        )];
        let p = plan(
            vec![kernel("198.51.100.7/32", now_secs() + 300)],
            &same,
            NOW,
            100,
        );
        assert_eq!(p.bans[0].until, Timestamp(same[0].until_us));
        assert!(p.kernel.is_empty());
    }

    #[test]
    fn a_kernel_ban_the_state_does_not_know_is_adopted_as_before() {
        let p = plan(
            vec![kernel("2001:db8::/64", now_secs() + 60)],
            &[],
            NOW,
            100,
        );
        assert_eq!((p.adopted, p.restored), (1, 0));
        assert_eq!(p.bans[0].offense, 1);
        assert!(!p.bans[0].manual);
        assert!(p.kernel.is_empty());
    }

    #[test]
    fn restoring_stops_at_the_cap_keeping_the_longest() {
        let s = [
            saved("198.51.100.1/32", NOW.0 + 100 * SEC, false),
            saved("198.51.100.2/32", NOW.0 + 300 * SEC, false),
            saved("198.51.100.3/32", NOW.0 + 200 * SEC, false),
        ];
        let p = plan(vec![kernel("203.0.113.9/32", now_secs() + 60)], &s, NOW, 2);
        assert_eq!((p.adopted, p.restored), (1, 1));
        assert_eq!(p.bans[1].key.net(), s[1].target);
    }

    #[test]
    fn a_target_saved_twice_counts_once_with_its_later_end() {
        let s = [
            saved("198.51.100.7/32", NOW.0 + 100 * SEC, false),
            saved("198.51.100.7/32", NOW.0 + 300 * SEC, false),
        ];
        let p = plan(Vec::new(), &s, NOW, 100);
        assert_eq!(p.restored, 1);
        assert_eq!(p.bans[0].until, Timestamp(NOW.0 + 300 * SEC));
    }

    #[test]
    fn a_fleet_ban_comes_back_with_its_origin_and_unforced() {
        let s = SavedBan {
            origin: Some(Arc::from("web-1")),
            ..saved("198.51.100.0/24", NOW.0 + 300 * SEC, true)
        };
        let p = plan(Vec::new(), std::slice::from_ref(&s), NOW, 100);
        assert_eq!(p.bans[0].origin.as_deref(), Some("web-1"));
        assert_eq!(
            p.kernel,
            [KernelOp::Block {
                net: s.target,
                until: Timestamp(s.until_us),
                reason: "fleet:web-1 abuse".into(),
                manual: false,
            }]
        );
    }
}
