//! Answers the control socket: `status` from shared counters, `reload` by asking the async
//! edge (which owns the configuration in force), everything else by asking the engine thread
//! (which owns the bans and counters); each waits for its reply.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::DaemonState;
use super::engine_loop::EngineMsg;
use crate::sys::control::protocol::{InterfaceStats, ReloadInfo, Request, Response, StatusInfo};
use crate::sys::control::server::ControlHandler;
use crate::sys::live::LiveCapture;

/// How long a request may wait for the engine thread.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `reload` may take (reading and validating the file, handing it to the engine).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// A reload request for the async edge: where its answer goes.
pub type ReloadAsk = SyncSender<ReloadInfo>;

pub struct Context {
    pub shared: Arc<DaemonState>,
    pub engine: Mutex<Sender<EngineMsg>>,
    /// The async edge reloads (it owns the configuration in force).
    pub reloads: tokio::sync::mpsc::UnboundedSender<ReloadAsk>,
    pub captures: Arc<Mutex<Vec<LiveCapture>>>,
    pub started: Instant,
    pub config_path: PathBuf,
    pub backend: String,
    pub backend_config: String,
    pub backend_skipped: Vec<String>,
    pub chain: String,
    pub dry_run: bool,
    /// The fleet link, for `status`.
    pub fleet: Option<crate::cluster::ClusterHandle>,
}

impl ControlHandler for Context {
    fn handle(&self, req: Request) -> Response {
        match req {
            Request::Status => return Response::Status(self.status()),
            Request::Reload => return self.reload(),
            _ => {}
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let sent = match self.engine.lock() {
            Ok(engine) => engine.send(EngineMsg::Control(req, tx)).is_ok(),
            Err(_) => false,
        };
        if !sent {
            return Response::Error {
                message: "the engine is stopping".into(),
            };
        }
        rx.recv_timeout(ENGINE_TIMEOUT)
            .unwrap_or_else(|_| Response::Error {
                message: format!(
                    "the engine did not answer within {}s",
                    ENGINE_TIMEOUT.as_secs()
                ),
            })
    }
}

impl Context {
    /// Asks the edge to reload and waits for the outcome.
    fn reload(&self) -> Response {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.reloads.send(tx).is_err() {
            return Response::Error {
                message: "the daemon is stopping".into(),
            };
        }
        match rx.recv_timeout(RELOAD_TIMEOUT) {
            Ok(info) => Response::Reloaded(info),
            Err(_) => Response::Error {
                message: format!(
                    "the reload did not finish within {}s",
                    RELOAD_TIMEOUT.as_secs()
                ),
            },
        }
    }

    fn status(&self) -> StatusInfo {
        let s = &self.shared;
        let interfaces = match self.captures.lock() {
            Ok(caps) => caps
                .iter()
                .map(|c| {
                    let st = c.stats();
                    InterfaceStats {
                        name: c.iface().to_string(),
                        packets: st.frames,
                        kernel_drops: st.pcap_dropped,
                        interface_drops: st.pcap_if_dropped,
                        queue_drops: st.packets_dropped,
                    }
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        // (sources the full table turned away, values no distinct set had room for)
        let untracked = s.metrics.untracked();
        StatusInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            config: self.config_path.display().to_string(),
            backend: self.backend.clone(),
            backend_config: self.backend_config.clone(),
            backend_skipped: self.backend_skipped.clone(),
            chain: self.chain.clone(),
            dry_run: self.dry_run,
            interfaces,
            tracked_sources: s.metrics.tracked_sources(),
            untracked_packets: untracked.0 + untracked.1,
            untracked_distinct_packets: untracked.1,
            active_bans: s.metrics.active_bans(),
            bans_total: s.metrics.bans_total(),
            events_suppressed: s.events.dropped_suppressed(),
            last_reload: s.last_reload.lock().ok().and_then(|l| l.clone()),
            enforcer_errors: s.metrics.enforcer_errors(),
            pending_decisions: s.pending.load(Ordering::Relaxed),
            events_dropped: s.events.dropped(),
            reload: s.reload.lock().ok().and_then(|r| r.clone()),
            rules: s.rules.lock().map(|r| r.clone()).unwrap_or_default(),
            state_error: s.state_error.lock().ok().and_then(|e| e.clone()),
            attacks: s.attacks.lock().map(|a| a.clone()).unwrap_or_default(),
            recent_events: s.events.recent(),
            cluster: self
                .fleet
                .as_ref()
                .map(|h| Box::new(super::fleet::status(h, s))),
        }
    }
}
