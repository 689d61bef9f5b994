//! The library examples (`crates/firewall/examples/authlog_block`, `.../blocklist_load`) run as
//! programs against namespaces the tests create: blocked sources' packets are dropped, others
//! pass, bans expire, lists sync, bad input changes nothing, refused entries are reported while
//! the rest loads. The examples are built once per test run with `cargo build -p
//! autoblock-firewall --example ...`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use autoblock::firewall::{Backend, Batch, Firewall, FirewallOptions};

use crate::harness::netns::{self, CLIENT4, CLIENT4_B, CLIENT6, CLIENT6_B, Netns, Pair};
use crate::harness::require_root;

const EXAMPLES: [&str; 2] = ["authlog_block", "blocklist_load"];

/// The built example `name`, building both examples on first use.
fn example(name: &str) -> Command {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(manifest)
            .args(["build", "--quiet", "-p", "autoblock-firewall"]);
        for ex in EXAMPLES {
            cmd.args(["--example", ex]);
        }
        let out = cmd.output().expect("spawn cargo build --example");
        assert!(
            out.status.success(),
            "cargo build --example: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("target"));
        let target = if target.is_relative() {
            manifest.join(target)
        } else {
            target
        };
        target.join("debug").join("examples")
    });
    Command::new(dir.join(name))
}

fn run(name: &str, args: &[&str]) -> Output {
    example(name)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn example")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running example whose stdout lines arrive on a channel; killed on drop.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(name: &str, args: &[&str]) -> Running {
        let mut child = example(name)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn example");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most `secs`) for a line starting with `prefix`; panics with what was seen.
    fn expect_line(&mut self, prefix: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line starting with {prefix:?} within {secs} s; saw {:?}",
                    self.seen
                ),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn failed_password(addr: &str) -> String {
    format!(
        "Nov 25 01:31:36 host sshd[1234]: Failed password for invalid user admin from {addr} port 52311 ssh2\n"
    )
}

fn invalid_user(addr: &str) -> String {
    format!("Nov 25 01:31:37 host sshd[1235]: Invalid user x from {addr} port 4242\n")
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .expect("open log");
    f.write_all(text.as_bytes()).expect("append log");
}

/// Asserts which client addresses reach the server (TCP to port 7000).
fn assert_reach(pair: &Pair, blocked: &[&str], passing: &[&str]) {
    for src in blocked {
        let dst = server_for(src);
        assert!(!pair.reaches(src, dst), "blocked {src} still reaches {dst}");
    }
    for src in passing {
        let dst = server_for(src);
        assert!(pair.reaches(src, dst), "{src} should reach {dst}");
    }
}

fn server_for(src: &str) -> &'static str {
    if src.contains(':') {
        netns::SERVER6
    } else {
        netns::SERVER4
    }
}

/// Polls (at most `secs`) until every address in `srcs` reaches the server.
fn wait_until_reach(pair: &Pair, srcs: &[&str], secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if srcs.iter().all(|s| pair.reaches(s, server_for(s))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn open(ns: &Netns, backend: Backend) -> Firewall {
    Firewall::open(FirewallOptions::new(backend, "ABX").netns(ns.name())).expect("open")
}

#[test]
fn authlog_once_blocks_attackers_until_the_ban_expires() {
    if !require_root() {
        return;
    }
    let pair = Pair::new("abx");
    let _listeners = pair.listen();
    assert_reach(&pair, &[], &[CLIENT4, CLIENT4_B, CLIENT6, CLIENT6_B]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut lines = String::from("Nov 25 01:31:30 host CRON[1]: pam_unix(cron:session): x\n");
    for _ in 0..4 {
        lines += &failed_password(CLIENT4);
        lines += &invalid_user(CLIENT6);
    }
    for _ in 0..2 {
        lines += &failed_password(CLIENT4_B);
        lines += &invalid_user(CLIENT6_B);
    }
    // A user name naming the innocent address must not count against it.
    lines += &format!(
        "Nov 25 01:31:38 host sshd[9]: Failed password for invalid user x from {CLIENT4_B} port 22 from {CLIENT4} port 1 ssh2\n"
    );
    append(&log, &lines);
    let out = run(
        "authlog_block",
        &[
            "--log",
            log.to_str().unwrap(),
            "--chain",
            "ABX",
            "--backend",
            "ipset",
            "--netns",
            pair.server.name(),
            "--failures",
            "3",
            "--window",
            "60s",
            "--ban",
            "5s",
            "--once",
        ],
    );
    let blocked_at = Instant::now();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("blocked {CLIENT4} for 5s")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("blocked {CLIENT6} for 5s")),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("blocked ")).count(),
        2,
        "{stdout}"
    );
    assert_reach(&pair, &[CLIENT4, CLIENT6], &[CLIENT4_B, CLIENT6_B]);
    assert!(
        blocked_at.elapsed() < Duration::from_secs(4),
        "probes too slow to be inside the 5 s ban"
    );
    assert!(
        wait_until_reach(&pair, &[CLIENT4, CLIENT6], 15),
        "the 5 s bans did not expire"
    );
    assert!(blocked_at.elapsed() >= Duration::from_secs(4));
    open(&pair.server, Backend::Ipset).flush().unwrap();
}

