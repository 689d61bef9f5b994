//! Decisions -> the kernel, through the public [`crate::firewall`] API (the daemon has no
//! second path). Decisions are staged, coalesced per firewall rule (a ban is the rule of its
//! net; a flood signature is a typed rule, [`signature_rule`]; the last word per rule wins) and
//! committed in one exact batch (the engine owns the end times); a failed commit keeps every
//! staged change and is retried with backoff, so a missing binary, a held lock or a full set
//! loses nothing. A change the firewall's guard refuses is reported, not retried. In dry-run
//! mode nothing is staged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::config::{Config, FloodFlags, NODE_NAME_MAX, is_cluster_name};
use crate::engine::Decision;
use crate::engine::flood::{FloodDecision, FpProto, Signature};
use crate::firewall::{
    Backend, Batch, Firewall, FirewallError, FirewallOptions, Protocol, Refused, Rule, Special,
    TcpFlags,
};
use crate::time::Timestamp;

/// First retry delay after a failed commit; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The firewall the configuration describes, on `backend` (the configured one, or what
/// `auto` chose: `sys::backend`). Its guard protects the `[allow]` nets (the
/// daemon adds its own addresses, [`protected`]); the shortest prefix it accepts is the
/// library's default or the shortest `aggregate_v4`/`aggregate_v6` of a rule, whichever is
/// shorter; link-local sources (a flooding neighbour) may be banned, as before the guard.
pub fn firewall_options(config: &Config, backend: Backend) -> FirewallOptions {
    let e = &config.enforce;
    let shortest = |f: fn(&crate::config::Rule) -> u8, default: u8| {
        config.rules.iter().map(f).fold(default, u8::min).max(1)
    };
    FirewallOptions::new(backend, e.chain.clone())
        .hooks(e.hooks.iter().cloned())
        .maxelem(u32::try_from(e.max_active_bans).unwrap_or(u32::MAX))
        .priority(e.priority)
        .min_prefix(
            shortest(|r| r.aggregate_v4, 8),
            shortest(|r| r.aggregate_v6, 16),
        )
        .allow(Special::LinkLocal)
        .protect(config.allow.nets.iter().copied())
}

/// What no automatic ban may touch: the `[allow]` nets and the host's own addresses.
pub fn protected(config: &Config, local: &[IpNet]) -> Vec<IpNet> {
    config.allow.nets.iter().chain(local).copied().collect()
}

/// `reason` as the kernel can keep it: the library refuses `"`, control characters, empty and
/// over-long reasons rather than rewrite them; the daemon must not lose a ban over an
/// operator's free-text reason, so it makes that choice here, visibly.
fn kernel_reason(reason: &str) -> String {
    let mut out = String::new();
    for c in reason.chars() {
        let c = match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        };
        if out.len() + c.len_utf8() > 128 {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push_str("manual");
    }
    out
}

/// What a kernel rule's comment starts with for a ban from the fleet: `fleet:NODE RULE`.
const FLEET_PREFIX: &str = "fleet:";

/// The kernel comment of a ban: `reason`, or `fleet:NODE reason` for a ban from node `NODE`
/// (adoption reads the origin back, so the node can still lift it after a restart that lost
/// the state file).
pub fn fleet_comment(reason: &str, origin: Option<&str>) -> String {
    match origin {
        Some(node) => format!("{FLEET_PREFIX}{node} {reason}"),
        None => reason.to_owned(),
    }
}

/// A kernel comment split into the fleet node it names (if it is `fleet:NODE REST` with a
/// valid node name) and the rest.
pub fn split_origin(comment: &str) -> (Option<&str>, &str) {
    comment
        .strip_prefix(FLEET_PREFIX)
        .and_then(|rest| rest.split_once(' '))
        .filter(|(node, _)| is_cluster_name(node, NODE_NAME_MAX))
        .map_or((None, comment), |(node, rest)| (Some(node), rest))
}

