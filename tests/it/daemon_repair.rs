//! Repair in about a second with the real daemon (issue 15 item 2), every backend: with bans in
//! force and `check_interval` at 60 s (so polling cannot be what repairs), `nft flush ruleset`
//! — and `iptables -F` for the iptables and ipset backends on this nf_tables host — inside the
//! namespace is undone (our table or chain, jumps, every ban) within a generous 3 s bound,
//! several times; the median is printed. And the `nft monitor` the daemon starts dies with it
//! on `kill -9`. Where the watch is refused (iptables-legacy) the periodic check repairs. A
//! commit that fails on a ban chain deleted by hand (which the watch does not report) gets a
//! check at once, and its retry lands within seconds. See `harness::daemon` for the topology.

use std::time::{Duration, Instant};

use crate::harness::daemon::{Daemon, Setup, Topo, poll};
use crate::harness::netns::Netns;
use crate::harness::systemd::mentions;
use crate::harness::{chain_lines, require_root};

/// What the test bans by hand: IPv4 hosts, an IPv4 prefix, an IPv6 host (never on the wire).
const TARGETS: [&str; 4] = [
    "10.201.9.1",
    "10.201.9.2",
    "10.201.10.0/24",
    "fd00:201:9::1",
];
const BOUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 6;

fn started_with_bans(t: &Topo, backend: &str) -> (Setup, Daemon) {
    let mut s = Setup::new();
    s.backend(backend);
    s.set("check_interval = \"10s\"", "check_interval = \"60s\"");
    s.write();
    let d = Daemon::start(&t.victim, &s, &[]);
    let watching = poll(Duration::from_secs(30), || {
        std::fs::read_to_string(&d.stderr).is_ok_and(|e| e.contains("firewall watch on"))
    });
    if !watching {
        d.fail("the firewall watch never started");
    }
    let mut args = vec!["ban", "--for", "10m", "--reason", "repair test"];
    args.extend(TARGETS);
    d.cli_ok(&args);
    (s, d)
}

/// Every piece of ours in the kernel: table or chains, jumps, the match rules, every ban.
fn intact(ns: &Netns, backend: &str) -> bool {
    let text = |argv: &[&str]| {
        let out = ns.exec(argv);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let bans_in = |t: &str| {
        TARGETS
            .iter()
            .all(|a| mentions(t, a.trim_end_matches("/24")))
    };
    match backend {
        "nftables" => {
            let t = text(&["nft", "list", "table", "inet", "autoblock"]);
            t.contains("hook input") && t.contains("ip saddr @v4_32") && bans_in(&t)
        }
        _ => {
            let jumps = ["iptables", "ip6tables"]
                .iter()
                .all(|tool| text(&[tool, "-w", "-S", "INPUT"]).contains("-A INPUT -j AUTOBLOCK"));
            let families = ["iptables", "ip6tables"]
                .map(|tool| chain_lines(&text(&[tool, "-w", "-S"]), "AUTOBLOCK"));
            let chains = families.concat();
            let bans = if backend == "ipset" {
                chains.contains("--match-set autoblock4 src -j DROP")
                    && chains.contains("--match-set autoblock6 src -j DROP")
                    && bans_in(
                        &(text(&["ipset", "list", "autoblock4"])
                            + &text(&["ipset", "list", "autoblock6"])),
                    )
            } else {
                // In each family, our chain jumps to the dispatch, which reaches every ban chain.
                families.iter().all(|chains| dispatched(chains)) && bans_in(&chains)
            };
            jumps && bans
        }
    }
}

/// One family's `-S` lines of our chains: our chain jumps once to `AUTOBLOCK.bans`, which jumps
/// to every chain that holds a ban.
fn dispatched(chains: &str) -> bool {
    let reached: Vec<&str> = chains
        .lines()
        .filter_map(|l| l.strip_prefix("-A AUTOBLOCK.bans -j "))
        .collect();
    chains.matches("-A AUTOBLOCK -j AUTOBLOCK.bans\n").count() == 1
        && chains
            .lines()
            .filter(|l| l.contains(" -j DROP"))
            .filter_map(|l| l.strip_prefix("-A ")?.split_whitespace().next())
            .all(|bucket| reached.contains(&bucket))
}

fn repaired_about_a_second_after_a_flush(backend: &str) {
    if !require_root() {
        return;
    }
    let t = Topo::new("abrp");
    let (_s, mut d) = started_with_bans(&t, backend);
    assert!(poll(BOUND, || intact(&t.victim, backend)), "bans not in");
    let mut took = Vec::new();
    for round in 0..ROUNDS {
        let damage: &[&str] = if backend == "nftables" || round % 2 == 0 {
            &["nft", "flush", "ruleset"]
        } else {
            &["iptables", "-w", "-F"]
        };
        let repairs = d.of("repaired").len();
        let t0 = Instant::now();
        t.victim.ok(damage);
        let done = poll(Duration::from_secs(20), || {
            d.of("repaired").len() > repairs && intact(&t.victim, backend)
        });
        let dt = t0.elapsed();
        if !done {
            d.fail(&format!(
                "{backend}: `{}` not repaired in 20 s",
                damage.join(" ")
            ));
        }
        eprintln!("{backend}: `{}` -> repaired in {dt:.2?}", damage.join(" "));
        took.push(dt);
        // Past the enforcer's minimum gap between checks.
        std::thread::sleep(Duration::from_millis(500));
    }
    took.sort();
    eprintln!(
        "{backend}: repaired after a flush in {:.2?} median ({:.2?}..{:.2?}, {ROUNDS} rounds)",
        took[ROUNDS / 2],
        took[0],
        took[ROUNDS - 1]
    );
    assert!(
        took.iter().all(|dt| *dt <= BOUND),
        "{backend}: a repair took over {BOUND:?}: {took:?}"
    );
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(20));
}

