//! Everything the daemon does before its threads start, in order: pick the interfaces, open the
//! events sink, take the instance lock, make sure no other daemon answers on our socket, pick
//! the backend (`auto`: the first usable), open the firewall (adopting the bans a previous run
//! left), and restore the saved state. The
//! result is one [`Startup`] value; nothing here starts a thread.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ipnet::IpNet;

use super::DaemonState;
use super::convert::adopted_ban;
use crate::config::Config;
use crate::engine::sources::SourceKey;
use crate::engine::{Decision, Engine};
use crate::event::Event;
use crate::firewall::Firewall;
use crate::sys::backend::{Chosen, choose, probe};
use crate::sys::clock::wall_now;
use crate::sys::control::{client, protocol};
use crate::sys::enforcer::{firewall_options, protected};
use crate::sys::events::{EventLog, EventSink};
use crate::sys::metrics::Metrics;
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
    /// Kernel changes decided at start (protected bans lifted, lost manual bans restored).
    pub initial: Vec<Decision>,
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
    let (fw, backend) = if config.enforce.dry_run {
        (None, None)
    } else {
        let chosen = choose(&config.enforce, &probe).map_err(|e| anyhow::anyhow!(e))?;
        let options = firewall_options(config, chosen.backend);
        let opened = Firewall::open(options.protect(protected(config, &local)));
        let fw = opened.context("cannot set up the firewall")?;
        (Some(Arc::new(fw)), Some(chosen))
    };
    let mut engine = Engine::new(config, local.clone());
    let saved = load_state(&shared);
    let (adopted, initial) = restore(&mut engine, fw.as_deref(), &saved, &shared, config)?;
    Ok(Startup {
        lock,
        started,
        shared,
        fw,
        backend,
        engine,
        interfaces,
        local,
        adopted,
        initial,
    })
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
    let sink = EventSink::new(config.events.file.clone(), SUPPRESSED_PER_SEC)
        .context("cannot open the events file")?;
    let metrics = Metrics::new(
        interfaces.iter().cloned(),
        config.rules.iter().map(|r| r.name.clone()),
    );
    Ok(DaemonState::new(
        Arc::new(metrics),
        EventLog::new(sink),
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

/// Puts the saved history and the kernel's bans into the engine. Returns how many bans were
/// adopted and the kernel changes that follow: adopted bans the allowlist or our own addresses
/// now cover are lifted at once (with their `unblock` events), and manual bans the kernel lost
/// (`keep_on_exit = false`, a flush) come back until they end.
fn restore(
    engine: &mut Engine,
    fw: Option<&Firewall>,
    saved: &SavedState,
    shared: &DaemonState,
    config: &Config,
) -> anyhow::Result<(usize, Vec<Decision>)> {
    let now = wall_now();
    let offenses: Vec<_> = saved
        .offenses
        .iter()
        .map(|(n, c, t)| (*n, *c, Timestamp(*t)))
        .collect();
    engine.restore_offenses(&offenses);
    let mut adopted = 0usize;
    if let Some(fw) = fw {
        let bans = fw
            .list()
            .context("cannot read the bans already in the kernel")?;
        for b in bans {
            let manual = saved.manual_bans.iter().any(|m| m.0 == b.net);
            engine.adopt(adopted_ban(&b, now, manual));
            adopted += 1;
        }
    }
    let mut initial = Vec::new();
    engine.lift_protected(now, &mut initial);
    for d in &initial {
        shared
            .events
            .emit(Event::decision(d, config.enforce.dry_run));
    }
    for (net, until, reason) in &saved.manual_bans {
        let until = Timestamp(*until);
        if until > now
            && engine.bans().get(&SourceKey::from_net(*net)).is_none()
            && let Ok(d) = engine.ban_manual(*net, Some(until.since(now)), reason, true, now)
        {
            initial.push(d);
        }
    }
    Ok((adopted, initial))
}

/// The host's own addresses and loopback: what the engine treats as "us".
pub fn host_addresses() -> Result<Vec<IpNet>, crate::sys::host::HostError> {
    let mut local = crate::sys::host::local_addresses(None)?;
    local.extend(crate::sys::host::loopback());
    local.sort();
    local.dedup();
    Ok(local)
}
