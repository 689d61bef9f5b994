//! One handle per chain: an exclusive lock file per network namespace and chain (lowercase, as
//! the set names are), held for the life of a [`Firewall`](super::Firewall). A second open of the
//! same chain in the same namespace, from this process or another, fails at once with
//! [`FirewallError::ChainInUse`] instead of two handles rebuilding the chain from their own
//! memories and removing each other's bans.
//!
//! The namespace is identified by its inode (`/proc/self/ns/net`, or `/run/netns/NAME`), so a
//! program inside a namespace and one managing it from outside with
//! [`netns`](super::FirewallOptions::netns) see the same lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::FirewallError;

/// A held lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub(crate) struct ChainLock {
    _file: File,
}

/// The network namespace file for `netns` (this process's own when `None`).
fn netns_path(netns: Option<&str>) -> PathBuf {
    match netns {
        Some(name) => Path::new("/run/netns").join(name),
        None => PathBuf::from("/proc/self/ns/net"),
    }
}

/// The lock file for `chain` in `netns`, under `dir`.
pub(crate) fn lock_path(
    dir: &Path,
    netns: Option<&str>,
    chain: &str,
) -> Result<PathBuf, FirewallError> {
    let ns = netns_path(netns);
    let inode = std::fs::metadata(&ns)
        .map_err(|e| match netns {
            Some(name) => FirewallError::InvalidOption(format!(
                "network namespace {name:?} not found ({}: {e})",
                ns.display()
            )),
            None => FirewallError::Io {
                command: format!("stat {}", ns.display()),
                source: e,
            },
        })?
        .ino();
    Ok(dir.join(format!("net{inode}-{}.lock", chain.to_ascii_lowercase())))
}

/// Takes the lock for `chain` in `netns`, or says who holds it.
pub(crate) fn acquire(
    dir: &Path,
    netns: Option<&str>,
    chain: &str,
) -> Result<ChainLock, FirewallError> {
    let path = lock_path(dir, netns, chain)?;
    let io = |what: &str, source: std::io::Error| FirewallError::Io {
        command: format!("{what} {}", path.display()),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| io("mkdir", e))?;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o644)
        .open(&path)
        .map_err(|e| io("open", e))?;
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = holder_pid(&mut file);
                if pid == std::process::id().to_string() && started.elapsed() < OWN_LINGER {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                }
                return Err(in_use(chain, &path, &pid));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", e)),
        }
    }
    // Who holds it, for the next one's message; best effort.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(ChainLock { _file: file })
}

/// How long a lock our own process still seems to hold is waited for. A handle just dropped
/// can linger that long: a child this process is starting (any thread's `Command`) holds a
/// copy of every descriptor between its fork and its exec, and the lock with it.
const OWN_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// The process id written in the lock file by its holder ("" when unknown).
fn holder_pid(file: &mut File) -> String {
    let mut pid = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut pid);
    pid.trim().to_string()
}

/// The error for a lock that another handle holds.
fn in_use(chain: &str, path: &Path, pid: &str) -> FirewallError {
    let holder = if pid.is_empty() {
        format!("another handle holds {}", path.display())
    } else {
        format!("process {pid} holds {}", path.display())
    };
    FirewallError::ChainInUse {
        chain: chain.to_string(),
        holder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("abfw-lock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn one_handle_per_chain_whatever_the_case() {
        let d = dir("case");
        let first = acquire(&d, None, "MyApp").unwrap();
        let e = acquire(&d, None, "MYAPP").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, FirewallError::ChainInUse { .. }), "{msg}");
        assert!(
            msg.contains(&format!("process {} holds", std::process::id())),
            "{msg}"
        );
        let other = acquire(&d, None, "OTHER").unwrap();
        drop(first);
        let again = acquire(&d, None, "myapp").unwrap();
        drop((again, other));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_missing_namespace_is_named() {
        let e = acquire(&dir("ns"), Some("abfw-no-such-ns"), "X").unwrap_err();
        assert!(
            e.to_string()
                .contains("network namespace \"abfw-no-such-ns\" not found"),
            "{e}"
        );
    }
}
