//! What survives a restart, a crash or a reboot: every active ban (rule or manual) with its end,
//! and the offense history (for escalation), as one JSON file written atomically (temp file,
//! fsync, rename) under `[state] dir`. At start the daemon adopts what the kernel holds and
//! puts back what the kernel lost (a reboot, a wiped firewall) while it still has time left.
//!
//! Format, version 2: `{"version":2,"offenses":[[target,count,last_us],...],"bans":[{"target":..,
//! "until_us":..,"since_us":..,"rule":..,"offense":..,"ban_secs":..,"manual":..,"comment":..,"origin":..},...]}` (`comment`: a manual ban's reason, `origin`: the
//! fleet node of a ban from the fleet, each only when set), times
//! in µs since the epoch. Version 1 files (offenses and `manual_bans` as `[target,until_us,
//! reason]`, no rule bans) still load; they are rewritten as version 2.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

const FILE: &str = "state.json";
const VERSION: u32 = 2;
/// The first format: offenses and manual bans only.
const VERSION_1: u32 = 1;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct SavedState {
    pub version: u32,
    /// (target, offense count, last offense in µs since the epoch).
    #[serde(default)]
    pub offenses: Vec<(IpNet, u32, u64)>,
    /// Version 1 only (read, never written): manual bans as (target, until in µs, reason).
    #[serde(default, skip_serializing)]
    pub manual_bans: Vec<(IpNet, u64, String)>,
    /// Every active ban.
    #[serde(default)]
    pub bans: Vec<SavedBan>,
}

/// One active ban as saved.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SavedBan {
    /// The banned address or prefix.
    pub target: IpNet,
    /// When it ends, in µs since the epoch.
    pub until_us: u64,
    /// When it started, in µs since the epoch (0: unknown, from a version 1 file).
    pub since_us: u64,
    /// The rule that fired, or the operator's reason.
    pub rule: Arc<str>,
    /// The offense number that set its length (1 = first).
    pub offense: u32,
    /// The length that offense earned (an extension pushes the end to now + this).
    pub ban_secs: u64,
    /// Set by an operator, not by a rule.
    pub manual: bool,
    /// A manual ban's reason, as the operator gave it (its `rule` is then `manual`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Arc<str>>,
    /// The fleet node whose ban it is (a later unblock from that node must still lift it);
    /// absent for a ban made here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Arc<str>>,
}

impl SavedState {
    /// A version 1 file's manual bans as bans.
    fn upgraded(mut self) -> SavedState {
        for (target, until_us, reason) in std::mem::take(&mut self.manual_bans) {
            self.bans.push(SavedBan {
                target,
                until_us,
                since_us: 0,
                rule: Arc::from(crate::sys::metrics::MANUAL),
                offense: 1,
                ban_secs: 0,
                manual: true,
                comment: Some(Arc::from(reason)),
                origin: None,
            });
        }
        self.version = VERSION;
        self
    }
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
        Ok(s) if s.version == VERSION || s.version == VERSION_1 => Ok(s.upgraded()),
        Ok(s) => Err(corrupt(&path, format!("unknown version {}", s.version))),
        Err(e) => Err(corrupt(&path, e.to_string())),
    }
}

/// Forgets the saved bans and keeps the offense history (`autoblock flush`: the bans it removed
/// must not come back at the next start). Returns how many were forgotten.
pub fn forget_bans(dir: &Path) -> Result<usize, StateError> {
    let mut state = load(dir)?;
    let n = state.bans.len();
    if n > 0 {
        state.bans.clear();
        save(dir, &state)?;
    }
    Ok(n)
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
            manual_bans: Vec::new(),
            bans: vec![ban("2001:db8::/64", true), ban("198.51.100.7/32", false)],
        };
        save(dir.path(), &s).unwrap();
        let back = load(dir.path()).unwrap();
        assert_eq!(back.version, VERSION);
        assert_eq!(back.offenses, s.offenses);
        assert_eq!(back.bans, s.bans);
        assert!(!dir.path().join(".state.json.tmp").exists());
    }

    fn ban(target: &str, manual: bool) -> SavedBan {
        SavedBan {
            target: target.parse().unwrap(),
            until_us: 1_795_568_400_000_000,
            since_us: 1_795_568_100_000_000,
            rule: Arc::from(if manual { "abuse" } else { "conn-burst" }),
            offense: 2,
            ban_secs: 300,
            manual,
            comment: None,
            origin: None,
        }
    }

    #[test]
    fn the_format_is_versioned_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let remote = SavedBan {
            origin: Some(Arc::from("web-1")),
            ..ban("203.0.113.0/24", false)
        };
        let s = SavedState {
            bans: vec![ban("198.51.100.7/32", false), remote],
            ..SavedState::default()
        };
        save(dir.path(), &s).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(
            text,
            r#"{"version":2,"offenses":[],"bans":[{"target":"198.51.100.7/32","until_us":1795568400000000,"since_us":1795568100000000,"rule":"conn-burst","offense":2,"ban_secs":300,"manual":false},{"target":"203.0.113.0/24","until_us":1795568400000000,"since_us":1795568100000000,"rule":"conn-burst","offense":2,"ban_secs":300,"manual":false,"origin":"web-1"}]}"#
        );
        assert_eq!(load(dir.path()).unwrap().bans, s.bans);
    }

    #[test]
    fn a_version_1_file_still_loads_its_manual_bans() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = r#"{"version":1,"offenses":[["203.0.113.7/32",3,42]],"manual_bans":[["2001:db8::/64",99,"abuse"]]}"#;
        std::fs::write(dir.path().join(FILE), v1).unwrap();
        let s = load(dir.path()).unwrap();
        assert_eq!(s.version, VERSION);
        assert_eq!(s.offenses, [("203.0.113.7/32".parse().unwrap(), 3, 42)]);
        assert!(s.manual_bans.is_empty());
        assert_eq!(
            s.bans,
            [SavedBan {
                target: "2001:db8::/64".parse().unwrap(),
                until_us: 99,
                since_us: 0,
                rule: Arc::from("manual"),
                offense: 1,
                ban_secs: 0,
                manual: true,
                comment: Some(Arc::from("abuse")),
                origin: None,
            }]
        );
    }

    #[test]
    fn an_unknown_version_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), r#"{"version":3}"#).unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("unknown version 3"), "{e}");
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
