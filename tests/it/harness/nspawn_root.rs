//! A minimal Debian root for the real-systemd tests, made once with `debootstrap` and cached
//! under `target/nspawn-root/` (keyed by suite and package list, so a changed list builds a new
//! one), and a throw-away copy of it per test run (an overlay mount, or a plain copy where
//! overlayfs is unavailable) so the cache stays pristine.
//!
//! The cache is built in a `.partial-PID-*` directory and renamed into place, so an interrupted
//! build never leaves a half root; run copies live in `.run-PID-*`. Either kind left behind by
//! a process that no longer exists (a killed test) is unmounted and removed at the next use.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The Debian release the container runs.
pub const SUITE: &str = "bookworm";
/// What the container needs beyond `minbase`: systemd as init, the firewall tools every backend
/// drives, libpcap, and `ps`. The .deb's dependencies are all here, so installing it needs no
/// network (the container has none).
pub const INCLUDE: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "iptables",
    "ipset",
    "nftables",
    "libpcap0.8",
    "procps",
];

/// One cache build at a time in this process (tests run in parallel threads).
static BUILD: Mutex<()> = Mutex::new(());
static NEXT_RUN: AtomicUsize = AtomicUsize::new(0);

fn base() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/nspawn-root")
}

/// FNV-1a: a stable key for the cache directory's name (std's hasher may change between
/// releases).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The cached root's path: `target/nspawn-root/<suite>-<key>`.
pub fn cache_path() -> PathBuf {
    let key = fnv1a(&format!("minbase {SUITE} {}", INCLUDE.join(",")));
    base().join(format!("{SUITE}-{key:016x}"))
}

/// The cached root, built first when absent (about 40-90 s and ~260 MB; needs the Debian
/// mirror). Panics with the end of debootstrap's log when the build fails.
pub fn cached_root() -> PathBuf {
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let root = cache_path();
    std::fs::create_dir_all(base()).expect("create target/nspawn-root");
    remove_stale();
    if root.join("usr/lib/systemd/systemd").is_file() {
        return root;
    }
    let partial = Tree(base().join(format!(".partial-{}-build", std::process::id())));
    partial.remove();
    let log = base().join("debootstrap.log");
    let log_file = std::fs::File::create(&log).expect("create debootstrap.log");
    let mirror = debian_mirror();
    eprintln!(
        "building the Debian root for the systemd tests (once): debootstrap {SUITE} from {mirror}"
    );
    let status = Command::new("timeout")
        .args(["900", "nice", "-n", "5", "debootstrap", "--variant=minbase"])
        .arg(format!("--include={}", INCLUDE.join(",")))
        .arg(SUITE)
        .arg(&partial.0)
        .arg(&mirror)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("dup log"))
        .stderr(log_file)
        .status()
        .expect("spawn debootstrap");
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "debootstrap {SUITE} from {mirror} failed ({status}); end of {}:\n{}",
            log.display(),
            tail.join("\n")
        );
    }
    // Another process may have won the race: then its root is as good as ours.
    if std::fs::rename(&partial.0, &root).is_err()
        && !root.join("usr/lib/systemd/systemd").is_file()
    {
        panic!(
            "cannot rename {} to {}",
            partial.0.display(),
            root.display()
        );
    }
    root
}

/// The Debian mirror: `$AUTOBLOCK_DEBIAN_MIRROR`, else the first URI the host's apt uses for
/// this suite, else deb.debian.org.
fn debian_mirror() -> String {
    if let Ok(m) = std::env::var("AUTOBLOCK_DEBIAN_MIRROR") {
        return m;
    }
    let mut texts = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir.filter_map(Result::ok) {
            texts.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    texts.push(std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default());
    texts
        .iter()
        .find_map(|t| mirror_in(t))
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_string())
}

