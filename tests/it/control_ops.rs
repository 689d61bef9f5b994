//! The operator's commands of issue 14 against the control socket's recording fake (see
//! `control.rs`), no root: `reload` (0 with the changes, 2 with the problems), `status` showing
//! a failed reload, the per-rule lines and unsaved state, `ban` keeping a longer ban and
//! saying a ban was capped or not saved, `unban` naming a covering prefix ban and `--all`,
//! `top --once`, and a client that never needs a valid configuration for its socket.

use std::sync::atomic::Ordering;

use autoblock::sys::control::Request;

use crate::control::{COVERED, Daemon, KEPT, sock_in, stderr, stdout};
use crate::harness;

#[test]
fn reload_says_what_changed_or_why_not_and_status_shows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(&sock_in(&dir));
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "reloaded: 1 change\n  rule conn-burst: threshold 28 -> 40\n"
    );
    d.fake_reject_reload(true);
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "error: reload refused (1 problem); the previous configuration keeps running\n\
         rules.toml:12:13: rule[2] (conn-burst).threshold: must be greater than 0, found 0\n"
    );
    let text = stdout(&d.cli(&["status"]));
    for want in [
        "last reload:       2026-11-24T10:00:00.000Z: FAILED by signal, the previous configuration keeps running (1 error)",
        "  rules.toml:12:13: rule[2] (conn-burst).threshold",
        "state:             NOT SAVED: cannot write state",
        "RULE       MODE     METRIC   TOP NOW / LIMIT        ACTIVE BANS  BANS  SUPPRESSED",
        "syn-flood  enforce  packets  31 / 24 (203.0.113.7)  1            4     2",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&d.cli(&["status", "--format", "json"]).stdout).expect("json");
    assert_eq!(json["reload"]["ok"], false);
    assert_eq!(json["rules"][0]["top_value"], 31);
    d.stop().expect("clean stop");
}

#[test]
fn ban_keeps_a_longer_ban_says_when_capped_and_when_not_saved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(&sock_in(&dir));
    let out = d.cli(&["ban", KEPT, "--for", "10m"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!(
            "kept {KEPT}: already banned until 2026-11-24T10:10:00.000Z by syn-flood (2h left, longer than asked); --replace sets the new length"
        )),
        "{}",
        stdout(&out)
    );
    let out = d.cli(&["ban", "198.51.100.7", "--for", "30d", "--reason", "unsaved"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("banned 198.51.100.7 for 1d (until 2026-11-24T10:10:00.000Z); capped by [enforce] max_ban: 30d was asked"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("warning: not persisted: cannot write state to /x/state.json: read-only; these bans end at a restart"),
        "{}",
        stderr(&out)
    );
    let out = d.cli(&["ban", "198.51.100.8", "--replace"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(matches!(
        d.seen().last(),
        Some(Request::Ban { replace: true, .. })
    ));
    d.stop().expect("clean stop");
}

#[test]
fn unban_names_the_covering_ban_and_lifts_all_or_one_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(&sock_in(&dir));
    let out = d.cli(&["unban", COVERED]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "error: not banned itself: {COVERED} is inside the ban on 2001:db8:5::/48 (by manual, 10m left); --covering lifts that ban"
        )
    );
    let out = d.cli(&["unban", COVERED, "--covering"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = d.cli(&["unban", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "unbanned 198.51.100.0/24\n");
    let out = d.cli(&["unban", "--rule", "conn-burst"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = d.cli(&["unban", "--all", "--rule", "x"]);
    assert_eq!(out.status.code(), Some(2), "--all and --rule conflict");
    let seen = d.seen();
    assert!(matches!(&seen[1], Request::Unban { covering: true, .. }));
    assert!(matches!(&seen[2], Request::Unban { all: true, targets, .. } if targets.is_empty()));
    assert!(matches!(&seen[3], Request::Unban { rule: Some(r), .. } if r == "conn-burst"));
    d.stop().expect("clean stop");
}

#[test]
fn top_once_prints_one_frame_for_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(&sock_in(&dir));
    let out = d.cli(&["top", "--once", "--interval", "100ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "autoblock 0.1.0 pid 4242 up 3h12m | 2 bans | 640 src | DRY RUN | RELOAD FAILED\n"
        ),
        "{text}"
    );
    for want in [
        "INTERFACE",
        "syn-flood      packets        24  203.0.113.7 31/24 OVER",
        "BANS (2 active)",
        "203.0.113.7                              syn-flood         9m12s left",
        "EVENTS",
        "10:00:01 block 203.0.113.7 syn-flood 25/24 ban 10m",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    assert!(text.lines().count() <= 24, "fits 24 lines:\n{text}");
    assert!(
        text.lines().all(|l| l.chars().count() <= 80),
        "fits 80 columns:\n{text}"
    );
    d.stop().expect("clean stop");
}

#[test]
fn a_client_reads_the_socket_from_an_invalid_config_and_never_needs_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(&sock_in(&dir));
    let bad = dir.path().join("bad.toml");
    let text = format!(
        "[control]\nsocket = {:?}\n\n[[rule]]\nname = \"a\"\nmetric = \"packets\"\nthreshold = 0\nwindow = \"1s\"\n",
        sock_in(&dir).display().to_string()
    );
    std::fs::write(&bad, text).expect("write");
    let out = harness::run(&["status", "--config", &bad.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // No file at all: the default socket is tried, and the error says why.
    let missing = dir.path().join("missing.toml");
    let out = harness::run(&["list", "--config", &missing.to_string_lossy()]);
    let err = stderr(&out);
    if !std::path::Path::new(autoblock::config::DEFAULT_SOCKET).exists() {
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("no socket at /run/autoblock/autoblock.sock"),
            "{err}"
        );
        assert!(
            err.contains("could not be read, so the default socket was tried"),
            "{err}"
        );
    }
    d.stop().expect("clean stop");
}

impl Daemon {
    fn fake_reject_reload(&self, reject: bool) {
        self.fake().reject_reload.store(reject, Ordering::Relaxed);
    }
}

#[test]
fn run_without_root_says_what_it_needs() {
    if !harness::is_root() || !std::path::Path::new("/usr/bin/setpriv").exists() {
        harness::skip_or_fail(&harness::test_name(), "needs root and setpriv");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("rules.toml");
    let socket = dir.path().join("run/autoblock.sock");
    std::fs::write(
        &config,
        format!(
            "[capture]\ninterfaces = [\"lo\"]\n[control]\nsocket = {:?}\n[enforce]\ndry_run = true\n",
            socket.display().to_string()
        ),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = std::process::Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_autoblock"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("spawn setpriv");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "autoblock run needs root, or the capabilities CAP_NET_RAW (capture) and CAP_NET_ADMIN"
        ),
        "{err}"
    );
}
