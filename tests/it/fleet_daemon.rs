//! The fleet through real daemons (issue 16 acceptance): `autoblock run` in namespaces of its
//! own, each joined by a veth to a bridge in a hub namespace where a `nats-server -js` listens
//! (10.202.0.1:4222; nodes 10.202.0.11-13). A flood banned on A reaches the kernels of B and
//! C, and so does its unban; B's allowlist keeps a ban of A out of B's kernel. With the broker
//! gone, A's bans wait and B goes on detecting and banning by itself; once the broker is back,
//! B has all of A's bans within 1 s of reconnecting, with their end; a daemon restarted after
//! bans were published catches up the same way, and nothing is applied twice.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::daemon::{ATTACKER4, Daemon, Kernel, Setup, Stdout, Topo, drops_of, poll};
use crate::harness::fleet::{Broker, require_fleet};
use crate::harness::netns::Netns;

const HUB: &str = "10.202.0.1";
const WAIT: Duration = Duration::from_secs(10);

/// The hub: a bridge and the broker on it.
struct Hub {
    ns: Netns,
    broker: Broker,
}

impl Hub {
    fn new(prefix: &str) -> Hub {
        let ns = Netns::new(prefix);
        ns.ok(&["ip", "link", "add", "br0", "type", "bridge"]);
        ns.ok(&["ip", "addr", "add", &format!("{HUB}/24"), "dev", "br0"]);
        ns.ok(&["ip", "link", "set", "br0", "up"]);
        let broker = Broker::start_on(&ns, HUB, 4222, &[]);
        Hub { ns, broker }
    }

    /// Joins `node` to the bridge: its interface `fb` gets 10.202.0.`host`.
    fn join(&self, node: &Netns, host: u8) {
        let port = format!("fb{host}");
        self.ns.ok(&[
            "ip",
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "fb",
            "netns",
            node.name(),
        ]);
        self.ns
            .ok(&["ip", "link", "set", &port, "master", "br0", "up"]);
        node.ok(&[
            "ip",
            "addr",
            "add",
            &format!("10.202.0.{host}/24"),
            "dev",
            "fb",
        ]);
        node.ok(&["ip", "link", "set", "fb", "up"]);
    }
}

/// The shipped configuration as node `node` of fleet `web` on the hub's broker, with
/// `backend`; `interfaces`: replaces the harness's `va`, `vc` (a node without a Topo).
fn setup(node: &str, backend: &str, interfaces: Option<&str>, allow: Option<&str>) -> Setup {
    let mut s = Setup::new();
    if let Some(i) = interfaces {
        s.set(
            "interfaces = [\"va\", \"vc\"]",
            &format!("interfaces = [{i:?}]"),
        );
    }
    if let Some(net) = allow {
        s.set(
            "nets = [\"127.0.0.0/8\", \"::1/128\"]",
            &format!("nets = [\"127.0.0.0/8\", \"::1/128\", {net:?}]"),
        );
    }
    s.backend(backend);
    s.set(
        "servers = []",
        &format!("servers = [\"nats://{HUB}:4222\"]"),
    );
    s.set("name = \"default\"", "name = \"web\"");
    s.set("node = \"\"", &format!("node = {node:?}"));
    s.write();
    s
}

/// `target` (an IPv4 address) is dropped by `ns`'s kernel.
fn banned(ns: &Netns, backend: &str, target: &str) -> bool {
    match backend {
        "ipset" => ns
            .exec(&["ipset", "test", "autoblock4", target])
            .status
            .success(),
        _ => ns
            .chain("AUTOBLOCK")
            .is_some_and(|c| drops_of(&c, target) == 1),
    }
}

/// The daemon's fleet link, from `status --format json`.
fn link(d: &Daemon) -> Value {
    d.status()["cluster"].clone()
}

fn wait_connected(d: &Daemon, connected: bool) -> Instant {
    let ok = poll(WAIT, || link(d)["connected"] == connected);
    if !ok {
        d.fail(&format!(
            "the fleet link never became connected={connected}"
        ));
    }
    Instant::now()
}

/// `list --format json` as (target -> ban).
fn list(d: &Daemon) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(&d.cli_ok(&["list", "--format", "json"])).expect("json")
}

fn listed<'a>(bans: &'a [Value], target: &str) -> Option<&'a Value> {
    bans.iter().find(|b| b["target"] == target)
}