/// One staged change to the kernel.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelOp {
    /// Ban `net` until `until` (wall clock), for `reason` (the rule or the operator's reason).
    /// A `manual` ban was checked by the engine (`ban --force` may cover an allowlisted net),
    /// so the firewall's protected nets do not apply to it.
    Block {
        /// The target.
        net: IpNet,
        /// When the ban ends.
        until: Timestamp,
        /// Shown in the kernel rule's comment.
        reason: String,
        /// Set by an operator: the firewall's protected nets do not apply.
        manual: bool,
    },
    /// Lift the ban on `net`.
    Unblock {
        /// The target.
        net: IpNet,
    },
    /// Put a flood signature in (or keep it) until `until`, for `reason` (its detector).
    Signature {
        /// The typed rule.
        rule: Rule,
        /// When the kernel comment says it ends (refreshed while the attack lasts).
        until: Timestamp,
        /// The detector's name.
        reason: String,
    },
    /// Take a flood signature (or a typed rule an earlier run left) out.
    Unsignature {
        /// The typed rule.
        rule: Rule,
    },
}

impl KernelOp {
    /// The firewall rule the op changes: the last op per rule wins.
    fn target(&self) -> Rule {
        match self {
            KernelOp::Block { net, .. } | KernelOp::Unblock { net } => Rule::from(*net),
            KernelOp::Signature { rule, .. } | KernelOp::Unsignature { rule } => *rule,
        }
    }
}

/// `(mask, set)` of the TCP flags that match exactly the packets of a flag word (the words
/// of `[[flood]] tcp_flags`: `syn` is SYN without ACK or RST, ECE/CWR allowed).
pub fn tcp_flags(word: FloodFlags) -> Option<TcpFlags> {
    let (fin, syn, rst, ack) = (TcpFlags::FIN, TcpFlags::SYN, TcpFlags::RST, TcpFlags::ACK);
    let (mask, set) = match word {
        FloodFlags::Syn => (syn | rst | ack, syn),
        FloodFlags::Synack => (syn | rst | ack, syn | ack),
        FloodFlags::Ack => (fin | syn | rst | ack, ack),
        FloodFlags::Rst => (rst, rst),
        FloodFlags::Fin => (fin | syn | rst, fin),
        FloodFlags::Any => return None,
    };
    Some(TcpFlags::new(mask, set))
}

/// The firewall rule of a flood signature: its words are the signature's own (`None` for a
/// protocol a rule cannot name; the engine never asks for one).
pub fn signature_rule(s: &Signature) -> Option<Rule> {
    let protocol = match s.protocol {
        FpProto::Tcp => Protocol::Tcp,
        FpProto::Udp => Protocol::Udp,
        FpProto::Icmp => Protocol::Icmp,
        FpProto::Other => return None,
    };
    let mut rule = Rule::new().dst(s.dst).protocol(protocol);
    if let Some(p) = s.sport {
        rule = rule.sport(p);
    }
    if let Some(p) = s.dport {
        rule = rule.dport(p);
    }
    if let Some(flags) = s.flags.and_then(tcp_flags) {
        rule = rule.tcp_flags(flags);
    }
    Some(rule)
}

/// The kernel change a decision calls for (`None` for a suppressed one, and for a flood
/// decision that changes nothing in the kernel).
pub fn kernel_op(d: &Decision) -> Option<KernelOp> {
    Some(match d {
        Decision::Block(v) | Decision::Extend(v) => KernelOp::Block {
            net: v.key.net(),
            until: v.until,
            // A manual ban keeps the operator's reason in the kernel (adoption reads it back);
            // a rule ban names its rule; a ban from the fleet, its node too.
            reason: fleet_comment(v.comment.as_deref().unwrap_or(&v.rule), v.origin.as_deref()),
            // Only a manual ban made here may pass the firewall's protected nets (only it has
            // no metric and no origin); the fleet never forces.
            manual: v.metric.is_none() && v.origin.is_none(),
        },
        Decision::Unblock { ban, .. } => KernelOp::Unblock { net: ban.key.net() },
        Decision::Suppressed { .. } => return None,
        Decision::Flood(FloodDecision::Mitigate(m)) => KernelOp::Signature {
            rule: signature_rule(&m.signature)?,
            until: m.until,
            reason: m.rule.to_string(),
        },
        Decision::Flood(FloodDecision::Unmitigate(m)) => KernelOp::Unsignature {
            rule: signature_rule(&m.signature)?,
        },
        Decision::Flood(_) => return None,
    })
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
    /// Changes the firewall's guard refused (not retried).
    pub refused: Vec<Refused>,
}

