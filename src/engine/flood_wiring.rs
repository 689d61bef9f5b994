//! The engine's side of the flood detectors (pure): every packet goes to [`Floods`] as well
//! (our own outbound packets too: they teach which ports we serve and use), their decisions
//! come out as [`Decision::Flood`], and the `sources` action bans through the normal ban path
//! (`fire`: allowlist, our own addresses, `max_active_bans`, `max_new_bans_per_sec`,
//! escalation), as if each detector were a rule.

use std::sync::Arc;

use ipnet::IpNet;

use super::fire::{FireCtx, fire};
use super::flood::{EndReason, FloodDecision, Floods};
use super::flood_stage::Fed;
use super::rules::CompiledRule;
use super::sources::SourceKey;
use super::{Decision, Engine};
use crate::config::{Config, FloodMetric, Metric};
use crate::packet::PacketMeta;
use crate::time::Timestamp;
use crate::trust::proc_net::HostPorts;

/// What the engine keeps for the flood detectors.
pub(super) struct FloodState {
    pub(super) floods: Floods,
    /// Decisions of the current packet or tick, before conversion.
    pub(super) pending: Vec<FloodDecision>,
    /// Decisions of detached detectors (replay's reader thread), waiting for their packet.
    pub(super) fed: Fed,
    /// One rule per detector, for the bans of the `sources` action.
    ban_rules: Vec<CompiledRule>,
}

impl FloodState {
    pub(super) fn new(config: &Config, local: &[IpNet]) -> FloodState {
        let floods = Floods::new(config, local.to_vec());
        let ban_rules = floods.detectors().map(|f| ban_rule(f, config)).collect();
        FloodState {
            floods,
            pending: Vec::new(),
            fed: Fed::default(),
            ban_rules,
        }
    }
}

/// A detector as the rule its `sources` bans are made under.
fn ban_rule(f: &crate::config::Flood, config: &Config) -> CompiledRule {
    CompiledRule {
        name: Arc::from(f.name.as_str()),
        ban_verified_peers: false,
        metric: match f.metric {
            FloodMetric::Packets => Metric::Packets,
            FloodMetric::Bytes => Metric::Bytes,
        },
        threshold: f.threshold,
        window: f.window,
        ban: f.ban.min(config.enforce.max_ban),
        log_only: false,
        exempt: Vec::new(),
        group: usize::MAX,
        slot: usize::MAX,
    }
}

impl Engine {
    /// Counts `p` for the flood detectors; without detectors (replay detaches them), only
    /// hands out a detached stage's decisions when one is due at this packet.
    #[inline(always)]
    pub(super) fn observe_floods(
        &mut self,
        p: &PacketMeta,
        ts: Timestamp,
        now: Timestamp,
        out: &mut Vec<Decision>,
    ) {
        if self.flood.floods.is_empty() && !self.flood.fed.due(self.packets) {
            return;
        }
        self.observe_floods_out_of_line(p, ts, now, out);
    }

    /// [`Engine::observe_floods`]'s work (out of line: the engine's own loop stays as tight
    /// as without detectors).
    #[inline(never)]
    fn observe_floods_out_of_line(
        &mut self,
        p: &PacketMeta,
        ts: Timestamp,
        now: Timestamp,
        out: &mut Vec<Decision>,
    ) {
        let f = &mut self.flood;
        if f.floods.is_empty() {
            if !f.fed.is_empty() {
                f.fed.take_due(self.packets, &mut f.pending);
                if !f.pending.is_empty() {
                    self.flood_decisions(now, out);
                }
            }
            return;
        }
        f.floods.observe(p, ts, now, &mut f.pending);
        if f.floods.due(now) {
            f.floods.tick(now, &mut f.pending);
        }
        if !f.pending.is_empty() {
            self.flood_decisions(now, out);
        }
    }

