//! Issue 11 item 5: bans persist. Every active ban, rule or manual, is in the state file with
//! its end time shortly after it is decided; a `kill -9` followed by a wiped firewall (what a
//! reboot leaves) loses none that had time left: the next start puts each back in the kernel
//! with the end it had (±1 s), its rule, offense and start. Both backends.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::daemon::{ATTACKER4, Daemon, Kernel, Setup, Topo, drops_of, poll};
use crate::harness::netns::Netns;
use crate::harness::require_root;

const EVENT: Duration = Duration::from_secs(20);
const MANUAL4: &str = "198.51.100.77";
const MANUAL6: &str = "fd00:201:9::/64";
const SHORT: &str = "198.51.100.78";

fn banned(ns: &Netns, backend: &str, target: &str) -> bool {
    let v6 = target.contains(':');
    match backend {
        "ipset" => {
            let set = if v6 { "autoblock6" } else { "autoblock4" };
            ns.exec(&["ipset", "test", set, target.trim_end_matches("/128")])
                .status
                .success()
        }
        _ if v6 => ns
            .chain_lines("ip6tables", "AUTOBLOCK")
            .contains(&format!("-s {target} ")),
        _ => ns
            .chain("AUTOBLOCK")
            .is_some_and(|c| drops_of(&c, target) == 1),
    }
}

/// What a reboot leaves: empty tables, no sets.
fn wipe(ns: &Netns) {
    for tool in ["iptables", "ip6tables"] {
        for table in ["filter", "raw"] {
            ns.ok(&[tool, "-w", "-t", table, "-F"]);
            ns.ok(&[tool, "-w", "-t", table, "-X"]);
        }
    }
    ns.ok(&["ipset", "destroy"]);
    assert!(ns.chain("AUTOBLOCK").is_none());
}

fn list(d: &Daemon) -> Vec<Value> {
    let v: Value = serde_json::from_str(&d.cli_ok(&["list", "--format", "json"])).expect("json");
    v.as_array().expect("array").clone()
}

fn entry<'a>(bans: &'a [Value], target: &str) -> Option<&'a Value> {
    bans.iter().find(|b| b["target"] == target)
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as the CLI prints it.
fn epoch_ms(ts: &Value) -> i64 {
    let s = ts.as_str().expect("time string");
    let out = std::process::Command::new("date")
        .args(["-u", "-d", s, "+%s%3N"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("date {s}: {e}"))
}

#[test]
fn every_ban_survives_kill9_and_a_wiped_firewall() {
    if !require_root() {
        return;
    }
    for backend in ["iptables", "ipset"] {
        kill9_wipe_restart(backend);
    }
}

fn kill9_wipe_restart(backend: &str) {
    let t = Topo::new("abZp");
    let _svc = t.serve();
    let mut s = Setup::new();
    s.backend(backend);
    s.write();
    let mut d = Daemon::start_as(&t.victim, &s, &[], "first");
    let flood = t.flood(300, 1000, &[]);
    d.wait_event(EVENT, "block", |e| e["ip"] == ATTACKER4);
    flood.wait(Duration::from_secs(30));
    d.cli_ok(&["ban", MANUAL4, "--for", "1h", "--reason", "abuse-report"]);
    d.cli_ok(&["ban", MANUAL6, "--for", "30m"]);
    d.cli_ok(&["ban", SHORT, "--for", "3s"]);
    for target in [ATTACKER4, MANUAL4, MANUAL6, SHORT] {
        assert!(
            poll(EVENT, || banned(&t.victim, backend, target)),
            "{backend}: {target} not in the kernel"
        );
    }
    let before = list(&d);
    // Saved promptly (the first change after a quiet spell is written at once).
    std::thread::sleep(Duration::from_millis(500));
    d.kill9();
    let killed = Instant::now();
    wipe(&t.victim);
    std::thread::sleep(Duration::from_secs(3)); // SHORT ends meanwhile

    let d2 = Daemon::start_as(&t.victim, &s, &[], "second");
    let started = d2.of("started").remove(0);
    assert_eq!(started["adopted_bans"], 0, "{backend}: {started}");
    assert_eq!(started["restored_bans"], 3, "{backend}: {started}");
    let after = list(&d2);
    for target in [ATTACKER4, MANUAL4, MANUAL6] {
        let (Some(b), Some(a)) = (entry(&before, target), entry(&after, target)) else {
            d2.fail(&format!("{backend}: {target} not back: {after:?}"));
        };
        let drift = (epoch_ms(&a["until"]) - epoch_ms(&b["until"])).abs();
        assert!(
            drift <= 1000,
            "{backend}: {target} ends {drift} ms off: {b} -> {a}"
        );
        for key in ["reason", "offense", "manual", "since"] {
            assert_eq!(a[key], b[key], "{backend}: {target} {key}: {b} -> {a}");
        }
        assert!(
            poll(EVENT, || banned(&t.victim, backend, target)),
            "{backend}: {target} not back in the kernel"
        );
    }
    assert!(
        entry(&after, SHORT).is_none(),
        "{backend}: an ended ban came back"
    );
    assert!(
        !t.attacker_connects(),
        "{backend}: the attacker connects again"
    );
    eprintln!(
        "{backend}: 3 bans back after kill -9 and a wiped firewall ({:?} later)",
        killed.elapsed()
    );
}

/// `autoblock flush` removes the bans for good (the state file forgets them, the offense
/// history stays), and a dry run never writes the state file: its bans never reach the kernel
/// through it, nor replace what a real run saved.
#[test]
fn flush_forgets_saved_bans_and_a_dry_run_saves_nothing() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abZq");
    let s = Setup::new();
    let state = s.dir.path().join("state").join("state.json");
    let mut d = Daemon::start_as(&t.victim, &s, &[], "first");
    d.cli_ok(&["ban", MANUAL4, "--for", "1h"]);
    assert!(poll(EVENT, || std::fs::read_to_string(&state)
        .is_ok_and(|s| s.contains(MANUAL4))));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).0.success());
    let out = t.victim.exec(&[
        env!("CARGO_BIN_EXE_autoblock"),
        "flush",
        "--config",
        s.config.to_str().expect("utf-8 path"),
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "flush: {out:?}");
    assert!(said.contains("forgot 1 saved bans"), "{said}");
    let saved = std::fs::read_to_string(&state).expect("state");
    assert!(!saved.contains(MANUAL4), "{saved}");

    let mut dry = Daemon::start_as(&t.victim, &s, &["--dry-run"], "dry");
    assert_eq!(dry.of("started")[0]["restored_bans"], 0);
    dry.cli_ok(&["ban", SHORT, "--for", "1h"]);
    dry.wait_event(EVENT, "block", |e| e["ip"] == SHORT);
    std::thread::sleep(Duration::from_millis(500));
    dry.signal("TERM");
    assert!(dry.wait_exit(Duration::from_secs(10)).0.success());
    assert_eq!(std::fs::read_to_string(&state).expect("state"), saved);

    let d = Daemon::start_as(&t.victim, &s, &[], "again");
    assert_eq!(d.of("started")[0]["restored_bans"], 0);
    assert!(list(&d).is_empty());
    assert!(
        t.victim
            .chain("AUTOBLOCK")
            .is_some_and(|c| drops_of(&c, SHORT) == 0)
    );
}
