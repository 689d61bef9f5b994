//! `autoblock run`: the live daemon. Wiring only, in readable steps:
//!
//! 0. [`Signals::install`], the first thing `autoblock run` does: signals are queued from
//!    then on and handled once the edge runs (no death by an early SIGHUP);
//! 1. [`startup::prepare`]: interfaces, event outputs, instance lock, second-instance probe,
//!    firewall open (adopting the kernel's bans), saved state -> one [`startup::Startup`];
//! 2. [`workers::Workers::spawn`]: the enforcer thread (kernel commits), the engine thread
//!    (sole owner of the policy engine; events leave it at once) and one capture thread per
//!    interface (never waiting on anything but libpcap);
//! 3. [`edge::run`]: tokio waits on signals, the control socket, the metrics endpoint and the
//!    end of any worker, until asked to stop or until something fatal happens;
//! 4. [`workers::Workers::stop`], then the kernel clean-up and the `stopped` event.
//!
//! Under systemd (`Type=notify`) the service manager hears `READY=1` in step 3, once the
//! control socket listens (the firewall is open, state restored, captures running, `started`
//! emitted), and `STOPPING=1` when step 4 begins.

mod answers;
mod convert;
mod edge;
mod enforce_loop;
mod engine_loop;
mod fleet;
mod floods;
mod handler;
mod monitor;
mod peers;
mod reload;
mod restore;
mod signals;
mod startup;
mod state_writer;
mod untracked;
mod watch_loop;
mod workers;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{BackendChoice, Config};
use crate::event::{Event, StartedFields};
use crate::firewall::Firewall;
use crate::sys::backend::Chosen;
use crate::sys::control::protocol::{AttackInfo, ReloadInfo, RuleStatus};
use crate::sys::events::EventLog;
use crate::sys::metrics::Metrics;
use crate::sys::notify;
pub use signals::Signals;
use startup::Startup;
use workers::{Inputs, Workers};

/// How long the last events may take to be written at exit.
const EVENTS_AT_EXIT: Duration = Duration::from_secs(2);

/// What `autoblock run` was asked to do, beyond the configuration file.
pub struct RunOptions {
    /// The configuration file (read again on SIGHUP).
    pub config_path: PathBuf,
    /// `--interface`: overrides `[capture] interfaces`.
    pub interfaces: Vec<String>,
    /// `--dry-run`: log decisions, never touch the kernel.
    pub dry_run: bool,
}

/// What every thread of the daemon may read or update: metrics, the event log, state.
pub struct DaemonState {
    /// Counters for `status` and `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Where events go.
    pub events: EventLog,
    /// Kernel changes waiting for a commit (published by the enforcer thread).
    pub pending: AtomicU64,
    /// `[state] dir`.
    pub state_dir: PathBuf,
    /// False when the state file exists but could not be read: it is then never overwritten
    /// (its history and manual bans are not lost to an empty save).
    pub state_writable: AtomicBool,
    /// When the configuration was last reloaded (RFC 3339), for `status`.
    pub last_reload: Mutex<Option<String>>,
    /// The last reload tried, applied or refused, for `status`.
    pub reload: Mutex<Option<ReloadInfo>>,
    /// The per-rule lines of `status`, published by the engine thread.
    pub rules: Mutex<Vec<RuleStatus>>,
    /// Flood attacks in progress, published by the engine thread.
    pub attacks: Mutex<Vec<AttackInfo>>,
    /// Why manual bans and offense history are not saved, while they are not (`[state] dir`
    /// not writable, found at start or by the last save).
    pub state_error: Mutex<Option<String>>,
    /// Bans from the fleet held back by the rate limit (published by the engine thread).
    pub fleet_waiting: AtomicU64,
}

impl DaemonState {
    /// Fresh state: nothing pending, state writable, never reloaded.
    pub fn new(metrics: Arc<Metrics>, events: EventLog, state_dir: PathBuf) -> DaemonState {
        DaemonState {
            metrics,
            events,
            pending: AtomicU64::new(0),
            state_dir,
            state_writable: AtomicBool::new(true),
            last_reload: Mutex::new(None),
            reload: Mutex::new(None),
            rules: Mutex::new(Vec::new()),
            attacks: Mutex::new(Vec::new()),
            state_error: Mutex::new(None),
            fleet_waiting: AtomicU64::new(0),
        }
    }
}

/// Why the async edge returned.
pub enum Exit {
    /// SIGTERM or SIGINT.
    Stop,
    /// Something the daemon cannot go on without ended (already reported as an event).
    Fatal(String),
}

