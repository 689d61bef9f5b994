//! Distributed and reflection floods (pure): `[[flood]]` detectors count all sources together
//! per protected destination (or in total) over a sliding window; when one crosses its
//! threshold the attack is fingerprinted from the window that crossed and mitigated as its
//! `action` says — a signature rule toward the target, bans on the sources that carry it, or
//! events only — and ended once it has not crossed for the detector's `ban`.
//!
//! Entry points: [`Floods::observe`] per packet (O(1): the packet's protocol class picks the
//! few detectors to try, one cache probe or hash lookup per matching detector, nothing
//! allocated but a target's fingerprint counts once, when it gets busy) and [`Floods::tick`]
//! on time. Decisions come out as [`FloodDecision`]s.
//!
//! A fingerprint is exact on the window that crossed, but for the packets a target got before
//! its window reached a 64th of the threshold (at most 1.6% of it): counting starts there, so
//! that destinations that only ever see a few packets stay cheap. While an attack is on, only
//! packets and bytes are counted toward it (a `sources` detector keeps full counts): the cost
//! per packet is lowest when the flood is at its height, and the fingerprint of a next attack
//! counts from the end of this one.
//!
//! Files: `detector.rs` (matching), `table.rs` (bounded per-target state), `cell.rs` +
//! `topk.rs` + `hll.rs` + `pending.rs` (what a window saw, in fixed memory), `fingerprint.rs` (the attack
//! described), `signature.rs` (the kernel rule, or why none), `handshake.rs` (real or spoofed
//! SYN sources), `attack.rs` (an attack's life), `decision.rs` (what comes out).
//!
//! Protected destinations are our own addresses when known (the daemon; replay with
//! `--local`): then only packets toward them count, and our own packets teach which ports we
//! answer from and talk to. Without them (replay) every destination is counted, bounded by
//! [`MAX_TARGETS`].

mod attack;
mod cell;
mod decision;
mod detector;
mod fingerprint;
mod handshake;
mod hll;
mod pending;
mod signature;
mod table;
mod topk;

#[cfg(test)]
mod tests;

pub use decision::{
    ActiveAttack, AttackEnd, AttackStart, DetectorValue, EndReason, FloodDecision, Mitigation,
    Target,
};
pub use fingerprint::FpProto;
#[cfg(test)]
pub use fingerprint::{Fingerprint, Share};
#[cfg(test)]
pub use signature::Refusal;
pub use signature::Signature;

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::{Config, Flood, FloodAction, FloodMetric, FloodScope};
use crate::engine::sources::SourceKey;
use crate::packet::PacketMeta;
use crate::time::Timestamp;
use crate::trust::proc_net::HostPorts;
use attack::Seen;
use cell::addr_key;
use detector::{Detector, Nets, ROUTES, martian, proto_class, route};
use handshake::Handshakes;
use signature::PortFacts;
use table::{BucketClock, Table};

/// Most (detector, target) pairs tracked at once (about 3 KB each).
pub const MAX_TARGETS: usize = 1024;
/// Our own traffic's ports are remembered for one to two of these.
const FACTS_PERIOD: Duration = Duration::from_secs(60);

pub struct Floods {
    detectors: Vec<Detector>,
    /// Detector indexes per packet route (`detector::route`).
    routes: [Vec<u16>; ROUTES],
    table: Table,
    /// Our own addresses; empty: every destination counts. `protected_nets`: the same, for
    /// the per-packet test.
    protected: Vec<IpNet>,
    protected_nets: Nets,
    allow: Nets,
    facts: PortFacts,
    next_aging: Timestamp,
    /// Slots with an attack in progress, and the earliest time one may end.
    active: Vec<usize>,
    deadline: Option<Timestamp>,
    /// Attacks started, per detector.
    started: Vec<u64>,
    /// Whether the sources of SYN floods complete their handshakes.
    handshakes: Handshakes,
    /// Per detector: the sub-bucket of the latest packet (a division saved per packet).
    clocks: Vec<BucketClock>,
    /// Per route (the rest up to [`ROUTE_SLOTS`] zeros): 1 + the one detector that takes it,
    /// when counting its packets is that detector's business alone (no other detector takes
    /// it, no protected addresses, not the route of bare ACKs); else 0.
    single: [u16; ROUTE_SLOTS],
    /// Bit `r`: packets of route `r` have nothing to do (no detector takes the route, no
    /// protected addresses), but for a bare ACK toward a watch ([`Handshakes`]).
    idle_routes: u16,
}

