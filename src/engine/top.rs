//! The engine seen per rule (pure), for `autoblock top` and `status`: each rule's leading
//! sources against its threshold, and its active bans. Cheap enough for every request: the
//! leaders are a few entries per rule (see `leaders.rs`), never a walk of the source table.

use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use super::sources::SourceKey;
use crate::config::Metric;
use crate::time::Timestamp;

/// One rule and its leading sources.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleTop {
    /// The rule's name.
    pub rule: Arc<str>,
    /// What it counts.
    pub metric: Metric,
    /// It fires above this.
    pub threshold: u64,
    /// Over this window.
    pub window: Duration,
    /// `mode = "log"`.
    pub log_only: bool,
    /// Sources and their current values, highest first.
    pub sources: Vec<(SourceKey, u64)>,
}

impl Engine {
    /// Reads the leaders' current values back from the windows (sources that went quiet
    /// leave). A few lookups per rule; the daemon calls it a few times a second.
    pub fn refresh_leaders(&mut self, ts: Timestamp) {
        let now_us = ts.as_micros();
        for (ri, rule) in self.rules.iter().enumerate() {
            let g = &self.groups[rule.group];
            if let Some(l) = self.leaders.get_mut(ri) {
                l.refresh(|key| g.table.rule_value(key, rule.slot, now_us));
            }
        }
        self.sync_reports();
    }

    /// Each table reports a rule's values above its leaders' floor (or its threshold, if
    /// lower): the values the leaders and `fire` need, and no others. Without leaders
    /// ([`Engine::without_leaders`]), above its peak so far: what the peaks need.
    pub(super) fn sync_reports(&mut self) {
        for (ri, rule) in self.rules.iter().enumerate() {
            let floor = if self.report_all {
                0
            } else if self.no_leaders {
                self.peaks.floor(ri)
            } else {
                self.leaders.get(ri).map_or(0, |l| l.floor())
            };
            self.groups[rule.group]
                .table
                .layout
                .set_report(rule.slot, floor);
        }
    }

    /// Keeps no leaders from now on (replay: nothing asks for `top`): a packet whose value
    /// is below its rule's peak so far and its threshold is then not reported by the tables
    /// at all. `top` stays empty; decisions and peaks are unchanged.
    pub fn without_leaders(&mut self) {
        self.no_leaders = true;
        for l in &mut self.leaders {
            *l = super::leaders::Leaders::default();
        }
        self.sync_reports();
    }

    /// Every rule with up to `n` of its leading sources, in file order.
    pub fn top(&self, n: usize) -> Vec<RuleTop> {
        self.rules
            .iter()
            .zip(&self.leaders)
            .map(|(r, l)| RuleTop {
                rule: r.name.clone(),
                metric: r.metric,
                threshold: r.threshold,
                window: r.window,
                log_only: r.log_only,
                sources: l.top().into_iter().take(n).collect(),
            })
            .collect()
    }

    /// Active bans per rule that set their end time (manual ones under `manual`), in no order.
    /// Walks the bans: call it about once a second, not per packet.
    pub fn active_by_rule(&self) -> Vec<(Arc<str>, usize)> {
        let mut counts: Vec<(Arc<str>, usize)> = Vec::new();
        for b in self.bans.iter() {
            match counts.iter_mut().find(|(r, _)| *r == b.rule) {
                Some(c) => c.1 += 1,
                None => counts.push((b.rule.clone(), 1)),
            }
        }
        counts
    }
}
