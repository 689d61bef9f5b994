//! [`FirewallError`]: what can go wrong opening or changing the firewall. Every error from an
//! external command keeps its command line, exit status and stderr (and, for a restore, the
//! input line it failed on), so an operator can rerun it. `Display` is always one line.

use std::process::ExitStatus;

/// An error from [`Firewall`](super::Firewall).
///
/// `Display` gives one line with everything an operator needs; the accessors and fields are
/// there for programs that react differently, e.g. to a missing binary:
///
/// ```no_run
/// use autoblock_firewall::{Backend, Firewall, FirewallError, FirewallOptions};
/// match Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP")) {
///     Ok(_fw) => { /* block, list, expire ... */ }
///     Err(FirewallError::BinaryMissing { binary, .. }) => eprintln!("please install {binary}"),
///     Err(e) => match (e.command(), e.status(), e.stderr()) {
///         (Some(command), Some(status), Some(stderr)) => {
///             eprintln!("`{command}` exited with {status}: {stderr}")
///         }
///         _ => eprintln!("{e}"),
///     },
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// An option given to [`FirewallOptions`](super::FirewallOptions) is not valid.
    #[error("invalid firewall option: {0}")]
    InvalidOption(String),
    /// Another handle (in this process or another) manages this chain in this namespace, or a
    /// chain whose name differs only in case shares its sets.
    #[error(
        "chain {chain} is already in use ({holder}): one handle per chain; share it (Arc<Firewall>) or stop the other program"
    )]
    ChainInUse {
        /// Our chain.
        chain: String,
        /// Who holds it.
        holder: String,
    },
    /// A required program (`iptables-restore`, `ipset`, `ip`, ...) is not installed or not on `PATH`.
    #[error("`{binary}` is not installed or not on PATH (running `{command}`)")]
    BinaryMissing {
        /// The program that could not be found.
        binary: String,
        /// The full command line that needed it.
        command: String,
    },
    /// The command ran but was not allowed to change the firewall (needs `CAP_NET_ADMIN`).
    #[error(
        "permission denied: `{command}` ({status}) needs root or CAP_NET_ADMIN: {}",
        one_line(.stderr)
    )]
    PermissionDenied {
        /// The command line, arguments joined with spaces.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// The kernel has no ipset support (module missing or not loadable).
    #[error(
        "the kernel has no usable ipset support: `{command}` ({status}): {}",
        one_line(.stderr)
    )]
    IpsetUnsupported {
        /// The command line, arguments joined with spaces.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// The command exited unsuccessfully for another reason.
    #[error("`{command}` failed ({status}): {}{}", one_line(.stderr), quote_input(.input))]
    #[non_exhaustive]
    CommandFailed {
        /// The command line, arguments joined with spaces.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
        /// For a restore: the input line it names as failing, as `(number, text)`.
        input: Option<(usize, String)>,
    },
    /// The command could not be started, or its input/output could not be transferred.
    #[error("could not run `{command}`: {source}")]
    Io {
        /// The command line, arguments joined with spaces.
        command: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// `iptables-save` gave no complete view of a table we manage (an iptables-nft table holding
    /// rules added with `nft` that iptables cannot show, or output cut short). Nothing is
    /// changed in a table we cannot see: a rebuild would drop rules we cannot read, and a jump
    /// we cannot see would be added again.
    #[error(
        "cannot read the {family} {table} table (`{command}`): {detail}; refusing to change a table it cannot see (rules added with nft that iptables cannot show? see `nft list table {} {table}`)",
        nft_family(*.family)
    )]
    UnreadableTable {
        /// The command that read it.
        command: String,
        /// Which tool's tables.
        family: super::Family,
        /// The table.
        table: String,
        /// What was wrong with its output.
        detail: String,
    },
    /// [`Firewall::flush`](super::Firewall::flush) or
    /// [`Firewall::remove`](super::Firewall::remove) could not remove everything of ours.
    #[error("flush incomplete: {reason} (removed before that: {removed})")]
    FlushIncomplete {
        /// What was removed before it stopped.
        removed: Box<super::Flushed>,
        /// What went wrong, or what is still there.
        reason: String,
    },
    /// The backend cannot do what was asked (`what`).
    #[error("{what} is not supported by the {backend} backend")]
    Unsupported {
        /// What was asked.
        what: &'static str,
        /// The backend's name.
        backend: &'static str,
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

fn nft_family(family: super::Family) -> &'static str {
    match family {
        super::Family::V4 => "ip",
        super::Family::V6 => "ip6",
    }
}

