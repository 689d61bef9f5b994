//! Prometheus metrics: lock-free counters shared by every thread, rendered on demand.
//!
//! Invariants: updating a metric never allocates and never blocks, except the first ban or
//! unban of a rule that was not known at start (one write lock, then the rule's counters are
//! reused). Per-interface packet counters sit on their own cache lines, since each interface
//! has its own capture thread. [`Metrics::render`] is pure: it returns text exposition format
//! 0.0.4 and never does I/O (`sys::metrics_http` serves it).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::engine::SuppressReason;

/// Upper bounds of the reaction-time buckets, as rendered in `le` (seconds).
const BUCKET_LABELS: [&str; 11] = [
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
];
/// The same bounds in nanoseconds, so `observe` compares integers exactly.
const BUCKET_NS: [u64; 11] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
];

/// Every suppression reason, in rendering order (indexes `Metrics::suppressed`).
const REASONS: [SuppressReason; 4] = [
    SuppressReason::Allowlist,
    SuppressReason::Local,
    SuppressReason::Cap,
    SuppressReason::Rate,
];

/// One capture interface's counters, alone on a cache line (its thread writes it per packet).
#[repr(align(64))]
#[derive(Debug)]
struct InterfaceCounters {
    name: String,
    packets: AtomicU64,
    /// libpcap `ps_drop`: dropped by the kernel because the buffer was full (cumulative).
    kernel_drops: AtomicU64,
    /// libpcap `ps_ifdrop`: dropped by the interface or its driver (cumulative).
    interface_drops: AtomicU64,
    queue_drops: AtomicU64,
}

/// Counters of one rule; hold on to the `Arc` from [`Metrics::rule`] to skip the lookup.
#[derive(Debug, Default)]
pub struct RuleCounters {
    pub bans: AtomicU64,
    pub unbans: AtomicU64,
    pub extends: AtomicU64,
}

/// Reaction time (first packet over the threshold -> ban in the kernel), Prometheus-style.
#[derive(Debug, Default)]
struct Histogram {
    /// Non-cumulative: `buckets[i]` counts observations in (bound i-1, bound i]; the last slot
    /// counts those above every bound. Rendering accumulates, and `_count` is their sum, so a
    /// render racing an `observe` still shows consistent buckets and count.
    buckets: [AtomicU64; BUCKET_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BUCKET_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKET_NS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }
}

