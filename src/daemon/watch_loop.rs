//! The firewall watch thread: follows the kernel's nf_tables change notifications
//! ([`Firewall::watch`]) and asks the enforcer for an immediate check when something of ours is
//! deleted (`nft flush ruleset`, `iptables -F`, a firewalld reload), so the damage is repaired
//! in about a second instead of at the next poll. The enforcer's poll every `check_interval`
//! stays the fallback: where the watch is refused (iptables-legacy, no `nft`) or its monitor
//! ends, nothing else changes. A monitor that ended is started again after a pause.
//!
//! The thread holds only a weak handle on the firewall between subscriptions, so the clean-up
//! at exit can take the firewall back; the monitor process dies with this thread (see
//! [`Firewall::watch`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::enforce_loop::EnforceMsg;
use crate::firewall::{Firewall, FirewallError, Watch};

/// How long one wait lasts: the thread notices a stop within this.
const WAIT: Duration = Duration::from_millis(250);
/// First pause before a failed or ended watch is started again; doubles up to [`RETRY_MAX`].
const RETRY: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The watch thread's state.
pub struct WatchLoop {
    /// The firewall whose tables are watched.
    pub fw: Weak<Firewall>,
    /// Where check requests go.
    pub enforcer: Sender<EnforceMsg>,
    /// Set when the daemon stops.
    pub stop: Arc<AtomicBool>,
    /// The polling interval, for the log lines.
    pub check_interval: Duration,
}

impl WatchLoop {
    /// Runs until [`WatchLoop::stop`] is set or the enforcer is gone.
    pub fn run(self) {
        let mut retry = RETRY;
        while !self.stopping() {
            let Some(fw) = self.fw.upgrade() else { return };
            let watch = fw.watch();
            drop(fw);
            match watch {
                Ok(w) => {
                    tracing::info!(
                        "firewall watch on: damage is repaired as soon as nf_tables reports it"
                    );
                    retry = RETRY;
                    match self.follow(&w) {
                        Some(e) => tracing::warn!(error = %e, "firewall watch ended"),
                        None => return,
                    }
                }
                Err(e) if refused(&e) => {
                    tracing::warn!(error = %e, every = ?self.check_interval, "firewall watch unavailable: damage is repaired by the periodic check");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?retry, "firewall watch failed to start; the periodic check goes on")
                }
            }
            self.sleep(retry);
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    /// Forwards every relevant change until the daemon stops (`None`) or the monitor ends.
    fn follow(&self, watch: &Watch) -> Option<FirewallError> {
        while !self.stopping() {
            match watch.wait_for_change(WAIT) {
                Ok(None) => {}
                Ok(Some(line)) => {
                    tracing::debug!(change = %line, "firewall changed: checking now");
                    if self.enforcer.send(EnforceMsg::CheckNow).is_err() {
                        return None;
                    }
                }
                Err(e) => return Some(e),
            }
        }
        None
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps `d`, waking early when the daemon stops.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping() && Instant::now() < until {
            std::thread::sleep(WAIT);
        }
    }
}

/// A refusal that will not change by trying again (iptables-legacy, a missing binary).
fn refused(e: &FirewallError) -> bool {
    matches!(
        e,
        FirewallError::InvalidOption(_) | FirewallError::BinaryMissing { .. }
    )
}
