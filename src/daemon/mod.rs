//! `autoblock run`: the live daemon. Wiring only; each part lives in its own thread or task:
//! capture threads (one per interface, never waiting on anything but libpcap) -> the engine
//! thread (sole owner of the policy engine) -> events at once, and the enforcer thread (kernel
//! commits). tokio runs the edges: signals, the control socket, the metrics endpoint.

mod convert;
mod enforce_loop;
mod engine_loop;
mod handler;
mod monitor;
mod reload;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::Config;
use crate::engine::Engine;
use crate::firewall::Firewall;
use crate::sys::enforcer::{firewall_options, protected};
use crate::sys::events::EventSink;
use crate::sys::live::{LiveCapture, LiveOptions};
use crate::sys::metrics::Metrics;
use crate::time::Timestamp;
use convert::adopted_ban;
use enforce_loop::{EnforceLoop, EnforceMsg, wall_now};
use engine_loop::{EngineLoop, EngineMsg};

/// Capture batches waiting for the engine; beyond this, capture threads drop (and count).
const BATCH_QUEUE: usize = 1024;
/// Suppressed events per second before they are summarized.
const SUPPRESSED_PER_SEC: u32 = 20;

/// What `autoblock run` was asked to do, beyond the configuration file.
pub struct RunOptions {
    pub config_path: PathBuf,
    pub interfaces: Vec<String>,
    pub dry_run: bool,
}

/// State every thread may read: counters for `status` and metrics, and the event sink.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    events: Mutex<EventSink>,
    pub tracked_sources: AtomicU64,
    pub active_bans: AtomicU64,
    pub bans_total: AtomicU64,
    pub enforcer_errors: AtomicU64,
    pub pending: AtomicU64,
    pub state_dir: PathBuf,
    /// False when the state file exists but could not be read: it is then never overwritten
    /// (its history and manual bans are not lost to an empty save).
    pub state_writable: std::sync::atomic::AtomicBool,
    pub last_reload: Mutex<Option<String>>,
    enforcer_expected: bool,
    /// Worker threads still running (cleared when one ends, even by a panic).
    pub engine_alive: std::sync::atomic::AtomicBool,
    pub enforcer_alive: std::sync::atomic::AtomicBool,
}

/// Clears an "alive" flag when dropped: at the end of a thread, however it ends.
pub struct AliveGuard<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Shared {
    /// Writes one rendered event line.
    pub fn emit(&self, kind: &str, line: &str) {
        if let Ok(mut sink) = self.events.lock() {
            sink.emit(kind, line);
        }
    }

    /// True when an enforcer thread runs (not in dry-run mode).
    fn enforce_expected(&self) -> bool {
        self.enforcer_expected
    }

    /// Suppressed events summarized away by the rate limit, since start.
    pub fn suppressed_dropped(&self) -> u64 {
        self.events.lock().map_or(0, |s| s.dropped_suppressed())
    }

