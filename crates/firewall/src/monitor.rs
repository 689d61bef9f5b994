//! [`Watch`]: wakes a caller within milliseconds when someone deletes netfilter objects this
//! firewall uses, so [`Firewall::check_and_repair`] can run at once instead of at the next
//! poll. It follows the kernel's nf_tables change notifications through `nft monitor destroy`
//! (a child process whose lines a thread reads), which also carries iptables-nft changes: on
//! an nf_tables host (`iptables -V` says `nf_tables`) it serves all three backends. It cannot
//! see ipset's own sets (`ipset flush`/`destroy` are not nf_tables), nor anything done with
//! iptables-legacy: keep polling as the fallback.
//!
//! The monitor runs under `setpriv --pdeathsig KILL` (util-linux): the kernel kills it when the
//! thread that started it ends, so a `kill -9` of our process never leaves it behind (no
//! `unsafe` `prctl` of our own).
//!
//! A listening monitor costs our own large commits: the kernel builds a notification per added
//! element (or rule) for any listener. Measured with 100k elements (medians of 8 alternating
//! rounds, BENCHMARKS.md): 0.69 s without a listener, 1.04-1.16 s with one — the same whether
//! the monitor runs, is stopped (SIGSTOP) during the write, or belongs to someone else, so the
//! cost is the kernel's, and pausing the process does not help. Only unsubscribing would, and
//! subscribing again reads the whole ruleset (3-6 s at 100k bans here) with the watch blind
//! meanwhile: not worth 0.4 s on the rare 100k-element write (a repair after a flush, a bulk
//! ban).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ban_chains;
use super::exec::display;
use super::nft_render::table_name;
use super::{Backend, Firewall, FirewallError};

/// How long a burst of events may go on before [`Watch::wait_for_change`] returns anyway.
const SETTLE_MAX: Duration = Duration::from_millis(200);
/// Quiet time that ends a burst (one transaction's notifications arrive together).
const SETTLE_QUIET: Duration = Duration::from_millis(20);
/// How long [`Firewall::watch`] waits for `nft monitor` to subscribe: it first reads the whole
/// ruleset, every set element included (~2 s at 100k bans here), and misses what happens
/// before it subscribes.
const READY_LIMIT: Duration = Duration::from_secs(30);
/// First wait for a readiness marker; doubled after each miss up to [`READY_RETRY_MAX`]. Each
/// marker changes the ruleset, which restarts a dump in progress (the kernel marks it
/// interrupted), so markers must come less often than one dump takes.
const READY_RETRY: Duration = Duration::from_millis(100);
const READY_RETRY_MAX: Duration = Duration::from_secs(4);

/// A running watch on this firewall's tables; see [`Firewall::watch`]. Dropping it stops the
/// monitor process.
#[derive(Debug)]
pub struct Watch {
    child: Child,
    changes: Receiver<String>,
    reader: Option<JoinHandle<()>>,
    command: String,
}

/// What the watch reports deletions in: tables as (nft family, table name), and our chain,
/// whose private ban chains are left out (see [`relevant`]).
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub(crate) tables: Vec<(&'static str, String)>,
    pub(crate) chain: String,
}

/// The tables whose deletions matter to `fw`.
fn watched(fw: &Firewall) -> Scope {
    let tables = match fw.settings.backend {
        Backend::Nftables => vec![("inet", table_name(&fw.settings.chain))],
        Backend::Iptables | Backend::Ipset => fw
            .settings
            .tables
            .iter()
            .flat_map(|t| [("ip", t.clone()), ("ip6", t.clone())])
            .collect(),
    };
    Scope {
        tables,
        chain: fw.settings.chain.clone(),
    }
}

