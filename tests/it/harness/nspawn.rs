//! A Debian container booted by a real systemd, for the package tests: `systemd-nspawn -b` on a
//! run copy of the cached root (see `nspawn_root`), inside a network namespace the test made,
//! joined by a veth pair to a second namespace that plays the outside world (the flood comes
//! from there, never from the host's own namespace).
//!
//! How it is driven, with no system bus or machined on the host: `--register=no --keep-unit`
//! (nspawn asks no one for a scope), `--network-namespace-path=/run/netns/NS` with
//! `CAP_NET_ADMIN,CAP_NET_RAW` kept, and every command inside runs as
//! `nsenter -t LEADER -a -r -w ARGV...` where LEADER is the container's PID 1 (nspawn's child
//! that is PID 1 of its own PID namespace). A reboot is `systemctl poweroff` inside, then a
//! new boot; the caller supplies a fresh namespace in between, as a real reboot gives the
//! machine empty firewall tables. On drop (also on a failed assertion) the container is killed:
//! SIGKILL to its PID 1 ends its whole PID namespace, then nspawn itself is killed and reaped.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::netns::Netns;

/// The veth end inside the container.
pub const GUEST_IF: &str = "ab0";
/// The container's address; the outside namespace has `OUTSIDE4` and `OUTSIDE4_B`.
pub const GUEST4: &str = "10.240.0.2";
pub const OUTSIDE4: &str = "10.240.0.1";
pub const OUTSIDE4_B: &str = "10.240.0.3";

/// The container's network namespace and the outside one, joined by a veth pair; both
/// deleted on drop.
pub struct Link {
    pub outside: Netns,
    pub guest: Netns,
}

impl Link {
    pub fn new(prefix: &str) -> Link {
        let outside = Netns::new(&format!("{prefix}o"));
        let guest = Netns::new(&format!("{prefix}g"));
        outside.ok(&[
            "ip",
            "link",
            "add",
            "out0",
            "type",
            "veth",
            "peer",
            "name",
            GUEST_IF,
            "netns",
            guest.name(),
        ]);
        for addr in [OUTSIDE4, OUTSIDE4_B] {
            outside.ok(&["ip", "addr", "add", &format!("{addr}/24"), "dev", "out0"]);
        }
        outside.ok(&["ip", "link", "set", "out0", "up"]);
        guest.ok(&[
            "ip",
            "addr",
            "add",
            &format!("{GUEST4}/24"),
            "dev",
            GUEST_IF,
        ]);
        guest.ok(&["ip", "link", "set", GUEST_IF, "up"]);
        Link { outside, guest }
    }

    /// A bounded SYN flood to port 80 of the container from `src` (an outside address):
    /// `count` SYNs, one per `gap_us` microseconds, at most 20 s.
    pub fn syn_flood(&self, src: &str, count: u32, gap_us: u32) {
        let count = count.to_string();
        let gap = format!("u{gap_us}");
        // hping3 exits non-zero when replies are missing (they are, once banned).
        let _ = self.outside.exec(&[
            "timeout", "20", "hping3", "-q", "-S", "-p", "80", "-c", &count, "-i", &gap, "-a", src,
            GUEST4,
        ]);
    }
}

/// A booted container; killed on drop.
pub struct Container {
    nspawn: Child,
    leader: u32,
    log: std::path::PathBuf,
}

impl Container {
    /// Boots `root` as machine `name` in `netns`; calls `on_leader` with the container's PID 1
    /// as soon as it is known; returns once `systemctl is-system-running` says `running`
    /// (panics after 90 s, or on `degraded` with the failed units).
    pub fn boot(
        root: &Path,
        netns: &Netns,
        name: &str,
        log: &Path,
        on_leader: impl FnOnce(u32),
    ) -> Container {
        let out = std::fs::File::create(log).expect("create nspawn log");
        let nspawn = Command::new("systemd-nspawn")
            .arg("--directory")
            .arg(root)
            .args(["--machine", name, "--boot", "--register=no", "--keep-unit"])
            .arg(format!(
                "--network-namespace-path=/run/netns/{}",
                netns.name()
            ))
            .args([
                "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
                "--console=passive",
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("spawn systemd-nspawn");
        let mut c = Container {
            nspawn,
            leader: 0,
            log: log.to_path_buf(),
        };
        c.leader = c.find_leader();
        on_leader(c.leader);
        c.wait_running();
        c
    }

    /// nspawn's child that is PID 1 of its own PID namespace and already runs systemd.
    fn find_leader(&mut self) -> u32 {
        let pid = self.nspawn.id();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.nspawn.try_wait() {
                self.fail(&format!("systemd-nspawn exited early ({status})"));
            }
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for child in children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                let status =
                    std::fs::read_to_string(format!("/proc/{child}/status")).unwrap_or_default();
                let pid1 = status
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .is_some_and(|ids| ids.split_whitespace().last() == Some("1"));
                let comm =
                    std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
                if pid1 && comm.trim() == "systemd" {
                    return child;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.fail("no container PID 1 running systemd within 20 s")
    }

    fn wait_running(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut last = String::new();
        while Instant::now() < deadline {
            // Until systemd's private socket exists this fails at once; then it blocks until
            // start-up is over.
            let out = self.exec(&["timeout", "60", "systemctl", "is-system-running", "--wait"]);
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            match last.trim() {
                "running" => return,
                "degraded" => {
                    let failed = self.exec(&["systemctl", "--failed", "--no-pager"]);
                    self.fail(&format!(
                        "boot degraded:\n{}",
                        String::from_utf8_lossy(&failed.stdout)
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        self.fail(&format!("not running after 90 s: {last}"))
    }

    /// The container's PID 1 as the host sees it.
    pub fn leader(&self) -> u32 {
        self.leader
    }

    /// Runs `argv` inside the container (all its namespaces, its root, a clean environment),
    /// ended after 120 s (exit status 124).
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "-r", "-w", "--"])
            .args(["timeout", "--kill-after=5", "120"])
            .args(argv)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .expect("spawn nsenter")
    }

    /// Runs `argv` inside; panics with its output unless it succeeds; returns stdout.
    pub fn ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        if !out.status.success() {
            self.fail(&format!(
                "`{}` in the container failed ({}):\n{}{}",
                argv.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl poweroff` inside and waits (at most 60 s) until nspawn exits.
    pub fn poweroff(mut self) {
        self.ok(&["systemctl", "poweroff", "--no-block"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.nspawn.try_wait() {
                Ok(Some(status)) if status.success() => return,
                Ok(Some(status)) => self.fail(&format!("nspawn ended with {status} on poweroff")),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        self.fail("still running 60 s after poweroff")
    }

    /// Panics with `why` and the end of the console log.
    pub fn fail(&self, why: &str) -> ! {
        let journal = self.exec(&[
            "journalctl",
            "--no-pager",
            "-n",
            "60",
            "-u",
            "autoblock.service",
        ]);
        let journal = String::from_utf8_lossy(&journal.stdout).into_owned();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{why}\n--- journalctl -u autoblock (last 60 lines) ---\n{journal}\n\
             --- end of the container console ---\n{}",
            tail.join("\n")
        );
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if matches!(self.nspawn.try_wait(), Ok(None)) {
            // PID 1 of a PID namespace takes every process of it along; nspawn has not reaped
            // it (it still runs), so the pid is still the container's.
            if self.leader != 0 {
                let _ = Command::new("kill")
                    .args(["-KILL", &self.leader.to_string()])
                    .status();
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.nspawn.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.nspawn.kill();
        }
        let _ = self.nspawn.wait();
    }
}
