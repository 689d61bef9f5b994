//! `backend = "auto"` (the shipped value) with the real daemon in a namespace: it picks
//! nftables where `nft` works, says so in `started`, `status` and `check`, and bans there;
//! with `nft` missing from its PATH it picks ipset and says why; `flush` with `auto` leaves
//! nothing of either behind. See `harness::daemon` for the topology.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::daemon::{ATTACKER4, Daemon, Kernel, Setup, Topo, poll};
use crate::harness::netns::Netns;
use crate::harness::require_root;

const EVENT: Duration = Duration::from_secs(20);

/// `autoblock ARGS` inside `ns` with `path` as PATH (when given); stdout, or panic with stderr.
fn autoblock_in(ns: &Netns, path: Option<&Path>, args: &[&str]) -> String {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name()])
        .arg(env!("CARGO_BIN_EXE_autoblock"))
        .args(args)
        .stdin(Stdio::null());
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let out = cmd.output().expect("spawn autoblock");
    assert!(
        out.status.success(),
        "autoblock {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn nft_tables(ns: &Netns) -> String {
    ns.ok(&["nft", "list", "tables"])
}

/// A directory of links to every program in the usual bin directories except `nft`.
fn path_without_nft() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for bin in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let Ok(entries) = std::fs::read_dir(bin) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let link = dir.path().join(&name);
            if name != "nft" && !link.exists() {
                std::os::unix::fs::symlink(e.path(), link).expect("symlink");
            }
        }
    }
    dir
}

#[test]
fn auto_picks_nftables_where_nft_works() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abau");
    let _svc = t.serve();
    let mut s = Setup::new();
    s.backend("auto");
    s.write();
    let config = s.config.display().to_string();
    let check = autoblock_in(&t.victim, None, &["check", "--config", &config]);
    assert!(
        check.contains("backend auto: nftables on this host"),
        "{check}"
    );
    let mut d = Daemon::start(&t.victim, &s, &[]);
    let started = d.of("started").remove(0);
    assert_eq!(started["backend"], "nftables", "{started}");
    assert_eq!(started["backend_config"], "auto", "{started}");
    assert!(started.get("backend_skipped").is_none(), "{started}");
    let status = d.status();
    assert_eq!(
        (&status["backend"], &status["backend_config"]),
        (&"nftables".into(), &"auto".into()),
        "{status}"
    );
    assert!(
        d.cli_ok(&["status"])
            .contains("enforce:           nftables (auto), chain AUTOBLOCK"),
        "{}",
        d.cli_ok(&["status"])
    );
    let flood = t.flood(300, 1000, &[]);
    d.wait_event(EVENT, "block", |e| e["ip"] == ATTACKER4);
    let in_set = || {
        t.victim
            .ok(&["nft", "list", "set", "inet", "autoblock", "v4_32"])
            .contains(&format!("{ATTACKER4} "))
    };
    assert!(poll(EVENT, in_set), "no element for {ATTACKER4}");
    flood.wait(Duration::from_secs(30));
    assert!(t.victim.chain("AUTOBLOCK").is_none(), "nothing in iptables");

    // Stopped (bans kept), then `flush` with `auto` removes the table.
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(20));
    assert!(nft_tables(&t.victim).contains("inet autoblock"));
    let flushed = autoblock_in(&t.victim, None, &["flush", "--config", &config]);
    assert!(
        flushed.contains("nftables: removed table inet autoblock, 1 ban"),
        "{flushed}"
    );
    assert!(!nft_tables(&t.victim).contains("inet autoblock"));
    assert!(t.victim.chain("AUTOBLOCK").is_none());
    assert_eq!(t.victim.set_members("autoblock4"), None);
}

#[test]
fn auto_without_nft_picks_ipset_and_says_why() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abaw");
    let _svc = t.serve();
    let mut s = Setup::new();
    s.backend("auto");
    s.write();
    let config = s.config.display().to_string();
    let bin = path_without_nft();
    let path = bin.path();
    let check = autoblock_in(&t.victim, Some(path), &["check", "--config", &config]);
    assert!(
        check.contains("backend auto: ipset on this host, passed over nftables: "),
        "{check}"
    );
    let mut d = Daemon::start_env(&t.victim, &s, &[], "run", &[("PATH", OsStr::new(path))]);
    let started = d.of("started").remove(0);
    assert_eq!(started["backend"], "ipset", "{started}");
    assert_eq!(started["backend_config"], "auto", "{started}");
    let skipped = started["backend_skipped"][0].as_str().unwrap_or_default();
    assert!(
        skipped.starts_with("nftables: ") && skipped.contains("nft"),
        "{started}"
    );
    let status = d.cli_ok(&["status"]);
    assert!(
        status.contains("enforce:           ipset (auto)"),
        "{status}"
    );
    assert!(status.contains("auto passed over nftables: "), "{status}");
    let flood = t.flood(300, 1000, &[]);
    d.wait_event(EVENT, "block", |e| e["ip"] == ATTACKER4);
    let in_set = || {
        t.victim
            .set_members("autoblock4")
            .is_some_and(|m| m.iter().any(|l| l.starts_with(ATTACKER4)))
    };
    assert!(poll(EVENT, in_set), "no {ATTACKER4} in autoblock4");
    flood.wait(Duration::from_secs(30));
    assert!(
        !nft_tables(&t.victim).contains("inet autoblock"),
        "no nftables table"
    );
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(20));
    let flushed = autoblock_in(&t.victim, Some(path), &["flush", "--config", &config]);
    assert!(
        flushed.contains("ipset: removed chain AUTOBLOCK in filter (ipv4), filter (ipv6), 1 ban"),
        "{flushed}"
    );
    assert_eq!(t.victim.set_members("autoblock4"), None);
    assert!(t.victim.chain("AUTOBLOCK").is_none());
}