/// A URI serving `SUITE` (not its -security/-updates) in apt's one-line or deb822 format.
fn mirror_in(text: &str) -> Option<String> {
    let serves = |words: &[&str]| words.contains(&SUITE);
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().collect::<Vec<_>>())
        };
        if let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:"))
            && serves(&suites)
            && let Some(uri) = uris.first()
        {
            return Some((*uri).to_string());
        }
    }
    text.lines().find_map(|l| {
        let words: Vec<&str> = l
            .split_whitespace()
            .filter(|w| !w.starts_with('['))
            .collect();
        (words.first() == Some(&"deb") && words.len() > 2 && words[2] == SUITE)
            .then(|| words[1].to_string())
    })
}

/// A directory removed on drop, after unmounting anything mounted beneath it.
struct Tree(PathBuf);

impl Tree {
    fn remove(&self) {
        unmount_beneath(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Unmounts (lazily, deepest first) every mount at or beneath `dir`.
fn unmount_beneath(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p == prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").args(["-l", point]).status();
    }
}

/// Removes `.partial-PID-*` and `.run-PID-*` left by processes that no longer run, after
/// killing a container such a run left booted and deleting its namespaces (what a run
/// [records](RunRoot::record)).
fn remove_stale() {
    let Ok(dir) = std::fs::read_dir(base()) else {
        return;
    };
    for entry in dir.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(".partial-")
            .or_else(|| name.strip_prefix(".run-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            end_recorded(&entry.path());
            Tree(entry.path()).remove();
        }
    }
}

/// Kills the containers and deletes the namespaces recorded in a dead run's directory.
fn end_recorded(dir: &Path) {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    for pid in read("leaders").split_whitespace() {
        // Only if it still is a container's systemd (PID 1 of its namespace), not a reused pid.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let pid1 = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .is_some_and(|ids| ids.split_whitespace().last() == Some("1"));
        if pid1 && comm.trim() == "systemd" {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    for ns in read("netns").split_whitespace() {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
}

/// A writable copy of the cached root for one test run; unmounted and removed on drop.
pub struct RunRoot {
    tree: Tree,
    root: PathBuf,
    overlay: bool,
}

impl RunRoot {
    pub fn new(cache: &Path) -> RunRoot {
        let n = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        let tree = Tree(base().join(format!(".run-{}-{n}", std::process::id())));
        let root = tree.0.join("root");
        for sub in ["upper", "work", "root"] {
            std::fs::create_dir_all(tree.0.join(sub)).expect("create run dir");
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            cache.display(),
            tree.0.join("upper").display(),
            tree.0.join("work").display()
        );
        let overlay = !opts.contains(':')
            && Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o", &opts])
                .arg(&root)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !overlay {
            std::fs::remove_dir(&root).expect("remove empty root dir");
            let out = Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(cache)
                .arg(&root)
                .output()
                .expect("spawn cp");
            assert!(
                out.status.success(),
                "copy of {}: {}",
                cache.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        RunRoot {
            tree,
            root,
            overlay,
        }
    }

    /// The container's `/` as seen from the host.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Notes `value` under `kind` ("leaders", "netns") so that a later run can clean up after
    /// this one if it is killed before its guards run.
    pub fn record(&self, kind: &str, value: &str) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.tree.0.join(kind))
        {
            let _ = writeln!(f, "{value}");
        }
    }

    /// A scratch directory beside the root (logs), removed with it.
    pub fn scratch(&self) -> PathBuf {
        self.tree.0.clone()
    }
}

impl Drop for RunRoot {
    fn drop(&mut self) {
        if self.overlay {
            let _ = Command::new("umount").arg(&self.root).status();
        }
        // Tree's drop unmounts whatever is left (lazily) and removes the directory.
    }
}

#[test]
fn mirror_is_read_from_both_apt_formats() {
    let deb822 = "Types: deb\nURIs: http://m.example/debian-security\nSuites: bookworm-security\n\n\
                  Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n";
    assert_eq!(
        mirror_in(deb822).as_deref(),
        Some("http://m.example/debian")
    );
    let one_line = "deb [arch=amd64] http://m.example/d bookworm main\n";
    assert_eq!(mirror_in(one_line).as_deref(), Some("http://m.example/d"));
    assert_eq!(mirror_in("deb http://x/ trixie main\n"), None);
}
