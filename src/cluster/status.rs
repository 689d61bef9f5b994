//! The link's counters: updated lock-free by its tasks, read as one [`ClusterStatus`] snapshot
//! for `status` and metrics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// What `status` shows about the fleet link (all counts since start).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterStatus {
    /// `[cluster] name`.
    pub fleet: String,
    /// This node's name.
    pub node: String,
    /// Connected to a NATS server now.
    pub connected: bool,
    /// Fleet messages the broker holds for us and has not delivered yet (the lag, as of the
    /// last delivery).
    pub pending: u64,
    /// Our publications not yet confirmed by the broker (waiting or in flight).
    pub queued: u64,
    /// Our publications the broker stored.
    pub published: u64,
    /// Our publications lost because the queue was full.
    pub dropped: u64,
    /// Our publications not sent because their ban had ended by the time they could be.
    pub stale: u64,
    /// Bans of other nodes handed to the engine.
    pub received: u64,
    /// Skipped deliveries: our own messages, ended bans, repeats, malformed messages.
    pub own: u64,
    /// Skipped: their ban had ended.
    pub expired: u64,
    /// Skipped: delivered again (JetStream delivers at least once).
    pub repeats: u64,
    /// Skipped: not a valid message.
    pub malformed: u64,
    /// Messages under our node name from another process: node names are not unique.
    pub name_clashes: u64,
    /// Connections after the first one.
    pub reconnects: u64,
    /// Origin's decision -> handed to our engine, for the last ban received (µs; across hosts
    /// it includes their clock difference).
    pub last_delay_us: u64,
    /// The last problem (connection, broker, malformed message) with its time, RFC 3339.
    pub last_error: Option<String>,
    /// Bans from the fleet that the rate limit holds back for now (the daemon's engine fills
    /// this in; the link alone leaves it 0).
    pub waiting: u64,
}

#[derive(Debug, Default)]
pub(super) struct Stats {
    pub connected: AtomicBool,
    pub pending: AtomicU64,
    pub queued: AtomicU64,
    pub published: AtomicU64,
    pub dropped: AtomicU64,
    pub stale: AtomicU64,
    pub received: AtomicU64,
    pub own: AtomicU64,
    pub expired: AtomicU64,
    pub repeats: AtomicU64,
    pub malformed: AtomicU64,
    pub name_clashes: AtomicU64,
    pub connects: AtomicU64,
    pub last_delay_us: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn error(&self, now: Timestamp, what: impl std::fmt::Display) {
        tracing::warn!(target: "autoblock::cluster", "{what}");
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(format!("{now}: {what}"));
        }
    }

    pub fn snapshot(&self, fleet: &str, node: &str) -> ClusterStatus {
        ClusterStatus {
            fleet: fleet.to_owned(),
            node: node.to_owned(),
            connected: self.connected.load(Relaxed),
            pending: self.pending.load(Relaxed),
            queued: self.queued.load(Relaxed),
            published: self.published.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            stale: self.stale.load(Relaxed),
            received: self.received.load(Relaxed),
            own: self.own.load(Relaxed),
            expired: self.expired.load(Relaxed),
            repeats: self.repeats.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            name_clashes: self.name_clashes.load(Relaxed),
            reconnects: self.connects.load(Relaxed).saturating_sub(1),
            last_delay_us: self.last_delay_us.load(Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            waiting: 0,
        }
    }
}
