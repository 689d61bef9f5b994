//! What survives a restart besides the kernel's bans: offense history (for escalation) and
//! manual bans, as one JSON file written atomically (temp file, fsync, rename) under
//! `[state] dir`. The kernel stays the source of truth for which bans are active.

use std::io::Write;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

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

/// Loads the saved state; a missing file is an empty state. A corrupt file is moved aside
/// (kept for inspection, never silently overwritten) and reported.
pub fn load(dir: &Path) -> Result<SavedState, StateError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SavedState::default()),
        Err(source) => return Err(StateError::Read { path, source }),
    };
    match serde_json::from_str::<SavedState>(&text) {
        Ok(s) if s.version == VERSION => Ok(s),
        Ok(s) => Err(corrupt(&path, format!("unknown version {}", s.version))),
        Err(e) => Err(corrupt(&path, e.to_string())),
    }
}

fn corrupt(path: &Path, msg: String) -> StateError {
    let moved_to = path.with_extension("json.corrupt");
    let _ = std::fs::rename(path, &moved_to);
    StateError::Corrupt {
        path: path.to_path_buf(),
        msg,
        moved_to,
    }
}

/// Checks at start that `dir` can hold the state file (created if missing; a probe file
/// written, synced and removed), so an unwritable `[state] dir` is reported at once rather
/// than at the first save.
pub fn probe(dir: &Path) -> Result<(), StateError> {
    let probe = dir.join(format!(".{FILE}.probe"));
    let err = |source| StateError::Write {
        path: probe.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut f = std::fs::File::create(&probe).map_err(err)?;
    let written = f.write_all(b"probe").and_then(|()| f.sync_all());
    let _ = std::fs::remove_file(&probe);
    written.map_err(err)
}

/// Writes `state` atomically: readers see the old file or the new one, never a mix.
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
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
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
    fn probe_says_whether_the_directory_takes_a_file() {
        let dir = tempfile::tempdir().unwrap();
        probe(&dir.path().join("new")).unwrap();
        assert!(dir.path().join("new").is_dir());
        assert_eq!(
            std::fs::read_dir(dir.path().join("new")).unwrap().count(),
            0
        );
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let e = probe(&file.join("sub")).unwrap_err();
        assert!(e.to_string().starts_with("cannot write state to"), "{e}");
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("state.json.corrupt"), "{e}");
        assert!(dir.path().join("state.json.corrupt").exists());
        assert_eq!(load(dir.path()).unwrap(), SavedState::default());
    }
}
