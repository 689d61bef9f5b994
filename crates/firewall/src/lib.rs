//! Blocking rules in the kernel, from Rust: open (or adopt) a chain and its jumps, add, change
//! and remove bans in atomic batches, read them back, expire them, repair outside damage, and
//! remove everything again. The daemon's enforcer and library users (an application that sees
//! failed logins, a WAF, an abuse feed) share this one engine.
//!
//! # The model
//!
//! - **Chain.** Everything lives in one iptables chain of your naming
//!   ([`FirewallOptions::new`]), created in IPv4 (`iptables`) and IPv6 (`ip6tables`) alike. A
//!   ban is a source net ([`IpNet`]: an address or a prefix) whose packets are dropped, with an
//!   expiry and a short reason. Rules in the chain that are not ours are kept.
//! - **Hooks.** Packets enter the chain through a jump at position 1 of each hook
//!   ([`FirewallOptions::hooks`]): `INPUT` by default, or e.g. `FORWARD` for a router, or
//!   `raw:PREROUTING` to drop before connection tracking.
//! - **Backends** ([`Backend`]). [`Backend::Iptables`]: one `DROP` rule per ban, its expiry
//!   written in the rule's comment (`autoblock until=UNIXSECS rule=REASON`); visible in
//!   `iptables -S`, but every packet walks the list, so keep it to a few thousand bans.
//!   [`Backend::Ipset`]: two `hash:net` sets (`<chain>4`, `<chain>6`, lowercase) with kernel
//!   timeouts, matched by one rule per family; lookup cost does not grow with the list, and bans
//!   end on time even when your process is gone. Pick ipset unless `ipset` is unavailable or
//!   you want bans readable as plain rules. Ipset timeouts are capped at 2,147,483 s (~24 days).
//! - **Batches.** Changes are queued on a [`Batch`] and applied by [`Batch::commit`] with one
//!   process call per family (`iptables-restore` / `ip6tables-restore`) or one `ipset restore`:
//!   10,000 bans commit in about 0.1 s (see `BENCHMARKS.md`). Within a batch the last change
//!   per net wins; blocking a net already blocked replaces its expiry and reason.
//! - **Expiry.** A ban ends at `until` ([`Ban::until`]). With ipset the kernel removes it; with
//!   iptables the rule stays until you call [`Firewall::expire_due`], ideally at
//!   [`Firewall::next_expiry`]. Either way `expire_due` keeps memory in step and tells you what
//!   ended.
//! - **Reconcile at open.** [`Firewall::open`] reads what the kernel holds and adopts it: a
//!   restarted program keeps its bans with their remaining time, duplicates collapse to the
//!   latest expiry, expired leftovers are removed, a missing or misplaced jump is fixed.
//! - **Repair.** Someone may flush the chain, destroy a set or delete a jump.
//!   [`Firewall::check_and_repair`] notices (by counts) and restores from memory; call it every
//!   few seconds if that matters to you. [`Firewall::flush`] removes all we created, and only
//!   that.
//! - **Namespaces.** [`FirewallOptions::netns`] runs every command as `ip netns exec NAME ...`:
//!   a container's firewall, or a test's.
//! - **Errors.** Commands are argument vectors with restore text on stdin, never a shell. A
//!   failing command becomes a [`FirewallError`] that keeps its command line, exit status and
//!   stderr, so an operator can rerun it. On a failed commit, the kernel and memory keep their
//!   previous state.
//! - **Dry run is yours.** There is no dry-run mode: a program that wants one decides not to
//!   call [`Batch::commit`] (a batch is inert until then).
//!
//! Invariants: the in-memory mirror holds exactly one entry per net, and after every
//! successful call it matches what the kernel holds for our chain (or set). All calls need
//! `CAP_NET_ADMIN` (root) in the target namespace.
//!
//! ```no_run
//! use autoblock_firewall::{Backend, Firewall, FirewallOptions};
//! use std::{net::IpAddr, time::{Duration, SystemTime}};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fw = Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP"))?;
//! let mut batch = fw.batch();
//! batch.block("203.0.113.7".parse::<IpAddr>()?, Duration::from_secs(600), "login-abuse");
//! batch.commit()?;
//! for ban in fw.list()? {
//!     println!("{} until {} ({})", ban.net, ban.until, ban.reason);
//! }
//! fw.expire_due(SystemTime::now())?;
//! fw.flush()?;
//! # Ok(()) }
//! ```
//!
//! Complete programs: `examples/authlog_block` (bans after N failed sshd logins in a window,
//! following the auth log) and `examples/blocklist_load` (loads and syncs an abuse feed in one
//! commit).