    /// The earlier of `bans` (the bans' next expiry) and the detectors' next deadline.
    pub(super) fn floods_deadline(&self, bans: Option<Timestamp>) -> Option<Timestamp> {
        match (bans, self.flood.floods.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends quiet attacks at `now`.
    pub(super) fn tick_floods(&mut self, now: Timestamp, out: &mut Vec<Decision>) {
        self.flood.floods.tick(now, &mut self.flood.pending);
        self.flood_decisions(now, out);
    }

    /// Turns the pending flood decisions into engine decisions.
    pub(super) fn flood_decisions(&mut self, now: Timestamp, out: &mut Vec<Decision>) {
        let pending = std::mem::take(&mut self.flood.pending);
        for d in &pending {
            if let FloodDecision::BanSources {
                detector,
                sources,
                observed,
                ..
            } = d
            {
                for src in sources {
                    self.ban_flood_source(*detector, *src, *observed, now, out);
                }
            }
        }
        out.extend(
            pending
                .into_iter()
                .filter(|d| !matches!(d, FloodDecision::BanSources { .. }))
                .map(Decision::Flood),
        );
    }

    fn ban_flood_source(
        &mut self,
        detector: usize,
        src: std::net::IpAddr,
        observed: u64,
        now: Timestamp,
        out: &mut Vec<Decision>,
    ) {
        let Some(rule) = self.flood.ban_rules.get(detector) else {
            return;
        };
        // Rule indexes after the `[[rule]]`s: each detector is remembered apart for `quiet`.
        let ri = self.rules.len() + detector;
        fire(
            rule,
            ri,
            SourceKey::new(src, 32, 128),
            observed,
            now,
            FireCtx {
                settings: &self.settings,
                allow: &self.allow,
                local: &self.local,
                peers: &self.peers,
                bans: &mut self.bans,
                offenses: &mut self.offenses,
                quiet: &mut self.quiet,
                rate: &mut self.rate,
            },
            out,
        );
    }

    /// The flood detectors: attacks in progress, per-address values, counters.
    pub fn floods(&self) -> &Floods {
        &self.flood.floods
    }

    /// The host's ports (listening sockets, remote ports of established TCP connections): a
    /// signature never drops a port we serve unless a dominant source port tells the attack
    /// apart, nor the answers of a service we talk to.
    pub fn set_host_ports(&mut self, ports: &HostPorts) {
        self.flood.floods.set_host_ports(ports);
    }

    /// Ends every flood attack for `reason` and removes its signature (the daemon is
    /// stopping: nobody would remove them otherwise; the capture file ended).
    pub fn end_floods(&mut self, now: Timestamp, reason: EndReason, out: &mut Vec<Decision>) {
        self.flood
            .floods
            .end_all(now, reason, &mut self.flood.pending);
        self.flood_decisions(now, out);
    }

    /// A reload: unchanged detectors keep counting; changed ones end their attacks.
    pub(super) fn reconfigure_floods(
        &mut self,
        config: &Config,
        now: Timestamp,
        out: &mut Vec<Decision>,
    ) {
        let f = &mut self.flood;
        f.floods.reconfigure(config, now, &mut f.pending);
        f.ban_rules = f.floods.detectors().map(|d| ban_rule(d, config)).collect();
        self.flood_decisions(now, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::flood::FloodDecision;
    use crate::packet::{PacketMeta, Proto};
    use std::net::IpAddr;

    fn engine(max_new_bans_per_sec: u32) -> Engine {
        let text = format!(
            "[enforce]\nmax_new_bans_per_sec = {max_new_bans_per_sec}\n[[flood]]\nname = \"dns-reflection\"\nprotocol = \"udp\"\nsrc_ports = [53]\nmetric = \"packets\"\nthreshold = 100\nwindow = \"1s\"\naction = \"sources\"\nban = \"30s\"\n"
        );
        let config =
            crate::config::parse_str(&text, std::path::Path::new("t.toml")).expect("valid");
        Engine::new(&config, vec!["10.10.10.10/32".parse().unwrap()])
    }

    fn answer(from: u32) -> PacketMeta {
        PacketMeta {
            src: IpAddr::V4(from.into()),
            dst: "10.10.10.10".parse().unwrap(),
            proto: Proto::Udp,
            tcp_flags: 0,
            src_port: Some(53),
            dst_port: Some(40_000),
            len: 1400,
            fragment: false,
        }
    }

    /// Three real resolvers carry a DNS reflection: each is banned through the normal ban path
    /// under the detector's name, for its `ban`; the rate limit on new bans holds.
    #[test]
    fn sources_are_banned_like_a_rules_offenders() {
        let reflectors = [0x0808_0808u32, 0x0101_0101, 0x0909_0909];
        for (rate, banned) in [(1000, 3), (2, 2)] {
            let mut e = engine(rate);
            let mut out = Vec::new();
            for i in 0..300u64 {
                let t = Timestamp(1_700_000_000_000_000 + i * 1000);
                e.observe(&answer(reflectors[(i % 3) as usize]), t, &mut out);
            }
            let blocks: Vec<&Decision> = out
                .iter()
                .filter(|d| matches!(d, Decision::Block(_)))
                .collect();
            assert_eq!(blocks.len(), banned, "rate {rate}: {out:#?}");
            for d in &blocks {
                let Decision::Block(v) = d else { continue };
                assert_eq!(&*v.rule, "dns-reflection");
                assert_eq!(v.ban, std::time::Duration::from_secs(30));
            }
            if banned < 3 {
                assert!(out.iter().any(|d| matches!(
                    d,
                    Decision::Suppressed {
                        reason: super::super::SuppressReason::Rate,
                        ..
                    }
                )));
            }
            assert!(out.iter().any(|d| matches!(
                d,
                Decision::Flood(FloodDecision::Attack(a)) if a.action == crate::config::FloodAction::Sources
            )));
            assert!(
                !out.iter()
                    .any(|d| matches!(d, Decision::Flood(FloodDecision::BanSources { .. }))),
                "never leaves the engine"
            );
        }
    }
}