/// True for `delete table|chain|rule|set FAMILY TABLE ...` on a watched table, and for
/// `nft`'s own `# ERROR` lines (e.g. "We lost some netlink events!": anything may have
/// changed). Element deletions are left out: our own unblocks make them. So are deleted rules
/// and chains of `chain`'s private ban chains (`CHAIN.<hex>`, `CHAIN.bans`): only our own
/// expiries and unblocks rewrite those, and a flush of the table by someone else also deletes
/// our chain's jump to them, which is signalled. Damage to those chains alone (`iptables -F
/// CHAIN.bans`, a ban deleted by hand) is left to the periodic check.
pub(crate) fn relevant(line: &str, scope: &Scope) -> bool {
    let w: Vec<&str> = line.split_whitespace().collect();
    let ours_only = |name: &str| ban_chains::private(&scope.chain, name).is_some();
    line.starts_with("# ERROR")
        || match w.as_slice() {
            ["delete", "chain" | "rule", _, _, name, ..] if ours_only(name) => false,
            [
                "delete",
                "table" | "chain" | "rule" | "set",
                family,
                table,
                ..,
            ] => scope.tables.iter().any(|(f, t)| f == family && t == table),
            _ => false,
        }
}

/// The throwaway table whose creation and deletion (one transaction) tells us the monitor
/// is subscribed.
fn marker_table(fw: &Firewall) -> String {
    format!("{}_watch", table_name(&fw.settings.chain))
}

