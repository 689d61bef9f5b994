//! What survives a restart besides the kernel's bans: offense history (for escalation) and
//! manual bans, as one JSON file written atomically (temp file, fsync, rename) under
//! `[state] dir`. The kernel stays the source of truth for which bans are active.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::files::open_nofollow;
use crate::time::Timestamp;

const FILE: &str = "state.json";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct SavedState {
    pub version: u32,
    /// (target, offense count, last offense in µs since the epoch).
    pub offenses: Vec<(IpNet, u32, u64)>,
    /// Manual bans: (target, until in µs since the epoch, reason).
    pub manual_bans: Vec<(IpNet, u64, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot write state to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read state from {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is not valid ({msg}); it was moved to {moved_to} and ignored")]
    Corrupt {
        path: PathBuf,
        msg: String,
        moved_to: PathBuf,
    },
}

/// Loads the saved state; a missing file is an empty state. A corrupt file (not JSON, not
/// UTF-8, another version) is moved aside to `state.json.corrupt-<time>` (kept for inspection,
/// never overwritten) and reported: saving goes on. A state file that is a symbolic link is
/// refused and not read.
pub fn load(dir: &Path) -> Result<SavedState, StateError> {
    let path = dir.join(FILE);
    let mut bytes = Vec::new();
    let read = open_nofollow(OpenOptions::new().read(true), &path)
        .and_then(|mut f| f.read_to_end(&mut bytes));
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SavedState::default()),
        Err(source) => return Err(StateError::Read { path, source }),
    }
    match serde_json::from_slice::<SavedState>(&bytes) {
        Ok(s) if s.version == VERSION => Ok(s),
        Ok(s) => Err(corrupt(&path, format!("unknown version {}", s.version))),
        Err(e) => Err(corrupt(&path, e.to_string())),
    }
}

/// Moves the corrupt file aside under a name no earlier one has; if it cannot be moved, it is
/// a read error (saving would overwrite it).
fn corrupt(path: &Path, msg: String) -> StateError {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let stamp = Timestamp::from_unix(now).to_string();
    let mut moved_to = path.with_extension(format!("json.corrupt-{stamp}"));
    for n in 1.. {
        if !moved_to.exists() || n > 100 {
            break;
        }
        moved_to = path.with_extension(format!("json.corrupt-{stamp}.{n}"));
    }
    match std::fs::rename(path, &moved_to) {
        Ok(()) => StateError::Corrupt {
            path: path.to_path_buf(),
            msg,
            moved_to,
        },
        Err(e) => StateError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                e.kind(),
                format!("not valid ({msg}), and it cannot be moved aside: {e}"),
            ),
        },
    }
}

/// Writes `state` atomically: readers see the old file or the new one, never a mix. The temp
/// file is created new (a leftover, or a link planted there, is removed first, never written
/// through); the rename replaces `state.json` itself, even if it is a link.
pub fn save(dir: &Path, state: &SavedState) -> Result<(), StateError> {
    let path = dir.join(FILE);
    let err = |source| StateError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(".{FILE}.tmp"));
    let mut state = state.clone();
    state.version = VERSION;
    let text = serde_json::to_vec(&state).map_err(|e| err(std::io::Error::other(e)))?;
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    let mut f = open_nofollow(
        OpenOptions::new().write(true).create_new(true).mode(0o600),
        &tmp,
    )
    .map_err(err)?;
    f.write_all(&text).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_atomically_and_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), SavedState::default());
        let s = SavedState {
            version: 0,
            offenses: vec![("203.0.113.7/32".parse().unwrap(), 3, 42)],
            manual_bans: vec![("2001:db8::/64".parse().unwrap(), 99, "abuse".into())],
        };
        save(dir.path(), &s).unwrap();
        let back = load(dir.path()).unwrap();
        assert_eq!(back.offenses, s.offenses);
        assert_eq!(back.manual_bans, s.manual_bans);
        assert!(!dir.path().join(".state.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("state.json.corrupt-"), "{e}");
        assert_eq!(corrupt_files(dir.path()).len(), 1);
        assert_eq!(load(dir.path()).unwrap(), SavedState::default());
    }

    fn one_ban() -> SavedState {
        SavedState {
            version: 0,
            offenses: vec![],
            manual_bans: vec![("198.51.100.7/32".parse().unwrap(), 99, "x".into())],
        }
    }

    /// Corrupt files moved aside so far.
    fn corrupt_files(dir: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().contains("state.json.corrupt-"))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn one_byte_that_is_not_utf8_is_a_corrupt_file_moved_aside_and_saving_goes_on() {
        // Finding 8: this was a read error, and a read error turned saving off for the run.
        let dir = tempfile::tempdir().unwrap();
        let bad = b"{\"version\":1,\"offenses\":[],\"manual_bans\":[[\"10.0.0.1/32\",9,\"\xff\"]]}";
        std::fs::write(dir.path().join(FILE), bad).unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
        let moved = corrupt_files(dir.path());
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(std::fs::read(&moved[0]).unwrap(), bad, "kept as it was");
        assert!(
            e.to_string().contains(&moved[0].display().to_string()),
            "{e}"
        );
        save(dir.path(), &one_ban()).unwrap();
        assert_eq!(load(dir.path()).unwrap().manual_bans, one_ban().manual_bans);
        // A second corrupt file does not replace the first one moved aside.
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert!(load(dir.path()).is_err());
        assert_eq!(corrupt_files(dir.path()).len(), 2);
    }

    #[test]
    fn symbolic_links_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let victim = elsewhere.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // A link planted where the temp file goes: removed, never written through.
        std::os::unix::fs::symlink(&victim, dir.path().join(".state.json.tmp")).unwrap();
        save(dir.path(), &one_ban()).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(load(dir.path()).unwrap().manual_bans, one_ban().manual_bans);
        // A state file that is a link is refused with a clear error, and not read.
        std::fs::remove_file(dir.path().join(FILE)).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(FILE)).unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        // Saving replaces the link itself, never the file it points to.
        save(dir.path(), &one_ban()).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!dir.path().join(FILE).is_symlink());
    }
}
