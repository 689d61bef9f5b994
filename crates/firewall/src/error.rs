//! [`FirewallError`]: what can go wrong opening or changing the firewall. Every error from an
//! external command keeps its command line, exit status and stderr, so an operator can rerun it.

use std::process::ExitStatus;

/// An error from [`Firewall`](super::Firewall) and its [`Batch`](super::Batch).
///
/// `Display` gives one line with everything an operator needs; the fields are there for
/// programs that react differently, e.g. to a missing binary:
///
/// ```no_run
/// use autoblock_firewall::{Backend, Firewall, FirewallError, FirewallOptions};
/// match Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP")) {
///     Ok(_fw) => { /* block, list, expire ... */ }
///     Err(FirewallError::BinaryMissing { binary, .. }) => eprintln!("please install {binary}"),
///     Err(FirewallError::CommandFailed { command, status, stderr }) => {
///         eprintln!("`{command}` exited with {status}: {stderr}")
///     }
///     Err(e) => eprintln!("{e}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// An option given to [`FirewallOptions`](super::FirewallOptions) is not valid.
    #[error("invalid firewall option: {0}")]
    InvalidOption(String),
    /// A required program (`iptables-restore`, `ipset`, `ip`, ...) is not installed or not on `PATH`.
    #[error("`{binary}` is not installed or not on PATH (running `{command}`)")]
    BinaryMissing {
        /// The program that could not be found.
        binary: String,
        /// The full command line that needed it.
        command: String,
    },
    /// The command ran but was not allowed to change the firewall (needs `CAP_NET_ADMIN`).
    #[error("permission denied: `{command}` ({status}) needs root or CAP_NET_ADMIN: {stderr}")]
    PermissionDenied {
        /// The command line, arguments joined with spaces.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// The kernel has no ipset support (module missing or not loadable).
    #[error("the kernel has no usable ipset support: `{command}` ({status}): {stderr}")]
    IpsetUnsupported {
        /// The command line, arguments joined with spaces.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// The command exited unsuccessfully for another reason.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line, arguments joined with spaces.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// The command could not be started, or its input/output could not be transferred.
    #[error("could not run `{command}`: {source}")]
    Io {
        /// The command line, arguments joined with spaces.
        command: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A set with our name exists but is not a `hash:net` set with timeout and comment support.
    #[error(
        "ipset `{name}` exists but is incompatible (want hash:net {family} with timeout and comment): {header}"
    )]
    IncompatibleSet {
        /// The set name.
        name: String,
        /// `inet` or `inet6`.
        family: &'static str,
        /// The set's `create` line as the kernel reports it.
        header: String,
    },
}
