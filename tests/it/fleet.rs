//! Fleet sharing against a real `nats-server -js` (Debian 2.9.10) inside a namespace each test
//! creates: nodes exchange bans and never get their own back; publications made while the
//! broker is down arrive after it returns, with their end times; a node started later catches
//! up, skipping what has ended, and a restarted one gets nothing twice; malformed messages are
//! counted and skipped; a three-server NATS cluster survives the loss of one server.

use std::time::{Duration, Instant};

use crate::harness::fleet::{Broker, Node, Recv, make_tls_files, require_fleet};
use crate::harness::netns::Netns;
use crate::harness::require_tool;

const LONG: Duration = Duration::from_secs(10);

fn connected(node: &mut Node) {
    let ok = node.status()["connected"] == true
        || node
            .wait_for(|l| l.starts_with("connected "), LONG)
            .is_some();
    assert!(ok, "{} never connected: {:?}", node.name, node.seen);
}

/// `status` polled until every key has its value (or 10 s).
fn wait_status(node: &mut Node, want: &[(&str, u64)]) -> serde_json::Value {
    let deadline = Instant::now() + LONG;
    loop {
        let s = node.status();
        if want.iter().all(|(k, v)| s[*k] == *v) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn one<'a>(got: &'a [Recv], kind: &str, target: &str) -> &'a Recv {
    let found: Vec<&Recv> = got
        .iter()
        .filter(|r| r.kind == kind && r.target == target)
        .collect();
    assert_eq!(found.len(), 1, "{kind} {target} once in {got:?}");
    found[0]
}

#[test]
fn three_nodes_share_bans_and_never_receive_their_own() {
    if !require_fleet() {
        return;
    }
    let ns = Netns::new("abfll");
    let broker = Broker::start(&ns, 4222);
    let servers = [broker.url()];
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| Node::start(&ns, "web", n, &servers, &[]))
        .collect();
    nodes[0].send("block 192.0.2.1 600 syn-flood");
    nodes[1].send("block 2001:db8:1::/64 600 port-scan");
    nodes[2].send("block ::ffff:198.51.100.7 600");
    let sent: Vec<(&str, &str, u64)> = vec![
        ("a", "192.0.2.1", nodes[0].wait_sent("192.0.2.1")),
        (
            "b",
            "2001:db8:1::/64",
            nodes[1].wait_sent("2001:db8:1::/64"),
        ),
        ("c", "198.51.100.7", nodes[2].wait_sent("198.51.100.7")),
    ];
    for node in &mut nodes {
        let got = node.wait_received(2, LONG);
        assert_eq!(got.len(), 2, "{}: {got:?}", node.name);
        for (origin, target, until_ms) in &sent {
            if *origin == node.name {
                assert!(got.iter().all(|r| r.origin != node.name), "own ban back");
                continue;
            }
            let r = one(&got, "block", target);
            assert_eq!((r.origin.as_str(), r.until_ms), (*origin, *until_ms));
        }
    }
    // An unban on A reaches B and C.
    nodes[0].send("unblock 192.0.2.1");
    for node in &mut nodes[1..] {
        let got = node.wait_received(3, LONG);
        assert_eq!(one(&got, "unblock", "192.0.2.1").origin, "a");
    }
    let a = wait_status(&mut nodes[0], &[("published", 2), ("own", 2)]);
    assert_eq!(
        (a["published"].as_u64(), a["own"].as_u64()),
        (Some(2), Some(2)),
        "{a}"
    );
    assert_eq!(
        (a["received"].as_u64(), a["queued"].as_u64()),
        (Some(2), Some(0)),
        "{a}"
    );
}

