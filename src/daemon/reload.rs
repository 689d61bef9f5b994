//! Reload (SIGHUP or `autoblock reload`): load -> validate -> diff -> swap. An invalid file
//! keeps the old config running and emits `reload_failed` with every problem; a change that
//! needs a restart is refused. The outcome is kept for `status` and answered to `reload`.

use std::path::Path;
use std::sync::mpsc::Sender;

use super::DaemonState;
use super::engine_loop::EngineMsg;
use crate::config::{self, Backend, BackendChoice, Config};
use crate::event::Event;
use crate::sys::clock::wall_now;
use crate::sys::control::protocol::ReloadInfo;

/// What `--interface` and `--dry-run` override, applied to every loaded file alike.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub interfaces: Vec<String>,
    pub dry_run: bool,
}

impl Overrides {
    pub fn apply(&self, c: &mut Config) {
        if !self.interfaces.is_empty() {
            c.capture.interfaces = self.interfaces.clone();
        }
        c.enforce.dry_run |= self.dry_run;
    }
}

/// Keys whose change needs a restart, with a readable name.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            v.push(key);
        }
    };
    check(
        old.capture.interfaces != new.capture.interfaces,
        "capture.interfaces",
    );
    check(
        old.capture.bpf_filter != new.capture.bpf_filter,
        "capture.bpf_filter",
    );
    check(
        old.capture.snaplen != new.capture.snaplen,
        "capture.snaplen",
    );
    check(
        old.enforce.backend != new.enforce.backend,
        "enforce.backend",
    );
    check(old.enforce.chain != new.enforce.chain, "enforce.chain");
    check(old.enforce.hooks != new.enforce.hooks, "enforce.hooks");
    check(
        old.enforce.priority != new.enforce.priority,
        "enforce.priority",
    );
    check(
        old.enforce.dry_run != new.enforce.dry_run,
        "enforce.dry_run",
    );
    check(
        old.enforce.check_interval != new.enforce.check_interval,
        "enforce.check_interval",
    );
    // The sets' size (maxelem) is fixed when they are created.
    check(
        new.enforce.backend == BackendChoice::Fixed(Backend::Ipset)
            && old.enforce.max_active_bans != new.enforce.max_active_bans,
        "enforce.max_active_bans (with ipset)",
    );
    check(
        new.enforce.backend == BackendChoice::Fixed(Backend::Nftables)
            && old.enforce.max_active_bans != new.enforce.max_active_bans,
        "enforce.max_active_bans (with nftables)",
    );
    check(
        new.enforce.backend == BackendChoice::Auto
            && old.enforce.max_active_bans != new.enforce.max_active_bans,
        "enforce.max_active_bans (with auto: its sets may be sized already)",
    );
    check(old.control.socket != new.control.socket, "control.socket");
    check(old.state.dir != new.state.dir, "state.dir");
    check(old.metrics.listen != new.metrics.listen, "metrics.listen");
    check(old.events.file != new.events.file, "events.file");
    // The fleet link is set up once; only `share` is read again (by the engine thread).
    let (o, n) = (&old.cluster, &new.cluster);
    check(o.servers != n.servers, "cluster.servers");
    check(o.name != n.name, "cluster.name");
    check(o.node != n.node, "cluster.node");
    check(o.accept != n.accept, "cluster.accept");
    check(o.credentials != n.credentials, "cluster.credentials");
    v
}

/// Who asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// SIGHUP (`kill -HUP`).
    Signal,
    /// `autoblock reload` over the control socket.
    Control,
}

impl By {
    fn as_str(self) -> &'static str {
        match self {
            By::Signal => "signal",
            By::Control => "control",
        }
    }
}

