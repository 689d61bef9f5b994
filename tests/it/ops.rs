//! Issue 14 end to end with the real daemon in a victim namespace (see `harness::daemon`):
//! `top --once` during a bounded flood shows the attacker and the rule; `reload` applies a good
//! file and refuses a bad one (status shows it); dry-run bans are marked; an address inside a
//! prefix ban names it and `--covering` lifts it in the kernel; banning again never shortens;
//! an unwritable `[state] dir` is reported at start and by `ban`; `flush` refuses while a
//! daemon runs and then reports exactly what it removed. Root only.

use std::time::Duration;

use crate::harness::daemon::{ATTACKER4, Daemon, Kernel, Setup, Topo};
use crate::harness::require_root;

/// Generous: the machine has 2 cores shared with other tests.
const EVENT: Duration = Duration::from_secs(20);
const CHAIN: &str = "AUTOBLOCK";

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn top_once_shows_the_attacker_and_the_rule_during_a_flood() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abOt");
    let _svc = t.serve();
    let mut s = Setup::new();
    s.backend("ipset");
    s.write();
    let mut d = Daemon::start(&t.victim, &s, &[]);
    // ~4 s of SYNs at up to 1k/s; the capture still counts the banned attacker.
    let flood = t.flood(4000, 1000, &[]);
    d.wait_event(EVENT, "block", |e| e["ip"] == ATTACKER4);
    let out = d.cli(&["top", "--once", "--interval", "300ms", "--width", "100"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rule_line = stdout
        .lines()
        .find(|l| l.starts_with("syn-flood "))
        .unwrap_or_else(|| panic!("no syn-flood line:\n{stdout}"));
    assert!(
        rule_line.contains(ATTACKER4) && rule_line.contains("OVER"),
        "{rule_line}\n{stdout}"
    );
    assert!(stdout.contains("BANS ("), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(ATTACKER4) && l.contains("left")),
        "the ban with its time left:\n{stdout}"
    );
    assert!(stdout.contains(&format!("block {ATTACKER4}")), "{stdout}");
    let va = stdout
        .lines()
        .find(|l| l.starts_with("va "))
        .unwrap_or_else(|| panic!("no capture line for va:\n{stdout}"));
    let rate: u64 = va
        .split_whitespace()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    assert!(rate > 0, "a capture rate during the flood: {va}");
    drop(flood);
}