impl Floods {
    /// Detectors for `config`'s `[[flood]]` tables; `protected` are our own addresses (empty:
    /// count toward every destination).
    pub fn new(config: &Config, protected: Vec<IpNet>) -> Floods {
        let detectors = config.floods.iter().map(Detector::new).collect();
        Floods::with(detectors, allow_nets(config), protected)
    }

    /// No detectors (what stays in an engine whose detectors were moved out).
    pub fn none() -> Floods {
        Floods::with(Vec::new(), Nets::allowlist(&[]), Vec::new())
    }

    fn with(detectors: Vec<Detector>, allow: Nets, protected: Vec<IpNet>) -> Floods {
        let mut routes: [Vec<u16>; ROUTES] = Default::default();
        for (i, d) in detectors.iter().enumerate() {
            for (r, list) in routes.iter_mut().enumerate() {
                if d.takes(r) {
                    list.push(i as u16);
                }
            }
        }
        let protected_nets = Nets::new(&protected);
        let idle_routes = idle_routes(&routes, &protected_nets);
        let single = single_routes(&routes, &protected_nets);
        Floods {
            idle_routes,
            single,
            started: vec![0; detectors.len()],
            clocks: vec![BucketClock::default(); detectors.len()],
            detectors,
            routes,
            table: Table::new(MAX_TARGETS),
            protected_nets,
            protected: protected.iter().map(IpNet::trunc).collect(),
            allow,
            facts: PortFacts::default(),
            next_aging: Timestamp(0),
            active: Vec::new(),
            deadline: None,
            handshakes: Handshakes::default(),
        }
    }

