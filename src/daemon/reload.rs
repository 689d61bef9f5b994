//! SIGHUP: load -> validate -> diff -> swap. An invalid file keeps the old config running and
//! emits `reload_failed` with every problem; a change that needs a restart is refused.

use std::path::Path;
use std::sync::mpsc::Sender;

use super::DaemonState;
use super::engine_loop::EngineMsg;
use crate::config::{self, Backend, BackendChoice, Config};
use crate::event::Event;
use crate::sys::clock::wall_now;

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
    v
}

pub fn reload(
    path: &Path,
    overrides: &Overrides,
    current: &mut Config,
    shared: &DaemonState,
    engine: &Sender<EngineMsg>,
) {
    let mut new = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            let errors: Vec<String> = match &e {
                config::ConfigError::Invalid { problems } => {
                    problems.iter().map(ToString::to_string).collect()
                }
                other => vec![other.to_string()],
            };
            shared
                .events
                .emit_now(Event::reload_failed(path.display().to_string(), errors));
            return;
        }
    };
    overrides.apply(&mut new);
    let needs = restart_needed(current, &new);
    if !needs.is_empty() {
        let errors = needs
            .iter()
            .map(|k| format!("{k} changed: this needs a restart"))
            .collect();
        shared
            .events
            .emit_now(Event::reload_failed(path.display().to_string(), errors));
        return;
    }
    shared
        .metrics
        .add_rules(new.rules.iter().map(|r| r.name.clone()));
    if engine
        .send(EngineMsg::Reload(Box::new(new.clone())))
        .is_err()
    {
        return;
    }
    shared.events.emit_now(Event::Reloaded {
        config: path.display().to_string(),
        rules: new.rules.iter().map(|r| r.name.clone()).collect(),
    });
    if let Ok(mut l) = shared.last_reload.lock() {
        *l = Some(wall_now().to_string());
    }
    *current = new;
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
}
