//! Issue 11's findings reproduced end to end (the daemon in a victim namespace, the CLI over its
//! socket), each beside the fix it guards: a ban request naming one target twice, ...

use std::time::Duration;

use crate::daemon_util::{Daemon, Kernel, Setup, Topo, drops_of, poll};
use crate::util::require_root;

/// Generous: the machine has 2 cores shared with other tests.
const EVENT: Duration = Duration::from_secs(20);

/// Finding 2: `ban --for 2s 10.44.6.6 10.44.6.6/32` (one target twice, same end) and a file
/// naming one /24 twice (`10.44.7.9/24` is that /24) made bans that never expired and kernel rules that stayed.
#[test]
fn a_target_named_twice_in_one_ban_still_expires() {
    if !require_root("safety::a_target_named_twice_in_one_ban_still_expires") {
        return;
    }
    let t = Topo::new("absd");
    let s = Setup::new();
    let list = s.dir.path().join("twice.txt");
    std::fs::write(&list, "10.44.7.0/24\n10.44.7.9/24\n").expect("write list");
    let mut d = Daemon::start(&t.victim, &s, &[]);
    d.cli_ok(&["ban", "--for", "2s", "10.44.6.6", "10.44.6.6/32"]);
    d.cli_ok(&["ban", "--for", "2s", "--file", &list.display().to_string()]);
    let chain = t.victim.chain("AUTOBLOCK").unwrap_or_default();
    assert_eq!(drops_of(&chain, "10.44.6.6"), 1, "{chain}");
    for ip in ["10.44.6.6", "10.44.7.0/24"] {
        d.wait_event(EVENT, "unblock", |e| {
            e["ip"] == ip && e["reason"] == "expired"
        });
    }
    let gone = poll(Duration::from_secs(5), || {
        let chain = t.victim.chain("AUTOBLOCK").unwrap_or_default();
        !chain.contains("10.44.")
    });
    let chain = t.victim.chain("AUTOBLOCK").unwrap_or_default();
    assert!(gone, "rules left in the kernel:\n{chain}");
    let list = d.cli_ok(&["list"]);
    assert!(list.contains("no active bans"), "{list}");
}