    /// True without detectors: nothing to do per packet.
    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty()
    }

    /// Counts one packet: its window values at `ts` (the packet's time), its attacks on `now`
    /// (the engine's clock). Appends decisions to `out`. Inlined, it only finds the packet's
    /// route: a route one detector takes alone goes straight to [`Floods::count`], one with
    /// nothing to do (no detector, no protected addresses, no watch for a bare ACK) nowhere.
    #[inline]
    pub fn observe(
        &mut self,
        p: &PacketMeta,
        ts: Timestamp,
        now: Timestamp,
        out: &mut Vec<FloodDecision>,
    ) {
        let r = route(p);
        let one = self.single[r % ROUTE_SLOTS];
        if one != 0 {
            self.count(usize::from(one - 1), p, ts.as_micros(), now, out);
        } else if self.idle_routes >> r & 1 == 0 || (r == ACK_CLASS && !self.handshakes.is_empty())
        {
            self.observe_routed(p, r, ts, now, out);
        }
    }

    /// [`Floods::observe`] for a packet of route `r` with more to do than one detector.
    #[inline(never)]
    fn observe_routed(
        &mut self,
        p: &PacketMeta,
        r: usize,
        ts: Timestamp,
        now: Timestamp,
        out: &mut Vec<FloodDecision>,
    ) {
        if !self.protected_nets.is_empty() {
            if self.protected_nets.contains(p.src) {
                let proto = fingerprint::FpProto::of_class(proto_class(p.proto));
                self.facts.outbound(proto, p.src_port, p.dst_port);
                return;
            }
            if !self.protected_nets.contains(p.dst) {
                return;
            }
        }
        if r == ACK_CLASS && !self.handshakes.is_empty() {
            self.handshakes.ack(p.dst, p.src);
        }
        let ts_us = ts.as_micros();
        for k in 0..self.routes[r].len() {
            let di = usize::from(self.routes[r][k]);
            self.count(di, p, ts_us, now, out);
        }
    }

    /// Counts `p` for detector `di` if it passes the detector's port filters. Out of line and
    /// not in a loop: the compiler keeps nothing across detectors, and the common case (an
    /// attack's packet, counted for its peak rates) runs first and returns.
    #[inline(never)]
    fn count(
        &mut self,
        di: usize,
        p: &PacketMeta,
        ts_us: u64,
        now: Timestamp,
        out: &mut Vec<FloodDecision>,
    ) {
        let (Some(det), Some(clock)) = (self.detectors.get(di), self.clocks.get_mut(di)) else {
            return;
        };
        if !det.ports_match(p) {
            return;
        }
        let b = clock.bucket(ts_us, det.span);
        let Some(slot) = target_slot(&mut self.table, det, di, p.dst, ts_us) else {
            return;
        };
        let (entries, spare) = self.table.parts();
        let Some(e) = entries.get_mut(slot) else {
            return;
        };
        e.last_us = e.last_us.max(ts_us);
        let amount = match det.metric {
            FloodMetric::Packets => 1,
            FloodMetric::Bytes => u64::from(p.len),
        };
        let value = e.window.add(b, amount);
        // An attack whose detector needs only the peak rates (most packets of a flood): the
        // rest of this function, in short.
        if let (Some(cells), Some(a)) = (e.cells.as_deref_mut(), e.attack.as_deref_mut())
            && a.action != FloodAction::Sources
        {
            cells.add_light(b, p.len);
            a.packets += 1;
            a.bytes += u64::from(p.len);
            if value > det.threshold {
                attack::over(e, det, di, &Seen { value, ts_us, now }, out);
            }
            return;
        }
        if e.cells.is_none() && value >= det.attach_at {
            table::attach(e, spare);
        }
        // During an attack only a `sources` detector needs more than the peak rates.
        let full = e
            .attack
            .as_ref()
            .is_none_or(|a| a.action == FloodAction::Sources);
        match e.cells.as_deref_mut() {
            Some(cells) if full => add_full(cells, b, p, &self.allow),
            Some(cells) => cells.add_light(b, p.len),
            None => {}
        }
        if let Some(a) = e.attack.as_deref_mut() {
            a.packets += 1;
            a.bytes += u64::from(p.len);
        } else if det.syn_only && !e.sampled && value.saturating_mul(2) > det.threshold {
            // The sample tells at an attack's start whether its sources are real; during the
            // attack more of its SYNs change nothing (and a few sources never fill it: each
            // SYN paid a scan of it).
            e.sampled = sample_syn(&mut self.handshakes, slot, p);
        }
        if value <= det.threshold {
            return;
        }
        let seen = Seen { value, ts_us, now };
        if e.attack.is_some() {
            attack::over(e, det, di, &seen, out);
            return;
        }
        let real = self.handshakes.completed(slot) == Some(true);
        attack::start(e, det, di, &seen, &self.facts, real, out);
        self.started[di] += 1;
        self.active.push(slot);
        let end = now.saturating_add(det.ban);
        self.deadline = Some(self.deadline.map_or(end, |d| d.min(end)));
    }

    /// True when [`Floods::tick`] has something to do at `now`.
    #[inline]
    pub fn due(&self, now: Timestamp) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }

    /// The earliest time an attack may end.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadline
    }

    /// Ends the attacks that have not crossed for their `ban`; ages what our traffic taught.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<FloodDecision>) {
        if now >= self.next_aging || self.next_aging > now.saturating_add(FACTS_PERIOD * 2) {
            if self.next_aging != Timestamp(0) {
                self.facts.age();
            }
            self.next_aging = now.saturating_add(FACTS_PERIOD);
        }
        if !self.due(now) {
            return;
        }
        let mut deadline: Option<Timestamp> = None;
        let detectors = &self.detectors;
        let entries = &mut self.table.entries;
        self.active.retain(|&slot| {
            let e = &mut entries[slot];
            let det = &detectors[usize::from(e.detector)];
            attack::end_if_due(e, det, now, out);
            match &e.attack {
                Some(a) => {
                    let end = a.ends_at(det.ban);
                    deadline = Some(deadline.map_or(end, |d| d.min(end)));
                    true
                }
                None => false,
            }
        });
        self.deadline = deadline;
        let now_us = now.as_micros();
        self.handshakes.retain(|slot| {
            entries.get(slot).is_some_and(|e| {
                e.attack.is_some() || e.last_us.saturating_add(e.idle_after_us) >= now_us
            })
        });
    }

    /// Our own addresses changed.
    pub fn set_protected(&mut self, nets: &[IpNet]) {
        self.protected = nets.iter().map(IpNet::trunc).collect();
        self.protected_nets = Nets::new(&self.protected);
        self.idle_routes = idle_routes(&self.routes, &self.protected_nets);
        self.single = single_routes(&self.routes, &self.protected_nets);
    }

    /// The host's socket tables as read now: listening TCP and UDP ports, remote ports of
    /// established TCP connections.
    pub fn set_host_ports(&mut self, ports: &HostPorts) {
        let lists = [
            &ports.tcp_listening,
            &ports.udp_listening,
            &ports.tcp_remote,
        ];
        let [tcp, udp] = &mut self.facts.listening;
        for (bits, list) in [tcp, udp, &mut self.facts.established]
            .into_iter()
            .zip(lists)
        {
            bits.clear();
            for &p in list {
                bits.set(p);
            }
        }
    }

    /// A new configuration: an unchanged set of detectors keeps its counters and attacks;
    /// otherwise every attack ends now (its rule removed) and counting starts over.
    pub fn reconfigure(&mut self, config: &Config, now: Timestamp, out: &mut Vec<FloodDecision>) {
        self.allow = allow_nets(config);
        let old: Vec<&Flood> = self.detectors.iter().map(|d| &d.config).collect();
        if old.len() == config.floods.len() && old.iter().zip(&config.floods).all(|(a, b)| *a == b)
        {
            return;
        }
        self.end_all(now, EndReason::Reload, out);
        let fresh = Floods::new(config, self.protected.clone());
        let facts = std::mem::take(&mut self.facts);
        *self = Floods { facts, ..fresh };
    }

    /// Ends every attack now for `reason`, removing its rule (the daemon stops watching, the
    /// capture file ended, a reload changed the detectors).
    pub fn end_all(&mut self, now: Timestamp, reason: EndReason, out: &mut Vec<FloodDecision>) {
        for slot in std::mem::take(&mut self.active) {
            let e = &mut self.table.entries[slot];
            attack::end(
                e,
                &self.detectors[usize::from(e.detector)],
                now,
                reason,
                out,
            );
        }
        self.deadline = None;
    }

    /// Attacks in progress, as of `now`.
    pub fn attacks(&self, now: Timestamp) -> Vec<ActiveAttack> {
        let mut out: Vec<ActiveAttack> = self
            .active
            .iter()
            .filter_map(|&slot| {
                let e = &self.table.entries[slot];
                let det = &self.detectors[usize::from(e.detector)];
                let a = e.attack.as_deref()?;
                Some(ActiveAttack {
                    rule: det.name.clone(),
                    target: attack::target(e, det),
                    threshold: det.threshold,
                    window: det.window,
                    value: value_at(e, det, now),
                    ends_at: a.ends_at(det.ban),
                    attack: a.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            a.attack
                .start
                .cmp(&b.attack.start)
                .then(a.rule.cmp(&b.rule))
        });
        out
    }

    /// Every destination detector's current value toward `addr` (and every total detector's).
    pub fn explain(&self, addr: IpAddr, now: Timestamp) -> Vec<DetectorValue> {
        self.detectors
            .iter()
            .enumerate()
            .map(|(i, det)| {
                let key = match det.scope {
                    FloodScope::Destination => SourceKey::new(addr, 32, 128),
                    FloodScope::Total => total_key(),
                };
                let value = self
                    .table
                    .find(i as u16, key)
                    .map_or(0, |s| value_at(&self.table.entries[s], det, now));
                DetectorValue {
                    rule: det.name.clone(),
                    metric: det.metric,
                    value,
                    threshold: det.threshold,
                    window: det.window,
                }
            })
            .collect()
    }

    /// Attacks started so far, per detector name.
    #[cfg(test)]
    pub fn started(&self) -> impl Iterator<Item = (&std::sync::Arc<str>, u64)> {
        self.detectors
            .iter()
            .map(|d| &d.name)
            .zip(self.started.iter().copied())
    }

    /// Detector names, with their action (sources detectors ban through the engine).
    pub fn detectors(&self) -> impl Iterator<Item = &Flood> {
        self.detectors.iter().map(|d| &d.config)
    }

    /// Packets toward targets that could not be tracked (table full).
    pub fn untracked(&self) -> u64 {
        self.table.untracked
    }

    /// Targets tracked now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        if self.detectors.is_empty() {
            return 0;
        }
        self.table.memory_bytes() + self.facts.bytes()
    }
}