#[test]
fn reload_applies_a_good_file_and_refuses_a_bad_one() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abOr");
    let mut s = Setup::new();
    s.write();
    let mut d = Daemon::start(&t.victim, &s, &[]);
    s.set("threshold = 28", "threshold = 40");
    s.write();
    let out = d.cli(&["reload"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "reloaded: 1 change\n  rule conn-burst: threshold 28 -> 40\n"
    );
    d.wait_event(EVENT, "reloaded", |_| true);

    s.set("threshold = 40", "threshold = 0");
    s.write();
    let out = d.cli(&["reload"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("reload refused (1 problem); the previous configuration keeps running"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rule[2] (conn-burst).threshold: must be greater than 0"),
        "{stderr}"
    );
    d.wait_event(EVENT, "reload_failed", |_| true);
    let status = d.status();
    assert_eq!(status["reload"]["ok"], false, "{status}");
    let table = d.cli_ok(&["status"]);
    assert!(table.contains("FAILED by control"), "{table}");
    // The old configuration is still in force.
    let x: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["explain", ATTACKER4, "--format", "json"])).expect("json");
    let conn = x["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["rule"] == "conn-burst"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(conn["threshold"], 40, "{x}");
    // SIGHUP takes the same path and is shown the same way.
    s.set("threshold = 0", "threshold = 28");
    s.write();
    d.signal("HUP");
    assert!(
        crate::harness::daemon::poll(EVENT, || d.status()["reload"]["ok"] == true),
        "SIGHUP's reload not in status"
    );
    assert_eq!(d.status()["reload"]["by"], "signal");
}

#[test]
fn manual_bans_cover_prefixes_never_shorten_and_show_dry_run() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abOm");
    let s = Setup::new();
    let d = Daemon::start(&t.victim, &s, &[]);
    d.cli_ok(&[
        "ban",
        "10.201.7.0/24",
        "--for",
        "1h",
        "--reason",
        "abuse report",
    ]);
    let out = d.cli(&["unban", "10.201.7.7"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("10.201.7.7 is inside the ban on 10.201.7.0/24 (by manual"),
        "{stderr}"
    );
    let chain = t.victim.chain(CHAIN).unwrap_or_default();
    assert!(
        chain.contains("10.201.7.0/24") && chain.contains("abuse report"),
        "the kernel keeps the reason: {chain}"
    );
    let kept = d.cli_ok(&["ban", "10.201.7.0/24", "--for", "10m"]);
    assert!(
        kept.starts_with("kept 10.201.7.0/24: already banned"),
        "{kept}"
    );
    let listed = d.cli_ok(&["list", "--net", "10.201.7.7"]);
    assert!(
        listed.contains("10.201.7.0/24") && listed.contains("manual  abuse report"),
        "{listed}"
    );
    assert!(
        d.cli_ok(&["list", "--rule", "syn-flood"])
            .starts_with("no active bans")
    );
    let lifted = d.cli_ok(&["unban", "10.201.7.7", "--covering"]);
    assert_eq!(lifted, "unbanned 10.201.7.0/24\n");
    assert!(crate::harness::daemon::poll(EVENT, || !t
        .victim
        .chain(CHAIN)
        .unwrap_or_default()
        .contains("10.201.7.0/24")));
    let block = d
        .of("block")
        .into_iter()
        .find(|e| e["ip"] == "10.201.7.0/24")
        .expect("block event");
    assert_eq!(block["rule"], "manual", "{block}");
    assert_eq!(block["comment"], "abuse report", "{block}");
    drop(d);

    let t = Topo::new("abOn");
    let s = Setup::new();
    let d = Daemon::start(&t.victim, &s, &["--dry-run"]);
    let out = d.cli_ok(&["ban", "10.201.9.9"]);
    assert!(
        out.starts_with("would ban 10.201.9.9 for 10m")
            && out.contains("[dry run: nothing enforced]"),
        "{out}"
    );
    let listed = d.cli_ok(&["list"]);
    assert!(
        listed.starts_with("DRY RUN: these are decisions only; nothing is in the kernel"),
        "{listed}"
    );
    assert!(t.victim.chain(CHAIN).is_none());
}

#[test]
fn an_unwritable_state_dir_is_reported_at_start_and_by_ban() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abOs");
    let mut s = Setup::new();
    // Nothing to read there (an empty history), and not even root can create a directory in
    // /proc: the first save would fail.
    let state = s.dir.path().join("state").display().to_string();
    s.set(
        &format!("dir = {state:?}"),
        "dir = \"/proc/autoblock-test-state\"",
    );
    s.write();
    let mut d = Daemon::start(&t.victim, &s, &[]);
    let e = d.wait_event(EVENT, "state_error", |_| true);
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("manual bans and offense history are not saved")),
        "{e}"
    );
    let started = d.of("started");
    assert!(!started.is_empty());
    assert!(d.status()["state_error"].is_string());
    let out = d.cli(&["ban", "10.201.9.8"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("warning: not persisted"), "{stderr}");
}

#[test]
fn flush_refuses_while_a_daemon_runs_then_reports_what_it_removed() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abOf");
    let s = Setup::new();
    let mut d = Daemon::start(&t.victim, &s, &[]);
    d.cli_ok(&["ban", "10.201.8.8"]);
    let bin = env!("CARGO_BIN_EXE_autoblock");
    let config = s.config.display().to_string();
    let flush = || t.victim.exec(&[bin, "flush", "--config", &config]);
    let out = flush();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("nothing removed: an autoblock daemon is running"),
        "{stderr}"
    );
    assert!(t.victim.chain(CHAIN).is_some(), "the chain was touched");
    // Stopped with keep_on_exit = true: the chain and the ban stay for flush to remove.
    d.signal("TERM");
    d.wait_exit(EVENT);
    let out = flush();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The state file forgets the saved ban too, or the next start would put it back.
    let state = s.dir.path().join("state");
    assert_eq!(
        stdout,
        format!(
            "removed chain AUTOBLOCK in filter (ipv4), filter (ipv6), 1 ban, 2 jumps, 3 ban chains\n\
             forgot 1 saved bans in {}\n",
            state.display()
        )
    );
    assert!(t.victim.chain(CHAIN).is_none());
    let out = flush();
    let (stdout, _) = text(&out);
    assert_eq!(
        stdout,
        "nothing to remove: no chain AUTOBLOCK, no jump to it, no set of ours\n"
    );
    assert!(t.victim.chain(CHAIN).is_none(), "flush created the chain");
}