#[test]
fn bans_made_while_the_broker_is_down_arrive_within_1s_of_reconnecting() {
    if !require_fleet() {
        return;
    }
    let ns = Netns::new("abflo");
    let mut broker = Broker::start(&ns, 4222);
    let servers = [broker.url()];
    let mut a = Node::start(&ns, "web", "a", &servers, &[]);
    let mut b = Node::start(&ns, "web", "b", &servers, &[]);
    connected(&mut a);
    connected(&mut b);
    // Both consumers exist before the outage.
    a.send("block 192.0.2.200 600");
    let first = b.wait_received(1, LONG);
    assert_eq!(first.len(), 1, "a: {:?}\nb: {:?}", a.seen, b.seen);

    broker.stop();
    for node in [&mut a, &mut b] {
        let down = node.wait_for(|l| l.starts_with("disconnected "), LONG);
        assert!(down.is_some(), "{} never saw the broker go", node.name);
    }
    let targets: Vec<String> = (1..=5).map(|i| format!("203.0.113.{i}")).collect();
    for t in &targets {
        a.send(&format!("block {t} 600 conn-burst"));
    }
    let queued = wait_status(&mut a, &[("queued", 5)]);
    assert_eq!(queued["queued"], 5, "{queued}");
    assert_eq!(queued["connected"], false, "{queued}");
    assert!(
        queued["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("NATS: "))
    );
    b.drain(Duration::from_millis(300));
    assert_eq!(b.received().len(), 1, "nothing arrives without a broker");

    let back = Instant::now();
    broker.restart();
    let ready = Instant::now();
    let b_up = b
        .wait_for(|l| l.starts_with("connected "), LONG)
        .expect("b reconnects");
    let a_up = a
        .wait_for(|l| l.starts_with("connected "), LONG)
        .expect("a reconnects");
    let got = b.wait_received(6, LONG);
    assert_eq!(got.len(), 6, "{got:?}");
    let last = b
        .seen
        .iter()
        .rev()
        .find(|l| l.text.starts_with("recv "))
        .map(|l| l.at);
    let last = last.expect("received");
    for t in &targets {
        let r = one(&got, "block", t);
        assert_eq!(
            Some(r.until_ms),
            a.wait_sent_until(t),
            "{t}: the end time set on A"
        );
    }
    let reconnected = a_up.at.max(b_up.at);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "broker start {:.0} ms; ready -> B connected {:.0} ms, A connected {:.0} ms; both connected -> B has all five {:.0} ms",
        ms(ready - back),
        ms(b_up.at.saturating_duration_since(ready)),
        ms(a_up.at.saturating_duration_since(ready)),
        ms(last.saturating_duration_since(reconnected)),
    );
    assert!(
        last.saturating_duration_since(reconnected) <= Duration::from_secs(1),
        "five bans {:?} after reconnecting",
        last - reconnected
    );
    let a = wait_status(&mut a, &[("published", 6)]);
    assert_eq!(
        (a["queued"].as_u64(), a["reconnects"].as_u64()),
        (Some(0), Some(1)),
        "{a}"
    );
}

#[test]
fn a_late_node_catches_up_skips_ended_bans_and_a_restart_gets_nothing_twice() {
    if !require_fleet() {
        return;
    }
    let ns = Netns::new("abflc");
    let broker = Broker::start(&ns, 4222);
    let servers = [broker.url()];
    let mut a = Node::start(&ns, "web", "a", &servers, &[]);
    for cmd in [
        "block 192.0.2.1 600",
        "block 192.0.2.2 600",
        "block 192.0.2.3 1",
        "block 192.0.2.4 600",
        "unblock 192.0.2.4",
    ] {
        a.send(cmd);
    }
    wait_status(&mut a, &[("published", 5)]);
    std::thread::sleep(Duration::from_millis(1500));

    let mut c = Node::start(&ns, "web", "c", &servers, &[]);
    let got = c.wait_received(4, LONG);
    c.drain(Duration::from_millis(500));
    let got_all = c.received();
    assert_eq!(got_all.len(), 4, "{got_all:?}");
    for t in ["192.0.2.1", "192.0.2.2"] {
        assert_eq!(Some(one(&got, "block", t).until_ms), a.wait_sent_until(t));
    }
    one(&got, "block", "192.0.2.4");
    assert_eq!(
        Some(one(&got, "unblock", "192.0.2.4").until_ms),
        a.wait_sent_until("192.0.2.4")
    );
    assert!(
        got.iter().all(|r| r.target != "192.0.2.3"),
        "ended ban applied"
    );
    let s = wait_status(&mut c, &[("expired", 1), ("received", 4)]);
    assert_eq!(
        (s["expired"].as_u64(), s["received"].as_u64()),
        (Some(1), Some(4)),
        "{s}"
    );
    let closed = c.close();
    assert_eq!(closed["received"], 4);

    // While C is away, A bans two more; C comes back under the same name.
    a.send("block 192.0.2.5 600");
    a.send("extend 192.0.2.1 1200");
    wait_status(&mut a, &[("published", 7)]);
    let mut c = Node::start(&ns, "web", "c", &servers, &[]);
    c.wait_received(2, LONG);
    c.drain(Duration::from_millis(700));
    let got = c.received();
    assert_eq!(got.len(), 2, "only what was missed: {got:?}");
    one(&got, "block", "192.0.2.5");
    let extended = one(&got, "extend", "192.0.2.1").until_ms;
    assert_eq!(
        Some(extended),
        a.wait_sent_until("192.0.2.1"),
        "the later end"
    );
}

