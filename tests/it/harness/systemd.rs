//! The installed package inside a booted Debian container (see `nspawn`): its config file, its
//! events file and its bans as the CLI and the kernel show them, and a reboot that comes back
//! to empty firewall tables. Files are read and edited from the host through the run copy of
//! the root; commands run inside the container.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::daemon::poll;
use crate::harness::nspawn::{Container, Link};
use crate::harness::nspawn_root::RunRoot;

pub const CONFIG: &str = "/etc/autoblock/rules.toml";
pub const EVENTS: &str = "/var/log/autoblock/events.jsonl";

/// A container with its root copy and network; dropped in this order (container first).
pub struct Machine {
    container: Option<Container>,
    root: RunRoot,
    pub link: Link,
    prefix: String,
    boots: u32,
}

impl Machine {
    /// A run copy of `cache` with `deb` in `/root/`, booted on a new link.
    pub fn boot(prefix: &str, cache: &Path, deb: &Path) -> Machine {
        let root = RunRoot::new(cache);
        let name = deb.file_name().expect("deb file name");
        std::fs::copy(deb, root.path().join("root").join(name)).expect("copy the .deb in");
        let link = Link::new(prefix);
        record_link(&root, &link);
        let mut m = Machine {
            container: None,
            link,
            root,
            prefix: prefix.to_string(),
            boots: 0,
        };
        m.start_container();
        m
    }

    fn start_container(&mut self) {
        self.boots += 1;
        let name = format!("{}-{}-{}", self.prefix, std::process::id(), self.boots);
        let log = self
            .root
            .scratch()
            .join(format!("console-{}.log", self.boots));
        let root = &self.root;
        self.container = Some(Container::boot(
            root.path(),
            &self.link.guest,
            &name,
            &log,
            |pid| root.record("leaders", &pid.to_string()),
        ));
    }

    /// The running container.
    pub fn c(&self) -> &Container {
        self.container.as_ref().expect("the container is running")
    }

    /// Powers the container off, replaces its network namespace with a new one (a reboot
    /// finds empty firewall tables) and boots it again.
    pub fn reboot(&mut self) {
        if let Some(c) = self.container.take() {
            c.poweroff();
        }
        self.link = Link::new(&self.prefix);
        record_link(&self.root, &self.link);
        self.start_container();
    }

    pub fn poweroff(&mut self) {
        if let Some(c) = self.container.take() {
            c.poweroff();
        }
    }

    /// `systemctl start autoblock`. systemd in this nested container fails to set up a
    /// service's cgroup now and then (`status=219/CGROUP`, before our binary runs, mostly
    /// while other containers run on the machine): only then it is retried, twice at most,
    /// and said so on stderr; any other failure fails the test.
    pub fn start_unit(&self) {
        for _ in 0..2 {
            let out = self.c().exec(&["systemctl", "start", "autoblock"]);
            if out.status.success() {
                return;
            }
            let journal = self
                .c()
                .ok(&["journalctl", "-u", "autoblock", "-b", "--no-pager"]);
            if !journal.contains("status=219/CGROUP") {
                break;
            }
            eprintln!(
                "systemd could not set up the unit's cgroup (status=219/CGROUP): starting again"
            );
            self.c().ok(&["systemctl", "reset-failed", "autoblock"]);
        }
        self.c().ok(&["systemctl", "start", "autoblock"]);
    }

