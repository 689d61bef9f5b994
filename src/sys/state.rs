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

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::files::open_nofollow;
use crate::time::Timestamp;

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
        assert!(e.to_string().contains("state.json.corrupt-"), "{e}");
        assert_eq!(corrupt_files(dir.path()).len(), 1);
        assert_eq!(load(dir.path()).unwrap(), SavedState::default());
    }

    fn one_ban() -> SavedState {
        SavedState {
            version: 0,
            offenses: vec![],
            manual_bans: vec![],
            bans: vec![SavedBan {
                target: "198.51.100.7/32".parse().unwrap(),
                until_us: 99,
                since_us: 1,
                rule: Arc::from("manual"),
                offense: 1,
                ban_secs: 60,
                manual: true,
                comment: Some(Arc::from("x")),
                origin: None,
            }],
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
        assert_eq!(load(dir.path()).unwrap().bans, one_ban().bans);
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
        assert_eq!(load(dir.path()).unwrap().bans, one_ban().bans);
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