fn value_at(e: &table::Entry, det: &Detector, now: Timestamp) -> u64 {
    e.window.total_at(now.as_micros(), det.span)
}

/// [`Floods::idle_routes`] of detector lists `routes` with protected addresses `protected`
/// (packets toward them, and from them, always have something to do).
fn idle_routes(routes: &[Vec<u16>; ROUTES], protected: &Nets) -> u16 {
    const { assert!(ROUTES <= 16) };
    if !protected.is_empty() {
        return 0;
    }
    (0..ROUTES)
        .filter(|&r| routes[r].is_empty())
        .fold(0, |bits, r| bits | 1 << r)
}

/// [`Floods::single`] of detector lists `routes` with protected addresses `protected`.
fn single_routes(routes: &[Vec<u16>; ROUTES], protected: &Nets) -> [u16; ROUTE_SLOTS] {
    let mut single = [0; ROUTE_SLOTS];
    if protected.is_empty() {
        for (r, list) in routes.iter().enumerate() {
            if let [di] = list[..]
                && r != ACK_CLASS
                && di < u16::MAX
            {
                single[r] = di + 1;
            }
        }
    }
    single
}

/// Entries of [`Floods::single`]: [`ROUTES`] rounded up to a power of two, so that a route
/// indexes it without a bounds check.
const ROUTE_SLOTS: usize = ROUTES.next_power_of_two();