    /// A path inside the container, as seen from the host.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        self.root.path().join(inside.trim_start_matches('/'))
    }

    /// Replaces the value of the one line `key = ...` of the config; with `after`, the first
    /// such line after the line `after` (e.g. a rule's `name = "..."`). Panics when absent.
    pub fn set_config(&self, after: Option<&str>, key: &str, value: &str) {
        let path = self.host_path(CONFIG);
        let text = std::fs::read_to_string(&path).expect("read the installed rules.toml");
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let start = after.map_or(0, |a| {
            lines
                .iter()
                .position(|l| l == a)
                .unwrap_or_else(|| panic!("no line {a:?} in {CONFIG}"))
        });
        let key_eq = format!("{key} = ");
        let at = (start..lines.len())
            .find(|&i| lines[i].starts_with(&key_eq))
            .unwrap_or_else(|| panic!("no {key} after {after:?} in {CONFIG}"));
        if after.is_none() {
            let count = lines.iter().filter(|l| l.starts_with(&key_eq)).count();
            assert_eq!(count, 1, "{key} is set {count} times in {CONFIG}");
        }
        lines[at] = format!("{key_eq}{value}");
        std::fs::write(&path, lines.join("\n") + "\n").expect("write rules.toml");
    }

    /// The value of the first `key = ...` after the line `after` in the config.
    pub fn config_value(&self, after: &str, key: &str) -> String {
        let text = std::fs::read_to_string(self.host_path(CONFIG)).expect("read rules.toml");
        text.lines()
            .skip_while(|l| *l != after)
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} after {after:?}"))
            .to_string()
    }

    /// Every event in the events file so far (a torn last line is skipped).
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.host_path(EVENTS))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (at most `limit`) for an event of `kind` that `pred` accepts.
    pub fn wait_event(&self, limit: Duration, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut found = None;
        poll(limit, || {
            found = self
                .events()
                .into_iter()
                .find(|e| e["event"] == kind && pred(e));
            found.is_some()
        });
        found.unwrap_or_else(|| self.fail(&format!("no {kind} event within {limit:?}")))
    }

    /// `autoblock list --format json` inside.
    pub fn bans(&self) -> Vec<Value> {
        let text = self.c().ok(&["autoblock", "list", "--format", "json"]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("list JSON: {e}: {text}"))
    }

    /// `remaining_secs` of the ban of `target` in `bans`, if banned.
    pub fn remaining(bans: &[Value], target: &str) -> Option<i64> {
        bans.iter()
            .find(|b| b["target"] == target)
            .and_then(|b| b["remaining_secs"].as_i64())
    }

    /// Every firewall table of the container's namespace, by the container's own tools.
    pub fn firewall(&self) -> String {
        let mut dump = String::new();
        for argv in [
            &["iptables-save"][..],
            &["ip6tables-save"],
            &["ipset", "save"],
            &["nft", "list", "ruleset"],
        ] {
            dump += &self.c().ok(argv);
        }
        dump
    }

    /// `systemctl is-active autoblock` inside.
    pub fn unit_state(&self) -> String {
        let out = self.c().exec(&["systemctl", "is-active", "autoblock"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits (20 s at most) until the daemon's control socket answers `status`.
    pub fn wait_status(&self) {
        let ok = poll(Duration::from_secs(20), || {
            self.c().exec(&["autoblock", "status"]).status.success()
        });
        if !ok {
            self.fail("`autoblock status` never answered");
        }
    }

    /// Panics with `why`, the unit's journal and the events file.
    pub fn fail(&self, why: &str) -> ! {
        let journal = self.container.as_ref().map_or_else(String::new, |c| {
            let out = c.exec(&[
                "journalctl",
                "-u",
                "autoblock",
                "-b",
                "--no-pager",
                "-n",
                "40",
            ]);
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        let events = std::fs::read_to_string(self.host_path(EVENTS)).unwrap_or_default();
        panic!("{why}\n--- journal (autoblock) ---\n{journal}--- {EVENTS} ---\n{events}");
    }
}

fn record_link(root: &RunRoot, link: &Link) {
    root.record("netns", link.outside.name());
    root.record("netns", link.guest.name());
}

/// True when `text` names `addr` (not merely a longer address starting with it).
pub fn mentions(text: &str, addr: &str) -> bool {
    text.match_indices(addr).any(|(i, _)| {
        !text[i + addr.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// Paths under the directories a package writes to, skipping the package manager's and the
/// journal's own records: for "purge leaves the system as it was before install".
pub fn tree_snapshot(root: &Path) -> Vec<String> {
    const SKIP: &[&str] = &[
        "var/lib/dpkg",
        "var/lib/apt",
        "var/lib/systemd",
        "var/cache",
        "var/log/journal",
        "var/log/apt",
        "var/log/dpkg.log",
        "var/log/alternatives.log",
    ];
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = ["etc", "usr", "var", "opt", "srv", "root"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if SKIP
                .iter()
                .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
                || other_units_private_tmp(&rel)
            {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
            out.push(rel);
        }
    }
    out.sort();
    out
}

/// `var/tmp/systemd-private-*` of a unit other than ours (each boot makes new ones).
fn other_units_private_tmp(rel: &str) -> bool {
    rel.strip_prefix("var/tmp/")
        .is_some_and(|r| r.starts_with("systemd-private-") && !r.contains("autoblock"))
}

/// Seconds since `t`, rounded up.
pub fn secs_since(t: Instant) -> i64 {
    i64::try_from(t.elapsed().as_millis().div_ceil(1000)).unwrap_or(i64::MAX)
}

#[test]
fn mentions_does_not_match_a_longer_address() {
    assert!(mentions("-A X -s 10.240.0.1/32 -j DROP", "10.240.0.1"));
    assert!(mentions("add s 10.240.0.1 timeout 5", "10.240.0.1"));
    assert!(!mentions("add s 10.240.0.13 timeout 5", "10.240.0.1"));
}
