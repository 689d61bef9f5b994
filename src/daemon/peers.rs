//! The verified-peer refresher (issue 11 item 1): a thread of its own gathers the peers a
//! spoofer cannot have forged (`sys::peers`: established TCP peers, SSH sessions, default
//! gateways, resolvers) every [`PEERS_EVERY`] (less often where that is slow:
//! [`pause_after`]) and hands each set to the engine thread as [`EngineMsg::SetPeers`].
//! Reading the socket tables costs milliseconds (over netlink: 3 ms idle, 150 ms at 100k
//! connections, BENCHMARKS.md "Over netlink"): it never runs on the engine thread, which only
//! swaps an `Arc`.
//!
//! The first set is gathered at start, before any packet is counted ([`gather_now`]); the
//! thread ends when [`Refresher`] is dropped or the engine thread is gone.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::engine_loop::EngineMsg;
use crate::sys::peers::{GatherOptions, Gathered, ProcFiles, Source, gather};
use crate::trust::peers::PeerSet;

/// How often the peers are gathered again: a connection opened since is protected after at
/// most this long (longer on a host where gathering is slow, see [`pause_after`]).
pub const PEERS_EVERY: Duration = Duration::from_secs(2);

/// The refresher spends at most one part in this many of its time gathering.
const DUTY: u32 = 10;

/// The pause before the next gathering, after one that took `took`: [`PEERS_EVERY`], or
/// `DUTY` times `took` when that is longer. At 100k connections a gathering takes 170 ms of
/// CPU over netlink (380 ms from `/proc` text, 480 ms with conntrack; BENCHMARKS.md,
/// "Verified peers"); every 2 s that is 8-25% of a core, taken from capture and engine
/// exactly when the host is busiest. Paced by wall time (which a loaded host stretches: then
/// it gathers less often still), the refresher takes under a tenth of a core, and a new
/// connection is protected after ~10 gathering times instead of 2 s.
pub fn pause_after(took: Duration) -> Duration {
    PEERS_EVERY.max(took.saturating_mul(DUTY))
}

/// What the daemon gathers: the defaults (SSH on port 22, conntrack when the kernel has it).
/// The allowlist is the engine's own (it follows reloads), so it is not repeated here.
fn options() -> GatherOptions {
    GatherOptions::default()
}

/// The peers now, from this process's network namespace; problems are logged.
pub fn gather_now() -> Arc<PeerSet> {
    let Gathered { set, problems } = gather(&ProcFiles::own(), &options());
    log_problems(&problems);
    Arc::new(set)
}

fn log_problems(problems: &[(Source, String)]) {
    for (source, error) in problems {
        tracing::warn!(
            file = source.path(),
            %error,
            "cannot read a source of verified peers; its peers are not protected"
        );
    }
}

/// The running refresher; dropping it ends the thread (at once, not after its sleep).
pub struct Refresher {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Refresher {
    /// Starts the thread, sending each new set to `engine`.
    pub fn spawn(engine: Sender<EngineMsg>) -> std::io::Result<Refresher> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("peers".into())
            .spawn(move || {
                let mut last_problems = Vec::new();
                let mut pause = PEERS_EVERY;
                loop {
                    match stopped.recv_timeout(pause) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let started = Instant::now();
                    let Gathered { set, problems } = gather(&ProcFiles::own(), &options());
                    pause = pause_after(started.elapsed());
                    // The same unreadable file is logged once, not every refresh.
                    if problems != last_problems {
                        log_problems(&problems);
                        last_problems = problems;
                    }
                    if engine.send(EngineMsg::SetPeers(Arc::new(set))).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Refresher {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quick gatherings keep the 2 s period; slow ones stretch it so that gathering never
    /// takes more than a tenth of the time.
    #[test]
    fn slow_gatherings_stretch_the_pause() {
        assert_eq!(pause_after(Duration::ZERO), PEERS_EVERY);
        assert_eq!(pause_after(Duration::from_millis(5)), PEERS_EVERY);
        assert_eq!(pause_after(Duration::from_millis(200)), PEERS_EVERY);
        assert_eq!(
            pause_after(Duration::from_millis(201)),
            Duration::from_millis(2010)
        );
        assert_eq!(
            pause_after(Duration::from_millis(850)),
            Duration::from_millis(8500)
        );
        for ms in [1, 150, 201, 850, 1740, 60_000] {
            let took = Duration::from_millis(ms);
            let share = took.as_secs_f64() / (took + pause_after(took)).as_secs_f64();
            assert!(share < 0.1, "{ms} ms: {share}");
        }
        assert_eq!(pause_after(Duration::MAX), Duration::MAX);
    }
}