fn allow_nets(config: &Config) -> Nets {
    let nets: Vec<IpNet> = config.allow.nets.iter().map(IpNet::trunc).collect();
    Nets::allowlist(&nets)
}

/// The route of a bare ACK (its flag class, `detector::FLAG_WORDS`).
const ACK_CLASS: usize = 2;

/// Counts `p` into the fingerprint cells of its target. Out of line, with everything it
/// derives from the packet (its class, the source's key, whether it is allowlisted): inlined
/// into the per-packet path, the compiler computed those for every packet before the detector
/// loop (about 180 instructions, most packets never need them: measured with cachegrind).
#[inline(never)]
fn add_full(cells: &mut cell::Cells, b: u64, p: &PacketMeta, allow: &Nets) {
    let allowed = !allow.is_empty() && allow.contains(p.src) && !martian(p.src);
    cells.add(b, p, proto_class(p.proto), addr_key(p.src), allowed);
}

/// Offers the source of SYN `p` to the handshake sample of `slot` (out of line, as
/// [`add_full`]).
#[cold]
#[inline(never)]
fn sample_syn(handshakes: &mut Handshakes, slot: usize, p: &PacketMeta) -> bool {
    handshakes.syn(slot, p.dst, addr_key(p.src))
}

/// The slot of detector `di` (`det`) toward `dst` (or in total), created if needed; `None`
/// when the table is full.
#[inline(always)]
fn target_slot(
    table: &mut Table,
    det: &Detector,
    di: usize,
    dst: IpAddr,
    ts_us: u64,
) -> Option<usize> {
    match det.scope {
        FloodScope::Destination => table.slot_of_addr(di as u16, dst, ts_us, det.span.window_us),
        FloodScope::Total => table.slot(di as u16, total_key(), ts_us, det.span.window_us),
    }
}

/// The one key of a `total` detector.
fn total_key() -> SourceKey {
    SourceKey::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0, 0)
}
