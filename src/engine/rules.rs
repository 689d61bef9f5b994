//! Rules compiled for counting, grouped by aggregation (pure): each group has one source table
//! whose record layout is compiled from the group's rules (see `table/layout.rs`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Metric, Rule};
use crate::engine::sources::Prefixes;
use crate::engine::table::SourceTable;
use crate::engine::table::layout::{Layout, MAX_RULES};

/// A rule ready to fire.
#[derive(Debug)]
pub(super) struct CompiledRule {
    pub(super) name: Arc<str>,
    /// `ban_verified_peers`: its evidence may ban a verified peer.
    pub(super) ban_verified_peers: bool,
    pub(super) metric: Metric,
    pub(super) threshold: u64,
    pub(super) window: Duration,
    pub(super) ban: Duration,
    /// `mode = "log"`: fires and reports, never bans or extends.
    pub(super) log_only: bool,
    /// Sources this rule does not count (the table's layout skips them per packet; kept here
    /// for `explain`).
    pub(super) exempt: Vec<ipnet::IpNet>,
    /// Its group, and its index within the group's table.
    pub(super) group: usize,
    pub(super) slot: usize,
}

impl CompiledRule {
    /// True when `src` is in one of the rule's `exempt` nets.
    pub(super) fn exempts(&self, src: IpAddr) -> bool {
        !self.exempt.is_empty() && self.exempt.iter().any(|n| n.contains(&src))
    }
}

/// Rules that share one aggregation share one source table (a group of more than
/// [`MAX_RULES`] rules is split into several).
#[derive(Debug)]
pub(super) struct Group {
    pub(super) agg_v4: u8,
    pub(super) agg_v6: u8,
    /// `agg_v4`/`agg_v6` with their masks: what makes the group's keys.
    pub(super) prefixes: Prefixes,
    pub(super) table: SourceTable,
    /// Rule indexes, in table slot order.
    pub(super) rules: Vec<usize>,
}

/// Compiles `config`'s rules and groups them by aggregation, each group with a fresh table.
pub(super) fn compile(config: &Config) -> (Vec<CompiledRule>, Vec<Group>) {
    let mut members: Vec<(u8, u8, Vec<usize>)> = Vec::new();
    let mut rules = Vec::new();
    for (ri, r) in config.rules.iter().enumerate() {
        let gi = match members.iter().position(|(v4, v6, m)| {
            *v4 == r.aggregate_v4 && *v6 == r.aggregate_v6 && m.len() < MAX_RULES
        }) {
            Some(g) => g,
            None => {
                members.push((r.aggregate_v4, r.aggregate_v6, Vec::new()));
                members.len() - 1
            }
        };
        members[gi].2.push(ri);
        rules.push(CompiledRule {
            name: Arc::from(r.name.as_str()),
            ban_verified_peers: r.ban_verified_peers,
            metric: r.metric,
            threshold: r.threshold,
            window: r.window,
            ban: r.ban.unwrap_or(config.enforce.ban),
            log_only: r.mode == crate::config::RuleMode::Log,
            exempt: r.exempt.clone(),
            group: gi,
            slot: members[gi].2.len() - 1,
        });
    }
    let groups = members
        .into_iter()
        .map(|(agg_v4, agg_v6, m)| {
            let of_group: Vec<&Rule> = m.iter().map(|&i| &config.rules[i]).collect();
            Group {
                agg_v4,
                agg_v6,
                prefixes: Prefixes::new(agg_v4, agg_v6),
                table: SourceTable::new(
                    Layout::compile(&of_group),
                    config.limits.max_tracked_sources,
                ),
                rules: m,
            }
        })
        .collect();
    (rules, groups)
}

/// A 32-bit fingerprint of an address for distinct counting (a collision only undercounts).
pub(crate) fn fold(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(v) => u32::from(v),
        IpAddr::V6(v) => {
            let x = u128::from(v);
            let h = (x as u64) ^ ((x >> 64) as u64).rotate_left(29);
            (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
        }
    }
}
