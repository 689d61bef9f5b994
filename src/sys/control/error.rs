//! [`ControlError`]: everything that can go wrong on either side of the control socket, worded
//! for the operator who reads it (what happened, at which path, what to do).

use std::path::PathBuf;
use std::time::Duration;

use super::protocol::ProtocolError;
use crate::config::duration::Formatted;

/// Why a control request or the control server failed. Every variant names the socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No socket file, or nothing listening on it.
    #[error(
        "no autoblock daemon is running (no socket at {}); start it with {}",
        path.display(),
        if *systemd { "`sudo systemctl start autoblock` (or `autoblock run`)" } else { "`autoblock run`" }
    )]
    NoDaemon {
        /// The socket.
        path: PathBuf,
        /// systemd runs this host: the service is how the daemon is usually started.
        systemd: bool,
    },
    /// The socket is mode 0600, owned by root.
    #[error(
        "permission denied on {}: the control socket is root-only (mode 0600); run this as root, e.g. with sudo",
        path.display()
    )]
    PermissionDenied {
        /// The socket.
        path: PathBuf,
    },
    /// `serve` found a live daemon answering on the path.
    #[error("another autoblock is running (its control socket {} answers)", path.display())]
    AlreadyRunning {
        /// The socket.
        path: PathBuf,
    },
    /// `serve` refuses to delete something that is not a socket.
    #[error("{} exists and is not a socket; remove it or set [control] socket to another path", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// No answer in time.
    #[error("the daemon did not answer within {} (socket {})", Formatted(*timeout), path.display())]
    Timeout {
        /// The socket.
        path: PathBuf,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The daemon hung up without an answer.
    #[error("the daemon closed the connection without answering (socket {})", path.display())]
    Closed {
        /// The socket.
        path: PathBuf,
    },
    /// The answer is over the line limit.
    #[error("the daemon's answer is longer than {limit} bytes (socket {})", path.display())]
    TooLong {
        /// The socket.
        path: PathBuf,
        /// The line limit in bytes.
        limit: usize,
    },
    /// A socket operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "cannot bind".
        what: &'static str,
        /// The socket.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A line that is not this protocol.
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
