//! The engine thread's answers to control requests (`list`, `explain`, `ban`, `unban`, `top`):
//! the engine owns the bans and counters, so these are answered here, between batches; the
//! decisions they make are dispatched like any other.

use ipnet::IpNet;

use super::convert::{ban_info, explanation, requested_duration};
use super::engine_loop::EngineLoop;
use crate::engine::{Decision, Engine, ManualBan, Unbanned};
use crate::sys::clock::wall_now;
use crate::sys::control::protocol::{
    BanInfo, Covered, Refusal, Request, Response, RuleTopInfo, SourceValue, TopInfo,
};
use crate::time::Timestamp;

/// What an unban request asks for, besides its targets.
pub struct UnbanScope {
    pub covering: bool,
    pub all: bool,
    pub rule: Option<String>,
}

impl EngineLoop {
    /// The answer to `req`; decisions it makes go to `out`.
    pub(super) fn answer(&mut self, req: Request, out: &mut Vec<Decision>) -> Response {
        let now = wall_now();
        let dry_run = self.dry_run();
        let engine = self.engine_mut();
        match req {
            Request::List => Response::List(list(engine, now, dry_run)),
            Request::Explain { addr } => {
                let mut x = explanation(&engine.explain(addr, now), now, dry_run);
                (x.floods, x.attacks) = super::floods::explain(engine, addr, now);
                Response::Explain(x)
            }
            Request::Ban {
                targets,
                duration_secs,
                reason,
                force,
                replace,
            } => {
                let ask = BanAsk {
                    duration_secs,
                    reason: reason.unwrap_or_default(),
                    force,
                    replace,
                };
                let mut resp = ban(engine, &targets, &ask, now, dry_run, out);
                if let Response::Banned { state_error, .. } = &mut resp {
                    *state_error = self.state_error();
                }
                resp
            }
            Request::Unban {
                targets,
                covering,
                all,
                rule,
            } => {
                let scope = UnbanScope {
                    covering,
                    all,
                    rule,
                };
                unban(engine, targets, &scope, now, dry_run, out)
            }
            Request::Top { per_rule } => Response::Top(top(engine, per_rule, now, dry_run)),
            // Answered by the handler and the async edge; never routed here.
            Request::Status | Request::Reload => Response::Error {
                message: "this request is answered by the daemon, not the engine".into(),
            },
        }
    }
}

fn list(engine: &Engine, now: Timestamp, dry_run: bool) -> Vec<BanInfo> {
    let mut bans: Vec<_> = engine
        .bans()
        .iter()
        .map(|b| ban_info(b, now, dry_run))
        .collect();
    bans.sort_by(|a, b| a.until.cmp(&b.until).then(a.target.cmp(&b.target)));
    bans
}

struct BanAsk {
    duration_secs: Option<u64>,
    reason: String,
    force: bool,
    replace: bool,
}

fn ban(
    engine: &mut Engine,
    targets: &[IpNet],
    ask: &BanAsk,
    now: Timestamp,
    dry_run: bool,
    out: &mut Vec<Decision>,
) -> Response {
    let (mut applied, mut refused, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    let d = requested_duration(ask.duration_secs);
    for &target in targets {
        match engine.ban_manual(target, d, &ask.reason, ask.force, ask.replace, now) {
            Ok(ManualBan::Banned(decision)) => {
                let key = crate::engine::sources::SourceKey::from_net(target);
                if let Some(b) = engine.bans().get(&key) {
                    applied.push(ban_info(b, now, dry_run));
                }
                out.push(decision);
            }
            Ok(ManualBan::Kept(b)) => kept.push(ban_info(&b, now, dry_run)),
            Err(r) => refused.push(Refusal {
                target,
                reason: r.to_string(),
            }),
        }
    }
    Response::Banned {
        applied,
        refused,
        kept,
        state_error: None,
    }
}

fn unban(
    engine: &mut Engine,
    targets: Vec<IpNet>,
    scope: &UnbanScope,
    now: Timestamp,
    dry_run: bool,
    out: &mut Vec<Decision>,
) -> Response {
    let mut removed: Vec<IpNet> = Vec::new();
    let (mut not_found, mut covered) = (Vec::new(), Vec::new());
    if scope.all || scope.rule.is_some() {
        let before = out.len();
        engine.unban_where(scope.rule.as_deref(), now, out);
        removed.extend(out[before..].iter().filter_map(|d| match d {
            Decision::Unblock { ban, .. } => Some(ban.key.net()),
            _ => None,
        }));
    }
    for target in targets {
        match engine.unban(target, scope.covering, now) {
            Unbanned::Removed(d) => {
                if let Decision::Unblock { ban, .. } = &d {
                    removed.push(ban.key.net());
                }
                out.push(d);
            }
            Unbanned::Covered(by) => covered.push(Covered {
                target: target.trunc(),
                by: ban_info(&by, now, dry_run),
            }),
            Unbanned::NotFound => not_found.push(target),
        }
    }
    Response::Unbanned {
        removed,
        not_found,
        covered,
    }
}

/// Each rule's leaders and the `n` newest bans (one walk of the bans, no walk of sources).
fn top(engine: &mut Engine, n: usize, now: Timestamp, dry_run: bool) -> TopInfo {
    engine.refresh_leaders(now);
    let rules = engine
        .top(n)
        .into_iter()
        .map(|r| RuleTopInfo {
            rule: r.rule.to_string(),
            mode: if r.log_only { "log" } else { "enforce" }.into(),
            metric: r.metric.as_str().into(),
            threshold: r.threshold,
            window_secs: r.window.as_secs_f64(),
            sources: r
                .sources
                .into_iter()
                .map(|(k, value)| SourceValue {
                    source: k.net(),
                    value,
                })
                .collect(),
        })
        .collect();
    let mut newest: Vec<&crate::engine::bans::ActiveBan> = engine.bans().iter().collect();
    let cut = n.min(newest.len());
    if cut > 0 {
        newest.select_nth_unstable_by(cut - 1, |a, b| {
            b.since.cmp(&a.since).then(a.key.cmp(&b.key))
        });
    }
    newest.truncate(cut);
    newest.sort_by(|a, b| b.since.cmp(&a.since).then(a.key.cmp(&b.key)));
    TopInfo {
        rules,
        bans: newest.iter().map(|b| ban_info(b, now, dry_run)).collect(),
        active_bans: engine.bans().len() as u64,
    }
}
