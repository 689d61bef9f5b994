//! The socket tables over netlink (`sys::peers::sock_diag`) against the `/proc/net` text, in a
//! namespace this test creates: TCP listeners (IPv4, dual-stack IPv6, loopback), UDP sockets
//! (bound, on loopback, connected), established connections over a veth from both families
//! and an IPv4 client of a dual-stack listener. A dump asks the caller's own namespace, so
//! this test runs itself inside it (`ip netns exec NS <this test binary> --exact ...` with
//! [`CHILD`] set), where both readers print what they see; here the two must agree, on the
//! tables and on `gather` and `host_ports`, and hold the sockets made.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use autoblock::sys::peers::{
    GatherOptions, PeerFacts, ProcFiles, SocketTable, Want, gather, host_ports, sock_diag,
};

use crate::harness::netns::{Background, CLIENT4, CLIENT4_B, CLIENT6_B, Pair, SERVER4, SERVER6};
use crate::harness::{require_root, require_tool};

/// Set in the re-executed test binary: print the tables instead of testing.
const CHILD: &str = "AUTOBLOCK_TEST_SOCK_DIAG_CHILD";

const TABLES: [SocketTable; 4] = [
    SocketTable::Tcp4,
    SocketTable::Tcp6,
    SocketTable::Udp4,
    SocketTable::Udp6,
];

/// The server's sockets; the process ends by itself after a minute.
const SERVER: &str = r#"
import select, socket as S, sys, time
def tcp(fam, addr, v6only=None):
    s = S.socket(fam, S.SOCK_STREAM); s.setsockopt(S.SOL_SOCKET, S.SO_REUSEADDR, 1)
    if v6only is not None: s.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, v6only)
    s.bind(addr); s.listen(16); return s
def udp(fam, addr, v6only=None):
    s = S.socket(fam, S.SOCK_DGRAM)
    if v6only is not None: s.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, v6only)
    s.bind(addr); return s
served = [tcp(S.AF_INET, (sys.argv[1], 7000)), tcp(S.AF_INET6, ("::", 7001), 0)]
local = [tcp(S.AF_INET, ("127.0.0.1", 7002)), tcp(S.AF_INET6, ("::1", 7003), 1)]
bound = [udp(S.AF_INET, ("0.0.0.0", 5300)), udp(S.AF_INET6, ("::", 5301), 1),
         udp(S.AF_INET, ("127.0.0.1", 5302))]
connected = udp(S.AF_INET, ("0.0.0.0", 5303)); connected.connect((sys.argv[2], 9))
held = [S.create_connection(("127.0.0.1", 7002))]
end = time.time() + 60
while time.time() < end:
    ready, _, _ = select.select(served, [], [], 0.5)
    held += [s.accept()[0] for s in ready]
"#;

/// The client's connections (from two IPv4 and one IPv6 address); ends after a minute.
const CLIENT: &str = r#"
import socket as S, sys, time
a4, b4, b6, s4, s6 = sys.argv[1:6]
held = [S.create_connection((s4, 7000), source_address=(a4, 0)),
        S.create_connection((s4, 7001), source_address=(b4, 0)),
        S.create_connection((s6, 7001), source_address=(b6, 0))]
time.sleep(60)
"#;

