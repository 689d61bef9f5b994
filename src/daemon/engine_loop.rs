//! The engine thread: the only owner of the policy engine. Packet batches from the capture
//! threads, requests from the control socket and reloads arrive here; decisions leave as
//! events (immediately) and as kernel changes (to the enforcer thread, never waited on).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::DaemonState;
use super::convert::saved_ban;
use super::enforce_loop::EnforceMsg;
use super::fleet::EngineLink;
use super::floods;
use super::state_writer::{self, BanChange, StateMsg};
use super::untracked::UntrackedWarnings;
use super::workers::EndGuard;
use crate::config::Config;
use crate::engine::flood::EndReason;
use crate::engine::{Decision, Engine};
use crate::event::Event;
use crate::sys::clock::wall_now;
use crate::sys::control::protocol::{Request, Response, RuleStatus};
use crate::sys::live::{Items, LiveBatch};
use crate::sys::metrics::{FLEET, MANUAL};
use crate::trust::proc_net::HostPorts;

/// Longest the loop sleeps when nothing arrives (control requests are polled this often).
const IDLE: Duration = Duration::from_millis(5);
/// State is saved at most this often while something changed.
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// How often the engine's counts are published to `status` and the metrics.
const STATS_EVERY: Duration = Duration::from_millis(200);
/// How often the per-rule lines of `status` are published (they walk the bans).
const RULES_EVERY: Duration = Duration::from_secs(1);
/// Packets not fully counted are logged at most this often.
const UNTRACKED_EVERY: Duration = Duration::from_secs(60);

/// What other threads ask of the engine thread.
pub enum EngineMsg {
    /// A control-socket request and where its answer goes.
    Control(Request, SyncSender<Response>),
    /// A reloaded configuration.
    Reload(Box<Config>),
    /// Our own addresses changed.
    SetLocal(Vec<IpNet>),
    /// The verified peers, gathered again (`peers.rs`).
    SetPeers(Arc<crate::trust::peers::PeerSet>),
    /// Bans of other fleet nodes, in the order the link received them.
    Remote(Vec<crate::cluster::BanMessage>),
    /// Save state and end the thread.
    Stop,
}

/// The engine thread's state.
pub struct EngineLoop {
    engine: Engine,
    batches: Receiver<LiveBatch>,
    /// False once every capture has ended (their senders are gone): then the loop waits on a
    /// timer instead of the channel, which would return at once, forever.
    capturing: bool,
    /// Where each interface's emptied vectors go back (index = interface index).
    recycle: Vec<Sender<Items>>,
    msgs: Receiver<EngineMsg>,
    /// `None` in dry-run mode.
    enforcer: Option<Sender<EnforceMsg>>,
    shared: Arc<DaemonState>,
    /// The fleet link, when sharing is on.
    pub(super) fleet: Option<EngineLink>,
    /// Decisions made and not yet dispatched (reused).
    pub(super) out: Vec<Decision>,
    /// The state writer thread (`None` once the final snapshot was sent).
    state: Option<Sender<StateMsg>>,
    /// Something changed since the last full snapshot.
    dirty: bool,
    last_save: Instant,
    last_stats: Instant,
    last_rules: Instant,
    /// Bans started and suppressions, per rule, since start (for `status`).
    rule_counts: HashMap<Arc<str>, (u64, u64)>,
    /// The host's ports, from their own thread (started with the first flood detector).
    host_ports: Option<Receiver<HostPorts>>,
    /// What was last logged about packets not fully counted, and when.
    untracked: UntrackedWarnings,
    untracked_logged: Option<Instant>,
}

impl EngineLoop {
    /// The loop over `engine`: batches from the captures, requests on `msgs`, kernel changes to
    /// `enforcer` (`None` in dry-run mode).
    pub fn new(
        engine: Engine,
        batches: Receiver<LiveBatch>,
        recycle: Vec<Sender<Items>>,
        msgs: Receiver<EngineMsg>,
        enforcer: Option<Sender<EnforceMsg>>,
        shared: Arc<DaemonState>,
        fleet: Option<EngineLink>,
    ) -> EngineLoop {
        EngineLoop {
            fleet,
            engine,
            batches,
            capturing: true,
            recycle,
            msgs,
            enforcer,
            shared,
            out: Vec::new(),
            state: None,
            dirty: false,
            last_save: Instant::now(),
            last_stats: Instant::now(),
            last_rules: Instant::now(),
            rule_counts: HashMap::new(),
            host_ports: None,
            untracked: UntrackedWarnings::default(),
            untracked_logged: None,
        }
    }

