//! The edge to NATS: [`start`] connects (in the background: an unreachable broker never stops
//! or slows the daemon) and spawns the publisher and consumer tasks; the [`ClusterHandle`] is
//! how the rest of the program publishes and reads the link's state.
//!
//! `publish` never waits: it hands the message to a bounded channel (a full one drops it and
//! counts). The publisher task sends in order, keeps what the broker has not confirmed, and
//! sends it again after a reconnect (the broker drops copies by message id). The consumer task
//! reads the fleet through this node's durable consumer and yields current bans of other nodes
//! on the returned channel.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{ConnectOptions, Event, ServerAddr};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::message::{BanMessage, BanNotice, MAX_MESSAGE_BYTES};
use super::status::{ClusterStatus, Stats};
use super::{FleetNames, node_from_hostname};
use crate::config::ClusterConfig;
use crate::time::Timestamp;

/// Publications waiting between `publish` and the publisher task.
const PUBLISH_CHANNEL: usize = 16_384;
/// Remote bans waiting between the consumer task and the engine.
const REMOTE_CHANNEL: usize = 4096;
/// How long a reconnect waits at most between attempts (the default grows to 4 s).
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// De-duplication window of the stream (never longer than its max age).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Why the link could not be set up. Connection problems are not errors: the link keeps
/// trying, and `status` shows them.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `[cluster] servers` is empty.
    #[error("[cluster] has no servers: sharing is off")]
    Disabled,
    /// The credentials file is missing, unreadable or not a `.creds` file.
    #[error("cannot read the NATS credentials file {}: {source}", path.display())]
    Credentials {
        /// `[cluster] credentials`.
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: std::io::Error,
    },
    /// A server URL the client refuses (`check` catches these first).
    #[error("NATS server `{url}`: {why}")]
    Server {
        /// The URL as configured.
        url: String,
        /// The client's reason.
        why: String,
    },
    /// No `[cluster] node` and no usable host name.
    #[error("cannot find this node's name: {0}")]
    Node(std::io::Error),
    /// The client could not be set up (not a connection failure: those are retried).
    #[error("cannot start the NATS client: {0}")]
    Connect(String),
}

/// What the tasks share.
pub(super) struct LinkCtx {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub names: FleetNames,
    pub stream: stream::Config,
    pub stats: Arc<Stats>,
    pub node: String,
    /// Our message ids start with this (`<node>-<boot>-`), for messages since `started`.
    pub own_ids: String,
    pub started: Timestamp,
}

impl LinkCtx {
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The fleet's stream, created when missing (a new broker, or one that lost its store).
    /// When it keeps bans for less than our `max_ban` (nodes with different settings), its max
    /// age is raised to ours: the longest wins, so no node misses a ban it could still apply.
    pub async fn ensure_stream(&self) -> Result<stream::Stream, String> {
        let why = |e: &dyn std::fmt::Display| format!("stream {}: {e}", self.names.stream);
        let stream = self
            .js
            .get_or_create_stream(self.stream.clone())
            .await
            .map_err(|e| why(&e))?;
        let current = &stream.cached_info().config;
        if current.max_age >= self.stream.max_age {
            return Ok(stream);
        }
        let mut longer = current.clone();
        longer.max_age = self.stream.max_age;
        // Best effort: the stream works as it is, only a shorter catch-up window is at stake.
        if let Err(e) = self.js.update_stream(&longer).await {
            self.stats
                .error(now(), why(&format!("cannot raise max age: {e}")));
        }
        Ok(stream)
    }
}

/// The program's side of the link. Cheap to clone; dropping the last clone stops the tasks.
#[derive(Clone)]
pub struct ClusterHandle {
    inner: Arc<Inner>,
}