/// Run inside the namespace by [`netlink_and_proc_agree_in_a_namespace`]: one line per
/// socket and reader (`table reader est LOCAL REMOTE` / `table reader lis PORT`), then
/// `host_ports` and `gather` through each reader.
#[test]
#[ignore = "the half of netlink_and_proc_agree_in_a_namespace that runs inside its namespace"]
fn print_both_readers() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let text = ProcFiles::own_text();
    for table in TABLES {
        let readers = [
            ("netlink", sock_diag::dump(table, Want::Both)),
            ("text", text.sockets(table, Want::Both)),
        ];
        for (reader, sockets) in readers {
            match sockets {
                Ok(s) => {
                    for c in s.established {
                        println!("ROW {table:?} {reader} est {} {}", c.local, c.remote);
                    }
                    for port in s.listening {
                        println!("ROW {table:?} {reader} lis {port}");
                    }
                }
                Err(e) => println!("ROW {table:?} {reader} error {e}"),
            }
        }
    }
    for (reader, facts) in [("netlink", ProcFiles::own()), ("text", text)] {
        println!("ROW ports {reader} {:?}", host_ports(&facts));
        let g = gather(&facts, &GatherOptions::default());
        let mut set: Vec<String> = g
            .set
            .iter()
            .map(|p| format!("{} {}", p.net, p.kinds))
            .collect();
        set.sort();
        println!("ROW gather {reader} {set:?} {:?}", g.problems);
    }
}

/// The rows the child prints in `ns` (sorted, without the `ROW ` tag).
fn rows_inside(ns: &str) -> BTreeSet<String> {
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(["--exact", "peers_netlink::print_both_readers", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("spawn the test binary in the namespace");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // libtest prints `test NAME ... ` in front of the first line.
        .filter_map(|l| l.split_once("ROW ").map(|(_, row)| row.to_owned()))
        .collect()
}

/// The rows of one reader with the reader's name taken out (to compare the two).
fn of_reader(rows: &BTreeSet<String>, reader: &str) -> BTreeSet<String> {
    rows.iter()
        .filter_map(|r| {
            let mut w = r.splitn(3, ' ');
            let (table, who, rest) = (w.next()?, w.next()?, w.next()?);
            (who == reader).then(|| format!("{table} {rest}"))
        })
        .collect()
}

fn python(ns: &crate::harness::netns::Netns, script: &str, args: &[&str]) -> Background {
    let mut argv = vec!["python3", "-c", script];
    argv.extend_from_slice(args);
    ns.spawn(&argv)
}

#[test]
fn netlink_and_proc_agree_in_a_namespace() {
    if !require_root() || !require_tool("python3") {
        return;
    }
    let p = Pair::new("abpn");
    let _server = python(&p.server, SERVER, &[SERVER4, CLIENT4]);
    std::thread::sleep(Duration::from_millis(300));
    let _client = python(
        &p.client,
        CLIENT,
        &[CLIENT4, CLIENT4_B, CLIENT6_B, SERVER4, SERVER6],
    );
    let expected = [
        "Tcp4 lis 7000".to_string(),
        "Tcp6 lis 7001".to_string(),
        "Udp4 lis 5300".to_string(),
        "Udp6 lis 5301".to_string(),
        format!("Tcp4 est {SERVER4}:7000 {CLIENT4}:"),
        format!("Tcp6 est [{SERVER6}]:7001 [{CLIENT6_B}]:"),
        // An IPv4 client of the dual-stack listener, canonical.
        format!("Tcp6 est {SERVER4}:7001 {CLIENT4_B}:"),
        "Tcp4 est 127.0.0.1:7002 127.0.0.1:".to_string(),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let (rows, netlink) = loop {
        let rows = rows_inside(p.server.name());
        let netlink = of_reader(&rows, "netlink");
        let all_there = expected
            .iter()
            .all(|e| netlink.iter().any(|r| r.starts_with(e.as_str())));
        if all_there || Instant::now() > deadline {
            break (rows, netlink);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for e in &expected {
        assert!(
            netlink.iter().any(|r| r.starts_with(e.as_str())),
            "{e} missing over netlink: {netlink:#?}"
        );
    }
    for absent in ["lis 7002", "lis 7003", "lis 5302", "lis 5303"] {
        assert!(
            !netlink.iter().any(|r| r.ends_with(absent)),
            "{absent}: {netlink:#?}"
        );
    }
    assert!(
        !netlink.iter().any(|r| r.contains(" error ")),
        "{netlink:#?}"
    );
    assert_eq!(netlink, of_reader(&rows, "text"), "netlink vs /proc text");
}