/// Stderr on one line: lines joined with `; ` (a line ending in `:` with a space), usage
/// hints (`Try ...`) left out.
fn one_line(stderr: &str) -> String {
    let mut out = String::new();
    let lines = stderr.lines().map(str::trim);
    for line in lines.filter(|l| !l.is_empty() && !l.starts_with("Try `")) {
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

fn quote_input(input: &Option<(usize, String)>) -> String {
    match input {
        Some((n, text)) => format!(" (input line {n}: `{text}`)"),
        None => String::new(),
    }
}

impl FirewallError {
    /// The command line that failed, for errors from a command.
    pub fn command(&self) -> Option<&str> {
        match self {
            FirewallError::BinaryMissing { command, .. }
            | FirewallError::PermissionDenied { command, .. }
            | FirewallError::IpsetUnsupported { command, .. }
            | FirewallError::CommandFailed { command, .. }
            | FirewallError::Io { command, .. }
            | FirewallError::UnreadableTable { command, .. } => Some(command),
            _ => None,
        }
    }

    /// The command's exit status, for a command that ran and failed.
    pub fn status(&self) -> Option<ExitStatus> {
        match self {
            FirewallError::PermissionDenied { status, .. }
            | FirewallError::IpsetUnsupported { status, .. }
            | FirewallError::CommandFailed { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What the command printed on stderr, for a command that ran and failed.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            FirewallError::PermissionDenied { stderr, .. }
            | FirewallError::IpsetUnsupported { stderr, .. }
            | FirewallError::CommandFailed { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

/// The input line a failing restore names in its stderr: iptables-restore says `Error occurred
/// at line: N`, `line N failed`, or (a kernel refusal at commit, iptables-nft) a line of its
/// own `line N: CHAIN_DEL failed (...)`; ipset says `Error in line N:`.
pub(crate) fn failed_input_line(stderr: &str, input: &str) -> Option<(usize, String)> {
    let number = |after: &str| -> Option<usize> {
        let start = stderr.find(after)? + after.len();
        let digits: String = stderr[start..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let n = number("Error occurred at line:")
        .or_else(|| number("Error in line"))
        .or_else(|| number(": line"))
        .or_else(|| number("\nline"))?;
    let text = input.lines().nth(n.checked_sub(1)?)?;
    Some((n, text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    const INPUT: &str = "*filter\n:AB - [0:0]\n-A AB -s 10.0.0.1/32 -j NOPE\nCOMMIT\n";

    #[test]
    fn restore_failures_quote_the_line_on_one_line() {
        for stderr in [
            "iptables-restore v1.8.9 (nf_tables): Chain 'NOPE' does not exist\nError occurred at line: 3\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.",
            "iptables-restore: line 3 failed",
            "ipset v7.17: Error in line 3: Hash is full, cannot add more elements",
            "iptables-restore v1.8.9 (nf_tables): \nline 3: CHAIN_DEL failed (Device or resource busy): chain NOPE",
        ] {
            let input = failed_input_line(stderr, INPUT);
            assert_eq!(input, Some((3, "-A AB -s 10.0.0.1/32 -j NOPE".to_string())));
            let e = FirewallError::CommandFailed {
                command: "iptables-restore -w 5 --noflush".into(),
                status: ExitStatus::from_raw(2 << 8),
                stderr: stderr.into(),
                input,
            };
            let text = e.to_string();
            assert!(!text.contains('\n') && !text.contains("Try `"), "{text}");
            assert!(!text.contains(":;"), "{text}");
            assert!(
                text.ends_with("(input line 3: `-A AB -s 10.0.0.1/32 -j NOPE`)"),
                "{text}"
            );
            assert_eq!(e.command(), Some("iptables-restore -w 5 --noflush"));
            assert_eq!(e.status().and_then(|s| s.code()), Some(2));
            assert_eq!(e.stderr(), Some(stderr));
        }
        assert_eq!(failed_input_line("line 9 failed", INPUT), None);
        assert_eq!(failed_input_line("no number", INPUT), None);
    }

    #[test]
    fn errors_without_a_command_have_no_accessors() {
        let e = FirewallError::InvalidOption("x".into());
        assert_eq!((e.command(), e.status(), e.stderr()), (None, None, None));
    }
}