/// Decisions staged for the kernel, committed in batches with retries.
pub struct Enforcer {
    /// `None` in dry-run mode: decisions are logged, the kernel is untouched.
    fw: Option<Arc<Firewall>>,
    /// Staged ops by firewall rule, and the order rules were first staged in.
    staged: HashMap<Rule, KernelOp>,
    order: Vec<Rule>,
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
        if let Some(op) = kernel_op(d) {
            self.stage_op(op);
        }
    }

    /// Stages one change; a later change to the same firewall rule replaces it.
    pub fn stage_op(&mut self, op: KernelOp) {
        let target = op.target();
        if self.staged.insert(target, op).is_none() {
            self.order.push(target);
        }
    }

    /// Replaces the nets the firewall refuses to ban (see [`protected`]).
    pub fn set_protected(&self, nets: Vec<IpNet>) {
        if let Some(fw) = &self.fw {
            // Bans already covering them are the engine's to lift (it does, on the same change).
            let _ = fw.set_protected(nets);
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

    /// Commits everything staged in one exact batch (two when manual bans are staged: those may
    /// cover allowlisted nets), unless a retry is not due yet (`Ok(None)`).
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
        let (automatic, manual, mut applied) = self.batches(now);
        let mut result = Ok(Vec::new());
        for batch in [manual, automatic].into_iter().filter(|b| !b.is_empty()) {
            result = result.and_then(|mut refused: Vec<Refused>| {
                refused.extend(fw.commit(batch)?.refused);
                Ok(refused)
            });
        }
        match result {
            Ok(refused) => {
                self.staged.clear();
                self.order.clear();
                self.backoff = FIRST_BACKOFF;
                self.retry_at = None;
                applied.took = started.elapsed();
                applied.blocks -= refused.len().min(applied.blocks);
                applied.refused = refused;
                Ok(Some(applied))
            }
            Err(e) => {
                self.retry_at = Some(instant + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                Err(e)
            }
        }
    }

    /// The staged changes as two exact batches, automatic and manual, at `now`.
    fn batches(&self, now: Timestamp) -> (Batch, Batch, Applied) {
        let mut automatic = Batch::new().exact();
        let mut manual = Batch::new().exact().override_protected();
        let mut applied = Applied::default();
        for target in &self.order {
            match self.staged.get(target) {
                Some(KernelOp::Block {
                    net,
                    until,
                    reason,
                    manual: by_hand,
                }) => {
                    // A ban whose end already passed while it waited is not worth adding.
                    if *until <= now {
                        automatic.unblock(*net);
                        applied.unblocks += 1;
                        continue;
                    }
                    let batch = if *by_hand {
                        &mut manual
                    } else {
                        &mut automatic
                    };
                    batch.block(*net, until.since(now), &kernel_reason(reason));
                    applied.blocks += 1;
                }
                Some(KernelOp::Unblock { net }) => {
                    automatic.unblock(*net);
                    applied.unblocks += 1;
                }
                Some(KernelOp::Signature {
                    rule,
                    until,
                    reason,
                }) if *until > now => {
                    automatic.block(*rule, until.since(now), &kernel_reason(reason));
                    applied.blocks += 1;
                }
                Some(KernelOp::Signature { rule, .. } | KernelOp::Unsignature { rule }) => {
                    automatic.unblock(*rule);
                    applied.unblocks += 1;
                }
                None => {}
            }
        }
        (automatic, manual, applied)
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
            comment: None,
            metric: Some(Metric::Packets),
            observed: 2,
            threshold: 1,
            window: Duration::from_secs(1),
            ban: Duration::from_secs(until),
            until: Timestamp::from_secs(until),
            offense: 1,
            at: Timestamp(0),
            origin: None,
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
            manual: false,
        });
        e.stage_op(KernelOp::Unblock { net });
        assert_eq!(e.pending(), 1);
        assert_eq!(e.order, [Rule::from(net)]);
        assert_eq!(
            e.staged.get(&Rule::from(net)),
            Some(&KernelOp::Unblock { net })
        );
    }

    #[test]
    fn signatures_become_firewall_rules_with_the_same_words() {
        let dst = "10.10.10.10".parse().unwrap();
        let sig = |protocol, sport, dport, flags| Signature {
            dst,
            protocol,
            sport,
            dport,
            flags,
        };
        for s in [
            sig(FpProto::Udp, Some(4500), None, None),
            sig(FpProto::Udp, Some(123), Some(5000), None),
            sig(FpProto::Tcp, None, Some(25565), Some(FloodFlags::Syn)),
            sig(FpProto::Tcp, Some(80), None, Some(FloodFlags::Synack)),
            sig(FpProto::Tcp, None, None, Some(FloodFlags::Ack)),
            sig(FpProto::Tcp, None, Some(1), Some(FloodFlags::Rst)),
            sig(FpProto::Tcp, None, Some(1), Some(FloodFlags::Fin)),
            sig(FpProto::Icmp, None, None, None),
            Signature {
                dst: "2001:db8::7".parse().unwrap(),
                ..sig(FpProto::Icmp, None, None, None)
            },
        ] {
            let rule = signature_rule(&s).expect("a rule");
            assert_eq!(rule.to_string(), s.to_string());
        }
        assert_eq!(signature_rule(&sig(FpProto::Other, None, None, None)), None);
    }

    #[test]
    fn signatures_are_staged_by_rule_and_their_removal_wins() {
        let mut e = Enforcer::new(None);
        let rule = Rule::new()
            .dst("10.10.10.10".parse::<std::net::IpAddr>().unwrap())
            .protocol(Protocol::Udp)
            .sport(4500);
        e.stage_op(KernelOp::Signature {
            rule,
            until: Timestamp::from_secs(10),
            reason: "udp-flood-dst".into(),
        });
        // A ban on the same destination is another firewall rule: staged apart.
        e.stage_op(KernelOp::Unblock {
            net: "10.10.10.10/32".parse().unwrap(),
        });
        e.stage_op(KernelOp::Unsignature { rule });
        assert_eq!(e.pending(), 2);
        let (automatic, _, applied) = e.batches(Timestamp::from_secs(5));
        assert_eq!((automatic.len(), applied.unblocks), (2, 2));
        // A signature whose end passed while it waited is taken out, not put in.
        e.stage_op(KernelOp::Signature {
            rule,
            until: Timestamp::from_secs(10),
            reason: "udp-flood-dst".into(),
        });
        let (_, _, applied) = e.batches(Timestamp::from_secs(11));
        assert_eq!((applied.blocks, applied.unblocks), (0, 2));
    }

    #[test]
    fn the_kernel_comment_keeps_a_fleet_bans_origin() {
        let text = fleet_comment("syn-flood", Some("web-1"));
        assert_eq!(text, "fleet:web-1 syn-flood");
        assert_eq!(split_origin(&text), (Some("web-1"), "syn-flood"));
        assert_eq!(split_origin("syn-flood"), (None, "syn-flood"));
        assert_eq!(split_origin("fleet:no.dots x"), (None, "fleet:no.dots x"));
        assert_eq!(split_origin("fleet:alone"), (None, "fleet:alone"));
    }

    #[test]
    fn reasons_the_kernel_cannot_keep_are_made_keepable() {
        assert_eq!(kernel_reason("abuse report #12"), "abuse report #12");
        assert_eq!(kernel_reason("say \"hi\"\n"), "say 'hi' ");
        assert_eq!(kernel_reason(""), "manual");
        assert_eq!(kernel_reason(&"é".repeat(100)).len(), 128);
    }

    #[test]
    fn manual_and_automatic_bans_go_in_separate_batches() {
        let mut e = Enforcer::new(None);
        for (ip, manual) in [("203.0.113.1/32", false), ("203.0.113.2/32", true)] {
            e.stage_op(KernelOp::Block {
                net: ip.parse().unwrap(),
                until: Timestamp::from_secs(10),
                reason: "r".into(),
                manual,
            });
        }
        e.stage_op(KernelOp::Block {
            net: "203.0.113.3/32".parse().unwrap(),
            until: Timestamp::from_secs(1),
            reason: "r".into(),
            manual: true,
        });
        let (automatic, manual, applied) = e.batches(Timestamp::from_secs(5));
        assert_eq!((automatic.len(), manual.len()), (2, 1));
        assert_eq!((applied.blocks, applied.unblocks), (2, 1));
    }
}