/// All of the daemon's metrics. Share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    /// Indexed by the interface index given at start (the capture threads' order).
    interfaces: Vec<InterfaceCounters>,
    tracked_sources: AtomicU64,
    active_bans: AtomicU64,
    /// Read on every ban and unban (rare); written only when a rule appears.
    rules: RwLock<HashMap<String, Arc<RuleCounters>>>,
    /// Indexed like `REASONS`.
    suppressed: [AtomicU64; REASONS.len()],
    enforcer_errors: AtomicU64,
    repairs: AtomicU64,
    reaction: Histogram,
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
        let interfaces = interfaces
            .into_iter()
            .map(|name| InterfaceCounters {
                name: name.into(),
                packets: AtomicU64::new(0),
                kernel_drops: AtomicU64::new(0),
                interface_drops: AtomicU64::new(0),
                queue_drops: AtomicU64::new(0),
            })
            .collect();
        let rules = rules
            .into_iter()
            .map(|r| (r.into(), Arc::new(RuleCounters::default())))
            .collect();
        Metrics {
            interfaces,
            tracked_sources: AtomicU64::new(0),
            active_bans: AtomicU64::new(0),
            rules: RwLock::new(rules),
            suppressed: Default::default(),
            enforcer_errors: AtomicU64::new(0),
            repairs: AtomicU64::new(0),
            reaction: Histogram::default(),
        }
    }

    /// `n` packets seen on interface `iface`; an unknown index is ignored.
    pub fn add_packets(&self, iface: usize, n: u64) {
        if let Some(c) = self.interfaces.get(iface) {
            c.packets.fetch_add(n, Relaxed);
        }
    }

    /// Cumulative drop counts for interface `iface`: libpcap's (`ps_drop`, `ps_ifdrop`) and
    /// the packets we captured but threw away because the engine's queue was full.
    pub fn set_capture_drops(&self, iface: usize, kernel: u64, interface: u64, queue: u64) {
        if let Some(c) = self.interfaces.get(iface) {
            c.kernel_drops.store(kernel, Relaxed);
            c.interface_drops.store(interface, Relaxed);
            c.queue_drops.store(queue, Relaxed);
        }
    }

    pub fn set_tracked_sources(&self, n: u64) {
        self.tracked_sources.store(n, Relaxed);
    }

    pub fn set_active_bans(&self, n: u64) {
        self.active_bans.store(n, Relaxed);
    }

    /// The counters of `rule`, created on first use (a rule added by a reload).
    pub fn rule(&self, rule: &str) -> Arc<RuleCounters> {
        let found = self
            .rules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(rule)
            .cloned();
        found.unwrap_or_else(|| {
            let mut rules = self.rules.write().unwrap_or_else(|p| p.into_inner());
            Arc::clone(rules.entry(rule.to_owned()).or_default())
        })
    }

    /// Make sure every rule of a (re)loaded config has counters. Existing counters are kept,
    /// also for rules the reload removed: their bans may still expire, and counters must not
    /// go backwards.
    pub fn add_rules<R>(&self, rules: R)
    where
        R: IntoIterator,
        R::Item: AsRef<str>,
    {
        let mut table = self.rules.write().unwrap_or_else(|p| p.into_inner());
        for r in rules {
            let r = r.as_ref();
            if !table.contains_key(r) {
                table.insert(r.to_owned(), Arc::default());
            }
        }
    }

    pub fn ban(&self, rule: &str) {
        self.rule(rule).bans.fetch_add(1, Relaxed);
    }

    pub fn unban(&self, rule: &str) {
        self.rule(rule).unbans.fetch_add(1, Relaxed);
    }

    pub fn extend(&self, rule: &str) {
        self.rule(rule).extends.fetch_add(1, Relaxed);
    }

    pub fn suppressed(&self, reason: SuppressReason) {
        let i = match reason {
            SuppressReason::Allowlist => 0,
            SuppressReason::Local => 1,
            SuppressReason::Cap => 2,
            SuppressReason::Rate => 3,
        };
        self.suppressed[i].fetch_add(1, Relaxed);
    }

    pub fn enforcer_error(&self) {
        self.enforcer_errors.fetch_add(1, Relaxed);
    }

    /// Kernel state was found out of sync and repaired (once per repair pass that changed it).
    pub fn repair(&self) {
        self.repairs.fetch_add(1, Relaxed);
    }

    /// Time from the packet that crossed a threshold to the ban being in the kernel.
    pub fn observe_reaction(&self, d: Duration) {
        self.reaction.observe(d);
    }

    /// Text exposition format 0.0.4; families in a fixed order, rules sorted by name.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let o = &mut out;

        family(
            o,
            "packets_total",
            "counter",
            "Packets captured, per interface.",
        );
        for c in &self.interfaces {
            sample(
                o,
                "packets_total",
                &[("interface", &c.name)],
                load(&c.packets),
            );
        }
        family(
            o,
            "capture_drops_total",
            "counter",
            "Packets dropped, per interface: by the kernel or the interface (libpcap), or by us when the engine's queue was full (queue).",
        );
        for c in &self.interfaces {
            let labels = |w| [("interface", c.name.as_str()), ("where", w)];
            sample(
                o,
                "capture_drops_total",
                &labels("kernel"),
                load(&c.kernel_drops),
            );
            sample(
                o,
                "capture_drops_total",
                &labels("interface"),
                load(&c.interface_drops),
            );
            sample(
                o,
                "capture_drops_total",
                &labels("queue"),
                load(&c.queue_drops),
            );
        }
        family(
            o,
            "tracked_sources",
            "gauge",
            "Sources in the counter table.",
        );
        sample(o, "tracked_sources", &[], load(&self.tracked_sources));
        family(o, "active_bans", "gauge", "Bans currently in force.");
        sample(o, "active_bans", &[], load(&self.active_bans));

        let mut rules: Vec<(String, Arc<RuleCounters>)> = self
            .rules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        rules.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        type Pick = fn(&RuleCounters) -> &AtomicU64;
        let per_rule: [(&str, &str, Pick); 3] = [
            ("bans_total", "Bans put in force, per rule.", |r| &r.bans),
            ("unbans_total", "Bans lifted, per rule.", |r| &r.unbans),
            ("extends_total", "Active bans extended, per rule.", |r| {
                &r.extends
            }),
        ];
        for (name, help, pick) in per_rule {
            family(o, name, "counter", help);
            for (rule, c) in &rules {
                sample(o, name, &[("rule", rule)], load(pick(c)));
            }
        }

        family(
            o,
            "suppressed_total",
            "counter",
            "Verdicts not enforced, per reason.",
        );
        for (i, r) in REASONS.iter().enumerate() {
            let n = load(&self.suppressed[i]);
            sample(o, "suppressed_total", &[("reason", r.as_str())], n);
        }
        family(
            o,
            "enforcer_errors_total",
            "counter",
            "Firewall commands that failed.",
        );
        sample(o, "enforcer_errors_total", &[], load(&self.enforcer_errors));
        family(
            o,
            "repairs_total",
            "counter",
            "Times the kernel state was repaired.",
        );
        sample(o, "repairs_total", &[], load(&self.repairs));

        self.render_reaction(o);
        out
    }

    fn render_reaction(&self, o: &mut String) {
        let name = "reaction_seconds";
        family(
            o,
            name,
            "histogram",
            "Seconds from the packet that crossed a threshold to the ban in the kernel.",
        );
        let mut cumulative = 0u64;
        for (i, le) in BUCKET_LABELS.iter().enumerate() {
            cumulative += load(&self.reaction.buckets[i]);
            sample(o, "reaction_seconds_bucket", &[("le", le)], cumulative);
        }
        cumulative += load(&self.reaction.buckets[BUCKET_NS.len()]);
        sample(o, "reaction_seconds_bucket", &[("le", "+Inf")], cumulative);
        let sum = Duration::from_nanos(load(&self.reaction.sum_ns)).as_secs_f64();
        let _ = writeln!(o, "autoblock_{name}_sum {sum}");
        let _ = writeln!(o, "autoblock_{name}_count {cumulative}");
    }
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Relaxed)
}

/// The `# HELP` and `# TYPE` lines (help texts are fixed and need no escaping).
fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP autoblock_{name} {help}");
    let _ = writeln!(o, "# TYPE autoblock_{name} {kind}");
}

fn sample(o: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    let _ = write!(o, "autoblock_{name}");
    if !labels.is_empty() {
        o.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{k}=\"");
            escape_label(o, v);
            o.push('"');
        }
        o.push('}');
    }
    let _ = writeln!(o, " {value}");
}

/// Label values escape backslash, double quote and line feed (format 0.0.4).
fn escape_label(o: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