    /// A daemon event: `{"ts":..,"event":kind, ...fields}`.
    pub fn event(&self, kind: &str, fields: serde_json::Value) {
        let mut obj = serde_json::Map::new();
        obj.insert("ts".into(), json!(wall_now().to_string()));
        obj.insert("event".into(), json!(kind));
        if let serde_json::Value::Object(f) = fields {
            obj.extend(f);
        }
        self.emit(kind, &serde_json::Value::Object(obj).to_string());
    }
}

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
pub fn run(opts: RunOptions, mut config: Config) -> i32 {
    let overrides = reload::Overrides {
        interfaces: opts.interfaces.clone(),
        dry_run: opts.dry_run,
    };
    overrides.apply(&mut config);
    match start(&opts.config_path, config, overrides) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

fn start(config_path: &Path, config: Config, overrides: reload::Overrides) -> anyhow::Result<i32> {
    use anyhow::Context;
    let started = Instant::now();
    let interfaces = if config.capture.interfaces.is_empty() {
        vec![
            crate::sys::host::default_route_interface()
                .context("no [capture] interfaces given and no default route to pick one")?,
        ]
    } else {
        config.capture.interfaces.clone()
    };
    let local = host_addresses().context("cannot list the host's own addresses")?;
    let sink = EventSink::new(config.events.file.clone(), SUPPRESSED_PER_SEC)
        .context("cannot open the events file")?;
    let metrics = Arc::new(Metrics::new(
        interfaces.iter().cloned(),
        config.rules.iter().map(|r| r.name.clone()),
    ));
    let shared = Arc::new(Shared {
        metrics: metrics.clone(),
        events: Mutex::new(sink),
        tracked_sources: AtomicU64::new(0),
        active_bans: AtomicU64::new(0),
        bans_total: AtomicU64::new(0),
        enforcer_errors: AtomicU64::new(0),
        pending: AtomicU64::new(0),
        state_dir: config.state.dir.clone(),
        state_writable: std::sync::atomic::AtomicBool::new(true),
        last_reload: Mutex::new(None),
        enforcer_expected: !config.enforce.dry_run,
        engine_alive: std::sync::atomic::AtomicBool::new(true),
        enforcer_alive: std::sync::atomic::AtomicBool::new(!config.enforce.dry_run),
    });

    // One daemon per socket: an exclusive lock held for the whole run, taken before anything
    // touches the kernel (two daemons on one chain would undo each other's work).
    let _lock = lock_instance(&config.control.socket)?;
    // A daemon already answering on our socket owns the chain: touch nothing of it.
    let probe = crate::sys::control::client::request(
        &config.control.socket,
        &crate::sys::control::protocol::Request::Status,
        Duration::from_secs(2),
    );
    if let Ok(crate::sys::control::protocol::Response::Status(other)) = probe {
        anyhow::bail!(
            "another autoblock is running (pid {}, socket {}); stop it first",
            other.pid,
            config.control.socket.display()
        );
    }

    // The kernel first: adopt what a previous run left (no gap, no duplicate).
    let dry_run = config.enforce.dry_run;
    let fw = if dry_run {
        None
    } else {
        Some(Arc::new(
            Firewall::open(firewall_options(&config).protect(protected(&config, &local)))
                .context("cannot set up the firewall")?,
        ))
    };
    let now = wall_now();
    let mut engine = Engine::new(&config, local.clone());
    let saved = match crate::sys::state::load(&config.state.dir) {
        Ok(s) => s,
        Err(e) => {
            if matches!(e, crate::sys::state::StateError::Read { .. }) {
                shared
                    .state_writable
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
            shared.event(
                "state_error",
                json!({ "error": e.to_string(), "saving": matches!(e, crate::sys::state::StateError::Corrupt { .. }) }),
            );
            Default::default()
        }
    };
    let offenses: Vec<_> = saved
        .offenses
        .iter()
        .map(|(n, c, t)| (*n, *c, Timestamp(*t)))
        .collect();
    engine.restore_offenses(&offenses);
    let mut adopted = 0usize;
    if let Some(fw) = &fw {
        for b in fw
            .list()
            .context("cannot read the bans already in the kernel")?
        {
            let manual = saved.manual_bans.iter().any(|m| m.0 == b.net);
            engine.adopt(adopted_ban(&b, now, manual));
            adopted += 1;
        }
    }
    let (enf_tx, enf_rx) = mpsc::channel::<EnforceMsg>();
    // Adopted bans the allowlist or our own addresses now cover are lifted at once.
    let mut lifted = Vec::new();
    engine.lift_protected(now, &mut lifted);
    for d in lifted {
        shared.emit("unblock", &crate::event::decision_json(&d, dry_run));
        let _ = enf_tx.send(EnforceMsg::Decision(d));
    }
    // Manual bans the kernel lost (keep_on_exit = false, a flush) come back until they end.
    for (net, until, reason) in &saved.manual_bans {
        let until = Timestamp(*until);
        if until > now
            && engine
                .bans()
                .get(&crate::engine::sources::SourceKey::from_net(*net))
                .is_none()
            && let Ok(d) = engine.ban_manual(*net, Some(until.since(now)), reason, true, now)
        {
            let _ = enf_tx.send(EnforceMsg::Decision(d));
        }
    }

    // Threads: enforcer, engine, captures.
    let enforcer_thread = match &fw {
        Some(fw) => {
            let lp = EnforceLoop {
                fw: fw.clone(),
                rx: enf_rx,
                shared: shared.clone(),
                check_interval: config.enforce.check_interval,
            };
            Some(
                std::thread::Builder::new()
                    .name("enforcer".into())
                    .spawn(move || lp.run())
                    .context("cannot start the enforcer thread")?,
            )
        }
        None => None,
    };
    let (batch_tx, batch_rx) = mpsc::sync_channel(BATCH_QUEUE);
    let (msg_tx, msg_rx) = mpsc::channel::<EngineMsg>();
    let mut recycle = Vec::new();
    let mut recycle_rx = Vec::new();
    for _ in &interfaces {
        let (tx, rx) = mpsc::channel();
        recycle.push(tx);
        recycle_rx.push(rx);
    }
    let engine_loop = EngineLoop {
        engine,
        batches: batch_rx,
        recycle,
        msgs: msg_rx,
        enforcer: fw.as_ref().map(|_| enf_tx.clone()),
        shared: shared.clone(),
    };
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || engine_loop.run())
        .context("cannot start the engine thread")?;
    let live = LiveOptions {
        snaplen: config.capture.snaplen,
        filter: config.capture.bpf_filter.clone(),
        ..LiveOptions::default()
    };
    let mut captures = Vec::new();
    for (i, (iface, rx)) in interfaces.iter().zip(recycle_rx).enumerate() {
        match LiveCapture::start(iface, i, &live, batch_tx.clone(), rx) {
            Ok(c) => captures.push(c),
            Err(e) => {
                for c in captures {
                    let _ = c.stop();
                }
                let _ = msg_tx.send(EngineMsg::Stop);
                let _ = engine_thread.join();
                let _ = enf_tx.send(EnforceMsg::Stop);
                if let Some(t) = enforcer_thread {
                    let _ = t.join();
                }
                return Err(anyhow::Error::new(e).context("cannot start capturing"));
            }
        }
    }
    drop(batch_tx);
    let captures = Arc::new(Mutex::new(captures));
    shared.event(
        "started",
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "config": config_path.display().to_string(),
            "interfaces": interfaces,
            "backend": if dry_run { "none (dry run)" } else { backend_name(&config) },
            "chain": config.enforce.chain,
            "dry_run": dry_run,
            "adopted_bans": adopted,
            "local_addresses": local.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "rules": config.rules.len(),
        }),
    );

    let ctx = handler::Context {
        shared: shared.clone(),
        engine: Mutex::new(msg_tx.clone()),
        captures: captures.clone(),
        started,
        config_path: config_path.to_path_buf(),
        backend: backend_name(&config).to_string(),
        chain: config.enforce.chain.clone(),
        dry_run,
    };
    let code = run_async(config_path, config.clone(), overrides, ctx, msg_tx.clone())?;

    // Stop: captures first (nothing new), then the engine (saves state), then the enforcer
    // (commits what is staged), then the kernel clean-up if asked.
    let stop_started = Instant::now();
    let caps = std::mem::take(&mut *captures.lock().unwrap_or_else(|p| p.into_inner()));
    for c in caps {
        if let Err(e) = c.stop() {
            shared.event("capture_error", json!({ "error": e.to_string() }));
        }
    }
    let _ = msg_tx.send(EngineMsg::Stop);
    let _ = engine_thread.join();
    let _ = enf_tx.send(EnforceMsg::Stop);
    drop(enf_tx);
    if let Some(t) = enforcer_thread {
        let _ = t.join();
    }
    let mut flushed = false;
    if let Some(fw) = fw
        && !config.enforce.keep_on_exit
    {
        match Arc::try_unwrap(fw) {
            Ok(fw) => match fw.flush() {
                Ok(_) => flushed = true,
                Err(e) => shared.event("enforcer_error", json!({ "error": e.to_string() })),
            },
            Err(_) => shared.event(
                "enforcer_error",
                json!({ "error": "firewall still in use at exit; chain kept" }),
            ),
        }
    }
    shared.event(
        "stopped",
        json!({
            "kept_bans": config.enforce.keep_on_exit && !dry_run,
            "flushed": flushed,
            "stop_secs": stop_started.elapsed().as_secs_f64(),
        }),
    );
    Ok(code)
}