#[test]
fn malformed_messages_are_counted_and_skipped() {
    if !require_fleet() {
        return;
    }
    let ns = Netns::new("abflm");
    let broker = Broker::start(&ns, 4222);
    let servers = [broker.url()];
    let mut a = Node::start(&ns, "web", "a", &servers, &[]);
    let mut b = Node::start(&ns, "web", "b", &servers, &[]);
    // The stream exists once a first ban went through.
    a.send("block 192.0.2.49 600");
    assert_eq!(b.wait_received(1, LONG).len(), 1);
    let bad_target = r#"{"v":1,"id":"x-1","kind":"block","target":"300.1.1.1","until_ms":99999999999999,"at_ms":1,"rule":"r","offense":1,"manual":false,"origin":"a"}"#;
    for raw in ["not json at all", r#"{"v":2,"kind":"block"}"#, bad_target] {
        a.send(&format!("raw {raw}"));
        let ok = a
            .wait_for(|l| l.starts_with("raw-"), LONG)
            .expect("raw result");
        assert_eq!(ok.text, "raw-ok", "the broker stores anything small");
    }
    // Larger than the stream's 4 KiB limit: the broker itself refuses it.
    a.send(&format!("raw {}", "x".repeat(5000)));
    let big = a
        .wait_for(|l| l.starts_with("raw-"), LONG)
        .expect("raw result");
    assert!(big.text.starts_with("raw-err"), "{}", big.text);

    a.send("block 192.0.2.50 600");
    let got = b.wait_received(2, LONG);
    b.drain(Duration::from_millis(300));
    let s = b.status();
    assert_eq!(b.received().len(), 2, "{got:?}\n{s}");
    assert_eq!(got[1].target, "192.0.2.50");
    assert_eq!(
        (s["malformed"].as_u64(), s["received"].as_u64()),
        (Some(3), Some(2)),
        "{s}"
    );
    let e = s["last_error"].as_str().unwrap_or_default();
    assert!(
        e.contains("malformed message") && e.contains("target"),
        "{e}"
    );
    assert_eq!(s["connected"], true, "never fatal");
}

/// Three `nats-server -js` routed into one NATS cluster (the stream gets three replicas); the
/// nodes list all three. Killing one server loses nothing and stops nothing.
#[test]
fn a_three_server_nats_cluster_keeps_the_fleet_going_when_one_server_dies() {
    if !require_fleet() {
        return;
    }
    let ns = Netns::new("abfl3");
    let mut brokers: Vec<Broker> = (0..3u16)
        .map(|i| {
            let cluster = format!("nats://127.0.0.1:{}", 6222 + i);
            let routes: Vec<String> = (0..3u16)
                .filter(|j| *j != i)
                .map(|j| format!("nats://127.0.0.1:{}", 6222 + j))
                .collect();
            let name = format!("s{i}");
            let args = [
                "--server_name",
                &name,
                "--cluster_name",
                "abf",
                "--cluster",
                &cluster,
                "--routes",
                &routes.join(","),
            ];
            Broker::start_with(&ns, 4222 + i, &args)
        })
        .collect();
    let servers: Vec<String> = brokers.iter().map(Broker::url).collect();
    let mut a = Node::start(&ns, "web", "a", &servers, &[]);
    let mut b = Node::start(&ns, "web", "b", &servers, &[]);
    // The cluster elects its JetStream leaders first (a few seconds): the link retries.
    a.send("block 192.0.2.31 600");
    let got = b.wait_received(1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "a: {}\nb: {}", a.status(), b.status());

    brokers[0].stop();
    a.send("block 192.0.2.32 600");
    let got = b.wait_received(2, Duration::from_secs(30));
    assert_eq!(got.len(), 2, "a: {}\nb: {}", a.status(), b.status());
    assert_eq!(
        Some(one(&got, "block", "192.0.2.32").until_ms),
        a.wait_sent_until("192.0.2.32")
    );
    // A publication caught in the failover may wait for its broker confirmation until the
    // request times out (5 s) and is sent again (the stream drops the copy).
    let s = wait_status(&mut a, &[("queued", 0), ("published", 2)]);
    assert_eq!(
        (s["connected"].as_bool(), s["queued"].as_u64()),
        (Some(true), Some(0)),
        "{s}"
    );
}

/// Nodes with different `max_ban`: the stream keeps bans as long as the longest (so none is
/// missed by a node that could still apply it), and both still publish.
#[test]
fn the_stream_keeps_bans_as_long_as_the_longest_max_ban() {
    if !require_fleet() {
        return;
    }
    let ns = Netns::new("abfla");
    let broker = Broker::start(&ns, 4222);
    let servers = [broker.url()];
    let mut a = Node::start(&ns, "web", "a", &servers, &["--max-ban", "1m"]);
    a.send("block 192.0.2.61 30");
    wait_status(&mut a, &[("published", 1)]);
    assert_eq!(broker.stream_max_age_secs("AUTOBLOCK_web"), Some(60));
    let mut b = Node::start(&ns, "web", "b", &servers, &["--max-ban", "2h"]);
    b.send("block 192.0.2.62 3600");
    assert_eq!(a.wait_received(1, LONG).len(), 1);
    assert_eq!(b.wait_received(1, LONG).len(), 1);
    assert_eq!(broker.stream_max_age_secs("AUTOBLOCK_web"), Some(7200));
    assert_eq!(b.status()["last_error"], serde_json::Value::Null);
}