    /// Runs until [`EngineMsg::Stop`]; `ended` reports the thread's end, however it ends.
    pub fn run(mut self, ended: EndGuard) {
        let (state_tx, state_rx) = std::sync::mpsc::channel();
        let shared = self.shared.clone();
        let writer = std::thread::Builder::new()
            .name("state".into())
            .spawn(move || state_writer::run(shared, state_rx));
        self.state = Some(state_tx);
        // What startup adopted and restored is on disk at once.
        self.save();
        self.run_loop();
        // The final snapshot was sent by the loop; let the writer finish it.
        self.state = None;
        if let Ok(w) = writer {
            let _ = w.join();
        }
        // Reported before the channels close, so a capture that sees them close is not
        // mistaken for the first thing that ended.
        drop(ended);
    }

    /// Tells the firewall's guard what the engine protects now.
    fn protect(&self) {
        if let Some(tx) = &self.enforcer {
            let _ = tx.send(EnforceMsg::Protect(self.engine.protected()));
        }
    }

    fn run_loop(&mut self) {
        loop {
            self.take_batch();
            // Expiries and housekeeping run on the wall clock even when no packet arrives.
            let now = wall_now();
            let stats_due = self.last_stats.elapsed() >= STATS_EVERY;
            if self.engine.next_deadline().is_some_and(|d| d <= now) || stats_due {
                self.engine.tick(now, &mut self.out);
            }
            self.dispatch();
            self.retry_fleet();
            while let Ok(msg) = self.msgs.try_recv() {
                if let EngineMsg::Stop = msg {
                    // Signatures go with the daemon (the enforcer commits after us).
                    self.engine
                        .end_floods(wall_now(), EndReason::Stopped, &mut self.out);
                    self.dispatch();
                    self.save();
                    return;
                }
                self.handle(msg);
            }
            if stats_due {
                self.last_stats = Instant::now();
                self.publish_stats();
            }
            if self.last_rules.elapsed() >= RULES_EVERY {
                self.last_rules = Instant::now();
                self.publish_rules();
            }
            if self.dirty && self.last_save.elapsed() >= SAVE_EVERY {
                self.save();
                self.dirty = false;
                self.last_save = Instant::now();
            }
        }
    }

