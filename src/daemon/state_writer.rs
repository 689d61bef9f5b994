//! The state writer thread: keeps what the state file must hold (every active ban, the offense
//! history) and writes it atomically, off the engine thread. The engine sends what changed
//! after each batch of decisions (a few map lookups, never the file) and, every few seconds
//! while something changed, a full snapshot that also carries the offense history.
//!
//! Writes are coalesced: the first change after a quiet spell is written at once; during a
//! storm of bans at most one write per [`MIN_GAP`] or four times the last write's duration,
//! whichever is longer (a state of 100,000 bans is ~15 MB of JSON).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::DaemonState;
use crate::event::Event;
use crate::sys::state::{SavedBan, SavedState};

/// Shortest time between two writes.
const MIN_GAP: Duration = Duration::from_millis(250);

/// What the engine thread sends.
pub enum StateMsg {
    /// Everything: offense history (target, count, last in µs) and every active ban.
    Snapshot {
        offenses: Vec<(IpNet, u32, u64)>,
        bans: Vec<SavedBan>,
    },
    /// Bans that changed since the last message.
    Bans(Vec<BanChange>),
}

/// One ban's change.
pub enum BanChange {
    /// Banned (new, extended or replaced) as this.
    Set(SavedBan),
    /// No longer banned.
    Lift(IpNet),
}

/// The state as the writer keeps it between writes.
#[derive(Default)]
struct Mirror {
    offenses: Vec<(IpNet, u32, u64)>,
    bans: BTreeMap<IpNet, SavedBan>,
}

impl Mirror {
    fn apply(&mut self, msg: StateMsg) {
        match msg {
            StateMsg::Snapshot { offenses, bans } => {
                self.offenses = offenses;
                self.bans = bans.into_iter().map(|b| (b.target, b)).collect();
            }
            StateMsg::Bans(changes) => {
                for c in changes {
                    match c {
                        BanChange::Set(b) => {
                            self.bans.insert(b.target, b);
                        }
                        BanChange::Lift(net) => {
                            self.bans.remove(&net);
                        }
                    }
                }
            }
        }
    }

    fn state(&mut self) -> SavedState {
        self.offenses.sort_by_key(|o| (o.2, o.0));
        SavedState {
            version: 0,
            offenses: self.offenses.clone(),
            manual_bans: Vec::new(),
            bans: self.bans.values().cloned().collect(),
        }
    }
}

/// Runs until the engine drops its sender, then writes what is left.
pub fn run(shared: Arc<DaemonState>, rx: Receiver<StateMsg>) {
    let mut mirror = Mirror::default();
    let mut dirty = false;
    let mut next_write = Instant::now();
    loop {
        let first = if dirty {
            rx.recv_timeout(next_write.saturating_duration_since(Instant::now()))
        } else {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        let done = match first {
            Ok(msg) => {
                mirror.apply(msg);
                dirty = true;
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        while let Ok(msg) = rx.try_recv() {
            mirror.apply(msg);
            dirty = true;
        }
        if dirty && (done || Instant::now() >= next_write) {
            let started = Instant::now();
            write(&shared, &mut mirror);
            dirty = false;
            next_write = Instant::now() + MIN_GAP.max(started.elapsed() * 4);
        }
        if done {
            return;
        }
    }
}

fn write(shared: &DaemonState, mirror: &mut Mirror) {
    if !shared.state_writable.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = crate::sys::state::save(&shared.state_dir, &mirror.state()) {
        shared.events.emit_now(Event::StateSaveFailed {
            error: e.to_string(),
        });
    }
}