#[test]
fn iptables_backend_repaired_about_a_second_after_a_flush() {
    repaired_about_a_second_after_a_flush("iptables");
}

#[test]
fn ipset_backend_repaired_about_a_second_after_a_flush() {
    repaired_about_a_second_after_a_flush("ipset");
}

#[test]
fn nftables_backend_repaired_about_a_second_after_a_flush() {
    repaired_about_a_second_after_a_flush("nftables");
}

/// The pids of `nft monitor` processes whose parent is `pid` (other `nft` children come and go).
fn nft_children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // `PID (COMM) STATE PPID ...`
            let (head, tail) = stat.rsplit_once(") ").unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            head.ends_with("(nft")
                && tail.split(' ').nth(1) == Some(&pid.to_string())
                && cmdline.split(|b| *b == 0).any(|w| w == b"monitor")
        })
        .collect()
}

/// True while `pid` runs as `nft` (gone, or a zombie, is not running).
fn nft_runs(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let (head, tail) = stat.rsplit_once(") ").unwrap_or_default();
    head.ends_with("(nft") && !tail.starts_with('Z')
}

#[test]
fn the_monitor_dies_with_the_daemon_on_kill9() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abrk");
    let (_s, mut d) = started_with_bans(&t, "nftables");
    let monitors = nft_children(d.pid);
    assert_eq!(monitors.len(), 1, "one nft monitor child: {monitors:?}");
    let monitor = monitors[0];
    d.kill9();
    let t0 = Instant::now();
    let gone = poll(BOUND, || !nft_runs(monitor));
    assert!(
        gone,
        "nft monitor {monitor} outlived the daemon by {BOUND:?}"
    );
    eprintln!("nft monitor gone {:.2?} after kill -9", t0.elapsed());
}

/// A PATH whose `iptables*` and `ip6tables*` are iptables-legacy, ahead of the usual one.
fn legacy_path() -> (tempfile::TempDir, std::ffi::OsString) {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "iptables",
        "iptables-save",
        "iptables-restore",
        "ip6tables",
        "ip6tables-save",
        "ip6tables-restore",
    ] {
        std::os::unix::fs::symlink("/usr/sbin/xtables-legacy-multi", dir.path().join(name))
            .expect("symlink");
    }
    let mut path = dir.path().as_os_str().to_owned();
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    (dir, path)
}