#![warn(missing_docs)]

mod ban;
mod batch;
mod engine;
mod error;
mod exec;
mod mirror;
mod options;
mod parse;
mod render;
mod repair;
#[cfg(test)]
pub(crate) mod tests_support;

pub use ban::{Ban, Family};
pub use batch::Batch;
pub use error::FirewallError;
/// The address/prefix type bans use (from the `ipnet` crate), re-exported for convenience.
pub use ipnet::IpNet;
pub use options::{Backend, FirewallOptions};
pub use repair::Repair;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ban::unix_secs;
use engine::State;
use exec::{Exec, System};
use options::Settings;

/// A handle on our chain (and sets) in one network namespace.
///
/// Methods take `&self` (the state sits behind a mutex), so one `Firewall` can be shared by
/// tasks; calls are serialized. Dropping it leaves every ban in place: reopening adopts them.
pub struct Firewall {
    settings: Settings,
    exec: Box<dyn Exec>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Firewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firewall")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Firewall {
    /// Validates `options`, then creates or adopts our chain in every table a hook needs (IPv4
    /// and IPv6), each hook's jump (once, at position 1) and, for [`Backend::Ipset`], the two
    /// sets. Bans already in the kernel are adopted with their remaining time: duplicates
    /// collapse to the latest expiry, expired ones are removed, rules that are not ours stay.
    ///
    /// ```no_run
    /// use autoblock_firewall::{Backend, Firewall, FirewallOptions};
    /// let fw = Firewall::open(FirewallOptions::new(Backend::Iptables, "AUTOBLOCK").hooks(["INPUT", "FORWARD"]))?;
    /// # Ok::<(), autoblock_firewall::FirewallError>(())
    /// ```
    pub fn open(options: FirewallOptions) -> Result<Firewall, FirewallError> {
        let settings = options.validate()?;
        let exec = Box::new(System {
            netns: settings.netns.clone(),
        });
        Firewall::open_with(settings, exec, SystemTime::now())
    }

    pub(crate) fn open_with(
        settings: Settings,
        exec: Box<dyn Exec>,
        now: SystemTime,
    ) -> Result<Firewall, FirewallError> {
        let fw = Firewall {
            settings,
            exec,
            state: Mutex::new(State::default()),
        };
        {
            let mut state = fw.lock();
            fw.reconcile(&mut state, unix_secs(now))?;
        }
        Ok(fw)
    }

