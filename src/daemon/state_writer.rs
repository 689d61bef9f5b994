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
    let saved = crate::sys::state::save(&shared.state_dir, &mirror.state());
    let failure = saved.as_ref().err().map(ToString::to_string);
    if let Some(error) = &failure {
        shared.events.emit_now(Event::StateSaveFailed {
            error: error.clone(),
        });
    }
    // `status` and `ban` say so while saving fails, and no longer once it works again.
    if let Ok(mut slot) = shared.state_error.lock() {
        *slot = failure;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::events::EventLog;
    use crate::sys::metrics::Metrics;
    use std::sync::mpsc;

    fn ban(target: &str, until_us: u64) -> SavedBan {
        SavedBan {
            target: target.parse().unwrap(),
            until_us,
            since_us: 1,
            rule: Arc::from("conn-burst"),
            offense: 1,
            ban_secs: 300,
            manual: false,
            comment: None,
            origin: None,
        }
    }

    fn shared(dir: &std::path::Path) -> Arc<DaemonState> {
        let events =
            EventLog::with_outputs(Vec::new(), 0, governor::clock::DefaultClock::default())
                .unwrap();
        let metrics = Arc::new(Metrics::new(Vec::<String>::new(), Vec::<String>::new()));
        Arc::new(DaemonState::new(metrics, events, dir.to_path_buf()))
    }

    #[test]
    fn changes_apply_to_the_last_snapshot() {
        let mut m = Mirror::default();
        m.apply(StateMsg::Snapshot {
            offenses: vec![("198.51.100.1/32".parse().unwrap(), 2, 9)],
            bans: vec![ban("198.51.100.1/32", 10), ban("198.51.100.2/32", 10)],
        });
        m.apply(StateMsg::Bans(vec![
            BanChange::Set(ban("198.51.100.1/32", 20)),
            BanChange::Lift("198.51.100.2/32".parse().unwrap()),
            BanChange::Set(ban("2001:db8::/64", 30)),
        ]));
        let s = m.state();
        let got: Vec<(String, u64)> = s
            .bans
            .iter()
            .map(|b| (b.target.to_string(), b.until_us))
            .collect();
        assert_eq!(
            got,
            [
                ("198.51.100.1/32".to_string(), 20),
                ("2001:db8::/64".to_string(), 30)
            ]
        );
        assert_eq!(s.offenses.len(), 1);
    }

    #[test]
    fn a_change_is_on_disk_at_once_and_the_last_one_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let writer = {
            let shared = shared(dir.path());
            std::thread::spawn(move || run(shared, rx))
        };
        tx.send(StateMsg::Bans(vec![BanChange::Set(ban(
            "198.51.100.1/32",
            10,
        ))]))
        .unwrap();
        let path = dir.path().join("state.json");
        // At once: a second is generous on a loaded machine, and far under the engine's 5 s.
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut seen = false;
        while Instant::now() < deadline && !seen {
            seen = std::fs::read_to_string(&path).is_ok_and(|t| t.contains("198.51.100.1/32"));
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(seen, "not written within a second");
        for i in 2..50 {
            let target = format!("198.51.100.{i}/32");
            tx.send(StateMsg::Bans(vec![BanChange::Set(ban(&target, 10))]))
                .unwrap();
        }
        drop(tx);
        writer.join().unwrap();
        let back = crate::sys::state::load(dir.path()).unwrap();
        assert_eq!(back.bans.len(), 49);
    }

    /// How long a state of 100,000 bans takes to write and read (not a timed test: run with
    /// `cargo test --release --lib state_of_100k_bans -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn state_of_100k_bans() {
        let dir = tempfile::tempdir().unwrap();
        let bans: Vec<SavedBan> = (0..100_000u32)
            .map(|i| {
                let addr = std::net::Ipv4Addr::from(0x0b00_0000 + i);
                ban(&format!("{addr}/32"), 1_795_568_400_000_000)
            })
            .collect();
        let state = SavedState {
            bans,
            ..SavedState::default()
        };
        for _ in 0..5 {
            let t = Instant::now();
            crate::sys::state::save(dir.path(), &state).unwrap();
            let saved = t.elapsed();
            let size = std::fs::metadata(dir.path().join("state.json"))
                .unwrap()
                .len();
            let t = Instant::now();
            let back = crate::sys::state::load(dir.path()).unwrap();
            assert_eq!(back.bans.len(), 100_000);
            eprintln!(
                "100k bans: save {saved:?} ({size} bytes), load {:?}",
                t.elapsed()
            );
        }
    }
}
