//! [`ControlError`]: everything that can go wrong on either side of the control socket, worded
//! for the operator who reads it (what happened, at which path, what to do).

use std::path::PathBuf;
use std::time::Duration;

use super::protocol::ProtocolError;
use crate::config::duration::Formatted;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No socket file, or nothing listening on it.
    #[error(
        "no autoblock daemon is running (no socket at {}); start it with `autoblock run`",
        path.display()
    )]
    NoDaemon { path: PathBuf },
    /// The socket is mode 0600, owned by root.
    #[error(
        "permission denied on {}: the control socket is root-only (mode 0600); run this as root, e.g. with sudo",
        path.display()
    )]
    PermissionDenied { path: PathBuf },
    /// `serve` found a live daemon answering on the path.
    #[error("another autoblock is running (its control socket {} answers)", path.display())]
    AlreadyRunning { path: PathBuf },
    /// `serve` refuses to delete something that is not a socket.
    #[error("{} exists and is not a socket; remove it or set [control] socket to another path", path.display())]
    NotASocket { path: PathBuf },
    #[error("the daemon did not answer within {} (socket {})", Formatted(*timeout), path.display())]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("the daemon closed the connection without answering (socket {})", path.display())]
    Closed { path: PathBuf },
    #[error("the daemon's answer is longer than {limit} bytes (socket {})", path.display())]
    TooLong { path: PathBuf, limit: usize },
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "cannot bind".
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

impl ControlError {
    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        ControlError::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }
}
