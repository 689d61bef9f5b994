//! [`Firewall`]: the handle on one chain (and its sets) in one network namespace, and every
//! public call on it. Each call takes the state lock, reads the clock once, and hands over to
//! the engine (`engine.rs`, `commit.rs`, `repair.rs`).

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::FirewallError;
use super::ban::{Ban, Expired, RuleEntry, canonical, unix_secs};
use super::batch::{Batch, Committed};
use super::counters::{self, RuleCounter};
use super::engine::State;
use super::exec::{Exec, System};
use super::flush::Flushed;
use super::guard::{normalize_protected, overlaps};
use super::lock::{self, ChainLock};
use super::options::{FirewallOptions, Settings};
use super::repair::Repair;
use super::rule::Net;

/// A handle on our chain (and sets) in one network namespace.
///
/// Methods take `&self` (the state sits behind a mutex), so one `Firewall` can be shared by
/// threads (`Arc<Firewall>`); calls are serialized. There is one handle per chain and
/// namespace: a second [`Firewall::open`] of the same chain, in this process or another, fails
/// with [`FirewallError::ChainInUse`] until this one is dropped. Dropping it leaves every entry
/// in place: reopening adopts them.
pub struct Firewall {
    pub(crate) settings: Settings,
    pub(crate) exec: Box<dyn Exec>,
    state: Mutex<State>,
    _lock: Option<ChainLock>,
}

