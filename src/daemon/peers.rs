//! The verified-peer refresher (issue 11 item 1): a thread of its own gathers the peers a
//! spoofer cannot have forged (`sys::peers`: established TCP peers, SSH sessions, default
//! gateways, resolvers) every [`PEERS_EVERY`] and hands each set to the engine thread as
//! [`EngineMsg::SetPeers`]. Reading `/proc/net/tcp` costs milliseconds (hundreds at 100k
//! connections, BENCHMARKS.md): it never runs on the engine thread, which only swaps an `Arc`.
//!
//! The first set is gathered at start, before any packet is counted ([`gather_now`]); the
//! thread ends when [`Refresher`] is dropped or the engine thread is gone.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::engine_loop::EngineMsg;
use crate::sys::peers::{GatherOptions, Gathered, ProcFiles, Source, gather};
use crate::trust::peers::PeerSet;

/// How often the peers are gathered again: a connection opened since is protected after at
/// most this long.
pub const PEERS_EVERY: Duration = Duration::from_secs(2);

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
                loop {
                    match stopped.recv_timeout(PEERS_EVERY) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let Gathered { set, problems } = gather(&ProcFiles::own(), &options());
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