/// Takes `<socket>.lock` exclusively (never blocking); the lock ends with the process.
fn lock_instance(socket: &Path) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
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

/// What makes the daemon useless if it goes on: a worker thread or a capture that ended.
fn broken(shared: &Shared, captures: &Arc<Mutex<Vec<LiveCapture>>>) -> Option<String> {
    use std::sync::atomic::Ordering::Relaxed;
    if !shared.engine_alive.load(Relaxed) {
        return Some("the engine thread stopped unexpectedly".into());
    }
    if shared.enforce_expected() && !shared.enforcer_alive.load(Relaxed) {
        return Some("the enforcer thread stopped unexpectedly".into());
    }
    let caps = captures.lock().ok()?;
    caps.iter()
        .find(|c| c.is_finished())
        .map(|c| format!("the capture on {} stopped (interface gone?)", c.iface()))
}

/// The host's own addresses and loopback: what the engine treats as "us".
fn host_addresses() -> Result<Vec<ipnet::IpNet>, crate::sys::host::HostError> {
    let mut local = crate::sys::host::local_addresses(None)?;
    local.extend(crate::sys::host::loopback());
    local.sort();
    local.dedup();
    Ok(local)
}

/// The host's own addresses now (empty if they cannot be read: then nothing changes).
fn local_now() -> Vec<ipnet::IpNet> {
    host_addresses().unwrap_or_default()
}

