//! Network-namespace harness: a uniquely named namespace deleted on drop (even on panic), a
//! veth pair between two namespaces with IPv4 and IPv6 addresses, and reachability probes with
//! short timeouts. Every firewall command a test runs goes through [`Netns::exec`], so nothing
//! ever touches the host's own tables.

#![allow(dead_code)]

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace that exists for this value's lifetime.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `<prefix>-<pid>-<n>` with its loopback up; `$AUTOBLOCK_TEST_NETNS_PREFIX` goes in
    /// front when set (so concurrent runs on one machine are easy to tell apart).
    pub fn new(prefix: &str) -> Netns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let outer = std::env::var("AUTOBLOCK_TEST_NETNS_PREFIX").unwrap_or_default();
        let name = format!("{outer}{prefix}-{}-{n}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("spawn ip");
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Netns { name };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `argv` inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("spawn ip netns exec")
    }

    /// `tool -w -S` (`iptables`, `ip6tables`, `iptables-legacy`) of the filter table, only
    /// `chain` and its private ban chains ([`super::chain_lines`]).
    pub fn chain_lines(&self, tool: &str, chain: &str) -> String {
        super::chain_lines(&self.ok(&[tool, "-w", "-S"]), chain)
    }

    /// The name of `chain`'s one ban chain (`CHAIN.<hex>`) in the IPv4 filter table; panics
    /// unless there is exactly one.
    pub fn ban_chain(&self, chain: &str) -> String {
        let lines = self.chain_lines("iptables", chain);
        let dispatch = format!("{chain}.bans");
        let names: Vec<&str> = lines
            .lines()
            .filter_map(|l| l.strip_prefix("-N "))
            .filter(|c| c.starts_with(&format!("{chain}.")) && *c != dispatch)
            .collect();
        assert_eq!(names.len(), 1, "{lines}");
        names[0].to_string()
    }

    /// Runs `argv` inside the namespace; panics with its stderr unless it succeeds; returns stdout.
    pub fn ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{} in {}: {}",
            argv.join(" "),
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `argv` inside the namespace in the background; killed when the guard drops.
    pub fn spawn(&self, argv: &[&str]) -> Background {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn background");
        Background(child)
    }

    /// `iptables-save` + `ip6tables-save` + `ipset save` of this namespace.
    pub fn firewall_dump(&self) -> String {
        let mut s = self.ok(&["iptables-save"]);
        s += &self.ok(&["ip6tables-save"]);
        s += &self.ok(&["ipset", "save"]);
        s
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A child process killed (by its own pid) on drop.
pub struct Background(Child);

impl Background {
    /// Its pid (`ip netns exec` execs the command: the command's own pid).
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two namespaces joined by a veth pair: `client` has two addresses per family (`.1` and `.3`),
/// `server` has `.2`. Addresses are only inside 10.200.0.0/24 and fd00:200::/64.
pub struct Pair {
    pub client: Netns,
    pub server: Netns,
}

pub const CLIENT4: &str = "10.200.0.1";
pub const CLIENT4_B: &str = "10.200.0.3";
pub const SERVER4: &str = "10.200.0.2";
pub const CLIENT6: &str = "fd00:200::1";
pub const CLIENT6_B: &str = "fd00:200::3";
pub const SERVER6: &str = "fd00:200::2";

impl Pair {
    pub fn new(prefix: &str) -> Pair {
        let client = Netns::new(&format!("{prefix}c"));
        let server = Netns::new(&format!("{prefix}s"));
        client.ok(&[
            "ip",
            "link",
            "add",
            "vc",
            "type",
            "veth",
            "peer",
            "name",
            "vs",
            "netns",
            server.name(),
        ]);
        for (ns, dev, addrs) in [
            (
                &client,
                "vc",
                [
                    ("10.200.0.1/24", false),
                    ("10.200.0.3/24", false),
                    ("fd00:200::1/64", true),
                    ("fd00:200::3/64", true),
                ]
                .as_slice(),
            ),
            (
                &server,
                "vs",
                [("10.200.0.2/24", false), ("fd00:200::2/64", true)].as_slice(),
            ),
        ] {
            for (addr, v6) in addrs {
                let mut argv = vec!["ip", "addr", "add", addr, "dev", dev];
                if *v6 {
                    argv.push("nodad");
                }
                ns.ok(&argv);
            }
            ns.ok(&["ip", "link", "set", dev, "up"]);
        }
        Pair { client, server }
    }

    /// Starts TCP listeners on the server (port 7000, IPv4 and IPv6).
    pub fn listen(&self) -> [Background; 2] {
        let bg = [
            self.server
                .spawn(&["nc", "-4", "-l", "-k", "-n", SERVER4, "7000"]),
            self.server
                .spawn(&["nc", "-6", "-l", "-k", "-n", SERVER6, "7000"]),
        ];
        // Wait until both accept (bounded).
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if self.reaches(CLIENT4_B, SERVER4) && self.reaches(CLIENT6_B, SERVER6) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bg
    }

    /// True when one ICMP echo from `src` (IPv4 client address) to `dst` is answered within
    /// 1 s (hping3; this machine has no `ping`, and hping3 has no IPv6: use [`Pair::reaches`]).
    pub fn pings(&self, src: &str, dst: &str) -> bool {
        self.client
            .exec(&[
                "timeout", "3", "hping3", "-1", "-c", "1", "-i", "u100000", "-a", src, dst,
            ])
            .status
            .success()
    }

    /// True when a TCP connection from `src` (a client address) to `dst` port 7000 succeeds
    /// within 1 s.
    pub fn reaches(&self, src: &str, dst: &str) -> bool {
        self.reaches_port(src, dst, "7000")
    }

    /// True when a TCP connection from `src` (a client address) to `dst` port `port`
    /// succeeds within 1 s.
    pub fn reaches_port(&self, src: &str, dst: &str, port: &str) -> bool {
        self.client
            .exec(&["nc", "-z", "-n", "-w", "1", "-s", src, dst, port])
            .status
            .success()
    }
}
