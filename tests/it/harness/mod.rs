//! Test harness: where the shared captures are, the built binary, and the skip-or-fail rule
//! (a test that needs root or `../shared/pcaps` prints why it skips, and fails when `CI=true`).
//! A test states only its scenario: `if !require_root() { return; }` names the test by itself
//! (libtest runs each test on a thread named after its path). `netns` makes network
//! namespaces, `daemon` runs the real daemon inside one; `nspawn_root`, `nspawn` and `systemd`
//! boot the installed package under a real systemd in a container; `fleet` runs nats-server
//! and fleet nodes inside a namespace.

#![allow(dead_code)]

pub mod daemon;
pub mod fleet;
pub mod netns;
pub mod nspawn;
pub mod nspawn_root;
pub mod systemd;

use std::path::PathBuf;
use std::process::{Command, Output};

/// True on CI, where a skip is a failure.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The running test's path (`daemon::sigterm_keeps_bans...`), from its thread's name.
pub fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "(unnamed test)".to_string(),
    }
}

/// Skips (printing why) or, on CI, fails.
pub fn skip_or_fail(test: &str, why: &str) {
    if on_ci() {
        panic!("{test}: cannot run on CI: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// The shared third-party captures: `$AUTOBLOCK_PCAPS`, else `../shared/pcaps` beside the repo.
pub fn pcaps_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("AUTOBLOCK_PCAPS") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/pcaps")
}

/// `Some(dir)` when the shared captures are present; otherwise skip (or fail on CI).
pub fn require_pcaps() -> Option<PathBuf> {
    let dir = pcaps_dir();
    if dir.join("manifest.tsv").is_file() {
        Some(dir)
    } else {
        skip_or_fail(&test_name(), &format!("{} is absent", dir.display()));
        None
    }
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// True when running as root; otherwise skip (or fail on CI).
pub fn require_root() -> bool {
    if is_root() {
        true
    } else {
        skip_or_fail(
            &test_name(),
            "needs root (network namespaces, iptables, ipset)",
        );
        false
    }
}

/// True when `tool` is on PATH; otherwise skip (or fail on CI: `make deps` installs it).
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip_or_fail(
            &test_name(),
            &format!("{tool} is missing (make deps installs it)"),
        );
    }
    found
}

/// The .deb of this version that `make deb` built, or skip (fail on CI).
pub fn require_deb() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let prefix = format!("autoblock_{}-", env!("CARGO_PKG_VERSION"));
    let deb = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
            .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
    });
    if deb.is_none() {
        skip_or_fail(
            &test_name(),
            &format!("no {prefix}*.deb in {}: run `make deb`", dir.display()),
        );
    }
    deb
}

/// The `autoblock` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_autoblock"))
}

/// Runs the binary with `args`; returns its output.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("spawn autoblock")
}

#[test]
fn a_test_knows_its_own_name() {
    assert_eq!(test_name(), "harness::a_test_knows_its_own_name");
}

/// The shipped `rules.toml`.
pub fn shipped_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules.toml")
}

/// About ten minutes, ending in the middle of a 32-second span of end times: bans given this
/// a moment apart share one of the iptables backend's ban chains (`CHAIN.<hex>`).
pub fn mid_bucket_ttl() -> std::time::Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::time::Duration::from_secs(600 + (48 - (now + 600) % 32) % 32)
}

/// The lines of `iptables -S` output (`-N`, `-A`) that belong to `chain` or to its private ban
/// chains (`CHAIN.bans`, `CHAIN.<hex>`, where the iptables backend keeps bans): what
/// `iptables -S CHAIN` showed when bans lived in the chain itself.
pub fn chain_lines(dump: &str, chain: &str) -> String {
    let private = format!("{chain}.");
    dump.lines()
        .filter(|l| {
            let name = l
                .strip_prefix("-N ")
                .or_else(|| l.strip_prefix("-A "))
                .and_then(|rest| rest.split_whitespace().next());
            name.is_some_and(|n| n == chain || n.starts_with(&private))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Waits (at most 20 s) until a sampler thread has taken `n` samples: a busy machine makes
/// each sample slow, and a test that sleeps a fixed time may get too few.
pub fn wait_samples(taken: &std::sync::atomic::AtomicU32, n: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while taken.load(std::sync::atomic::Ordering::Relaxed) < n
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
