//! The fleet link in the daemon (issue 16), when `[cluster] servers` is set: started in the
//! async runtime before the threads (an unusable configuration, such as a missing credentials
//! file, stops the start: exit 1; an unreachable broker does not, the link keeps trying); the
//! bans of other nodes forwarded to the engine thread in batches; our own decisions published
//! from the engine thread (never waiting); the link's state copied to the metrics once a
//! second; the link closed after the engine has stopped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use tokio::runtime::Runtime;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

use super::DaemonState;
use super::engine_loop::{EngineLoop, EngineMsg};
use crate::cluster::share::notice_for;
use crate::cluster::{BanMessage, ClusterHandle, ClusterStatus};
use crate::config::{Config, ShareKinds};
use crate::engine::Decision;
use crate::sys::clock::wall_now;

/// Bans of other nodes handed to the engine thread in one message, at most.
const BATCH: usize = 1024;
/// How long queued publications may take to reach the broker at exit.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How often the link's state is copied to the metrics.
const METRICS_EVERY: Duration = Duration::from_secs(1);

/// The running link and its helper tasks.
pub struct Fleet {
    /// Publishes, answers `status`; cloned into the engine thread and the control handler.
    pub handle: ClusterHandle,
    remote: Option<Receiver<BanMessage>>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the engine thread needs of the link.
#[derive(Clone)]
pub struct EngineLink {
    /// Where our decisions go.
    pub handle: ClusterHandle,
    /// `[cluster] share`, changed by a reload.
    pub share: ShareKinds,
}

/// Starts the link when `[cluster]` has servers (`None` otherwise).
pub fn start(config: &Config, rt: &Runtime) -> anyhow::Result<Option<Fleet>> {
    let c = &config.cluster;
    if !c.enabled() {
        return Ok(None);
    }
    let node = crate::cluster::resolve_node(c).context("cannot start the fleet link")?;
    let (handle, remote) = rt
        .block_on(crate::cluster::start(c, &node, config.enforce.max_ban))
        .context("cannot start the fleet link")?;
    tracing::info!(fleet = %c.name, node = %node, "fleet link started");
    Ok(Some(Fleet {
        handle,
        remote: Some(remote),
        tasks: Vec::new(),
    }))
}

impl Fleet {
    /// The engine thread's side.
    pub fn engine_link(&self, config: &Config) -> EngineLink {
        EngineLink {
            handle: self.handle.clone(),
            share: config.cluster.share,
        }
    }

    /// Starts forwarding the bans of other nodes to the engine thread, and copying the
    /// link's state to the metrics.
    pub fn run(
        &mut self,
        rt: &Runtime,
        engine: std::sync::mpsc::Sender<EngineMsg>,
        shared: Arc<DaemonState>,
    ) {
        if let Some(rx) = self.remote.take() {
            self.tasks.push(rt.spawn(forward(rx, engine)));
        }
        let handle = self.handle.clone();
        self.tasks.push(rt.spawn(async move {
            let mut every = tokio::time::interval(METRICS_EVERY);
            loop {
                every.tick().await;
                shared.metrics.set_fleet(&status(&handle, &shared));
            }
        }));
    }

    /// After the engine has stopped: queued publications get [`CLOSE_GRACE`], then the link
    /// ends (acknowledgements flushed) and so do the helper tasks.
    pub fn close(self, rt: &Runtime) {
        rt.block_on(self.handle.close(CLOSE_GRACE));
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The link's state with the engine's count of bans waiting for the rate limit.
pub fn status(handle: &ClusterHandle, shared: &DaemonState) -> ClusterStatus {
    let mut s = handle.status();
    s.waiting = shared.fleet_waiting.load(Ordering::Relaxed);
    s
}

/// Bans of other nodes -> the engine thread, in batches of what is there (never waiting for
/// more); ends when the link or the engine ends.
async fn forward(mut rx: Receiver<BanMessage>, engine: std::sync::mpsc::Sender<EngineMsg>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        if engine.send(EngineMsg::Remote(batch)).is_err() {
            return;
        }
    }
}

/// The fleet's node of a decision (`None`: made here).
fn origin_of(d: &Decision) -> Option<&str> {
    match d {
        Decision::Block(v) | Decision::Extend(v) => v.origin.as_deref(),
        Decision::Suppressed { verdict, .. } => verdict.origin.as_deref(),
        Decision::Unblock { ban, .. } => ban.origin.as_deref(),
        // Attacks and signatures stay on the node that saw them.
        Decision::Flood(_) => None,
    }
}

impl EngineLoop {
    /// Applies a batch of bans from other nodes (decisions dispatched like any other).
    pub(super) fn apply_remote(&mut self, batch: Vec<BanMessage>) {
        let now = wall_now();
        let mut out = std::mem::take(&mut self.out);
        for m in &batch {
            self.engine_mut().apply_remote(m, now, &mut out);
        }
        self.out = out;
        self.dispatch();
    }

    /// Bans held back by the fleet's rate limit, retried as it allows.
    pub(super) fn retry_fleet(&mut self) {
        if self.engine_mut().fleet_waiting() == 0 {
            return;
        }
        let mut out = std::mem::take(&mut self.out);
        self.engine_mut().retry_fleet(wall_now(), &mut out);
        self.out = out;
        self.dispatch();
    }

    /// Our decision `d` to the fleet: made here (not from the fleet), not in dry run, of a
    /// kind `[cluster] share` names. Never waits.
    pub(super) fn publish(&self, d: &Decision) {
        let Some(link) = &self.fleet else { return };
        if self.dry_run() || origin_of(d).is_some() {
            return;
        }
        if let Some(n) = notice_for(d, link.share) {
            link.handle.publish(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_from_the_fleet_are_known_by_their_origin() {
        let m = BanMessage::new(
            "a-1-1".into(),
            "a".into(),
            crate::cluster::BanKind::Block,
            "203.0.113.7/32".parse().expect("net"),
            crate::time::Timestamp::from_secs(2000),
            crate::time::Timestamp::from_secs(1000),
            "syn-flood",
            1,
            false,
        );
        let config = crate::config::parse_str("", std::path::Path::new("r.toml")).expect("ok");
        let mut e = crate::engine::Engine::new(&config, vec![]);
        let mut out = Vec::new();
        e.apply_remote(&m, crate::time::Timestamp::from_secs(1000), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(origin_of(&out[0]), Some("a"));
        let mut mine = Vec::new();
        let _ = e.unban_where(None, crate::time::Timestamp::from_secs(1001), &mut mine);
        assert_eq!(
            origin_of(&mine[0]),
            Some("a"),
            "an unban here of a fleet ban"
        );
    }
}
