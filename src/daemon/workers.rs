//! The daemon's threads as one value: the enforcer (kernel commits), the firewall watch (asks
//! the enforcer to check at once when nf_tables reports damage), the engine (sole owner of the
//! policy engine), the verified-peer refresher and one capture per interface. [`Workers::stop`] is the one stop
//! sequence, for a start that failed half-way and for a normal shutdown alike. Each thread
//! reports its end on a channel the async edge waits on, so a thread that dies is noticed at
//! once, without polling.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Context as _;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::DaemonState;
use super::enforce_loop::{EnforceLoop, EnforceMsg};
use super::engine_loop::{EngineLoop, EngineMsg};
use super::fleet::EngineLink;
use super::peers::Refresher;
use super::watch_loop::WatchLoop;
use crate::config::Config;
use crate::engine::Engine;
use crate::event::Event;
use crate::firewall::Firewall;
use crate::sys::enforcer::KernelOp;
use crate::sys::live::{LiveCapture, LiveOptions};

/// Capture batches waiting for the engine (up to 4,096 frames each: ~262k frames in all);
/// beyond this, capture threads drop (and count).
const BATCH_QUEUE: usize = 64;

/// A worker thread that ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The engine thread.
    Engine,
    /// The enforcer thread.
    Enforcer,
    /// The capture on this interface.
    Capture(String),
}

impl Ended {
    /// Why the daemon cannot go on without it (the `fatal` event's `error`).
    pub fn why(&self) -> String {
        match self {
            Ended::Engine => "the engine thread stopped unexpectedly".into(),
            Ended::Enforcer => "the enforcer thread stopped unexpectedly".into(),
            Ended::Capture(iface) => format!("the capture on {iface} stopped (interface gone?)"),
        }
    }
}

/// Reports its worker's end when dropped: at the end of the thread, however it ends.
pub struct EndGuard {
    tx: UnboundedSender<Ended>,
    what: Ended,
}

impl EndGuard {
    /// A guard that reports `what` on `tx`.
    pub fn new(tx: &UnboundedSender<Ended>, what: Ended) -> EndGuard {
        EndGuard {
            tx: tx.clone(),
            what,
        }
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        // Nobody listens any more once the daemon is stopping: nothing to report then.
        let _ = self.tx.send(self.what.clone());
    }
}

/// What the threads start from.
pub struct Inputs<'a> {
    /// The configuration in force.
    pub config: &'a Config,
    /// The engine, moved to its thread.
    pub engine: Engine,
    /// `None` in dry-run mode: no enforcer thread.
    pub fw: Option<Arc<Firewall>>,
    /// Interfaces to capture on, in index order.
    pub interfaces: &'a [String],
    /// Kernel changes decided at start, for the enforcer.
    pub initial: Vec<KernelOp>,
    /// The fleet link, for the engine thread (`None` without `[cluster]`).
    pub fleet: Option<EngineLink>,
}

/// The running threads.
pub struct Workers {
    shared: Arc<DaemonState>,
    captures: Arc<Mutex<Vec<LiveCapture>>>,
    engine_tx: mpsc::Sender<EngineMsg>,
    engine: Option<JoinHandle<()>>,
    enforcer_tx: mpsc::Sender<EnforceMsg>,
    enforcer: Option<JoinHandle<()>>,
    watch_stop: Arc<AtomicBool>,
    watch: Option<JoinHandle<()>>,
    /// The verified-peer refresher (ends when dropped).
    peers: Option<Refresher>,
}

impl Workers {
    /// Starts the enforcer, the engine and the captures, in that order, and returns them with
    /// the channel their ends are reported on. When one cannot start, the others are stopped.
    pub fn spawn(
        mut inputs: Inputs<'_>,
        shared: &Arc<DaemonState>,
    ) -> anyhow::Result<(Workers, UnboundedReceiver<Ended>)> {
        let (ended_tx, ended_rx) = unbounded_channel();
        let (enforcer_tx, enforcer_rx) = mpsc::channel();
        for op in std::mem::take(&mut inputs.initial) {
            let _ = enforcer_tx.send(EnforceMsg::Op(op));
        }
        let (engine_tx, engine_rx) = mpsc::channel();
        let mut workers = Workers {
            shared: shared.clone(),
            captures: Arc::new(Mutex::new(Vec::new())),
            engine_tx,
            engine: None,
            enforcer_tx,
            enforcer: None,
            watch_stop: Arc::new(AtomicBool::new(false)),
            watch: None,
            peers: None,
        };
        let started = workers.start_threads(inputs, engine_rx, enforcer_rx, &ended_tx);
        if let Err(e) = started {
            workers.stop();
            return Err(e);
        }
        Ok((workers, ended_rx))
    }