impl std::fmt::Debug for Firewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firewall")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Firewall {
    /// Validates `options` (reporting every problem, before anything touches the kernel),
    /// takes the chain's lock, then creates or adopts our chain in every table a hook needs
    /// (IPv4 and IPv6), each hook's jump (once, at position 1) and, for
    /// [`Backend::Ipset`](super::Backend::Ipset), the two sets. Entries already in the kernel
    /// are adopted with their remaining time: duplicates collapse to the latest expiry, expired
    /// ones are removed, rules that are not ours stay. If it fails halfway, what it created is
    /// removed again.
    ///
    /// ```no_run
    /// use autoblock_firewall::{Backend, Firewall, FirewallOptions};
    /// let fw = Firewall::open(FirewallOptions::new(Backend::Iptables, "MYAPP").hooks(["INPUT", "FORWARD"]))?;
    /// # Ok::<(), autoblock_firewall::FirewallError>(())
    /// ```
    pub fn open(options: FirewallOptions) -> Result<Firewall, FirewallError> {
        let settings = options.validate()?;
        let lock = lock::acquire(
            &settings.lock_dir,
            settings.netns.as_deref(),
            &settings.chain,
        )?;
        let exec = Box::new(System {
            netns: settings.netns.clone(),
        });
        Firewall::open_with(settings, exec, Some(lock), SystemTime::now())
    }

    /// A handle that has not read or changed the kernel (for [`Firewall::remove`]).
    pub(crate) fn unopened(
        settings: Settings,
        exec: Box<dyn Exec>,
        lock: Option<ChainLock>,
    ) -> Firewall {
        Firewall {
            state: Mutex::new(State::new(settings.guard.clone())),
            settings,
            exec,
            _lock: lock,
        }
    }

    pub(crate) fn open_with(
        settings: Settings,
        exec: Box<dyn Exec>,
        lock: Option<ChainLock>,
        now: SystemTime,
    ) -> Result<Firewall, FirewallError> {
        let fw = Firewall::unopened(settings, exec, lock);
        {
            let mut state = fw.lock();
            fw.reconcile(&mut state, unix_secs(now))?;
        }
        Ok(fw)
    }

    /// Applies a [`Batch`]: with [`Backend::Iptables`](super::Backend::Iptables) one
    /// `iptables-restore` / `ip6tables-restore` call per family that changed (bans are added
    /// to, or rewritten in, only the ban chains of their end times; a typed rule's removal or
    /// replacement rebuilds our chain), with
    /// [`Backend::Ipset`](super::Backend::Ipset) one `ipset restore` call for bans (plus one
    /// restore per family for typed rules), with
    /// [`Backend::Nftables`](super::Backend::Nftables) one `nft -f -` transaction for all.
    ///
    /// Every change is checked first: a bad one (a `/0`, loopback, a protected net, host bits,
    /// a reason with `"`, a malformed rule; see [`Refusal`](super::Refusal)) is refused and
    /// listed in [`Committed::refused`], and the rest of the batch is applied, so one bad line
    /// in a 10,000-line feed costs that line only. An `Err` means the kernel refused a call:
    /// memory keeps the failing family's previous state (with ipset, memory is brought in line
    /// with whatever the failing `ipset restore` applied before it stopped). With hooks in
    /// several tables, iptables-nft applies each table's part on its own, so the tables before
    /// the failing one may have changed: [`Firewall::check_and_repair`] compares them entry by
    /// entry with memory and puts them back.
    pub fn commit(&self, batch: Batch) -> Result<Committed, FirewallError> {
        let mut state = self.lock();
        self.commit_batch(&mut state, &batch, unix_secs(SystemTime::now()))
    }

    /// [`Firewall::commit`] at Unix time `now` (tests: end times that do not depend on the
    /// clock).
    #[cfg(test)]
    pub(crate) fn commit_at(&self, batch: Batch, now: u64) -> Result<Committed, FirewallError> {
        self.commit_batch(&mut self.lock(), &batch, now)
    }

    /// The plain bans the kernel holds now in our chain (iptables: the first hook's table) or
    /// sets, ordered by net. Read from the kernel, not from memory.
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
        let state = self.lock();
        self.read_bans(&state, unix_secs(SystemTime::now()))
    }

    /// The typed rules the kernel holds now in our chain (the first hook's table), ordered.
    pub fn list_rules(&self) -> Result<Vec<RuleEntry>, FirewallError> {
        let _state = self.lock();
        self.read_rules()
    }

    /// The kernel's packet and byte counters of our typed rules (plain bans are not listed),
    /// IPv4 then IPv6, each summed over the tables our chain is in: what a typed rule actually
    /// dropped. Read from the kernel: `iptables-save -c` (typed rules live in the iptables
    /// chain with the ipset backend too), or one terse `nft` listing of our table's `rules`
    /// chain, whose every line carries a `counter`.
    pub fn rule_counters(&self) -> Result<Vec<RuleCounter>, FirewallError> {
        let _state = self.lock();
        if self.nft() {
            return self.nft_rule_counters();
        }
        counters::read(&self.settings, self.exec.as_ref())
    }

    /// True when a live ban on `ip` or on a prefix holding it is in force. Answered from
    /// memory (what this handle committed and adopted), without listing anything; an
    /// IPv4-mapped address is looked up as IPv4.
    ///
    /// ```no_run
    /// # use autoblock_firewall::{Backend, Firewall, FirewallOptions};
    /// # use std::net::IpAddr;
    /// # let fw = Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP"))?;
    /// let peer: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
    /// if fw.is_blocked(peer) {
    ///     return Ok(()); // drop the connection early
    /// }
    /// # Ok::<(), autoblock_firewall::FirewallError>(())
    /// ```
    pub fn is_blocked(&self, ip: impl Into<IpAddr>) -> bool {
        self.ban_covering(ip).is_some()
    }

    /// The live ban covering `ip` (the longest prefix), from memory like
    /// [`is_blocked`](Self::is_blocked).
    pub fn ban_covering(&self, ip: impl Into<IpAddr>) -> Option<Ban> {
        let ip = ip.into().to_canonical();
        let now = unix_secs(SystemTime::now());
        self.lock().mirror.covering(ip, now).cloned()
    }

    /// Replaces the protected nets ([`FirewallOptions::protect`]): later blocks that overlap
    /// them are refused. Entries already in place are not touched; the bans that overlap the
    /// new list are returned, so the caller can unblock them.
    pub fn set_protected<I>(&self, nets: I) -> Vec<Ban>
    where
        I: IntoIterator,
        I::Item: Into<Net>,
    {
        let protected = normalize_protected(nets.into_iter().map(|n| canonical(n.into().0)));
        let mut state = self.lock();
        let covered = state
            .mirror
            .all()
            .filter(|b| protected.iter().any(|p| overlaps(p, &b.net)))
            .cloned()
            .collect();
        state.guard.protected = protected;
        covered
    }

    /// Removes entries that end at or before `now` and returns them. With
    /// [`Backend::Iptables`](super::Backend::Iptables) that is one chain rebuild per family
    /// that has any; with [`Backend::Ipset`](super::Backend::Ipset) and
    /// [`Backend::Nftables`](super::Backend::Nftables) the kernel has already dropped the bans
    /// and only memory is updated (typed rules still need a rebuild of their chain).
    pub fn expire_due(&self, now: SystemTime) -> Result<Expired, FirewallError> {
        let mut state = self.lock();
        self.expire(&mut state, unix_secs(now))
    }

    /// When the earliest entry ends (so the caller knows when to call
    /// [`expire_due`](Self::expire_due)); `None` without entries. Agrees to the second with
    /// [`list`](Self::list).
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
    ///     for ban in fw.expire_due(now)?.bans {
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
        let next = [state.mirror.next_expiry(), state.rules.next_expiry()];
        next.into_iter()
            .flatten()
            .min()
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
    }

    /// Number of entries held, bans and typed rules (in memory; no kernel access).
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.mirror.len() + state.rules.len()
    }

    /// True when no entries are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that our chains, jumps, rules and sets are all still there (the entries of our
    /// chains one by one; the sets by their number of entries), restores whatever is missing from memory with the remaining TTLs, and
    /// says what it repaired (empty when all was well). Meant to run every few seconds.
    ///
    /// Cost is one `iptables-save -t TABLE` per family and table, plus with ipset one
    /// `ipset list -n` and one header-only `ipset list -t` per set. Measured in a namespace
    /// here: ipset backend 0.03 s at 100k bans; iptables backend 0.07 s at 10k rules but 3.3 s
    /// at 100k (the kernel dump of the chain dominates), so keep iptables for small ban lists.
    /// With ipset, a set entry replaced by another is not detected (counts only).
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

    /// Removes what this firewall created: the jumps, our rules, the sets, and our chain,
    /// unless rules that are not ours are in it: then the chain stays, holding only those (no
    /// longer jumped to), so nothing of yours is lost. Other chains, rules and sets are not
    /// touched. To stop without lifting the entries, drop the `Firewall` instead.
    ///
    /// Every table is read first: one that `iptables-save` cannot show whole
    /// ([`FirewallError::UnreadableTable`]) stops the flush before any change. Afterwards the
    /// kernel is read again; anything of ours still there is
    /// [`FirewallError::FlushIncomplete`] (which says what was removed before). [`Flushed`]
    /// says what was removed.
    ///
    /// ```no_run
    /// # use autoblock_firewall::{Backend, Firewall, FirewallOptions};
    /// let flushed = Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP"))?.flush()?;
    /// println!("{flushed}");
    /// # Ok::<(), autoblock_firewall::FirewallError>(())
    /// ```
    pub fn flush(self) -> Result<Flushed, FirewallError> {
        let mut state = self.lock();
        self.remove_everything(&mut state)
    }

    /// Removes what a firewall with `options` created, like [`flush`](Self::flush), without
    /// opening it first: nothing is created or adopted on the way, and [`Flushed`] reports only
    /// what was there. Takes the chain's lock like [`open`](Self::open) (a running handle makes
    /// it fail with [`FirewallError::ChainInUse`]).
    ///
    /// ```no_run
    /// # use autoblock_firewall::{Backend, Firewall, FirewallOptions};
    /// let flushed = Firewall::remove(FirewallOptions::new(Backend::Ipset, "MYAPP"))?;
    /// if flushed.is_empty() {
    ///     println!("nothing of MYAPP's was there");
    /// }
    /// # Ok::<(), autoblock_firewall::FirewallError>(())
    /// ```
    pub fn remove(options: FirewallOptions) -> Result<Flushed, FirewallError> {
        let settings = options.validate()?;
        let lock = lock::acquire(
            &settings.lock_dir,
            settings.netns.as_deref(),
            &settings.chain,
        )?;
        let exec = Box::new(System {
            netns: settings.netns.clone(),
        });
        Firewall::unopened(settings, exec, Some(lock)).flush()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the mirror possibly stale, never unsafe;
        // `check_and_repair` brings the kernel back in line.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
