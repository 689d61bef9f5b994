//! Decisions -> the kernel, through the public [`crate::firewall`] API (the daemon has no
//! second path). Decisions are staged, coalesced per target (the last word wins) and committed
//! in one batch; a failed commit keeps every staged change and is retried with backoff, so a
//! missing binary, a held lock or a full set loses nothing. In dry-run mode nothing is staged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::config::{BackendKind, Config};
use crate::engine::Decision;
use crate::firewall::{Backend, Firewall, FirewallError, FirewallOptions};
use crate::time::Timestamp;

/// First retry delay after a failed commit; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The firewall the configuration describes.
pub fn firewall_options(config: &Config) -> FirewallOptions {
    let e = &config.enforce;
    let backend = match e.backend {
        BackendKind::Iptables => Backend::Iptables,
        BackendKind::Ipset => Backend::Ipset,
    };
    FirewallOptions::new(backend, e.chain.clone())
        .hooks(e.hooks.iter().cloned())
        .maxelem(u32::try_from(e.max_active_bans).unwrap_or(u32::MAX))
}

/// One staged change to the kernel.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelOp {
    /// Ban `net` until `until` (wall clock), for `reason` (the rule or the operator's reason).
    Block {
        /// The target.
        net: IpNet,
        /// When the ban ends.
        until: Timestamp,
        /// Shown in the kernel rule's comment.
        reason: String,
    },
    /// Lift the ban on `net`.
    Unblock {
        /// The target.
        net: IpNet,
    },
}

/// What a commit did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// Bans added or changed.
    pub blocks: usize,
    /// Bans removed.
    pub unblocks: usize,
    /// Time the commit took (process calls included).
    pub took: Duration,
}

/// Decisions staged for the kernel, committed in batches with retries.
pub struct Enforcer {
    /// `None` in dry-run mode: decisions are logged, the kernel is untouched.
    fw: Option<Arc<Firewall>>,
    /// Staged ops by target, and the order targets were first staged in.
    staged: HashMap<IpNet, KernelOp>,
    order: Vec<IpNet>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl Enforcer {
    /// An enforcer for `fw`; `None` is dry-run mode (nothing is ever staged).
    pub fn new(fw: Option<Arc<Firewall>>) -> Enforcer {
        Enforcer {
            fw,
            staged: HashMap::new(),
            order: Vec::new(),
            backoff: FIRST_BACKOFF,
            retry_at: None,
        }
    }

    /// True in dry-run mode.
    pub fn dry_run(&self) -> bool {
        self.fw.is_none()
    }

    /// Stages the kernel change a decision calls for (if any).
    pub fn stage(&mut self, d: &Decision) {
        if self.fw.is_none() {
            return;
        }
        let op = match d {
            Decision::Block(v) | Decision::Extend(v) => KernelOp::Block {
                net: v.key.net(),
                until: v.until,
                reason: v.rule.to_string(),
            },
            Decision::Unblock { ban, .. } => KernelOp::Unblock { net: ban.key.net() },
            Decision::Suppressed { .. } => return,
        };
        self.stage_op(op);
    }

    /// Stages one change; a later change to the same target replaces it.
    pub fn stage_op(&mut self, op: KernelOp) {
        let net = match &op {
            KernelOp::Block { net, .. } | KernelOp::Unblock { net } => *net,
        };
        if self.staged.insert(net, op).is_none() {
            self.order.push(net);
        }
    }

    /// Lets the next commit run now, whatever the backoff says (a last try before stopping).
    pub fn retry_now(&mut self) {
        self.retry_at = None;
    }

    /// Changes waiting for the kernel.
    pub fn pending(&self) -> usize {
        self.staged.len()
    }

    /// When a failed commit may be retried; `None` when nothing failed.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Commits everything staged in one batch, unless a retry is not due yet (`Ok(None)`).
    /// `now` is the wall clock, for TTLs; `instant` the monotonic clock, for backoff.
    pub fn commit(
        &mut self,
        now: Timestamp,
        instant: Instant,
    ) -> Result<Option<Applied>, FirewallError> {
        let Some(fw) = self.fw.clone() else {
            return Ok(None);
        };
        if self.staged.is_empty() || self.retry_at.is_some_and(|t| instant < t) {
            return Ok(None);
        }
        let started = Instant::now();
        let mut batch = fw.batch();
        let mut applied = Applied::default();
        for net in &self.order {
            match self.staged.get(net) {
                Some(KernelOp::Block { net, until, reason }) => {
                    // A ban whose end already passed while it waited is not worth adding.
                    if *until <= now {
                        batch.unblock(*net);
                        applied.unblocks += 1;
                        continue;
                    }
                    batch.block(*net, until.since(now), reason);
                    applied.blocks += 1;
                }
                Some(KernelOp::Unblock { net }) => {
                    batch.unblock(*net);
                    applied.unblocks += 1;
                }
                None => {}
            }
        }
        match batch.commit() {
            Ok(()) => {
                self.staged.clear();
                self.order.clear();
                self.backoff = FIRST_BACKOFF;
                self.retry_at = None;
                applied.took = started.elapsed();
                Ok(Some(applied))
            }
            Err(e) => {
                self.retry_at = Some(instant + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Metric;
    use crate::engine::Verdict;
    use crate::engine::sources::SourceKey;

    fn block(ip: &str, until: u64) -> Decision {
        Decision::Block(Verdict {
            key: SourceKey::new(ip.parse().unwrap(), 32, 128),
            rule: Arc::from("r"),
            metric: Some(Metric::Packets),
            observed: 2,
            threshold: 1,
            window: Duration::from_secs(1),
            ban: Duration::from_secs(until),
            until: Timestamp::from_secs(until),
            offense: 1,
            at: Timestamp(0),
        })
    }

    #[test]
    fn dry_run_stages_nothing() {
        let mut e = Enforcer::new(None);
        e.stage(&block("203.0.113.1", 10));
        assert_eq!(e.pending(), 0);
        assert!(e.dry_run());
        assert_eq!(e.commit(Timestamp(0), Instant::now()).ok(), Some(None));
    }

    #[test]
    fn the_last_word_per_target_wins() {
        // Staging is pure; a firewall is only needed to commit.
        let mut e = Enforcer::new(None);
        let net: IpNet = "203.0.113.1/32".parse().unwrap();
        e.stage_op(KernelOp::Block {
            net,
            until: Timestamp::from_secs(10),
            reason: "r".into(),
        });
        e.stage_op(KernelOp::Unblock { net });
        assert_eq!(e.pending(), 1);
        assert_eq!(e.order, [net]);
        assert_eq!(e.staged.get(&net), Some(&KernelOp::Unblock { net }));
    }
}
