//! Everything the daemon does before its threads start, in order: pick the interfaces, open the
//! event outputs (their writer threads), take the instance lock, make sure no other daemon
//! answers on our socket, pick the backend (`auto`: the first usable), open the firewall
//! (adopting the bans a previous run left), and restore the saved state (history, and the bans
//! the kernel lost). The result is one [`Startup`] value; nothing here starts a daemon thread.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ipnet::IpNet;

use super::DaemonState;
use super::convert::adopted_ban;
use super::restore;
use crate::config::Config;
use crate::engine::Engine;
use crate::engine::sources::SourceKey;
use crate::event::Event;
use crate::firewall::{Firewall, FirewallError, FirewallOptions};
use crate::sys::backend::{Chosen, choose, probe};
use crate::sys::clock::wall_now;
use crate::sys::control::{client, protocol};
use crate::sys::enforcer::{KernelOp, firewall_options, kernel_op, protected};
use crate::sys::events::EventLog;
use crate::sys::metrics::Metrics;
use crate::sys::notify;
use crate::sys::state::{self, SavedState, StateError};
use crate::time::Timestamp;

/// Suppressed events per second before they are summarized.
const SUPPRESSED_PER_SEC: u32 = 20;

/// What startup hands to the running daemon.
pub struct Startup {
    /// The instance lock, held until the process ends.
    pub lock: std::fs::File,
    /// When startup began (`status` uptime).
    pub started: Instant,
    /// Counters, events and state shared by every thread.
    pub shared: Arc<DaemonState>,
    /// `None` in dry-run mode.
    pub fw: Option<Arc<Firewall>>,
    /// The backend `fw` uses (what `auto` chose, and why not better); `None` in dry-run mode.
    pub backend: Option<Chosen>,
    /// The engine, with adopted bans and restored offense history.
    pub engine: Engine,
    /// Interfaces to capture on.
    pub interfaces: Vec<String>,
    /// Our own addresses at start.
    pub local: Vec<IpNet>,
    /// Bans found in the kernel and adopted.
    pub adopted: usize,
    /// Saved bans the kernel had lost, put back.
    pub restored: usize,
    /// Kernel changes decided at start (lost bans put back, protected bans lifted).
    pub initial: Vec<KernelOp>,
}

/// Runs every startup step; an error means nothing was started (the kernel may have been
/// opened, never changed).
pub fn prepare(config: &Config) -> anyhow::Result<Startup> {
    let started = Instant::now();
    let interfaces = interfaces(config)?;
    let local = host_addresses().context("cannot list the host's own addresses")?;
    let shared = Arc::new(shared_state(config, &interfaces)?);
    // One daemon per socket: an exclusive lock held for the whole run, taken before anything
    // touches the kernel (two daemons on one chain would undo each other's work).
    let lock = lock_instance(&config.control.socket)?;
    refuse_if_answered(&config.control.socket)?;
    // The kernel first: adopt what a previous run left (no gap, no duplicate).
    notify::status("starting: opening the firewall, adopting its bans");
    let (fw, backend) = if config.enforce.dry_run {
        (None, None)
    } else {
        let chosen = choose(&config.enforce, &probe).map_err(|e| anyhow::anyhow!(e))?;
        let options = firewall_options(config, chosen.backend);
        let fw = open_firewall(options.protect(protected(config, &local)))?;
        (Some(Arc::new(fw)), Some(chosen))
    };
    let mut engine = Engine::new(config, local.clone());
    // Verified peers before the first packet is counted (then refreshed by their thread).
    engine.set_peers(super::peers::gather_now());
    let saved = load_state(&shared);
    check_state_dir(&shared);
    if config.enforce.dry_run {
        // A dry run never enforces: its bans must never reach the kernel through the state
        // file, nor replace what a real run saved.
        shared.state_writable.store(false, Ordering::Relaxed);
    }
    let found = restore(&mut engine, fw.as_deref(), &saved, &shared, config)?;
    Ok(Startup {
        lock,
        started,
        shared,
        fw,
        backend,
        engine,
        interfaces,
        local,
        adopted: found.adopted,
        restored: found.restored,
        initial: found.kernel,
    })
}