struct Inner {
    fleet: String,
    node: String,
    /// `<node>-<boot>-`: with a sequence number, message ids unique across restarts.
    id_prefix: String,
    seq: AtomicU64,
    tx: mpsc::Sender<BanMessage>,
    stats: Arc<Stats>,
    client: async_nats::Client,
    shutdown: watch::Sender<bool>,
    publisher: Mutex<Option<JoinHandle<()>>>,
    consumer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// This node's name: `[cluster] node`, else the host name of this UTS namespace (characters
/// a NATS subject cannot hold become `_`).
pub fn resolve_node(config: &ClusterConfig) -> Result<String, ClusterError> {
    if let Some(node) = &config.node {
        return Ok(node.clone());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map_err(ClusterError::Node)?;
    node_from_hostname(&host).ok_or_else(|| {
        ClusterError::Node(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the host name is empty: set [cluster] node",
        ))
    })
}

/// Starts the link for `node` (see [`resolve_node`]); `max_ban` is `[enforce] max_ban`, the
/// stream's max age. Must run inside a tokio runtime. Returns at once, connected or not: the
/// client connects and reconnects in the background. The receiver yields valid, current bans
/// of other nodes (never ours); with `accept = false` it yields nothing.
pub async fn start(
    config: &ClusterConfig,
    node: &str,
    max_ban: Duration,
) -> Result<(ClusterHandle, mpsc::Receiver<BanMessage>), ClusterError> {
    if !config.enabled() {
        return Err(ClusterError::Disabled);
    }
    let servers = config
        .servers
        .iter()
        .map(|url| {
            url.parse::<ServerAddr>().map_err(|e| ClusterError::Server {
                url: url.clone(),
                why: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stats = Arc::new(Stats::default());
    let (state_tx, state_rx) = watch::channel(false);
    let client = connect_options(config, node, stats.clone(), state_tx)
        .await?
        .connect(servers)
        .await
        .map_err(|e| ClusterError::Connect(e.to_string()))?;
    let names = FleetNames::new(&config.name, node);
    let started = now();
    let id_prefix = format!("{node}-{:x}-", started.as_micros());
    let ctx = Arc::new(LinkCtx {
        js: jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .build(client.clone()),
        client,
        stream: stream_config(&names, max_ban, config.servers.len()),
        names,
        stats: stats.clone(),
        node: node.to_owned(),
        own_ids: id_prefix.clone(),
        started,
    });
    let (tx, rx) = mpsc::channel(PUBLISH_CHANNEL);
    let (remote_tx, remote_rx) = mpsc::channel(REMOTE_CHANNEL);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let publisher = tokio::spawn(super::publisher::run(
        ctx.clone(),
        rx,
        state_rx,
        shutdown_rx.clone(),
    ));
    // With accept = false the sender is dropped at once: the receiver ends, yielding nothing.
    let consumer = config
        .accept
        .then(|| tokio::spawn(super::consumer::run(ctx.clone(), remote_tx, shutdown_rx)));
    let handle = ClusterHandle {
        inner: Arc::new(Inner {
            fleet: config.name.clone(),
            node: node.to_owned(),
            id_prefix,
            seq: AtomicU64::new(0),
            tx,
            stats,
            client: ctx.client.clone(),
            shutdown,
            publisher: Mutex::new(Some(publisher)),
            consumer: Mutex::new(consumer),
        }),
    };
    Ok((handle, remote_rx))
}

impl ClusterHandle {
    /// Queues one of our decisions for the fleet. Never blocks and never waits for the broker:
    /// callable from any thread (the engine's included); a full queue drops it and counts.
    pub fn publish(&self, notice: BanNotice) {
        let i = &self.inner;
        let seq = i.seq.fetch_add(1, Relaxed);
        let m = BanMessage::new(
            format!("{}{seq}", i.id_prefix),
            i.node.clone(),
            notice.kind,
            notice.target,
            notice.until,
            notice.at,
            &notice.rule,
            notice.offense,
            notice.manual,
        );
        if i.tx.try_send(m).is_err() {
            Stats::add(&i.stats.dropped, 1);
        }
    }

    /// The link's state and counters now.
    pub fn status(&self) -> ClusterStatus {
        self.inner
            .stats
            .snapshot(&self.inner.fleet, &self.inner.node)
    }

    /// This node's name in the fleet.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Stops the link: publications still queued get up to `grace` to reach the broker, then
    /// both tasks end and the acknowledgements already made are flushed to the broker (so a
    /// restart does not get them again). Later `publish` calls are dropped (and counted).
    pub async fn close(&self, grace: Duration) {
        let started = tokio::time::Instant::now();
        let _ = self.inner.shutdown.send(true);
        let publisher = self.inner.publisher.lock().ok().and_then(|mut p| p.take());
        if let Some(mut p) = publisher
            && tokio::time::timeout(grace, &mut p).await.is_err()
        {
            p.abort();
        }
        let consumer = self.inner.consumer.lock().ok().and_then(|mut c| c.take());
        if let Some(c) = consumer {
            c.abort();
        }
        let left = grace
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(100));
        let _ = tokio::time::timeout(left, self.inner.client.flush()).await;
    }
}

async fn connect_options(
    config: &ClusterConfig,
    node: &str,
    stats: Arc<Stats>,
    state: watch::Sender<bool>,
) -> Result<ConnectOptions, ClusterError> {
    let options = ConnectOptions::new()
        .name(format!("autoblock {node}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(10))
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            on_event(&event, &stats, &state);
            async {}
        });
    match &config.credentials {
        None => Ok(options),
        Some(path) => {
            options
                .credentials_file(path)
                .await
                .map_err(|source| ClusterError::Credentials {
                    path: path.clone(),
                    source,
                })
        }
    }
}

/// 0 ms for the first retry, then 50, 100, 200, 400, 500, 500... ms.
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let shift = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(8);
    (Duration::from_millis(50) * (1 << shift)).min(MAX_RECONNECT_DELAY)
}

fn on_event(event: &Event, stats: &Stats, state: &watch::Sender<bool>) {
    match event {
        Event::Connected => {
            stats.connected.store(true, Relaxed);
            Stats::add(&stats.connects, 1);
            let _ = state.send(true);
        }
        Event::Disconnected | Event::Closed => {
            stats.connected.store(false, Relaxed);
            let _ = state.send(false);
            stats.error(now(), format!("NATS: {event}"));
        }
        Event::ServerError(_) | Event::ClientError(_) | Event::SlowConsumer(_) => {
            stats.error(now(), format!("NATS: {event}"));
        }
        Event::LameDuckMode | Event::Draining => {}
    }
}

/// The fleet's stream: file storage (it outlives a broker restart), max age `max_ban` (it holds
/// what can still be active), three replicas when three or more servers are listed.
fn stream_config(names: &FleetNames, max_ban: Duration, servers: usize) -> stream::Config {
    stream::Config {
        name: names.stream.clone(),
        subjects: vec![names.all_subjects.clone()],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        storage: stream::StorageType::File,
        max_age: max_ban,
        max_message_size: MAX_MESSAGE_BYTES as i32,
        num_replicas: if servers >= 3 { 3 } else { 1 },
        duplicate_window: DUPLICATE_WINDOW.min(max_ban),
        description: Some("autoblock: bans shared by the fleet".to_owned()),
        ..Default::default()
    }
}

/// The wall clock (this is an edge).
pub(super) fn now() -> Timestamp {
    crate::sys::clock::wall_now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_quickly_and_never_waits_long() {
        let delays: Vec<u64> = (1..=8)
            .map(|a| reconnect_delay(a).as_millis() as u64)
            .collect();
        assert_eq!(delays, [0, 50, 100, 200, 400, 500, 500, 500]);
        assert_eq!(reconnect_delay(usize::MAX), MAX_RECONNECT_DELAY);
    }

    #[test]
    fn stream_holds_what_can_still_be_active() {
        let names = FleetNames::new("web", "a");
        let c = stream_config(&names, Duration::from_secs(60), 1);
        assert_eq!(
            (c.max_age, c.duplicate_window),
            (Duration::from_secs(60), Duration::from_secs(60))
        );
        assert_eq!(c.num_replicas, 1);
        let c = stream_config(&names, Duration::from_secs(86_400), 3);
        assert_eq!((c.duplicate_window, c.num_replicas), (DUPLICATE_WINDOW, 3));
        assert_eq!(c.subjects, ["autoblock.web.bans.>"]);
    }

    /// A missing or unreadable credentials file stops the start with a clear error (before
    /// any connection attempt); so does a disabled config.
    #[tokio::test]
    async fn credentials_problems_are_start_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let garbage = dir.path().join("bad.creds");
        std::fs::write(&garbage, "not a creds file").expect("write");
        for path in [dir.path().join("missing.creds"), garbage] {
            let config = ClusterConfig {
                servers: vec!["nats://192.0.2.1:4222".into()],
                credentials: Some(path.clone()),
                ..ClusterConfig::default()
            };
            let err = start(&config, "a", Duration::from_secs(60)).await.err();
            let text = err.map(|e| e.to_string()).unwrap_or_default();
            let want = format!("cannot read the NATS credentials file {}", path.display());
            assert!(text.starts_with(&want), "{text}");
        }
        let off = start(&ClusterConfig::default(), "a", Duration::from_secs(60)).await;
        assert!(matches!(off.err(), Some(ClusterError::Disabled)));
    }

    #[test]
    fn node_name_from_config_first() {
        let config = ClusterConfig {
            node: Some("n-1".into()),
            ..ClusterConfig::default()
        };
        assert_eq!(resolve_node(&config).ok().as_deref(), Some("n-1"));
    }
}