    fn start_threads(
        &mut self,
        inputs: Inputs<'_>,
        engine_rx: mpsc::Receiver<EngineMsg>,
        enforcer_rx: mpsc::Receiver<EnforceMsg>,
        ended: &UnboundedSender<Ended>,
    ) -> anyhow::Result<()> {
        let config = inputs.config;
        if let Some(fw) = &inputs.fw {
            let lp = EnforceLoop {
                fw: fw.clone(),
                rx: enforcer_rx,
                shared: self.shared.clone(),
                check_interval: config.enforce.check_interval,
            };
            let guard = EndGuard::new(ended, Ended::Enforcer);
            let thread = std::thread::Builder::new()
                .name("enforcer".into())
                .spawn(move || lp.run(guard))
                .context("cannot start the enforcer thread")?;
            self.enforcer = Some(thread);
            self.spawn_watch(fw, config)?;
        }
        let (batch_tx, batch_rx) = mpsc::sync_channel(BATCH_QUEUE);
        let (recycle, recycle_rx): (Vec<_>, Vec<_>) =
            inputs.interfaces.iter().map(|_| mpsc::channel()).unzip();
        let lp = EngineLoop::new(
            inputs.engine,
            batch_rx,
            recycle,
            engine_rx,
            inputs.fw.as_ref().map(|_| self.enforcer_tx.clone()),
            self.shared.clone(),
            inputs.fleet,
        );
        let guard = EndGuard::new(ended, Ended::Engine);
        let thread = std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || lp.run(guard))
            .context("cannot start the engine thread")?;
        self.engine = Some(thread);
        let refresher =
            Refresher::spawn(self.engine_tx.clone()).context("cannot start the peers thread")?;
        self.peers = Some(refresher);
        let live = LiveOptions {
            snaplen: config.capture.snaplen,
            filter: config.capture.bpf_filter.clone(),
            ..LiveOptions::default()
        };
        for (i, (iface, rx)) in inputs.interfaces.iter().zip(recycle_rx).enumerate() {
            let guard = EndGuard::new(ended, Ended::Capture(iface.clone()));
            let capture =
                LiveCapture::start_watched(iface, i, &live, batch_tx.clone(), rx, move || {
                    drop(guard)
                })
                .context("cannot start capturing")?;
            self.captures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(capture);
        }
        Ok(())
    }

    /// The firewall watch thread (no end guard: without it the periodic check goes on).
    fn spawn_watch(&mut self, fw: &Arc<Firewall>, config: &Config) -> anyhow::Result<()> {
        let lp = WatchLoop {
            fw: Arc::downgrade(fw),
            enforcer: self.enforcer_tx.clone(),
            stop: self.watch_stop.clone(),
            check_interval: config.enforce.check_interval,
        };
        let thread = std::thread::Builder::new()
            .name("firewall-watch".into())
            .spawn(move || lp.run())
            .context("cannot start the firewall watch thread")?;
        self.watch = Some(thread);
        Ok(())
    }

    /// The captures, for `status` and the drop monitor.
    pub fn captures(&self) -> Arc<Mutex<Vec<LiveCapture>>> {
        self.captures.clone()
    }

    /// Where control requests, reloads and address changes go.
    pub fn engine(&self) -> mpsc::Sender<EngineMsg> {
        self.engine_tx.clone()
    }

    /// Stops everything that runs, in order: the watch, the captures (nothing new), then the
    /// engine (it saves state), then the enforcer (it commits what is staged).
    pub fn stop(mut self) {
        // The watch first: its monitor goes, and the firewall is ours alone again.
        self.watch_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.watch.take() {
            let _ = t.join();
        }
        let captures =
            std::mem::take(&mut *self.captures.lock().unwrap_or_else(|p| p.into_inner()));
        for c in captures {
            if let Err(e) = c.stop() {
                self.shared.events.emit_now(Event::CaptureError {
                    error: e.to_string(),
                });
            }
        }
        drop(self.peers.take());
        let _ = self.engine_tx.send(EngineMsg::Stop);
        if let Some(t) = self.engine.take() {
            let _ = t.join();
        }
        let _ = self.enforcer_tx.send(EnforceMsg::Stop);
        if let Some(t) = self.enforcer.take() {
            let _ = t.join();
        }
    }
}
