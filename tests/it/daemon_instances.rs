//! Issue 11, low finding: two daemons with different control sockets on one chain. The
//! instance lock is keyed on the socket, so it does not see the other; the firewall library's
//! lock per namespace and chain does: the second fails at start with a clear message, before
//! it changes anything, and the first one's bans are untouched.

use std::time::Duration;

use crate::harness::daemon::{Daemon, Kernel, Setup, Topo, drops_of, poll};
use crate::harness::require_root;

#[test]
fn a_second_daemon_on_the_same_chain_fails_and_touches_nothing() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abZ2");
    let first = Setup::new();
    let d = Daemon::start_as(&t.victim, &first, &[], "first");
    d.cli_ok(&["ban", "198.51.100.88", "--for", "1h"]);
    assert!(poll(Duration::from_secs(20), || t
        .victim
        .chain("AUTOBLOCK")
        .is_some_and(|c| drops_of(&c, "198.51.100.88") == 1)));
    let before = t.victim.normalized_dump();

    // Another config: its own socket and state directory, the same chain.
    let second = Setup::new();
    assert_ne!(first.socket, second.socket);
    let out = t.victim.exec(&[
        env!("CARGO_BIN_EXE_autoblock"),
        "run",
        "--config",
        second.config.to_str().expect("utf-8 path"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("second daemon on chain AUTOBLOCK: {}", err.trim());
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("uses chain AUTOBLOCK") && err.contains(&format!("process {} holds", d.pid)),
        "{err}"
    );
    assert!(
        err.contains("another [enforce] chain"),
        "says what to do: {err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("\"started\""), "{stdout}");
    assert_eq!(
        t.victim.normalized_dump(),
        before,
        "the second one changed the kernel"
    );
    assert_eq!(d.status()["active_bans"], 1);
    assert!(
        !second.dir.path().join("state").join("state.json").exists(),
        "the second one wrote a state file"
    );
}
