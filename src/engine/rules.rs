//! Rules compiled for matching, grouped by aggregation (pure).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Metric, Protocol, TcpFlagsFilter};
use crate::engine::sources::{SourceTable, WindowKind};
use crate::engine::window::Span;
use crate::packet::{PacketMeta, Proto, tcp_flag};

/// A rule ready to match packets.
#[derive(Debug)]
pub(super) struct CompiledRule {
    pub(super) name: Arc<str>,
    pub(super) protocol: Protocol,
    pub(super) syn_only: bool,
    /// Sorted destination ports; `None` matches all.
    pub(super) ports: Option<Vec<u16>>,
    /// Skip replies: service port (< 1024) -> ephemeral port (>= 1024).
    pub(super) skip_replies: bool,
    pub(super) metric: Metric,
    pub(super) threshold: u64,
    pub(super) window: Duration,
    pub(super) ban: Duration,
    /// `mode = "log"`: fires and reports, never bans or extends.
    pub(super) log_only: bool,
    /// Sources this rule does not count.
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

    pub(super) fn matches(&self, p: &PacketMeta) -> bool {
        let proto_ok = match self.protocol {
            Protocol::Any => true,
            Protocol::Tcp => p.proto == Proto::Tcp,
            Protocol::Udp => p.proto == Proto::Udp,
            Protocol::Icmp => matches!(p.proto, Proto::Icmp | Proto::Icmpv6),
        };
        if !proto_ok {
            return false;
        }
        if self.syn_only && (p.tcp_flags & tcp_flag::SYN == 0 || p.tcp_flags & tcp_flag::ACK != 0) {
            return false;
        }
        if self.skip_replies
            && let (Some(sp), Some(dp)) = (p.src_port, p.dst_port)
            && sp < 1024
            && dp >= 1024
        {
            return false;
        }
        match (&self.ports, p.dst_port) {
            (None, _) => true,
            (Some(ports), Some(port)) => ports.binary_search(&port).is_ok(),
            (Some(_), None) => false,
        }
    }
}

/// Rules that share one aggregation share one source table.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) agg_v4: u8,
    pub(super) agg_v6: u8,
    pub(super) table: SourceTable,
    /// Rule indexes, in table slot order.
    pub(super) rules: Vec<usize>,
    /// The table's layout: a reload keeps the table when this is unchanged.
    pub(super) kinds: Vec<(WindowKind, Span)>,
}

/// Compiles `config`'s rules and groups them by aggregation, each group with a fresh table.
pub(super) fn compile(config: &Config) -> (Vec<CompiledRule>, Vec<Group>) {
    let mut groups: Vec<Group> = Vec::new();
    let mut rules = Vec::new();
    for r in &config.rules {
        let gi = match groups
            .iter()
            .position(|g| g.agg_v4 == r.aggregate_v4 && g.agg_v6 == r.aggregate_v6)
        {
            Some(g) => g,
            None => {
                groups.push(Group {
                    agg_v4: r.aggregate_v4,
                    agg_v6: r.aggregate_v6,
                    table: SourceTable::new(&[], 1),
                    rules: Vec::new(),
                    kinds: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let kind = match r.metric {
            Metric::Packets => WindowKind::Packets,
            Metric::Bytes => WindowKind::Bytes,
            Metric::DstPorts | Metric::DstAddrs => {
                let cap = super::peaks::distinct_cap(r.threshold);
                WindowKind::Distinct {
                    cap: usize::try_from(cap).unwrap_or(usize::MAX),
                }
            }
        };
        let group = &mut groups[gi];
        group.kinds.push((kind, Span::new(r.window)));
        group.rules.push(rules.len());
        let mut ports = r.dst_ports.clone();
        if let Some(p) = &mut ports {
            p.sort_unstable();
            p.dedup();
        }
        rules.push(CompiledRule {
            name: Arc::from(r.name.as_str()),
            protocol: r.protocol,
            syn_only: r.tcp_flags == Some(TcpFlagsFilter::Syn),
            ports,
            skip_replies: r.skip_replies,
            metric: r.metric,
            threshold: r.threshold,
            window: r.window,
            ban: r.ban.unwrap_or(config.enforce.ban),
            log_only: r.mode == crate::config::RuleMode::Log,
            exempt: r.exempt.clone(),
            group: gi,
            slot: group.rules.len() - 1,
        });
    }
    for g in &mut groups {
        g.table = SourceTable::new(&g.kinds, config.limits.max_tracked_sources);
    }
    (rules, groups)
}

/// A 32-bit fingerprint of an address for distinct counting (a collision only undercounts).
pub(super) fn fold(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(v) => u32::from(v),
        IpAddr::V6(v) => {
            let x = u128::from(v);
            let h = (x as u64) ^ ((x >> 64) as u64).rotate_left(29);
            (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
        }
    }
}