#[test]
fn authlog_follow_survives_rotation_and_truncation_and_expires_bans() {
    if !require_root() {
        return;
    }
    let pair = Pair::new("abx");
    let _listeners = pair.listen();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, &failed_password(CLIENT4).repeat(5)); // before the start: not counted
    let mut ex = Running::start(
        "authlog_block",
        &[
            "--log",
            log.to_str().unwrap(),
            "--chain",
            "ABX",
            "--backend",
            "iptables",
            "--netns",
            pair.server.name(),
            "--failures",
            "3",
            "--ban",
            "3s",
            "--poll",
            "100ms",
            "--follow",
        ],
    );
    ex.expect_line("following ", 10);
    append(&log, &failed_password(CLIENT4_B).repeat(2));
    append(&log, &failed_password(CLIENT4).repeat(2));
    std::thread::sleep(Duration::from_millis(500));
    assert_reach(&pair, &[], &[CLIENT4, CLIENT4_B]);
    append(&log, &failed_password(CLIENT4));
    ex.expect_line(&format!("blocked {CLIENT4} "), 10);
    assert_reach(&pair, &[CLIENT4], &[CLIENT4_B]);
    ex.expect_line(&format!("unblocked {CLIENT4} (expired; sshd-failures)"), 10);
    assert_reach(&pair, &[], &[CLIENT4, CLIENT4_B]);

    // Rotation: the file is renamed and a new one created at the path.
    std::fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    append(&log, &invalid_user(CLIENT6).repeat(3));
    ex.expect_line(&format!("blocked {CLIENT6} "), 10);
    assert_reach(&pair, &[CLIENT6], &[CLIENT6_B, CLIENT4]);

    // Truncation in place (copytruncate), then new lines from the start.
    std::fs::write(&log, "").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    append(&log, &failed_password("192.0.2.44").repeat(3));
    ex.expect_line("blocked 192.0.2.44 ", 10);
    drop(ex);
    let fw = open(&pair.server, Backend::Iptables);
    assert!(
        fw.list()
            .unwrap()
            .iter()
            .all(|b| b.reason == "sshd-failures"),
        "reason recorded"
    );
    fw.flush().unwrap();
}

