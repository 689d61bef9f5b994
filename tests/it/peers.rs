//! Verified peers gathered from a real namespace (issue 11, item 1): an established TCP peer,
//! an SSH session (IPv6, local port 22), the default gateways of both families, the resolvers of
//! the namespace's `resolv.conf` (`ip netns exec` mounts `/etc/netns/NAME/resolv.conf`), conntrack
//! flows, and nothing for a half-open connection. Read through `/proc/PID/...` of a process
//! inside the namespace.

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autoblock::sys::peers::{GatherOptions, Gathered, ProcFiles, gather};

use crate::harness::netns::{CLIENT4, CLIENT4_B, CLIENT6, CLIENT6_B, Pair, SERVER4, SERVER6};
use crate::harness::require_root;

/// `/etc/netns/NAME/resolv.conf`, removed on drop.
struct NetnsResolv(std::path::PathBuf);

impl Drop for NetnsResolv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn kinds(g: &Gathered, addr: &str) -> String {
    let addr: IpAddr = addr.parse().expect("addr");
    g.set
        .protection(addr)
        .map(|p| p.kinds.to_string())
        .unwrap_or_default()
}

#[test]
fn peers_of_a_real_namespace_with_why() {
    if !require_root() {
        return;
    }
    let p = Pair::new("abpe");
    let s = &p.server;
    let dir = std::path::PathBuf::from("/etc/netns").join(s.name());
    std::fs::create_dir_all(&dir).expect("mkdir /etc/netns/NAME");
    let _resolv = NetnsResolv(dir.clone());
    std::fs::write(
        dir.join("resolv.conf"),
        format!("nameserver {CLIENT4_B}\nnameserver {CLIENT6_B}\n"),
    )
    .expect("write resolv.conf");
    s.ok(&["ip", "route", "add", "default", "via", CLIENT4]);
    s.ok(&["ip", "-6", "route", "add", "default", "via", CLIENT6]);
    // Conntrack sees flows once a rule asks for it.
    s.ok(&[
        "iptables",
        "-w",
        "-A",
        "INPUT",
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED",
    ]);
    let _listeners = p.listen();
    let _ssh = s.spawn(&["nc", "-6", "-l", "-k", "-n", SERVER6, "22"]);
    // The held SSH client below connects once: wait until the listener accepts (a probe from
    // CLIENT6, whose closed connection leaves no established peer).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p.reaches_port(CLIENT6, SERVER6, "22") {
        assert!(Instant::now() < deadline, "the SSH listener never accepted");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Held open by a sleeping stdin: an established peer and an SSH session.
    let held = [
        format!("sleep 30 | nc -n -s {CLIENT4} {SERVER4} 7000"),
        format!("sleep 30 | nc -6 -n -s {CLIENT6_B} {SERVER6} 22"),
    ];
    let mut clients: Vec<std::process::Child> = held
        .iter()
        .map(|cmd| {
            Command::new("ip")
                .args(["netns", "exec", p.client.name(), "sh", "-c", cmd])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn client")
        })
        .collect();
    let inside = s.spawn(&["sleep", "30"]);
    // Until `ip netns exec` has entered the namespace and exec'd, /proc/PID is the host's.
    let comm = format!("/proc/{}/comm", inside.pid());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&comm).unwrap_or_default().trim() != "sleep" {
        assert!(
            Instant::now() < deadline,
            "sleep never started in the namespace"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let facts = ProcFiles::of_pid(inside.pid());
    let deadline = Instant::now() + Duration::from_secs(10);
    let g = loop {
        let g = gather(&facts, &GatherOptions::default());
        // Resolvers show from the start; wait for the two held connections.
        let ready = kinds(&g, CLIENT4).contains("established")
            && kinds(&g, CLIENT6_B).contains("established");
        if ready || Instant::now() > deadline {
            break g;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for c in &mut clients {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(g.problems.is_empty(), "{:?}", g.problems);
    assert_eq!(kinds(&g, CLIENT4), "gateway, established");
    assert_eq!(kinds(&g, CLIENT6), "gateway");
    assert_eq!(kinds(&g, CLIENT4_B), "resolver");
    assert_eq!(kinds(&g, CLIENT6_B), "resolver, ssh, established");
    assert!(
        g.set.protection(SERVER4.parse().expect("addr")).is_some(),
        "conntrack: us"
    );
    // A spoofed SYN completes no handshake: nothing for its source.
    let _ = p.client.exec(&[
        "timeout",
        "3",
        "hping3",
        "-S",
        "-c",
        "3",
        "-i",
        "u1000",
        "-a",
        "10.200.0.99",
        "-p",
        "7000",
        SERVER4,
    ]);
    let g = gather(&facts, &GatherOptions::default());
    assert_eq!(kinds(&g, "10.200.0.99"), "");
    drop(inside);
}
