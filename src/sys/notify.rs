//! The service manager's view of the daemon (`Type=notify`): `READY=1` once it protects the
//! host, `STOPPING=1` when it begins to stop, and a one-line `STATUS=` for `systemctl status`,
//! through the `sd-notify` crate. Without `NOTIFY_SOCKET` (not under systemd) every call does
//! nothing; a failure to notify is logged, never fatal.

use sd_notify::NotifyState;

/// Set-up is done: the firewall is open, state restored, captures running.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The daemon begins to stop.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// What `systemctl status` shows as the daemon's status line.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}