/// Opens the firewall. Another daemon on the same chain (with another control socket, so the
/// instance lock did not stop it) holds the firewall library's lock on the chain: say so in
/// the daemon's words.
fn open_firewall(options: FirewallOptions) -> anyhow::Result<Firewall> {
    match Firewall::open(options) {
        Ok(fw) => Ok(fw),
        Err(FirewallError::ChainInUse { chain, holder }) => anyhow::bail!(
            "another autoblock (or another program) uses chain {chain}: {holder}; stop it \
             first, or give this one another [enforce] chain"
        ),
        Err(e) => Err(e).context("cannot set up the firewall"),
    }
}

/// `[capture] interfaces`, or the interface of the default route.
fn interfaces(config: &Config) -> anyhow::Result<Vec<String>> {
    if !config.capture.interfaces.is_empty() {
        return Ok(config.capture.interfaces.clone());
    }
    let iface = crate::sys::host::default_route_interface()
        .context("no [capture] interfaces given and no default route to pick one")?;
    Ok(vec![iface])
}

fn shared_state(config: &Config, interfaces: &[String]) -> anyhow::Result<DaemonState> {
    let events = EventLog::open(config.events.file.clone(), SUPPRESSED_PER_SEC)
        .context("cannot open the events file")?;
    let mut metrics = Metrics::new(
        interfaces.iter().cloned(),
        config.rules.iter().map(|r| r.name.clone()),
    );
    if config.cluster.enabled() {
        metrics = metrics.with_fleet();
    }
    metrics.add_floods(config.floods.iter().map(|f| f.name.clone()));
    Ok(DaemonState::new(
        Arc::new(metrics),
        events,
        config.state.dir.clone(),
    ))
}