/// `tls://` URLs: the link speaks TLS and verifies the server against the trusted roots
/// (`SSL_CERT_FILE` here, the system's store otherwise); a node that does not trust the
/// server's CA never connects.
#[test]
fn tls_urls_connect_with_a_verified_server_only() {
    if !require_fleet() || !require_tool("openssl") {
        return;
    }
    let certs = tempfile::tempdir().expect("temp dir");
    make_tls_files(certs.path());
    let file = |name: &str| certs.path().join(name).display().to_string();
    let ns = Netns::new("abflt");
    let (cert, key) = (file("server.pem"), file("server.key"));
    let broker = Broker::start_with(&ns, 4222, &["--tls", "--tlscert", &cert, "--tlskey", &key]);
    let servers = [format!("tls://127.0.0.1:{}", broker.port)];
    let ca = certs.path().join("ca.pem");
    let env = [("SSL_CERT_FILE", ca.as_path())];
    let mut a = Node::start_env(&ns, "web", "a", &servers, &[], &env);
    let mut b = Node::start_env(&ns, "web", "b", &servers, &[], &env);
    a.send("block 192.0.2.71 600");
    assert_eq!(b.wait_received(1, LONG).len(), 1, "{}", b.status());

    let mut stranger = Node::start(&ns, "web", "c", &servers, &[]);
    stranger.drain(Duration::from_secs(2));
    let s = stranger.status();
    assert_eq!(
        (s["connected"].as_bool(), s["received"].as_u64()),
        (Some(false), Some(0)),
        "{s}"
    );
    // The client reports only "IO error" for a failed handshake (its cause is not passed on).
    assert!(
        s["last_error"].as_str().is_some_and(|e| e.contains("NATS")),
        "{s}"
    );
}

/// With no broker at all (a closed port on loopback), `publish` returns at once however many
/// bans come: they wait in the bounded queue, and what does not fit is dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_never_waits_for_a_broker_and_counts_what_it_drops() {
    use autoblock::cluster::{self, BanKind, BanNotice};
    use autoblock::config::ClusterConfig;
    use autoblock::time::Timestamp;

    let config = ClusterConfig {
        servers: vec!["nats://127.0.0.1:1".into()],
        ..ClusterConfig::default()
    };
    let (handle, _remote) = cluster::start(&config, "a", Duration::from_secs(600))
        .await
        .expect("starts without a broker");
    const N: u32 = 130_000;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..N {
        let t = Instant::now();
        handle.publish(BanNotice {
            kind: BanKind::Block,
            target: std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)).into(),
            until: Timestamp::from_secs(4_000_000_000),
            at: Timestamp::from_secs(3_999_999_000),
            rule: "r".into(),
            offense: 1,
            manual: false,
        });
        slowest = slowest.max(t.elapsed());
    }
    eprintln!(
        "{N} publish calls without a broker: {:?} in all, slowest {slowest:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = handle.status();
    assert!(!s.connected);
    assert_eq!(s.queued + s.dropped, u64::from(N), "{s:?}");
    assert!(s.queued <= 100_000 + 16_384 && s.dropped > 0, "{s:?}");
    assert!(s.last_error.is_some(), "{s:?}");
    handle.close(Duration::from_millis(100)).await;
}

/// Two processes under one node name (a cloned machine keeps its host name): the one that
/// reads the fleet reports it instead of taking the other's bans for its own in silence.
#[test]
fn a_node_name_used_twice_is_reported() {
    if !require_fleet() {
        return;
    }
    let ns = Netns::new("abfln");
    let broker = Broker::start(&ns, 4222);
    let servers = [broker.url()];
    let mut a = Node::start(&ns, "web", "a", &servers, &[]);
    a.send("block 192.0.2.80 600");
    wait_status(&mut a, &[("own", 1)]);
    let mut twin = Node::start(&ns, "web", "a", &servers, &["--no-accept"]);
    twin.send("block 192.0.2.81 600");
    let s = wait_status(&mut a, &[("name_clashes", 1)]);
    assert_eq!(
        (s["name_clashes"].as_u64(), s["own"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let e = s["last_error"].as_str().unwrap_or_default();
    assert!(e.contains("node names must be unique"), "{e}");
}
