//! Answers the control socket: `status` from shared counters, everything else by asking the
//! engine thread (which owns the bans and counters) and waiting for its reply.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Shared;
use super::engine_loop::EngineMsg;
use crate::sys::control::protocol::{InterfaceStats, Request, Response, StatusInfo};
use crate::sys::control::server::ControlHandler;
use crate::sys::live::LiveCapture;

/// How long a request may wait for the engine thread.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Context {
    pub shared: Arc<Shared>,
    pub engine: Mutex<Sender<EngineMsg>>,
    pub captures: Arc<Mutex<Vec<LiveCapture>>>,
    pub started: Instant,
    pub config_path: PathBuf,
    pub backend: String,
    pub chain: String,
    pub dry_run: bool,
}

impl ControlHandler for Context {
    fn handle(&self, req: Request) -> Response {
        if let Request::Status = req {
            return Response::Status(self.status());
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
        StatusInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            config: self.config_path.display().to_string(),
            backend: self.backend.clone(),
            chain: self.chain.clone(),
            dry_run: self.dry_run,
            interfaces,
            tracked_sources: s.tracked_sources.load(Ordering::Relaxed),
            active_bans: s.active_bans.load(Ordering::Relaxed),
            bans_total: s.bans_total.load(Ordering::Relaxed),
            events_suppressed: s.suppressed_dropped(),
            last_reload: s.last_reload.lock().ok().and_then(|l| l.clone()),
            enforcer_errors: s.enforcer_errors.load(Ordering::Relaxed),
            pending_decisions: s.pending.load(Ordering::Relaxed),
        }
    }
}