    /// An empty batch of changes; see [`Batch`].
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            fw: self,
            ops: Vec::new(),
        }
    }

    /// The bans the kernel holds now in our chain (iptables: the first hook's table) or sets,
    /// ordered by net. Read from the kernel, not from memory.
    ///
    /// ```no_run
    /// # use autoblock_firewall::{Backend, Firewall, FirewallOptions};
    /// # use std::time::SystemTime;
    /// # let fw = Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP"))?;
    /// for ban in fw.list()?.iter().filter(|b| b.reason == "feed") {
    ///     println!("{} for {:?} more", ban.net, ban.remaining(SystemTime::now()));
    /// }
    /// # Ok::<(), autoblock_firewall::FirewallError>(())
    /// ```
    pub fn list(&self) -> Result<Vec<Ban>, FirewallError> {
        let _guard = self.lock();
        self.read_bans(unix_secs(SystemTime::now()))
    }

    /// Removes bans that end at or before `now` and returns them. With
    /// [`Backend::Iptables`] that is one chain rebuild per family that has any; with
    /// [`Backend::Ipset`] the kernel has already dropped them and only memory is updated.
    pub fn expire_due(&self, now: SystemTime) -> Result<Vec<Ban>, FirewallError> {
        let mut state = self.lock();
        self.expire(&mut state, unix_secs(now))
    }

    /// When the earliest ban ends (so the caller knows when to call
    /// [`expire_due`](Self::expire_due)); `None` without bans.
    ///
    /// A loop that keeps iptables bans on time (with ipset the kernel does it, and this only
    /// updates memory):
    ///
    /// ```no_run
    /// # use autoblock_firewall::{Backend, Firewall, FirewallOptions};
    /// # use std::time::{Duration, SystemTime};
    /// # let fw = Firewall::open(FirewallOptions::new(Backend::Iptables, "MYAPP"))?;
    /// loop {
    ///     let now = SystemTime::now();
    ///     for ban in fw.expire_due(now)? {
    ///         println!("{} ({}) ended", ban.net, ban.reason);
    ///     }
    ///     let wait = fw.next_expiry().and_then(|t| t.duration_since(now).ok());
    ///     std::thread::sleep(wait.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1)));
    /// #   break;
    /// }
    /// # Ok::<(), autoblock_firewall::FirewallError>(())
    /// ```
    pub fn next_expiry(&self) -> Option<SystemTime> {
        let state = self.lock();
        state
            .mirror
            .next_expiry()
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
    }

    /// Number of bans held (in memory; no kernel access).
    pub fn len(&self) -> usize {
        self.lock().mirror.len()
    }

    /// True when no bans are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that our chains, jumps, rules and sets are all still there (by comparing counts,
    /// not every entry), restores whatever is missing from memory with the remaining TTLs, and
    /// says what it repaired (empty when all was well). Meant to run every few seconds.
    ///
    /// Cost is one `iptables-save -t TABLE` per family and table, plus with ipset one
    /// `ipset list -n` and one header-only `ipset list -t` per set. Measured in a namespace
    /// here: ipset backend 0.03 s at 100k bans; iptables backend 0.07 s at 10k rules but 3.3 s
    /// at 100k (the kernel dump of the chain dominates), so keep iptables for small ban lists.
    /// A ban rule replaced by an equal number of other rules is not detected (counts only).
    ///
    /// ```no_run
    /// # use autoblock_firewall::{Backend, Firewall, FirewallOptions};
    /// # let fw = Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP"))?;
    /// for repair in fw.check_and_repair()? {
    ///     eprintln!("firewall repaired: {repair}");
    /// }
    /// # Ok::<(), autoblock_firewall::FirewallError>(())
    /// ```
    pub fn check_and_repair(&self) -> Result<Vec<Repair>, FirewallError> {
        let mut state = self.lock();
        self.repair(&mut state, unix_secs(SystemTime::now()))
    }

    /// Removes the jumps, chains and sets this firewall uses, and nothing else. Other rules in
    /// the hooks' chains, and other chains and sets, stay. To stop without lifting the bans,
    /// drop the `Firewall` instead.
    ///
    /// ```no_run
    /// # use autoblock_firewall::{Backend, Firewall, FirewallOptions};
    /// Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP"))?.flush()?;
    /// # Ok::<(), autoblock_firewall::FirewallError>(())
    /// ```
    pub fn flush(self) -> Result<(), FirewallError> {
        let mut state = self.lock();
        self.remove_all(&mut state)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the mirror possibly stale, never unsafe;
        // `check_and_repair` brings the kernel back in line.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn apply(&self, ops: &[batch::Op]) -> Result<(), FirewallError> {
        let mut state = self.lock();
        self.commit_ops(&mut state, ops, unix_secs(SystemTime::now()))
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod engine_tests;
