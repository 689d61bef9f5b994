//! The fleet link's metrics (`[cluster]`), registered only when sharing is on: whether the
//! broker is reachable, what waits, what went out and came in. Copied from the link's
//! [`ClusterStatus`] about once a second; counters never go backwards (a lower total is
//! ignored).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{U64Gauge, labels, raise};
use crate::cluster::ClusterStatus;

/// Why deliveries from the fleet were skipped, as the `reason` label.
const SKIPPED: [&str; 5] = ["own", "expired", "repeat", "malformed", "name_clash"];

#[derive(Debug, Default)]
pub(super) struct FleetMetrics {
    connected: U64Gauge,
    lag: U64Gauge,
    queued: U64Gauge,
    waiting: U64Gauge,
    published: Counter,
    dropped: Counter,
    stale: Counter,
    received: Counter,
    skipped: Family<Vec<(&'static str, String)>, Counter>,
    reconnects: Counter,
}

impl FleetMetrics {
    /// Registers every family, all at zero, after the others (the exposition's order).
    pub(super) fn register(&self, r: &mut Registry) {
        let gauge = |r: &mut Registry, name, help, g: &U64Gauge| r.register(name, help, g.clone());
        gauge(
            r,
            "fleet_connected",
            "1 while connected to a NATS server of the fleet",
            &self.connected,
        );
        gauge(
            r,
            "fleet_lag",
            "Fleet messages the broker holds for this node, not yet delivered",
            &self.lag,
        );
        gauge(
            r,
            "fleet_queued",
            "Our publications not yet confirmed by the broker",
            &self.queued,
        );
        gauge(
            r,
            "fleet_waiting",
            "Bans from the fleet held back by the new-ban rate limit",
            &self.waiting,
        );
        let counter = |r: &mut Registry, name, help, c: &Counter| r.register(name, help, c.clone());
        counter(
            r,
            "fleet_published",
            "Our bans the broker stored",
            &self.published,
        );
        counter(
            r,
            "fleet_dropped",
            "Our bans lost because the publication queue was full",
            &self.dropped,
        );
        counter(
            r,
            "fleet_stale",
            "Our bans not sent because they had ended",
            &self.stale,
        );
        counter(
            r,
            "fleet_received",
            "Bans of other nodes handed to the engine",
            &self.received,
        );
        for reason in SKIPPED {
            let _ = self.skipped.get_or_create(&labels(&[("reason", reason)]));
        }
        r.register(
            "fleet_skipped",
            "Fleet deliveries skipped, per reason",
            self.skipped.clone(),
        );
        counter(
            r,
            "fleet_reconnects",
            "Connections to the broker after the first one",
            &self.reconnects,
        );
    }

    pub(super) fn set(&self, s: &ClusterStatus) {
        self.connected.set(u64::from(s.connected));
        self.lag.set(s.pending);
        self.queued.set(s.queued);
        self.waiting.set(s.waiting);
        raise(&self.published, s.published);
        raise(&self.dropped, s.dropped);
        raise(&self.stale, s.stale);
        raise(&self.received, s.received);
        raise(&self.reconnects, s.reconnects);
        for (reason, total) in
            SKIPPED
                .iter()
                .zip([s.own, s.expired, s.repeats, s.malformed, s.name_clashes])
        {
            raise(
                &self.skipped.get_or_create(&labels(&[("reason", reason)])),
                total,
            );
        }
    }
}
