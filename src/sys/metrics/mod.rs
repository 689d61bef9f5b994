//! Prometheus metrics: counters shared by every thread, kept and encoded by `prometheus-client`
//! (text format 0.0.4, which escapes label values); [`http`] serves them.
//!
//! Invariants: names, labels and help texts are a contract with operators' dashboards (the
//! exposition is pinned by a test). Label values come from a fixed set — interfaces, rule names
//! from the configuration, suppression reasons — never from free text: every manual ban is
//! counted under the rule label [`MANUAL`], whatever reason the operator gave. Per-interface
//! counters are looked up once at start; counting a batch is one atomic add.

mod fleet;
pub mod http;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::SuppressReason;

/// The `rule` label of manual bans (their reasons are free text).
pub const MANUAL: &str = "manual";
/// The `rule` label of bans from other fleet nodes (their rules are not ours).
pub const FLEET: &str = "fleet";
/// Upper bounds of the reaction-time buckets, in seconds.
const REACTION_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Every suppression reason, in the order they are first shown.
const REASONS: [SuppressReason; 4] = [
    SuppressReason::Allowlist,
    SuppressReason::Local,
    SuppressReason::Cap,
    SuppressReason::Rate,
];

/// A label set: `(name, value)` pairs in order.
type Labels = Vec<(&'static str, String)>;
type CounterFamily = Family<Labels, Counter>;
type U64Gauge = Gauge<u64, AtomicU64>;

/// One capture interface's counters, looked up once.
#[derive(Debug)]
struct InterfaceCounters {
    packets: Counter,
    /// libpcap `ps_drop`: dropped by the kernel because the buffer was full.
    kernel_drops: Counter,
    /// libpcap `ps_ifdrop`: dropped by the interface or its driver.
    interface_drops: Counter,
    /// Captured but thrown away because the engine's queue was full.
    queue_drops: Counter,
}

/// Raises `c` to the cumulative `total` (never lowers it): counters published from totals
/// kept elsewhere.
fn raise(c: &Counter, total: u64) {
    c.inc_by(total.saturating_sub(c.get()));
}

/// The `reason` labels of `untracked_packets`.
const UNTRACKED_REASONS: [&str; 2] = ["table_full", "distinct_sets_full"];

/// All of the daemon's metrics. Share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Indexed by the interface index given at start (the capture threads' order).
    interfaces: Vec<InterfaceCounters>,
    tracked_sources: U64Gauge,
    /// Packets not fully tracked, per reason (`table_full`, `distinct_sets_full`).
    untracked: CounterFamily,
    active_bans: U64Gauge,
    bans: CounterFamily,
    unbans: CounterFamily,
    extends: CounterFamily,
    /// Every ban, all rules together (for `status`; not exported, it is the sum of `bans`).
    bans_total: Counter,
    suppressed: CounterFamily,
    enforcer_errors: Counter,
    repairs: Counter,
    reaction: Histogram,
    events_dropped: CounterFamily,
    /// The fleet link's, when sharing is on ([`Metrics::with_fleet`]).
    fleet: Option<fleet::FleetMetrics>,
    /// Per `[[flood]]` detector: attacks started.
    flood_attacks: CounterFamily,
    /// Per `[[flood]]` detector: packets and bytes its signature rules dropped in the kernel
    /// (read from the kernel's rule counters).
    signature_packets: CounterFamily,
    signature_bytes: CounterFamily,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

impl Metrics {
    /// Counters for these interfaces (index = position) and these rules, all at zero.
    pub fn new<I, R>(interfaces: I, rules: R) -> Metrics
    where
        I: IntoIterator,
        I::Item: Into<String>,
        R: IntoIterator,
        R::Item: Into<String>,
    {
        let mut m = Metrics::empty();
        let packets = CounterFamily::default();
        let drops = CounterFamily::default();
        for name in interfaces {
            let name: String = name.into();
            // One lookup per statement: a family's read guard must be gone before the next
            // lookup may need its write lock.
            let drop_labels = |w| labels(&[("interface", &name), ("where", w)]);
            let packets = packets
                .get_or_create(&labels(&[("interface", &name)]))
                .clone();
            let kernel_drops = drops.get_or_create(&drop_labels("kernel")).clone();
            let interface_drops = drops.get_or_create(&drop_labels("interface")).clone();
            let queue_drops = drops.get_or_create(&drop_labels("queue")).clone();
            m.interfaces.push(InterfaceCounters {
                packets,
                kernel_drops,
                interface_drops,
                queue_drops,
            });
        }
        for r in REASONS {
            let _ = m
                .suppressed
                .get_or_create(&labels(&[("reason", r.as_str())]));
        }
        m.register(packets, drops);
        m.add_rules(rules.into_iter().map(Into::<String>::into));
        m
    }

    fn empty() -> Metrics {
        Metrics {
            registry: Registry::with_prefix("autoblock"),
            interfaces: Vec::new(),
            tracked_sources: U64Gauge::default(),
            untracked: CounterFamily::default(),
            active_bans: U64Gauge::default(),
            bans: CounterFamily::default(),
            unbans: CounterFamily::default(),
            extends: CounterFamily::default(),
            bans_total: Counter::default(),
            suppressed: CounterFamily::default(),
            enforcer_errors: Counter::default(),
            repairs: Counter::default(),
            reaction: Histogram::new(REACTION_BUCKETS),
            events_dropped: CounterFamily::default(),
            fleet: None,
            flood_attacks: CounterFamily::default(),
            signature_packets: CounterFamily::default(),
            signature_bytes: CounterFamily::default(),
        }
    }

    /// Adds the fleet link's families (`autoblock_fleet_*`), all at zero, after the others.
    pub fn with_fleet(mut self) -> Metrics {
        let fleet = fleet::FleetMetrics::default();
        fleet.register(&mut self.registry);
        self.fleet = Some(fleet);
        self
    }

    /// The fleet link's state now (ignored without [`Metrics::with_fleet`]).
    pub fn set_fleet(&self, status: &crate::cluster::ClusterStatus) {
        if let Some(f) = &self.fleet {
            f.set(status);
        }
    }

    /// Names, help texts and order of the exposition (the encoder appends the final period).
    fn register(&mut self, packets: CounterFamily, drops: CounterFamily) {
        let r = &mut self.registry;
        r.register("packets", "Packets captured, per interface", packets);
        r.register(
            "capture_drops",
            "Packets dropped, per interface: by the kernel or the interface (libpcap), or by us when the engine's queue was full (queue)",
            drops,
        );
        let sources = self.tracked_sources.clone();
        r.register("tracked_sources", "Sources in the counter table", sources);
        for reason in UNTRACKED_REASONS {
            let _ = self.untracked.get_or_create(&labels(&[("reason", reason)]));
        }
        r.register(
            "untracked_packets",
            "Packets not fully counted, per reason: the source table was full (table_full), or a dst_ports/dst_addrs window could not store a value because the pool of distinct-value sets was spent (distinct_sets_full)",
            self.untracked.clone(),
        );
        let bans = self.active_bans.clone();
        r.register("active_bans", "Bans currently in force", bans);
        r.register("bans", "Bans put in force, per rule", self.bans.clone());
        r.register("unbans", "Bans lifted, per rule", self.unbans.clone());
        let extends = self.extends.clone();
        r.register("extends", "Active bans extended, per rule", extends);
        let suppressed = self.suppressed.clone();
        r.register(
            "suppressed",
            "Verdicts not enforced, per reason",
            suppressed,
        );
        let errors = self.enforcer_errors.clone();
        r.register("enforcer_errors", "Firewall commands that failed", errors);
        let repairs = self.repairs.clone();
        r.register("repairs", "Times the kernel state was repaired", repairs);
        r.register(
            "reaction_seconds",
            "Seconds from the packet that crossed a threshold to the ban in the kernel",
            self.reaction.clone(),
        );
        for output in ["stdout", "file"] {
            let _ = self
                .events_dropped
                .get_or_create(&labels(&[("output", output)]));
        }
        r.register(
            "events_dropped",
            "Event lines an output left out because it fell behind or failed, per output",
            self.events_dropped.clone(),
        );
        r.register(
            "flood_attacks",
            "Flood attacks detected, per flood detector",
            self.flood_attacks.clone(),
        );
        r.register(
            "signature_dropped_packets",
            "Packets the kernel dropped by a flood detector's signature rules",
            self.signature_packets.clone(),
        );
        r.register(
            "signature_dropped_bytes",
            "Bytes the kernel dropped by a flood detector's signature rules",
            self.signature_bytes.clone(),
        );
    }

    /// `n` packets seen on interface `iface`; an unknown index is ignored.
    pub fn add_packets(&self, iface: usize, n: u64) {
        if let Some(c) = self.interfaces.get(iface) {
            c.packets.inc_by(n);
        }
    }

    /// Cumulative drop counts for interface `iface`: libpcap's (`ps_drop`, `ps_ifdrop`) and
    /// the packets we captured but threw away because the engine's queue was full. One thread
    /// publishes them; a total lower than the last one is ignored (counters never go
    /// backwards).
    pub fn set_capture_drops(&self, iface: usize, kernel: u64, interface: u64, queue: u64) {
        if let Some(c) = self.interfaces.get(iface) {
            raise(&c.kernel_drops, kernel);
            raise(&c.interface_drops, interface);
            raise(&c.queue_drops, queue);
        }
    }

    /// Event lines `output` left out since start (a cumulative total; a lower one is ignored).
    pub fn set_events_dropped(&self, output: &str, total: u64) {
        raise(
            &self
                .events_dropped
                .get_or_create(&labels(&[("output", output)])),
            total,
        );
    }

    /// Packets not fully counted since start, as cumulative totals: sources the full table
    /// turned away, and values the distinct windows' set pool had no room for (a lower total
    /// than the last one is ignored).
    pub fn set_untracked(&self, table_full: u64, distinct_sets_full: u64) {
        for (reason, total) in UNTRACKED_REASONS
            .into_iter()
            .zip([table_full, distinct_sets_full])
        {
            raise(
                &self.untracked.get_or_create(&labels(&[("reason", reason)])),
                total,
            );
        }
    }

    /// The totals of [`Metrics::set_untracked`], as last published.
    pub fn untracked(&self) -> (u64, u64) {
        let [a, b] = UNTRACKED_REASONS.map(|reason| {
            self.untracked
                .get_or_create(&labels(&[("reason", reason)]))
                .get()
        });
        (a, b)
    }

    /// Sources in the counter table now.
    pub fn set_tracked_sources(&self, n: u64) {
        self.tracked_sources.set(n);
    }

    /// Bans in force now.
    pub fn set_active_bans(&self, n: u64) {
        self.active_bans.set(n);
    }

    /// Sources in the counter table, as last published.
    pub fn tracked_sources(&self) -> u64 {
        self.tracked_sources.get()
    }

    /// Bans in force, as last published.
    pub fn active_bans(&self) -> u64 {
        self.active_bans.get()
    }

    /// Bans put in force since start, all rules together.
    pub fn bans_total(&self) -> u64 {
        self.bans_total.get()
    }

    /// Failed firewall commits and checks since start.
    pub fn enforcer_errors(&self) -> u64 {
        self.enforcer_errors.get()
    }

    /// Make sure every rule of a (re)loaded config has counters. Existing counters are kept,
    /// also for rules the reload removed: their bans may still expire, and counters must not
    /// go backwards.
    pub fn add_rules<R>(&self, rules: R)
    where
        R: IntoIterator,
        R::Item: AsRef<str>,
    {
        for rule in rules {
            let l = labels(&[("rule", rule.as_ref())]);
            let _ = self.bans.get_or_create(&l);
            let _ = self.unbans.get_or_create(&l);
            let _ = self.extends.get_or_create(&l);
        }
    }

    /// Make sure every `[[flood]]` detector of a (re)loaded config has counters (kept, like a
    /// rule's, when a reload removes it).
    pub fn add_floods<R>(&self, floods: R)
    where
        R: IntoIterator,
        R::Item: AsRef<str>,
    {
        for name in floods {
            let l = labels(&[("rule", name.as_ref())]);
            let _ = self.flood_attacks.get_or_create(&l);
            let _ = self.signature_packets.get_or_create(&l);
            let _ = self.signature_bytes.get_or_create(&l);
        }
    }

    /// A flood attack detected by detector `rule`.
    pub fn attack(&self, rule: &str) {
        self.flood_attacks
            .get_or_create(&labels(&[("rule", rule)]))
            .inc();
    }

    /// Packets and bytes detector `rule`'s signatures dropped since the last call.
    pub fn signature_drops(&self, rule: &str, packets: u64, bytes: u64) {
        let l = labels(&[("rule", rule)]);
        self.signature_packets.get_or_create(&l).inc_by(packets);
        self.signature_bytes.get_or_create(&l).inc_by(bytes);
    }

    /// A ban by `rule` (use [`MANUAL`] for manual bans).
    pub fn ban(&self, rule: &str) {
        self.bans.get_or_create(&labels(&[("rule", rule)])).inc();
        self.bans_total.inc();
    }

    /// A ban of `rule` lifted.
    pub fn unban(&self, rule: &str) {
        self.unbans.get_or_create(&labels(&[("rule", rule)])).inc();
    }

    /// A ban of `rule` extended.
    pub fn extend(&self, rule: &str) {
        self.extends.get_or_create(&labels(&[("rule", rule)])).inc();
    }

    /// A verdict not enforced.
    pub fn suppressed(&self, reason: SuppressReason) {
        let l = labels(&[("reason", reason.as_str())]);
        self.suppressed.get_or_create(&l).inc();
    }

    /// A firewall command failed.
    pub fn enforcer_error(&self) {
        self.enforcer_errors.inc();
    }

    /// Kernel state was found out of sync and repaired (once per repair pass that changed it).
    pub fn repair(&self) {
        self.repairs.inc();
    }

    /// Time from the packet that crossed a threshold to the ban being in the kernel.
    pub fn observe_reaction(&self, d: std::time::Duration) {
        self.reaction.observe(d.as_secs_f64());
    }

    /// Text exposition format 0.0.4; families in a fixed order.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests;