#[test]
fn a_flood_banned_on_a_reaches_b_and_c_unless_b_allows_it_and_so_does_its_unban() {
    if !require_fleet() {
        return;
    }
    let hub = Hub::new("abF2fh");
    let a = Topo::new("abF2fa");
    let (b, c) = (Netns::new("abF2fb"), Netns::new("abF2fc"));
    hub.join(&a.victim, 11);
    hub.join(&b, 12);
    hub.join(&c, 13);
    let _svc = a.serve();
    const ALLOWED: &str = "198.51.100.77";
    let sa = setup("a", "iptables", None, None);
    let sb = setup("b", "ipset", Some("fb"), Some("198.51.100.77/32"));
    let sc = setup("c", "iptables", Some("fb"), None);
    let mut da = Daemon::start_as(&a.victim, &sa, &[], "a");
    let mut db = Daemon::start_as(&b, &sb, &[], "b");
    let mut dc = Daemon::start_as(&c, &sc, &[], "c");
    for d in [&da, &db, &dc] {
        wait_connected(d, true);
    }

    let flood = a.flood(300, 1000, &[]);
    da.wait_event(WAIT, "block", |e| e["ip"] == ATTACKER4);
    flood.wait(Duration::from_secs(30));
    for (d, ns, backend) in [(&mut db, &b, "ipset"), (&mut dc, &c, "iptables")] {
        d.wait_event(WAIT, "block", |e| {
            e["ip"] == ATTACKER4 && e["origin"] == "a"
        });
        assert!(
            poll(WAIT, || banned(ns, backend, ATTACKER4)),
            "{backend}: {ATTACKER4} not in the kernel"
        );
    }
    let on_c = list(&dc);
    let ban = listed(&on_c, ATTACKER4).expect("listed on C");
    assert_eq!(
        (&ban["origin"], &ban["rule"]),
        (&"a".into(), &"syn-flood".into())
    );
    // The kernel comment names the node (adoption reads it back after a restart).
    assert!(
        c.chain("AUTOBLOCK")
            .is_some_and(|t| t.contains("fleet:a syn-flood")),
        "{:?}",
        c.chain("AUTOBLOCK")
    );

    // B's allowlist wins over A's ban; C applies it.
    da.cli_ok(&["ban", ALLOWED, "--for", "10m"]);
    assert!(poll(WAIT, || banned(&c, "iptables", ALLOWED)), "not on C");
    db.wait_event(WAIT, "suppressed", |e| {
        e["ip"] == ALLOWED && e["origin"] == "a" && e["reason"] == "allowlist"
    });
    assert!(!banned(&b, "ipset", ALLOWED), "B's allowlist lost");

    // An unban on A lifts the ban on B and C.
    da.cli_ok(&["unban", ATTACKER4]);
    for (d, ns, backend) in [(&mut db, &b, "ipset"), (&mut dc, &c, "iptables")] {
        d.wait_event(WAIT, "unblock", |e| {
            e["ip"] == ATTACKER4 && e["origin"] == "a" && e["reason"] == "manual"
        });
        assert!(
            poll(WAIT, || !banned(ns, backend, ATTACKER4)),
            "{backend}: {ATTACKER4} still in the kernel"
        );
    }
    // A never gets its own bans back; B and C never send A's on.
    let la = link(&da);
    assert_eq!(
        (la["received"].as_u64(), la["published"].as_u64()),
        (Some(0), Some(3)),
        "{la}"
    );
    for d in [&db, &dc] {
        let l = link(d);
        assert_eq!(l["published"], 0, "{l}");
        assert!(l["received"].as_u64() >= Some(3), "{l}");
    }
}

/// Bans of A, by target, with their `until` (RFC 3339) as A lists them.
fn ends(d: &Daemon, targets: &[String]) -> Vec<(String, u64)> {
    let bans = list(d);
    targets
        .iter()
        .map(|t| {
            let b = listed(&bans, t).unwrap_or_else(|| d.fail(&format!("{t} not listed")));
            (t.clone(), b["remaining_secs"].as_u64().unwrap_or(0))
        })
        .collect()
}

/// Waits until B's kernel holds every target; how long that took from `since`.
fn caught_up(d: &Daemon, ns: &Netns, targets: &[String], since: Instant) -> Duration {
    let ok = poll(WAIT, || targets.iter().all(|t| banned(ns, "ipset", t)));
    if !ok {
        d.fail(&format!("B never had all of {targets:?}"));
    }
    since.elapsed()
}

