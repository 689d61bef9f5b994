//! Harness for the end-to-end daemon tests: three namespaces (an attacker and a client, each
//! joined to the victim by its own veth pair), a TCP service in the victim, a configuration
//! derived from the shipped `rules.toml`, and `autoblock run` started under
//! `ip netns exec VICTIM` with its events (stdout) in a file the test polls.
//!
//! Every firewall command (the daemon's and the test's) runs inside the victim namespace;
//! addresses are only 10.201.0.0/16 and fd00:201::/48, inside namespaces deleted on drop. The
//! daemon, the service and any flood are children killed (by their own pid) on drop.

#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::netns::{Background, Netns};

pub const ATTACKER4: &str = "10.201.1.1";
pub const VICTIM_A4: &str = "10.201.1.2";
pub const CLIENT4: &str = "10.201.2.1";
pub const VICTIM_C4: &str = "10.201.2.2";
pub const ATTACKER6: &str = "fd00:201:1::1";
pub const VICTIM_A6: &str = "fd00:201:1::2";
/// The service port in the victim.
pub const PORT: &str = "8080";

/// Victim `v` with interface `va` (to the attacker's `eth0`) and `vc` (to the client's `eth0`).
pub struct Topo {
    pub victim: Netns,
    pub attacker: Netns,
    pub client: Netns,
}

impl Topo {
    pub fn new(prefix: &str) -> Topo {
        let victim = Netns::new(&format!("{prefix}v"));
        let attacker = Netns::new(&format!("{prefix}a"));
        let client = Netns::new(&format!("{prefix}c"));
        for (peer, dev, mine, theirs, mine6, theirs6) in [
            (
                &attacker,
                "va",
                "10.201.1.2/24",
                "10.201.1.1/24",
                "fd00:201:1::2/64",
                "fd00:201:1::1/64",
            ),
            (
                &client,
                "vc",
                "10.201.2.2/24",
                "10.201.2.1/24",
                "fd00:201:2::2/64",
                "fd00:201:2::1/64",
            ),
        ] {
            victim.ok(&[
                "ip",
                "link",
                "add",
                dev,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                peer.name(),
            ]);
            victim.ok(&["ip", "addr", "add", mine, "dev", dev]);
            victim.ok(&["ip", "addr", "add", mine6, "dev", dev, "nodad"]);
            victim.ok(&["ip", "link", "set", dev, "up"]);
            peer.ok(&["ip", "addr", "add", theirs, "dev", "eth0"]);
            peer.ok(&["ip", "addr", "add", theirs6, "dev", "eth0", "nodad"]);
            peer.ok(&["ip", "link", "set", "eth0", "up"]);
        }
        Topo {
            victim,
            attacker,
            client,
        }
    }

    /// Starts the TCP service (port 8080, IPv4) in the victim and waits until the client
    /// reaches it.
    pub fn serve(&self) -> Background {
        let bg = self.victim.spawn(&["nc", "-4", "-l", "-k", "-n", PORT]);
        assert!(
            poll(Duration::from_secs(10), || self.client_connects()),
            "the service never answered the client"
        );
        bg
    }

    /// One TCP connection from the client to the service within 2 s.
    pub fn client_connects(&self) -> bool {
        connects(&self.client, VICTIM_C4)
    }

    /// One TCP connection from the attacker to the service within 2 s.
    pub fn attacker_connects(&self) -> bool {
        connects(&self.attacker, VICTIM_A4)
    }

    /// A bounded SYN flood from the attacker to the service, in the background:
    /// `hping3 -S -p 8080 -c COUNT -i uGAP` (plus `extra`), killed on drop, ended by `timeout`.
    pub fn flood(&self, count: u32, gap_us: u32, extra: &[&str]) -> Flood {
        let count = count.to_string();
        let gap = format!("u{gap_us}");
        let mut argv = vec![
            "timeout", "60", "hping3", "-q", "-S", "-p", PORT, "-c", &count, "-i", &gap,
        ];
        argv.extend_from_slice(extra);
        argv.push(VICTIM_A4);
        let child = Command::new("ip")
            .args(["netns", "exec", self.attacker.name()])
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hping3");
        Flood(Some(child))
    }
}