/// Runs the daemon until SIGTERM/SIGINT (`signals`: installed first thing, see [`Signals`]).
/// An error means exit 1: the daemon could not start, or something fatal stopped it (after a
/// clean stop).
pub fn run(opts: RunOptions, mut config: Config, mut signals: Signals) -> anyhow::Result<()> {
    let overrides = reload::Overrides {
        interfaces: opts.interfaces,
        dry_run: opts.dry_run,
    };
    overrides.apply(&mut config);
    let config_path = opts.config_path;
    let Startup {
        lock,
        started,
        shared,
        fw,
        backend,
        engine,
        interfaces,
        local,
        adopted,
        restored,
        initial,
    } = startup::prepare(&config)?;
    // The fleet link (an unusable `[cluster]` stops the start here; an unreachable broker never
    // does).
    let mut fleet = fleet::start(&config, &signals.rt)?;
    let backend = BackendInUse::new(config.enforce.backend, backend);
    let inputs = Inputs {
        config: &config,
        engine,
        fw: fw.clone(),
        interfaces: &interfaces,
        initial,
        fleet: fleet.as_ref().map(|f| f.engine_link(&config)),
    };
    let (workers, ended) = Workers::spawn(inputs, &shared)?;
    if let Some(f) = &mut fleet {
        f.run(&signals.rt, workers.engine(), shared.clone());
    }
    shared.events.emit_now(started_event(
        &config,
        &config_path,
        (&interfaces, &local),
        &backend,
        (adopted, restored),
    ));
    let (reload_tx, reloads) = tokio::sync::mpsc::unbounded_channel();
    let handler = Arc::new(handler::Context {
        shared: shared.clone(),
        engine: Mutex::new(workers.engine()),
        reloads: reload_tx,
        captures: workers.captures(),
        started,
        config_path: config_path.clone(),
        backend: backend.name().to_string(),
        backend_config: backend.configured.as_str().to_string(),
        backend_skipped: backend.skipped(),
        chain: config.enforce.chain.clone(),
        dry_run: config.enforce.dry_run,
        fleet: fleet.as_ref().map(|f| f.handle.clone()),
    });
    let edge = edge::Edge {
        config_path,
        config: config.clone(),
        overrides,
        shared: shared.clone(),
        engine: workers.engine(),
        captures: workers.captures(),
        ended,
        handler,
        local,
        ready: ready_status(&interfaces, adopted, restored),
        reloads,
    };
    let exit = edge::run(edge, &mut signals);
    shut_down(workers, fleet, &signals, &config, fw, &shared);
    drop(lock);
    match exit? {
        Exit::Stop => Ok(()),
        Exit::Fatal(why) => Err(anyhow::anyhow!(why)),
    }
}

/// The status line systemd shows once the daemon is ready.
fn ready_status(interfaces: &[String], adopted: usize, restored: usize) -> String {
    format!(
        "watching {}; {adopted} bans adopted, {restored} restored",
        interfaces.join(", ")
    )
}

/// The stop sequence: the workers, then the fleet link (the engine's last decisions are queued;
/// they get a bounded time to go out), the kernel clean-up and `stopped`, then the outputs.
fn shut_down(
    workers: Workers,
    fleet: Option<fleet::Fleet>,
    signals: &Signals,
    config: &Config,
    fw: Option<Arc<Firewall>>,
    shared: &DaemonState,
) {
    notify::stopping("stopping");
    let stop_started = Instant::now();
    workers.stop();
    if let Some(f) = fleet {
        f.close(&signals.rt);
    }
    finish(config, fw, shared, stop_started);
    // Whatever the outputs still take, within a bound: a stalled stdout never holds up exit.
    shared.events.close(EVENTS_AT_EXIT);
}

/// After the workers stopped: the kernel clean-up if asked (`keep_on_exit = false`), then the
/// `stopped` event.
fn finish(config: &Config, fw: Option<Arc<Firewall>>, shared: &DaemonState, since: Instant) {
    let dry_run = config.enforce.dry_run;
    let mut flushed = false;
    if let Some(fw) = fw
        && !config.enforce.keep_on_exit
    {
        let error = match Arc::try_unwrap(fw) {
            Ok(fw) => fw.flush().err().map(|e| e.to_string()),
            Err(_) => Some("firewall still in use at exit; chain kept".to_string()),
        };
        match error {
            None => flushed = true,
            Some(error) => shared.events.emit_now(Event::EnforcerError { error }),
        }
    }
    shared.events.emit_now(Event::Stopped {
        kept_bans: config.enforce.keep_on_exit && !dry_run,
        flushed,
        stop_secs: since.elapsed().as_secs_f64(),
    });
}

/// The backend as configured and as chosen at start.
struct BackendInUse {
    configured: BackendChoice,
    /// `None` in dry-run mode.
    chosen: Option<Chosen>,
}

impl BackendInUse {
    fn new(configured: BackendChoice, chosen: Option<Chosen>) -> BackendInUse {
        BackendInUse { configured, chosen }
    }

    /// What `status` and `started` call the backend in use.
    fn name(&self) -> &'static str {
        self.chosen
            .as_ref()
            .map_or("none (dry run)", |c| c.backend.as_str())
    }

    fn skipped(&self) -> Vec<String> {
        self.chosen
            .as_ref()
            .map(|c| c.skipped.clone())
            .unwrap_or_default()
    }
}

fn started_event(
    config: &Config,
    config_path: &Path,
    (interfaces, local): (&[String], &[ipnet::IpNet]),
    backend: &BackendInUse,
    (adopted, restored): (usize, usize),
) -> Event {
    Event::Started(Box::new(StartedFields {
        version: env!("CARGO_PKG_VERSION"),
        pid: std::process::id(),
        config: config_path.display().to_string(),
        interfaces: interfaces.to_vec(),
        backend: backend.name(),
        chain: config.enforce.chain.clone(),
        dry_run: config.enforce.dry_run,
        adopted_bans: adopted,
        restored_bans: restored,
        local_addresses: local.iter().map(ToString::to_string).collect(),
        rules: config.rules.len(),
        backend_config: backend.configured.as_str(),
        backend_skipped: backend.skipped(),
    }))
}