fn backend_name(config: &Config) -> &'static str {
    config.enforce.backend.as_str()
}

/// The tokio side: control socket, metrics, signals. Returns when asked to stop.
fn run_async(
    config_path: &Path,
    config: Config,
    overrides: reload::Overrides,
    ctx: handler::Context,
    engine: mpsc::Sender<EngineMsg>,
) -> anyhow::Result<i32> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("autoblock-io")
        .build()
        .context("cannot start the async runtime")?;
    let shared = ctx.shared.clone();
    let captures = ctx.captures.clone();
    rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let handler: Arc<dyn crate::sys::control::server::ControlHandler> = Arc::new(ctx);
        let socket = config.control.socket.clone();
        let ctl_stop = stop_rx.clone();
        let control = tokio::spawn(async move {
            crate::sys::control::server::serve(&socket, handler, ctl_stop).await
        });
        let metrics_task = config.metrics.listen.map(|addr| {
            let m = shared.metrics.clone();
            let s = stop_rx.clone();
            tokio::spawn(async move { crate::sys::metrics_http::serve_metrics(addr, m, s).await })
        });
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let mut current = config;
        let mut monitor = monitor::DropMonitor::default();
        let mut local = local_now();
        let mut local_check = tokio::time::interval(Duration::from_secs(30));
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let code = loop {
            tokio::select! {
                _ = term.recv() => break 0,
                _ = int.recv() => break 0,
                _ = hup.recv() => {
                    if let Ok(mut sink) = shared.events.lock() {
                        let _ = sink.reopen();
                    }
                    reload::reload(config_path, &overrides, &mut current, &shared, &engine);
                }
                _ = local_check.tick() => {
                    // Addresses come and go (DHCP, IPv6 temporary addresses, a VIP): ours are
                    // never counted or banned, so the engine must know the current set.
                    let fresh = local_now();
                    if !fresh.is_empty() && fresh != local {
                        shared.event("local_addresses", json!({
                            "addresses": fresh.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        }));
                        let _ = engine.send(EngineMsg::SetLocal(fresh.clone()));
                        local = fresh;
                    }
                }
                _ = tick.tick() => {
                    if let Some(why) = broken(&shared, &captures) {
                        // Better a restart by the service manager than silent blindness.
                        shared.event("fatal", json!({ "error": why }));
                        eprintln!("error: {why}");
                        break 1;
                    }
                    monitor.check(&captures, &shared);
                    if let Ok(mut sink) = shared.events.lock() {
                        sink.flush_dropped(&wall_now().to_string());
                    }
                }
                res = wait_control(&control) => {
                    // The control server only ends early on a startup error.
                    if let Some(e) = res {
                        shared.event("control_error", json!({ "error": e }));
                        eprintln!("error: control socket: {e}");
                        break 1;
                    }
                }
            }
        };
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), control).await;
        if let Some(m) = metrics_task {
            let _ = tokio::time::timeout(Duration::from_secs(1), m).await;
        }
        Ok(code)
    })
}

/// Resolves when the control server task has finished with an error (never otherwise).
async fn wait_control(
    task: &tokio::task::JoinHandle<Result<(), crate::sys::control::ControlError>>,
) -> Option<String> {
    loop {
        if task.is_finished() {
            return Some("the control server stopped".to_string());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