/// Firewall state without comment lines and packet counters, to compare before and after.
fn firewall_state(ns: &Netns) -> String {
    ns.firewall_dump()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            if l.starts_with(':') {
                l.split(' ').take(2).collect::<Vec<_>>().join(" ")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn blocklist_syncs(backend: Backend) {
    if !require_root() {
        return;
    }
    let be = match backend {
        Backend::Ipset => "ipset",
        _ => "iptables",
    };
    let pair = Pair::new("abx");
    let _listeners = pair.listen();
    let fw = open(&pair.server, backend);
    let mut batch = Batch::new();
    batch.block(
        "192.0.2.99".parse::<std::net::IpAddr>().unwrap(),
        Duration::from_secs(600),
        "manual",
    );
    let _ = fw.commit(batch).unwrap();
    // One handle per chain: the example cannot open it while we hold it.
    drop(fw);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feed.txt");
    let path = file.to_str().unwrap();
    let load = |extra: &[&str]| {
        let mut args = vec![
            "--file",
            path,
            "--chain",
            "ABX",
            "--backend",
            be,
            "--netns",
            pair.server.name(),
            "--reason",
            "feed",
        ];
        args.extend_from_slice(extra);
        run("blocklist_load", &args)
    };

    std::fs::write(
        &file,
        format!(
            "# test feed\n198.51.100.0/24\n{CLIENT4}\n\n{CLIENT6}/128  # attacker\n2001:db8:bad::/48\n"
        ),
    )
    .unwrap();
    let out = load(&[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("blocked 4 nets (4 new), unblocked 0 "),
        "{stdout}"
    );
    assert_reach(&pair, &[CLIENT4, CLIENT6], &[CLIENT4_B, CLIENT6_B]);
    assert!(!pair.pings(CLIENT4, netns::SERVER4), "listed ping answered");
    assert!(
        pair.pings(CLIENT4_B, netns::SERVER4),
        "unlisted ping dropped"
    );

    // The attacker left the list: the next load unblocks it, and keeps other reasons' bans.
    std::fs::write(&file, "198.51.100.0/24\n2001:db8:bad::/48\n").unwrap();
    let out = load(&[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("blocked 2 nets (0 new), unblocked 2 "),
        "{stdout}"
    );
    assert_reach(&pair, &[], &[CLIENT4, CLIENT6, CLIENT4_B]);
    let nets: Vec<String> = open(&pair.server, backend)
        .list()
        .unwrap()
        .iter()
        .map(|b| format!("{} {}", b.net, b.reason))
        .collect();
    assert_eq!(
        nets,
        [
            "192.0.2.99/32 manual",
            "198.51.100.0/24 feed",
            "2001:db8:bad::/48 feed"
        ]
    );

    // A bad line: exit 2, every bad line named, the kernel untouched.
    let before = firewall_state(&pair.server);
    std::fs::write(&file, format!("{CLIENT4}\nnot-an-address\n10.0.0.0/33\n")).unwrap();
    let out = load(&[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("feed.txt:2: `not-an-address`") && stderr.contains("feed.txt:3: "),
        "{stderr}"
    );
    assert_eq!(firewall_state(&pair.server), before);
    assert_reach(&pair, &[], &[CLIENT4]);
    // ...unless told to skip them.
    let out = load(&["--skip-bad"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("blocked 1 nets (1 new), unblocked 2 ")
            && stdout.contains("skipped 2 bad lines"),
        "{stdout}"
    );
    assert_reach(&pair, &[CLIENT4], &[CLIENT4_B]);
    open(&pair.server, backend).flush().unwrap();
}

#[test]
fn blocklist_ipset_syncs_and_refuses_bad_lines() {
    blocklist_syncs(Backend::Ipset);
}

#[test]
fn blocklist_iptables_syncs_and_refuses_bad_lines() {
    blocklist_syncs(Backend::Iptables);
}

#[test]
fn blocklist_loads_10k_entries_in_one_run() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abx");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.txt");
    let mut list: String = (0..10_000u32)
        .map(|i| format!("198.18.{}.{}\n", i / 256, i % 256))
        .collect();
    // Bad lines of an abuse feed: the firewall refuses them, the other 10,000 load.
    list.insert_str(0, "0.0.0.0/0\n");
    list.push_str("127.0.0.1\n");
    std::fs::write(&file, list).unwrap();
    let out = run(
        "blocklist_load",
        &[
            "--file",
            file.to_str().unwrap(),
            "--chain",
            "ABX",
            "--backend",
            "ipset",
            "--netns",
            ns.name(),
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("blocked 10000 nets (10000 new)") && stdout.contains(", 2 refused;"),
        "{stdout}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("refused 0.0.0.0/0: ") && stderr.contains("refused 127.0.0.1/32: "),
        "{stderr}"
    );
    let fw = open(&ns, Backend::Ipset);
    assert_eq!(fw.list().unwrap().len(), 10_000);
    assert_eq!(fw.len(), 10_000);
    fw.flush().unwrap();
}

#[test]
fn examples_exit_2_on_bad_input_and_1_on_firewall_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.log");
    let missing = missing.to_str().unwrap();
    let ns = "abx-does-not-exist";
    let common = ["--chain", "ABX", "--netns", ns];
    let out = run(
        "authlog_block",
        &[
            &["--log", missing, "--backend", "ipset", "--once"],
            &common[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("missing.log"));
    let out = run(
        "authlog_block",
        &[&["--log", missing, "--backend", "pf"], &common[..]].concat(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = run(
        "blocklist_load",
        &[&["--file", missing, "--backend", "ipset"], &common[..]].concat(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = run(
        "blocklist_load",
        &[
            &["--file", missing, "--backend", "ipset", "--reason", "a\"b"],
            &common[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // A namespace that does not exist: the firewall error names the command.
    let log = dir.path().join("auth.log");
    std::fs::write(&log, failed_password("192.0.2.1")).unwrap();
    let out = run(
        "authlog_block",
        &[
            &[
                "--log",
                log.to_str().unwrap(),
                "--backend",
                "iptables",
                "--once",
            ],
            &common[..],
        ]
        .concat(),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("network namespace \"{ns}\" not found")),
        "{stderr}"
    );
}