#[test]
fn polling_repairs_where_the_watch_is_refused() {
    if !require_root() {
        return;
    }
    if !std::path::Path::new("/usr/sbin/xtables-legacy-multi").exists() {
        crate::harness::skip_or_fail(
            &crate::harness::test_name(),
            "no iptables-legacy (xtables-legacy-multi)",
        );
        return;
    }
    let t = Topo::new("abrl");
    let mut s = Setup::new();
    s.set("check_interval = \"10s\"", "check_interval = \"1s\"");
    s.write();
    let (_bin, path) = legacy_path();
    let mut d = Daemon::start_env(&t.victim, &s, &[], "run", &[("PATH", path.as_os_str())]);
    let refused = poll(Duration::from_secs(10), || {
        std::fs::read_to_string(&d.stderr).is_ok_and(|e| {
            e.contains("firewall watch unavailable") && e.contains("iptables-legacy")
        })
    });
    if !refused {
        d.fail("the watch was not refused on iptables-legacy");
    }
    d.cli_ok(&["ban", "--for", "10m", "10.201.9.1"]);
    let chain = || {
        let out = t.victim.exec(&["iptables-legacy", "-w", "-S"]);
        chain_lines(&String::from_utf8_lossy(&out.stdout), "AUTOBLOCK")
    };
    assert!(
        poll(BOUND, || mentions(&chain(), "10.201.9.1")),
        "{}",
        chain()
    );
    let t0 = Instant::now();
    t.victim.ok(&["iptables-legacy", "-w", "-F", "AUTOBLOCK"]);
    let back = poll(Duration::from_secs(1) + BOUND, || {
        !d.of("repaired").is_empty() && mentions(&chain(), "10.201.9.1")
    });
    if !back {
        d.fail("not repaired by the periodic check");
    }
    eprintln!(
        "iptables-legacy: repaired by polling in {:.2?}",
        t0.elapsed()
    );
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(20));
}

/// A ban chain emptied and deleted by hand (damage confined to our private chains, which the
/// watch does not report) makes the next commit that appends to it fail. The failure asks
/// for a check at once, so the retry lands within seconds instead of at the next periodic
/// check (60 s here).
#[test]
fn a_commit_failed_by_a_deleted_ban_chain_lands_after_an_early_repair() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abrc");
    let (_s, mut d) = started_with_bans(&t, "iptables");
    assert!(poll(BOUND, || intact(&t.victim, "iptables")), "bans not in");
    let rules = |ns: &Netns| ns.ok(&["iptables", "-w", "-S"]);
    // One commit, one end time: one ban chain.
    let name = t.victim.ban_chain("AUTOBLOCK");
    let bucket = u64::from_str_radix(name.trim_start_matches("AUTOBLOCK."), 16).unwrap();
    t.victim.ok(&["iptables", "-w", "-F", "AUTOBLOCK.bans"]);
    t.victim.ok(&["iptables", "-w", "-F", &name]);
    t.victim.ok(&["iptables", "-w", "-X", &name]);
    // A ban ending mid-way through the same 32 s: the enforcer appends it to that chain.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let secs = (bucket * 32 + 16).saturating_sub(now);
    let errors = d.of("enforcer_error").len();
    let t0 = Instant::now();
    d.cli_ok(&["ban", "--for", &format!("{secs}s"), "10.201.9.77"]);
    let landed = poll(Duration::from_secs(20), || {
        rules(&t.victim).contains("-s 10.201.9.77/32") && intact(&t.victim, "iptables")
    });
    let took = t0.elapsed();
    if !landed {
        d.fail("the ban never reached the kernel");
    }
    eprintln!("commit failed, repaired and retried in {took:.2?}");
    assert!(
        d.of("enforcer_error").len() > errors,
        "the commit into the deleted chain did not fail: nothing was tested"
    );
    assert!(took <= Duration::from_secs(5), "landed after {took:.2?}");
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(20));
}