fn connects(ns: &Netns, dst: &str) -> bool {
    ns.exec(&["nc", "-z", "-n", "-w", "2", dst, PORT])
        .status
        .success()
}

/// A background flood; waited for with [`Flood::wait`], killed on drop.
pub struct Flood(Option<Child>);

impl Flood {
    /// Waits (bounded) for the flood to end by itself.
    pub fn wait(mut self, limit: Duration) {
        let mut child = self.0.take().expect("flood");
        let deadline = Instant::now() + limit;
        loop {
            if child.try_wait().expect("wait hping3").is_some() {
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the flood did not end within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` every 100 µs until it holds or `limit` passes.
pub fn poll_fast(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    f()
}

/// Polls `f` every 50 ms until it holds or `limit` passes.
pub fn poll(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A configuration file in a temp dir: the shipped `rules.toml` with the interfaces, socket,
/// state dir and chosen keys changed by exact text replacement (each must match once).
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    text: String,
}

impl Setup {
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("autoblock.sock");
        let state = dir.path().join("state");
        let text =
            std::fs::read_to_string(crate::harness::shipped_rules()).expect("read rules.toml");
        let mut s = Setup {
            config: dir.path().join("rules.toml"),
            socket: socket.clone(),
            dir,
            text,
        };
        s.set("interfaces = []", "interfaces = [\"va\", \"vc\"]");
        s.set(
            "socket = \"/run/autoblock/autoblock.sock\"",
            &format!("socket = {:?}", socket.display().to_string()),
        );
        s.set(
            "dir = \"/var/lib/autoblock\"",
            &format!("dir = {:?}", state.display().to_string()),
        );
        // The shipped `auto` would pick nftables here: tests name their backend, iptables
        // unless they choose another.
        s.backend("iptables");
        s.write();
        s
    }

    /// Replaces the one occurrence of `from` (a whole line's content) with `to`.
    pub fn set(&mut self, from: &str, to: &str) -> &mut Setup {
        assert_eq!(
            self.text.matches(from).count(),
            1,
            "{from:?} must occur once in the config"
        );
        self.text = self.text.replacen(from, to, 1);
        self
    }

    pub fn backend(&mut self, backend: &str) -> &mut Setup {
        let from = self
            .text
            .lines()
            .find(|l| l.starts_with("backend = "))
            .expect("backend line")
            .to_string();
        self.set(&from, &format!("backend = {backend:?}"))
    }

    /// Every ban (the default and the rules' own) set to `ban`.
    pub fn bans(&mut self, ban: &str) -> &mut Setup {
        self.set("ban = \"10m\"", &format!("ban = {ban:?}"));
        self.set("ban = \"5m\"", &format!("ban = {ban:?}"))
    }

    /// Sets `[events] file` to a file in the temp dir; returns its path.
    pub fn events_file(&mut self) -> PathBuf {
        let path = self.dir.path().join("events.file.jsonl");
        self.set(
            "file = \"\"",
            &format!("file = {:?}", path.display().to_string()),
        );
        path
    }

    pub fn append(&mut self, toml: &str) -> &mut Setup {
        self.text.push('\n');
        self.text.push_str(toml);
        self
    }

    /// Writes the file (call after changes).
    pub fn write(&self) {
        std::fs::write(&self.config, &self.text).expect("write config");
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Where the daemon's stdout goes.
pub enum Stdout {
    /// A file the test reads its events from.
    File,
    /// A pipe nobody reads (a stalled journald); events are read from `[events] file`, which
    /// the setup must name (see [`Setup::events_file`]).
    Stalled(PathBuf),
}

/// `autoblock run` inside a namespace; killed (SIGKILL, by pid) on drop.
pub struct Daemon {
    child: Option<Child>,
    /// The read end of a stalled stdout, kept open and unread.
    pub pipe: Option<ChildStdout>,
    pub pid: u32,
    pub events: PathBuf,
    pub stderr: PathBuf,
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts the daemon in `ns` with `setup`'s config (plus `extra` arguments); waits for its
    /// `started` event and for the control socket to answer.
    pub fn start(ns: &Netns, setup: &Setup, extra: &[&str]) -> Daemon {
        Self::start_as(ns, setup, extra, "run")
    }

    /// Like [`Daemon::start`], with distinct log files per `tag` (several runs in one test).
    pub fn start_as(ns: &Netns, setup: &Setup, extra: &[&str], tag: &str) -> Daemon {
        Self::start_with(ns, setup, extra, tag, Stdout::File)
    }

    /// Like [`Daemon::start_as`], with `env` added to the daemon's environment (e.g. a `PATH`).
    pub fn start_env(
        ns: &Netns,
        setup: &Setup,
        extra: &[&str],
        tag: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Daemon {
        Self::started(Self::spawn_env(ns, setup, extra, tag, Stdout::File, env))
    }

    /// Like [`Daemon::start_as`], with stdout going where `stdout` says.
    pub fn start_with(
        ns: &Netns,
        setup: &Setup,
        extra: &[&str],
        tag: &str,
        stdout: Stdout,
    ) -> Daemon {
        Self::started(Self::spawn(ns, setup, extra, tag, stdout))
    }

    /// Waits for `started` and for the control socket to answer.
    fn started(mut d: Daemon) -> Daemon {
        d.wait_event(Duration::from_secs(30), "started", |_| true);
        // `ip netns exec` execs the daemon: the child's pid is the daemon's own.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", d.pid)).unwrap_or_default();
        assert_eq!(comm.trim(), "autoblock", "pid {} is not the daemon", d.pid);
        let ok = poll(Duration::from_secs(20), || {
            d.cli(&["status", "--format", "json"]).status.success()
        });
        if !ok {
            d.fail("the control socket never answered");
        }
        d
    }

    /// Starts the daemon and returns at once (nothing waited for).
    pub fn spawn(ns: &Netns, setup: &Setup, extra: &[&str], tag: &str, stdout: Stdout) -> Daemon {
        Self::spawn_env(ns, setup, extra, tag, stdout, &[])
    }

    /// Like [`Daemon::spawn`], with these environment variables set for the daemon.
    pub fn spawn_env(
        ns: &Netns,
        setup: &Setup,
        extra: &[&str],
        tag: &str,
        stdout: Stdout,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Daemon {
        let stderr = setup.dir.path().join(format!("{tag}.stderr"));
        let (events, out) = match stdout {
            Stdout::File => {
                let events = setup.dir.path().join(format!("{tag}.events.jsonl"));
                let file = File::create(&events).expect("events file");
                (events, Stdio::from(file))
            }
            Stdout::Stalled(events) => (events, Stdio::piped()),
        };
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .arg(env!("CARGO_BIN_EXE_autoblock"))
            .args(["run", "--config"])
            .arg(&setup.config)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn autoblock run");
        let pid = child.id();
        let pipe = child.stdout.take();
        Daemon {
            child: Some(child),
            pipe,
            pid,
            events,
            stderr,
            socket: setup.socket.clone(),
        }
    }

    /// Waits (5 s at most) until `ip netns exec` has become the daemon (its pid runs
    /// `autoblock`): the earliest moment a signal reaches the daemon itself.
    pub fn wait_exec(&self) {
        let ok = poll_fast(Duration::from_secs(5), || {
            std::fs::read_to_string(format!("/proc/{}/comm", self.pid))
                .is_ok_and(|c| c.trim() == "autoblock")
        });
        assert!(ok, "pid {} never became autoblock", self.pid);
    }

    /// Every event line so far, parsed (a torn last line is skipped).
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Events of one kind so far.
    pub fn of(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    /// Waits for the first event of `kind` matching `pred`; panics with the logs on timeout.
    pub fn wait_event(
        &mut self,
        limit: Duration,
        kind: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self
                .events()
                .into_iter()
                .find(|e| e["event"] == kind && pred(e))
            {
                return e;
            }
            if let Some(c) = &mut self.child
                && let Ok(Some(st)) = c.try_wait()
            {
                self.fail(&format!("the daemon exited ({st}) before a {kind} event"));
            }
            if Instant::now() >= deadline {
                self.fail(&format!("no {kind} event within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics with the events and stderr so far.
    pub fn fail(&self, why: &str) -> ! {
        let ev = std::fs::read_to_string(&self.events).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        panic!("{why}\n--- events ---\n{ev}--- stderr ---\n{err}");
    }

    /// Runs `autoblock ARGS --socket SOCKET` (from the host namespace: the socket is a file).
    pub fn cli(&self, args: &[&str]) -> Output {
        crate::harness::bin()
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .args(["--timeout", "10s"])
            .stdin(Stdio::null())
            .output()
            .expect("spawn autoblock")
    }

    /// Runs a CLI command that must succeed; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        if !out.status.success() {
            self.fail(&format!(
                "autoblock {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `status --format json`, parsed.
    pub fn status(&self) -> Value {
        serde_json::from_str(&self.cli_ok(&["status", "--format", "json"])).expect("status json")
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...) to the daemon's pid.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args(["-s", sig, &self.pid.to_string()])
            .status()
            .expect("spawn kill");
        assert!(st.success(), "kill -s {sig} {}", self.pid);
    }

    /// `VmHWM` (peak resident set) of the daemon, in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.proc_status_bytes("VmHWM:")
    }

    /// `RssAnon` (resident heap and stacks, not the mapped binary) of the daemon, in bytes.
    pub fn anon_rss(&self) -> u64 {
        self.proc_status_bytes("RssAnon:")
    }

    fn proc_status_bytes(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("proc status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid));
        kb * 1024
    }

    /// Waits (bounded) for the daemon to exit; returns its status and how long that took.
    pub fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let child = self.child.as_mut().expect("daemon child");
        loop {
            if let Some(st) = child.try_wait().expect("wait daemon") {
                self.child = None;
                return (st, started.elapsed());
            }
            if started.elapsed() >= limit {
                self.fail(&format!("the daemon did not exit within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything in a stalled stdout pipe (after the daemon exited: reads to its end).
    pub fn read_pipe(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut p) = self.pipe.take() {
            let _ = p.read_to_string(&mut text);
        }
        text
    }

    /// SIGKILL (`kill -9`) and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Kernel views inside a namespace.
pub trait Kernel {
    /// `iptables -S CHAIN` with its private ban chains ([`super::chain_lines`]; `None` when
    /// the chain does not exist).
    fn chain(&self, chain: &str) -> Option<String>;
    /// The entries of `ipset list SET` (`None` when the set does not exist).
    fn set_members(&self, set: &str) -> Option<Vec<String>>;
    /// `iptables-save` + `ip6tables-save` + `ipset save`, without comments and counters.
    fn normalized_dump(&self) -> String;
}

impl Kernel for Netns {
    fn chain(&self, chain: &str) -> Option<String> {
        let out = self.exec(&["iptables", "-w", "-S", chain]);
        out.status
            .success()
            .then(|| self.chain_lines("iptables", chain))
    }

    fn set_members(&self, set: &str) -> Option<Vec<String>> {
        let out = self.exec(&["ipset", "list", set]);
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Some(
            text.lines()
                .skip_while(|l| !l.starts_with("Members:"))
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    fn normalized_dump(&self) -> String {
        self.firewall_dump()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| match l.split_once(" [") {
                Some((head, _)) if l.starts_with(':') => head.to_string(),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Rules of `chain_text` (an `iptables -S` output) that drop `addr`.
pub fn drops_of(chain_text: &str, addr: &str) -> usize {
    let needle = format!("-s {addr}/32 ");
    chain_text
        .lines()
        .filter(|l| l.contains(&needle) && l.ends_with("-j DROP"))
        .count()
}

/// Jumps to `chain` in `iptables -S INPUT`.
pub fn jumps(ns: &Netns, chain: &str) -> usize {
    let text = ns.ok(&["iptables", "-w", "-S", "INPUT"]);
    let j = format!("-j {chain}");
    text.lines().filter(|l| l.ends_with(&j)).count()
}