/// B lists every target with A's origin and the time A gives it (+-2 s).
fn same_remaining(a: &Daemon, b: &Daemon, targets: &[String]) {
    let on_b = list(b);
    for (t, left) in ends(a, targets) {
        let ban = listed(&on_b, &t).unwrap_or_else(|| b.fail(&format!("{t} not listed on B")));
        assert_eq!(ban["origin"], "a", "{ban}");
        let on_b_left = ban["remaining_secs"].as_u64().unwrap_or(0);
        assert!(
            on_b_left.abs_diff(left) <= 2,
            "{t}: A {left}s left, B {on_b_left}s"
        );
    }
}

#[test]
fn a_node_catches_up_within_1s_of_reconnecting_after_an_outage_or_a_restart() {
    if !require_fleet() {
        return;
    }
    let mut hub = Hub::new("abF2oh");
    let a = Netns::new("abF2oa");
    let b = Topo::new("abF2ob");
    hub.join(&a, 11);
    hub.join(&b.victim, 12);
    let _svc = b.serve();
    let sa = setup("a", "iptables", Some("fb"), None);
    let sb = setup("b", "ipset", None, None);
    let da = Daemon::start_as(&a, &sa, &[], "a");
    let mut db = Daemon::start_as(&b.victim, &sb, &[], "b");
    wait_connected(&da, true);
    wait_connected(&db, true);
    // Both consumers exist before the outage.
    da.cli_ok(&["ban", "203.0.113.200", "--for", "10m"]);
    assert!(poll(WAIT, || banned(&b.victim, "ipset", "203.0.113.200")));

    hub.broker.stop();
    wait_connected(&da, false);
    wait_connected(&db, false);
    let five: Vec<String> = (1..=5).map(|i| format!("203.0.113.{i}")).collect();
    for t in &five {
        da.cli_ok(&["ban", t, "--for", "10m", "--reason", "abuse"]);
    }
    assert!(poll(WAIT, || link(&da)["queued"] == 5), "{}", link(&da));
    // B goes on by itself: it detects a flood and bans it, as fast as ever.
    let flood = b.flood(300, 1000, &[]);
    db.wait_event(WAIT, "block", |e| {
        e["ip"] == ATTACKER4 && e.get("origin").is_none()
    });
    assert!(poll(WAIT, || banned(&b.victim, "ipset", ATTACKER4)));
    flood.wait(Duration::from_secs(30));
    assert!(five.iter().all(|t| !banned(&b.victim, "ipset", t)));

    hub.broker.restart();
    let back = wait_connected(&db, true);
    let took = caught_up(&db, &b.victim, &five, back);
    eprintln!("B caught up {took:?} after reconnecting");
    assert!(
        took <= Duration::from_secs(1),
        "B caught up {took:?} after reconnecting"
    );
    same_remaining(&da, &db, &five);

    // A restart of B after A published more: caught up the same way, nothing applied twice.
    db.signal("TERM");
    db.wait_exit(WAIT);
    let three: Vec<String> = (11..=13).map(|i| format!("203.0.113.{i}")).collect();
    for t in &three {
        da.cli_ok(&["ban", t, "--for", "10m"]);
    }
    assert!(poll(WAIT, || link(&da)["published"] == 9), "{}", link(&da));
    let db2 = Daemon::start_as(&b.victim, &sb, &[], "b2");
    let back = wait_connected(&db2, true);
    let took = caught_up(&db2, &b.victim, &three, back);
    eprintln!("B caught up {took:?} after its restart");
    assert!(
        took <= Duration::from_secs(1),
        "B caught up {took:?} after its restart"
    );
    same_remaining(&da, &db2, &three);
    same_remaining(&da, &db2, &five);
    std::thread::sleep(Duration::from_millis(500));
    let again: Vec<Value> = db2
        .of("block")
        .into_iter()
        .filter(|e| five.iter().any(|t| e["ip"] == t.as_str()))
        .collect();
    assert!(again.is_empty(), "applied twice: {again:?}");
}

#[test]
fn an_unusable_cluster_section_stops_the_start_with_exit_1_and_the_reason() {
    if !require_fleet() {
        return;
    }
    let ns = Netns::new("abF2fe");
    let mut s = setup("a", "iptables", Some("lo"), None);
    let creds = s.dir.path().join("missing.creds");
    s.set(
        "credentials = \"\"",
        &format!("credentials = {:?}", creds.display().to_string()),
    );
    s.write();
    let mut d = Daemon::spawn(&ns, &s, &[], "bad", Stdout::File);
    let (status, _) = d.wait_exit(WAIT);
    let err = std::fs::read_to_string(&d.stderr).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "{err}");
    let want = format!(
        "cannot start the fleet link: cannot read the NATS credentials file {}",
        creds.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(d.of("started").is_empty(), "started before failing");
}