    /// Waits up to [`IDLE`] for a batch and counts it.
    fn take_batch(&mut self) {
        if !self.capturing {
            std::thread::sleep(IDLE);
            return;
        }
        match self.batches.recv_timeout(IDLE) {
            Ok(batch) => {
                self.shared
                    .metrics
                    .add_packets(batch.iface_index, batch.items.len() as u64);
                self.engine.observe_batch(&batch.items, &mut self.out);
                if let Some(back) = self.recycle.get(batch.iface_index) {
                    let _ = back.send(batch.items);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.capturing = false,
        }
    }

    /// One message other than `Stop`.
    fn handle(&mut self, msg: EngineMsg) {
        match msg {
            EngineMsg::Control(req, reply) => {
                let mut out = std::mem::take(&mut self.out);
                let resp = self.answer(req, &mut out);
                self.out = out;
                self.dispatch();
                // `ban` then `status` must agree, without waiting for the next tick.
                self.publish_stats();
                let _ = reply.send(resp);
            }
            EngineMsg::Reload(config) => {
                if let Some(link) = &mut self.fleet {
                    link.share = config.cluster.share;
                }
                self.engine.reconfigure(&config, wall_now(), &mut self.out);
                self.dispatch();
                self.protect();
            }
            EngineMsg::SetLocal(local) => {
                self.engine.set_local(local, wall_now(), &mut self.out);
                self.dispatch();
                self.protect();
            }
            EngineMsg::SetPeers(peers) => self.engine.set_peers(peers),
            EngineMsg::Remote(batch) => self.apply_remote(batch),
            EngineMsg::Stop => {}
        }
    }

    /// Copies the engine's counts and attacks to `status` and the metrics; hands the host's
    /// latest ports to the flood detectors.
    fn publish_stats(&mut self) {
        let s = self.engine.stats();
        self.shared
            .metrics
            .set_tracked_sources(s.tracked_sources as u64);
        self.shared
            .metrics
            .set_untracked(s.untracked, s.untracked_distinct);
        if self
            .untracked_logged
            .is_none_or(|t| t.elapsed() >= UNTRACKED_EVERY)
        {
            let lines = self.untracked.lines(s.untracked, s.untracked_distinct);
            for line in &lines {
                tracing::warn!("{line}");
            }
            if !lines.is_empty() {
                self.untracked_logged = Some(Instant::now());
            }
        }
        self.shared.metrics.set_active_bans(s.active_bans as u64);
        self.shared.fleet_waiting.store(
            self.engine.fleet_waiting() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if self.engine.floods().is_empty() {
            return;
        }
        if self.host_ports.is_none() {
            self.host_ports = floods::spawn_host_ports();
        }
        if let Some(ports) = self.host_ports.as_ref().and_then(floods::latest) {
            self.engine.set_host_ports(&ports);
        }
        self.publish_attacks();
    }

    /// The attacks in progress, for `status`.
    fn publish_attacks(&self) {
        if let Ok(mut slot) = self.shared.attacks.lock() {
            *slot = floods::attacks(&self.engine, wall_now());
        }
    }

    /// The per-rule lines of `status`: each rule's leader now, its active bans (one walk of
    /// the bans, about once a second) and its counts since start.
    fn publish_rules(&mut self) {
        self.engine.refresh_leaders(wall_now());
        let active = self.engine.active_by_rule();
        let rules = self
            .engine
            .top(1)
            .into_iter()
            .map(|r| {
                let (bans, suppressed) = self.rule_counts.get(&r.rule).copied().unwrap_or_default();
                let top = r.sources.first();
                RuleStatus {
                    rule: r.rule.to_string(),
                    mode: if r.log_only { "log" } else { "enforce" }.into(),
                    metric: r.metric.as_str().into(),
                    threshold: r.threshold,
                    top_value: top.map_or(0, |t| t.1),
                    top_source: top.map(|t| t.0.net()),
                    active_bans: active
                        .iter()
                        .find(|(name, _)| *name == r.rule)
                        .map_or(0, |(_, n)| *n as u64),
                    bans,
                    suppressed,
                }
            })
            .collect();
        if let Ok(mut slot) = self.shared.rules.lock() {
            *slot = rules;
        }
    }

    /// True in dry-run mode (no enforcer): decisions are logged, never enforced.
    pub(super) fn dry_run(&self) -> bool {
        self.enforcer.is_none()
    }

    pub(super) fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Why manual bans are not being saved, if they are not.
    pub(super) fn state_error(&self) -> Option<String> {
        self.shared.state_error.lock().ok().and_then(|e| e.clone())
    }

    /// Events first (log watchers see the decision at once), then the kernel and the state
    /// file (the ban as the engine now holds it; written by the state thread).
    pub(super) fn dispatch(&mut self) {
        self.dirty |= !self.out.is_empty();
        // An attack that starts or ends shows in `status` at once.
        if self.out.iter().any(floods::changes_attacks) {
            self.publish_attacks();
        }
        let mut changes = Vec::new();
        let mut out = std::mem::take(&mut self.out);
        for d in out.drain(..) {
            let m = &self.shared.metrics;
            match &d {
                Decision::Block(v) => {
                    m.ban(rule_label(&v.rule, v.metric.is_none(), &v.origin));
                    self.rule_counts.entry(v.rule.clone()).or_default().0 += 1;
                }
                Decision::Extend(v) => m.extend(rule_label(&v.rule, v.metric.is_none(), &v.origin)),
                Decision::Unblock { ban, .. } => {
                    m.unban(rule_label(&ban.rule, ban.manual, &ban.origin))
                }
                Decision::Suppressed { reason, verdict } => {
                    m.suppressed(*reason);
                    self.rule_counts.entry(verdict.rule.clone()).or_default().1 += 1;
                }
                Decision::Flood(f) => floods::count(f, m),
            }
            if let Some(e) = Event::decision(&d, self.enforcer.is_none()) {
                self.shared.events.emit(e);
            }
            self.publish(&d);
            let key = match &d {
                Decision::Block(v) | Decision::Extend(v) => Some(v.key),
                Decision::Unblock { ban, .. } => Some(ban.key),
                Decision::Suppressed { .. } => continue,
                // Signatures are not saved: the next start removes any left in the kernel.
                Decision::Flood(_) => None,
            };
            if let Some(key) = key {
                changes.push(match self.engine.bans().get(&key) {
                    Some(b) => BanChange::Set(saved_ban(b)),
                    None => BanChange::Lift(key.net()),
                });
            }
            if let Some(tx) = &self.enforcer {
                let _ = tx.send(EnforceMsg::Decision(d));
            }
        }
        self.out = out;
        if !changes.is_empty()
            && let Some(tx) = &self.state
        {
            let _ = tx.send(StateMsg::Bans(changes));
        }
    }

    /// Takes a full snapshot (offense history and every ban) and hands it to the state writer
    /// (serializing and fsync happen there, not on the packet path).
    fn save(&self) {
        let Some(writer) = &self.state else { return };
        let _ = writer.send(StateMsg::Snapshot {
            offenses: self
                .engine
                .offenses()
                .into_iter()
                .map(|(n, c, t)| (n, c, t.as_micros()))
                .collect(),
            bans: self.engine.bans().iter().map(saved_ban).collect(),
        });
    }
}

/// The metrics' `rule` label: the rule's name, [`MANUAL`] for a manual ban (its reason is free
/// text, which must not become a label value), [`FLEET`] for a ban from the fleet (other nodes'
/// rules are not ours to name).
fn rule_label<'a>(rule: &'a str, manual: bool, origin: &Option<Arc<str>>) -> &'a str {
    if origin.is_some() {
        FLEET
    } else if manual {
        MANUAL
    } else {
        rule
    }
}