/// Load -> validate -> diff -> swap. Returns (and keeps for `status`) how it went: applied
/// with what changed, or refused with every problem (the old configuration keeps running).
pub fn reload(
    path: &Path,
    overrides: &Overrides,
    current: &mut Config,
    shared: &DaemonState,
    engine: &Sender<EngineMsg>,
    by: By,
) -> ReloadInfo {
    let outcome = apply(path, overrides, current, shared, engine);
    let info = ReloadInfo {
        at: wall_now().to_string(),
        ok: outcome.is_ok(),
        changes: outcome.as_ref().cloned().unwrap_or_default(),
        errors: outcome.err().unwrap_or_default(),
        by: by.as_str().to_owned(),
    };
    if info.ok
        && let Ok(mut l) = shared.last_reload.lock()
    {
        *l = Some(info.at.clone());
    }
    if let Ok(mut slot) = shared.reload.lock() {
        *slot = Some(info.clone());
    }
    info
}

/// The reload itself: `Ok(changes)` when the new configuration is in force, `Err(errors)`
/// when it was refused (already reported as a `reload_failed` event).
fn apply(
    path: &Path,
    overrides: &Overrides,
    current: &mut Config,
    shared: &DaemonState,
    engine: &Sender<EngineMsg>,
) -> Result<Vec<String>, Vec<String>> {
    let refuse = |errors: Vec<String>| {
        shared.events.emit_now(Event::reload_failed(
            path.display().to_string(),
            errors.clone(),
        ));
        Err(errors)
    };
    let mut new = match config::load(path) {
        Ok(c) => c,
        Err(config::ConfigError::Invalid { problems }) => {
            return refuse(problems.iter().map(ToString::to_string).collect());
        }
        Err(other) => return refuse(vec![other.to_string()]),
    };
    overrides.apply(&mut new);
    let needs = restart_needed(current, &new);
    if !needs.is_empty() {
        return refuse(
            needs
                .iter()
                .map(|k| format!("{k} changed: this needs a restart"))
                .collect(),
        );
    }
    for w in &new.warnings {
        tracing::warn!("{w}");
    }
    shared
        .metrics
        .add_rules(new.rules.iter().map(|r| r.name.clone()));
    shared
        .metrics
        .add_floods(new.floods.iter().map(|f| f.name.clone()));
    if engine
        .send(EngineMsg::Reload(Box::new(new.clone())))
        .is_err()
    {
        return Err(vec!["the engine is stopping".to_owned()]);
    }
    shared.events.emit_now(Event::Reloaded {
        config: path.display().to_string(),
        rules: new.rules.iter().map(|r| r.name.clone()).collect(),
    });
    let changes = config::diff(current, &new);
    *current = new;
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_restart_keys_are_refused() {
        let old = config::parse_str("", Path::new("a.toml")).expect("defaults");
        let mut new = old.clone();
        new.enforce.ban = std::time::Duration::from_secs(5);
        new.allow.nets.clear();
        assert!(restart_needed(&old, &new).is_empty());
        new.enforce.backend = BackendChoice::Fixed(Backend::Ipset);
        new.capture.interfaces = vec!["eth9".into()];
        assert_eq!(
            restart_needed(&old, &new),
            ["capture.interfaces", "enforce.backend"]
        );
    }

    #[test]
    fn cluster_share_changes_live_and_the_rest_of_cluster_needs_a_restart() {
        let old = config::parse_str("", Path::new("a.toml")).expect("defaults");
        let mut new = old.clone();
        new.cluster.share.manual = false;
        assert!(restart_needed(&old, &new).is_empty());
        assert_eq!(
            config::diff(&old, &new),
            ["cluster.share: rules, manual -> rules"]
        );
        new.cluster.servers = vec!["nats://127.0.0.1:4222".into()];
        new.cluster.name = "db".into();
        new.cluster.node = Some("n1".into());
        new.cluster.accept = false;
        new.cluster.credentials = Some("/etc/x.creds".into());
        assert_eq!(
            restart_needed(&old, &new),
            [
                "cluster.servers",
                "cluster.name",
                "cluster.node",
                "cluster.accept",
                "cluster.credentials"
            ]
        );
    }
}
