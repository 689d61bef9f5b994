//! The async edge (tokio): signals, the control socket, the metrics endpoint, the end of any
//! worker thread, and the periodic jobs (address changes, capture health, summaries of
//! suppressed events). One `select!` waits on all of them; nothing is polled for.

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use tokio::signal::unix::Signal;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};

use super::engine_loop::EngineMsg;
use super::handler::ReloadAsk;
use super::monitor::DropMonitor;
use super::reload::{self, By, Overrides};
use super::signals::Signals;
use super::startup::host_addresses;
use super::workers::Ended;
use super::{DaemonState, Exit};
use crate::config::Config;
use crate::event::Event;
use crate::sys::clock::wall_now;
use crate::sys::control::protocol::ReloadInfo;
use crate::sys::control::server::{Bound, ControlHandler};
use crate::sys::live::LiveCapture;
use crate::sys::notify;

/// How often our own addresses are read again.
const LOCAL_CHECK: Duration = Duration::from_secs(30);
/// How often capture health is checked and dropped suppressed events are summed up.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// What the async edge works with.
pub struct Edge {
    /// The configuration file (reloaded on SIGHUP).
    pub config_path: PathBuf,
    /// The configuration in force.
    pub config: Config,
    /// What the command line overrides in every loaded file.
    pub overrides: Overrides,
    /// Events, metrics, state.
    pub shared: Arc<DaemonState>,
    /// The engine thread.
    pub engine: Sender<EngineMsg>,
    /// The captures (health checks).
    pub captures: Arc<Mutex<Vec<LiveCapture>>>,
    /// Worker threads report their end here.
    pub ended: UnboundedReceiver<Ended>,
    /// Answers the control socket.
    pub handler: Arc<dyn ControlHandler>,
    /// Our own addresses as the engine knows them.
    pub local: Vec<IpNet>,
    /// The service manager's status line once ready (`READY=1` goes with it).
    pub ready: String,
    /// `autoblock reload` requests from the control handler.
    pub reloads: UnboundedReceiver<ReloadAsk>,
}

/// Runs the edge until a signal asks to stop or something fatal happens. Signals that came
/// while the daemon started are handled first.
pub fn run(edge: Edge, signals: &mut Signals) -> anyhow::Result<Exit> {
    let Signals { rt, term, int, hup } = signals;
    rt.block_on(edge.serve(term, int, hup))
}

impl Edge {
    async fn serve(
        mut self,
        term: &mut Signal,
        int: &mut Signal,
        hup: &mut Signal,
    ) -> anyhow::Result<Exit> {
        let (stop_tx, stop_rx) = watch::channel(false);
        // Bound before READY=1: once the service manager says started, the socket answers.
        let bound = match Bound::new(&self.config.control.socket).await {
            Ok(b) => b,
            Err(e) => return Ok(self.control_ended(Ok(Err(e)))),
        };
        let mut control = Some(self.spawn_control(bound, stop_rx.clone()));
        let mut metrics = self.spawn_metrics(stop_rx);
        notify::ready(&self.ready);
        let mut monitor = DropMonitor::default();
        let mut local_check = tokio::time::interval(LOCAL_CHECK);
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let exit = loop {
            tokio::select! {
                _ = term.recv() => break Exit::Stop,
                _ = int.recv() => break Exit::Stop,
                _ = hup.recv() => {
                    self.reload(By::Signal);
                }
                Some(reply) = self.reloads.recv() => {
                    let info = self.reload(By::Control);
                    let _ = reply.send(info);
                }
                Some(ended) = self.ended.recv() => break self.fatal(ended.why()),
                res = join(&mut control) => break self.control_ended(res),
                res = join(&mut metrics) => metrics_ended(res),
                _ = local_check.tick() => self.check_local(),
                _ = housekeeping.tick() => {
                    monitor.check(&self.captures, &self.shared);
                    self.shared.events.flush_dropped(wall_now());
                    for (output, n) in self.shared.events.dropped_by_output() {
                        self.shared.metrics.set_events_dropped(output, n);
                    }
                }
            }
        };
        let _ = stop_tx.send(true);
        if let Some(c) = control {
            let _ = tokio::time::timeout(Duration::from_secs(2), c).await;
        }
        if let Some(m) = metrics {
            let _ = tokio::time::timeout(Duration::from_secs(1), m).await;
        }
        Ok(exit)
    }

    fn spawn_control(
        &self,
        bound: Bound,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<Result<(), crate::sys::control::ControlError>> {
        let handler = self.handler.clone();
        tokio::spawn(async move {
            bound.serve(handler, stop).await;
            Ok(())
        })
    }

    fn spawn_metrics(
        &self,
        stop: watch::Receiver<bool>,
    ) -> Option<JoinHandle<Result<(), crate::sys::metrics::http::MetricsError>>> {
        let addr = self.config.metrics.listen?;
        let m = self.shared.metrics.clone();
        Some(tokio::spawn(async move {
            crate::sys::metrics::http::serve_metrics(addr, m, stop).await
        }))
    }

    /// SIGHUP or `autoblock reload`: reopen the events file, then load -> validate -> diff ->
    /// swap.
    fn reload(&mut self, by: By) -> ReloadInfo {
        self.shared.events.reopen();
        reload::reload(
            &self.config_path,
            &self.overrides,
            &mut self.config,
            &self.shared,
            &self.engine,
            by,
        )
    }

    /// Addresses come and go (DHCP, IPv6 temporary addresses, a VIP): ours are never counted
    /// or banned, so the engine must know the current set.
    fn check_local(&mut self) {
        let fresh = host_addresses().unwrap_or_default();
        if fresh.is_empty() || fresh == self.local {
            return;
        }
        self.shared.events.emit_now(Event::LocalAddresses {
            addresses: fresh.iter().map(ToString::to_string).collect(),
        });
        let _ = self.engine.send(EngineMsg::SetLocal(fresh.clone()));
        self.local = fresh;
    }

    /// Better a restart by the service manager than silent blindness.
    fn fatal(&self, why: String) -> Exit {
        self.shared
            .events
            .emit_now(Event::Fatal { error: why.clone() });
        Exit::Fatal(why)
    }

    /// The control server only ends early on a startup error.
    fn control_ended(
        &self,
        res: Result<Result<(), crate::sys::control::ControlError>, JoinError>,
    ) -> Exit {
        let error = match res {
            Ok(Err(e)) => format!("the control server stopped: {e}"),
            _ => "the control server stopped".to_string(),
        };
        self.shared.events.emit_now(Event::ControlError {
            error: error.clone(),
        });
        Exit::Fatal(format!("control socket: {error}"))
    }
}

/// The metrics endpoint is optional: when it fails the daemon goes on without it.
fn metrics_ended(res: Result<Result<(), crate::sys::metrics::http::MetricsError>, JoinError>) {
    match res {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "metrics endpoint stopped"),
        Err(e) => tracing::error!(error = %e, "metrics endpoint failed"),
    }
}

/// Waits for a task to end, then forgets it; never resolves when there is none.
async fn join<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, JoinError> {
    let res = match task.as_mut() {
        Some(t) => t.await,
        None => std::future::pending().await,
    };
    *task = None;
    res
}