impl Firewall {
    /// Starts following the kernel's change notifications (`nft monitor destroy`, inside
    /// [`FirewallOptions::netns`](super::FirewallOptions::netns) if set). Use it beside a slow
    /// poll: call [`check_and_repair`](Self::check_and_repair) whenever
    /// [`Watch::wait_for_change`] says something changed, and every few seconds anyway.
    ///
    /// A change is signalled for deleted tables, chains, rules and sets in the tables this
    /// firewall uses (nftables: our table; iptables and ipset: `ip`/`ip6` tables of the hooks),
    /// whoever made it — also our own rebuilds of our chain (a typed rule's change with the
    /// iptables backend), so expect the odd spurious wake-up; the check is idempotent. Rules
    /// and chains deleted in the iptables backend's private ban chains are not signalled: our
    /// own expiries and unblocks rewrite them, and someone else's flush of the table also
    /// deletes our chain's jump to them; damage to those chains alone (`iptables -F
    /// CHAIN.bans`, one ban deleted by hand) waits for the periodic check. Needs the `nft`
    /// binary, `setpriv`
    /// (util-linux) and an nf_tables kernel; with the iptables and ipset backends, an
    /// iptables-nft host (an iptables-legacy one is refused: its changes never reach
    /// nf_tables). Returns once the monitor is subscribed (it reads the whole ruleset first:
    /// ~2 s with 100k bans, and starts over whenever the ruleset changes meanwhile, so start it
    /// before heavy commits), proven by creating and deleting a throwaway table
    /// `inet <table>_watch`; an error when that takes over 30 s.
    ///
    /// The monitor process ends when the [`Watch`] is dropped, and also — by the kernel's
    /// parent-death signal, which is per thread — when **the thread that called `watch()`**
    /// ends: call it on the thread that keeps the `Watch`. While it listens, a commit of 100k
    /// bans takes about 0.4 s longer (the kernel notifies every element; see the module's
    /// docs).
    ///
    /// ```no_run
    /// # use autoblock_firewall::{Backend, Firewall, FirewallOptions};
    /// # use std::time::Duration;
    /// # let fw = Firewall::open(FirewallOptions::new(Backend::Nftables, "MYAPP"))?;
    /// let watch = fw.watch()?;
    /// loop {
    ///     // Wakes within milliseconds of an `nft flush ruleset`; polls every 10 s otherwise.
    ///     let _changed = watch.wait_for_change(Duration::from_secs(10))?;
    ///     for repair in fw.check_and_repair()? {
    ///         eprintln!("firewall repaired: {repair}");
    ///     }
    /// #   break;
    /// }
    /// # Ok::<(), autoblock_firewall::FirewallError>(())
    /// ```
    pub fn watch(&self) -> Result<Watch, FirewallError> {
        self.check_watchable()?;
        let mut argv: Vec<&str> = Vec::new();
        if let Some(ns) = &self.settings.netns {
            argv.extend(["ip", "netns", "exec", ns.as_str()]);
        }
        // Killed by the kernel when the calling thread ends, however it ends.
        argv.extend(["setpriv", "--pdeathsig", "KILL", "--"]);
        argv.extend(["nft", "monitor", "destroy"]);
        let command = display(&argv);
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    FirewallError::BinaryMissing {
                        binary: argv[0].to_string(),
                        command: command.clone(),
                    }
                } else {
                    FirewallError::Io {
                        command: command.clone(),
                        source,
                    }
                }
            })?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(FirewallError::Io {
                command,
                source: std::io::Error::other("no stdout pipe"),
            });
        };
        let (tx, changes) = mpsc::sync_channel(1);
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let scope = watched(self);
        let marker = marker_table(self);
        let marker_line = format!("delete table inet {marker}");
        let reader = std::thread::Builder::new()
            .name("firewall-watch".into())
            .spawn(move || {
                forward(
                    BufReader::new(stdout),
                    &scope,
                    &tx,
                    Some((&marker_line, &ready_tx)),
                )
            })
            .map_err(|source| FirewallError::Io {
                command: command.clone(),
                source,
            })?;
        let watch = Watch {
            child,
            changes,
            reader: Some(reader),
            command,
        };
        self.await_subscription(&marker, &ready, &watch)?;
        Ok(watch)
    }

    /// With the iptables and ipset backends, refuses an iptables-legacy host: its changes never
    /// reach nf_tables, so a watch would stay silent while the chain is flushed.
    fn check_watchable(&self) -> Result<(), FirewallError> {
        if self.settings.backend == Backend::Nftables {
            return Ok(());
        }
        let version = self.exec.run(&["iptables", "-V"], None)?;
        if version.contains("legacy") {
            return Err(FirewallError::InvalidOption(format!(
                "watch: `iptables -V` says {:?}: iptables-legacy changes are invisible to nft monitor; poll check_and_repair instead",
                version.trim()
            )));
        }
        Ok(())
    }

    /// Creates and deletes the marker table until the monitor reports it.
    fn await_subscription(
        &self,
        marker: &str,
        ready: &Receiver<()>,
        watch: &Watch,
    ) -> Result<(), FirewallError> {
        let script = format!("add table inet {marker}\ndelete table inet {marker}\n");
        let deadline = Instant::now() + READY_LIMIT;
        let mut wait = READY_RETRY;
        while Instant::now() < deadline {
            self.exec.run(&["nft", "-f", "-"], Some(&script))?;
            match ready.recv_timeout(wait) {
                Ok(()) => return Ok(()),
                Err(RecvTimeoutError::Timeout) => wait = (wait * 2).min(READY_RETRY_MAX),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Err(FirewallError::Io {
            command: watch.command.clone(),
            source: std::io::Error::other(format!(
                "the monitor did not report a change within {}s",
                READY_LIMIT.as_secs()
            )),
        })
    }
}

/// Sends one signal per relevant line (dropped while one is pending: they coalesce), and one
/// on `ready` when `marker` is seen.
fn forward(
    lines: impl BufRead,
    scope: &Scope,
    tx: &SyncSender<String>,
    marker: Option<(&str, &SyncSender<()>)>,
) {
    for line in lines.lines() {
        let Ok(line) = line else { return };
        if let Some((m, ready)) = marker
            && line == m
        {
            let _ = ready.try_send(());
            continue;
        }
        if relevant(&line, scope) {
            match tx.try_send(line) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

impl Watch {
    /// Waits up to `timeout` for a relevant deletion; `Ok(Some(line))` with the first event
    /// line of the burst (after the burst has settled, at most 0.2 s), `Ok(None)` on timeout.
    /// An error means the monitor process ended (e.g. `nft` cannot subscribe): fall back to
    /// polling.
    pub fn wait_for_change(&self, timeout: Duration) -> Result<Option<String>, FirewallError> {
        let first = match self.changes.recv_timeout(timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => return Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(FirewallError::Io {
                    command: self.command.clone(),
                    source: std::io::Error::other("the monitor process ended"),
                });
            }
        };
        let deadline = Instant::now() + SETTLE_MAX;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.changes.recv_timeout(left.min(SETTLE_QUIET)) {
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(Some(first))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Our own child, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_deletions_in_watched_tables_count() {
        let scope = |tables: &[(&'static str, &str)]| Scope {
            tables: tables.iter().map(|(f, t)| (*f, t.to_string())).collect(),
            chain: "AUTOBLOCK".into(),
        };
        let nft = scope(&[("inet", "autoblock")]);
        assert!(relevant("delete table inet autoblock", &nft));
        assert!(relevant("delete chain inet autoblock input", &nft));
        assert!(relevant("delete rule inet autoblock input handle 6", &nft));
        assert!(relevant("delete set inet autoblock v4_32", &nft));
        assert!(!relevant(
            "delete element inet autoblock v4_32 { 10.0.0.7 timeout 2s expires 1s996ms }",
            &nft
        ));
        assert!(!relevant("delete table inet other", &nft));
        assert!(!relevant("delete rule ip filter INPUT handle 2", &nft));
        assert!(!relevant("add table inet autoblock", &nft));
        assert!(relevant("# ERROR: We lost some netlink events!", &nft));
        let ipt = scope(&[("ip", "filter"), ("ip6", "filter")]);
        assert!(relevant("delete rule ip filter INPUT handle 2", &ipt));
        assert!(relevant("delete chain ip6 filter AUTOBLOCK", &ipt));
        assert!(relevant("delete rule ip filter AUTOBLOCK handle 3", &ipt));
        assert!(!relevant("delete rule ip raw PREROUTING handle 2", &ipt));
        // Our expiries and unblocks rewrite only the private ban chains.
        assert!(!relevant(
            "delete rule ip filter AUTOBLOCK.3587bf1 handle 9",
            &ipt
        ));
        assert!(!relevant("delete chain ip6 filter AUTOBLOCK.3587bf1", &ipt));
        assert!(!relevant(
            "delete rule ip filter AUTOBLOCK.bans handle 4",
            &ipt
        ));
        assert!(relevant(
            "delete rule ip filter AUTOBLOCKX.bans handle 4",
            &ipt
        ));
        assert!(relevant(
            "delete rule ip filter OTHER.3587bf1 handle 4",
            &ipt
        ));
    }

    #[test]
    fn a_legacy_iptables_host_is_refused() {
        use crate::tests_support::{Fake, open};
        use crate::{Backend, FirewallOptions};
        let fake = std::sync::Arc::new(Fake::default());
        fake.set("iptables -V", "iptables v1.8.9 (legacy)\n");
        let fw = open(FirewallOptions::new(Backend::Ipset, "AB"), &fake, 1000);
        let e = fw.watch().unwrap_err().to_string();
        assert!(e.contains("iptables-legacy changes are invisible"), "{e}");
    }

    #[test]
    fn lines_are_forwarded_and_coalesced() {
        let text = "delete element inet ab v4_32 { 1.2.3.4 }\n\
                    delete rule inet ab input handle 6\n\
                    delete set inet ab v4_32\n\
                    delete table inet ab\n";
        let (tx, rx) = mpsc::sync_channel(1);
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let text = format!("delete table inet ab_watch\n{text}");
        forward(
            text.as_bytes(),
            &Scope {
                tables: vec![("inet", "ab".to_string())],
                chain: "AB".into(),
            },
            &tx,
            Some(("delete table inet ab_watch", &ready_tx)),
        );
        assert!(ready.try_recv().is_ok());
        assert_eq!(
            rx.try_recv().ok().as_deref(),
            Some("delete rule inet ab input handle 6")
        );
        assert!(rx.try_recv().is_err(), "coalesced into one pending signal");
    }
}