/// Takes `<socket>.lock` exclusively (never blocking); the lock ends with the process.
fn lock_instance(socket: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = socket.with_extension("lock");
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another autoblock is running (it holds {}); stop it first",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// A daemon already answering on our socket owns the chain: touch nothing of it.
fn refuse_if_answered(socket: &Path) -> anyhow::Result<()> {
    let probe = client::request(socket, &protocol::Request::Status, Duration::from_secs(2));
    if let Ok(protocol::Response::Status(other)) = probe {
        anyhow::bail!(
            "another autoblock is running (pid {}, socket {}); stop it first",
            other.pid,
            socket.display()
        );
    }
    Ok(())
}

/// The saved state, or an empty one after a `state_error` event. A file that exists but cannot
/// be read is never overwritten (its history and manual bans are not lost to an empty save).
fn load_state(shared: &DaemonState) -> SavedState {
    match state::load(&shared.state_dir) {
        Ok(s) => s,
        Err(e) => {
            if matches!(e, StateError::Read { .. }) {
                shared.state_writable.store(false, Ordering::Relaxed);
            }
            shared.events.emit_now(Event::StateLoadFailed {
                error: e.to_string(),
                saving: matches!(e, StateError::Corrupt { .. }),
            });
            SavedState::default()
        }
    }
}

/// An unwritable `[state] dir` is reported now (a `state_error` event and a log line), not
/// at the first save minutes later; `status` and `ban` say so until a save works.
fn check_state_dir(shared: &DaemonState) {
    let error = if !shared.state_writable.load(Ordering::Relaxed) {
        Some(format!(
            "the state file in {} could not be read at start; it is not overwritten, so manual bans and offense history are not saved",
            shared.state_dir.display()
        ))
    } else {
        match state::probe(&shared.state_dir) {
            Ok(()) => return,
            Err(e) => {
                let error = format!("{e}: manual bans and offense history are not saved");
                shared.events.emit_now(Event::StateSaveFailed {
                    error: error.clone(),
                });
                Some(error)
            }
        }
    };
    if let Some(error) = &error {
        tracing::warn!("[state] dir: {error}");
    }
    if let Ok(mut slot) = shared.state_error.lock() {
        *slot = error;
    }
}

/// Puts the saved history, the kernel's bans and the saved bans the kernel lost into the
/// engine (see [`restore::plan`]). Returns what it found and the kernel changes that follow:
/// lost bans put back, and adopted bans the allowlist or our own addresses now cover lifted at
/// once (with their `unblock` events).
fn restore(
    engine: &mut Engine,
    fw: Option<&Firewall>,
    saved: &SavedState,
    shared: &DaemonState,
    config: &Config,
) -> anyhow::Result<Restored> {
    let now = wall_now();
    engine.restore_offenses(&offenses(saved));
    let kernel = match fw {
        Some(fw) => fw
            .list()
            .context("cannot read the bans already in the kernel")?
            .iter()
            .map(|b| adopted_ban(b, now, false))
            .collect(),
        None => Vec::new(),
    };
    let plan = restore::plan(kernel, &saved.bans, now, config.enforce.max_active_bans);
    for b in plan.bans {
        engine.adopt(b);
    }
    let mut lifted = Vec::new();
    engine.lift_protected(now, &mut lifted);
    let dry_run = config.enforce.dry_run;
    let mut ops: Vec<KernelOp> = plan
        .kernel
        .into_iter()
        .filter(|op| match op {
            KernelOp::Block { net, .. } => engine.bans().get(&SourceKey::from_net(*net)).is_some(),
            _ => true,
        })
        .collect();
    for d in &lifted {
        if let Some(e) = Event::decision(d, dry_run) {
            shared.events.emit(e);
        }
        ops.extend(kernel_op(d));
    }
    // Typed rules in our chain are only ever flood signatures: an earlier run that was killed
    // left them (a clean stop removes its own). This run knows nothing of their attacks and
    // detects again what still goes on; they go in the enforcer's first commit.
    if let Some(fw) = fw {
        let leftovers = fw
            .list_rules()
            .context("cannot read the typed rules already in the kernel")?;
        if !leftovers.is_empty() {
            tracing::info!(
                signatures = leftovers.len(),
                "flood signatures an earlier run left are removed"
            );
        }
        ops.extend(
            leftovers
                .into_iter()
                .map(|r| KernelOp::Unsignature { rule: r.rule }),
        );
    }
    if plan.restored > 0 {
        tracing::info!(
            restored = plan.restored,
            "bans the kernel had lost were restored from the state file"
        );
    }
    Ok(Restored {
        adopted: plan.adopted,
        restored: plan.restored,
        kernel: if fw.is_some() { ops } else { Vec::new() },
    })
}

/// The saved offense history, completed by what the saved bans say (a ban saved after the last
/// history snapshot still counts as an offense).
fn offenses(saved: &SavedState) -> Vec<(IpNet, u32, Timestamp)> {
    let mut out: Vec<(IpNet, u32, Timestamp)> = saved
        .offenses
        .iter()
        .map(|(n, c, t)| (*n, *c, Timestamp(*t)))
        .collect();
    for b in saved.bans.iter().filter(|b| !b.manual && b.since_us > 0) {
        let known = out
            .iter()
            .any(|(n, c, _)| *n == b.target && *c >= b.offense);
        if !known {
            out.retain(|(n, _, _)| *n != b.target);
            out.push((b.target, b.offense, Timestamp(b.since_us)));
        }
    }
    out
}

/// What [`restore`] found.
struct Restored {
    adopted: usize,
    restored: usize,
    kernel: Vec<KernelOp>,
}

/// The host's own addresses and loopback: what the engine treats as "us".
pub fn host_addresses() -> Result<Vec<IpNet>, crate::sys::host::HostError> {
    let mut local = crate::sys::host::local_addresses(None)?;
    local.extend(crate::sys::host::loopback());
    local.sort();
    local.dedup();
    Ok(local)
}
