//! A recording fake for [`Exec`]: canned stdout per command line, every call kept with its
//! stdin, so engine tests can check exactly which processes a call would start.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use super::exec::Exec;
use super::{Firewall, FirewallError, FirewallOptions};

/// A ban for fixtures: `net` parsed, ending at `until` (unix seconds), for `reason`.
pub(crate) fn ban(net: &str, until: u64, reason: &str) -> super::Ban {
    super::Ban {
        net: net.parse().unwrap(),
        until,
        reason: reason.into(),
    }
}

#[derive(Default)]
pub(crate) struct Fake {
    /// Command line -> stdout to return; unknown commands print nothing (a save: an empty table).
    pub(crate) outputs: Mutex<HashMap<String, String>>,
    /// Command line -> stdouts to return first, one per call, before `outputs` applies (the
    /// kernel as a later read sees it).
    pub(crate) queued: Mutex<HashMap<String, VecDeque<String>>>,
    /// Command line -> stderr of a failure (exit status 1).
    pub(crate) failures: Mutex<HashMap<String, String>>,
    /// (command line, stdin) of every call, in order.
    pub(crate) calls: Mutex<Vec<(String, Option<String>)>>,
}

impl Fake {
    pub(crate) fn set(&self, cmd: &str, out: &str) {
        self.outputs
            .lock()
            .unwrap()
            .insert(cmd.to_string(), out.to_string());
    }

    /// `cmd` prints `out` on its next call (after earlier queued ones), then what `set` says.
    pub(crate) fn queue(&self, cmd: &str, out: &str) {
        self.queued
            .lock()
            .unwrap()
            .entry(cmd.to_string())
            .or_default()
            .push_back(out.to_string());
    }

    /// Makes `cmd` fail with `stderr`.
    pub(crate) fn fail(&self, cmd: &str, stderr: &str) {
        self.failures
            .lock()
            .unwrap()
            .insert(cmd.to_string(), stderr.to_string());
    }

    /// Calls so far that change something (reads left out), then forgets all calls.
    pub(crate) fn take_changes(&self) -> Vec<(String, Option<String>)> {
        self.take()
            .into_iter()
            .filter(|(cmd, _)| !cmd.contains("-save") && !cmd.starts_with("ipset list"))
            .collect()
    }

    /// Calls so far, then forgets them.
    pub(crate) fn take(&self) -> Vec<(String, Option<String>)> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

pub(crate) struct Shared(pub(crate) Arc<Fake>);

impl Exec for Shared {
    fn run(&self, argv: &[&str], stdin: Option<&str>) -> Result<String, FirewallError> {
        let cmd = argv.join(" ");
        self.0
            .calls
            .lock()
            .unwrap()
            .push((cmd.clone(), stdin.map(str::to_string)));
        if let Some(stderr) = self.0.failures.lock().unwrap().get(&cmd) {
            return Err(FirewallError::CommandFailed {
                command: cmd,
                status: std::os::unix::process::ExitStatusExt::from_raw(1 << 8),
                stderr: stderr.clone(),
                input: None,
            });
        }
        let queued = self
            .0
            .queued
            .lock()
            .unwrap()
            .get_mut(&cmd)
            .and_then(VecDeque::pop_front);
        let canned = queued.or_else(|| self.0.outputs.lock().unwrap().get(&cmd).cloned());
        Ok(canned.unwrap_or_else(|| empty_table(argv)))
    }
}

/// What a save of a table nobody touched prints (built-in chains left out); other commands
/// print nothing.
fn empty_table(argv: &[&str]) -> String {
    match argv {
        [save, "-t", table] if save.ends_with("-save") => format!("*{table}\nCOMMIT\n"),
        _ => String::new(),
    }
}

/// Opens `opts` against `fake` at Unix time `now`.
pub(crate) fn open(opts: FirewallOptions, fake: &Arc<Fake>, now: u64) -> Firewall {
    try_open(opts, fake, now).unwrap()
}

/// Opens `opts` against `fake` at Unix time `now`, or says why not.
pub(crate) fn try_open(
    opts: FirewallOptions,
    fake: &Arc<Fake>,
    now: u64,
) -> Result<Firewall, FirewallError> {
    let settings = opts.validate()?;
    Firewall::open_with(
        settings,
        Box::new(Shared(fake.clone())),
        None,
        UNIX_EPOCH + Duration::from_secs(now),
    )
}
