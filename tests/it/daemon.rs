//! Issue 4 acceptance, end to end: `autoblock run` inside a victim namespace, real floods
//! (hping3) and scans (nmap) from an attacker namespace, a client namespace that must keep
//! being served, the CLI over the control socket, signals, restarts, both backends. See
//! `harness::daemon` for the topology; nothing here touches the host's own tables.

use std::time::{Duration, Instant};

use crate::harness::daemon::{
    ATTACKER4, CLIENT4, Daemon, Kernel, Setup, Topo, VICTIM_A4, drops_of, jumps, poll,
};
use crate::harness::netns::Netns;
use crate::harness::{chain_lines, require_root, wait_samples};

const CHAIN: &str = "AUTOBLOCK";
const SET4: &str = "autoblock4";
const SET6: &str = "autoblock6";
/// Generous: the machine has 2 cores shared with other tests.
const EVENT: Duration = Duration::from_secs(20);

fn is_attacker_block(e: &serde_json::Value) -> bool {
    e["ip"] == ATTACKER4
}

/// True when the kernel holds a ban on `addr` for the backend.
fn banned_in_kernel(t: &Topo, backend: &str, addr: &str) -> bool {
    match backend {
        "ipset" => t
            .victim
            .set_members(SET4)
            .is_some_and(|m| m.iter().any(|l| l.starts_with(&format!("{addr} ")))),
        _ => t
            .victim
            .chain(CHAIN)
            .is_some_and(|c| drops_of(&c, addr) == 1),
    }
}

/// A SYN flood from the attacker is blocked (ipset backend) while the client keeps being
/// served; the ban expires after the flood and the attacker connects again.
#[test]
fn syn_flood_blocked_client_served_ban_expires() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abdf");
    let _svc = t.serve();
    assert!(
        t.attacker_connects(),
        "the attacker reaches the service before"
    );
    let mut s = Setup::new();
    s.backend("ipset").bans("4s");
    s.write();
    let mut d = Daemon::start(&t.victim, &s, &[]);

    // ~2.5 s of SYNs at up to 1k/s: over syn-flood (24 in 100 ms) at once.
    let flood = t.flood(2500, 1000, &[]);
    let block = d.wait_event(EVENT, "block", is_attacker_block);
    assert_eq!(block["metric"], "packets");
    let applied = d.wait_event(EVENT, "applied", |e| e["blocks"].as_u64() >= Some(1));
    assert!(applied["reaction_ms"].as_f64().is_some(), "{applied}");
    assert!(
        poll(EVENT, || banned_in_kernel(&t, "ipset", ATTACKER4)),
        "no {ATTACKER4} in {SET4}"
    );
    // While banned: the client is served, the attacker is not.
    let mut served = 0;
    for _ in 0..5 {
        served += usize::from(t.client_connects());
    }
    assert_eq!(served, 5, "the client lost connections during the flood");
    assert!(!t.attacker_connects(), "the banned attacker still connects");
    flood.wait(Duration::from_secs(60));

    // The ban ends about 4 s after the last extension; then the attacker is back.
    d.wait_event(Duration::from_secs(40), "unblock", is_attacker_block);
    assert!(
        poll(Duration::from_secs(10), || !banned_in_kernel(
            &t, "ipset", ATTACKER4
        )),
        "the expired ban is still in {SET4}"
    );
    assert!(
        poll(Duration::from_secs(10), || t.attacker_connects()),
        "the attacker cannot connect after the ban expired"
    );
    assert!(t.client_connects());
    // The client was never counted as an offender.
    assert!(d.of("block").iter().all(|e| e["ip"] != CLIENT4));
}

/// `kill -9` and a restart (iptables backend): the ban stays in the kernel the whole time
/// (sampled every few ms), the new daemon adopts it, and there is never a second rule or a
/// second jump; a new flood extends the adopted ban instead of adding a rule.
#[test]
fn kill9_restart_keeps_block_without_gap_or_duplicate() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abdk");
    let _svc = t.serve();
    let s = Setup::new();
    let mut d = Daemon::start_as(&t.victim, &s, &[], "first");
    let flood = t.flood(300, 1000, &[]);
    d.wait_event(EVENT, "block", is_attacker_block);
    assert!(
        poll(EVENT, || banned_in_kernel(&t, "iptables", ATTACKER4)),
        "no DROP for {ATTACKER4} in {CHAIN}"
    );
    flood.wait(Duration::from_secs(30));

    // Sample the chain from another thread across the kill and the restart.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let sampler = {
        let (stop, taken) = (stop.clone(), taken.clone());
        let ns = t.victim.name().to_string();
        std::thread::spawn(move || {
            let (mut samples, mut missing, mut duplicated) = (0u32, 0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = std::process::Command::new("ip")
                    .args(["netns", "exec", &ns, "iptables", "-w", "-S"])
                    .output()
                    .expect("iptables -S");
                let text = chain_lines(&String::from_utf8_lossy(&out.stdout), CHAIN);
                match drops_of(&text, ATTACKER4) {
                    0 => missing += 1,
                    1 => {}
                    _ => duplicated += 1,
                }
                samples += 1;
                taken.store(samples, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
            (samples, missing, duplicated)
        })
    };
    wait_samples(&taken, 5);
    d.kill9();
    // The kernel alone: what the state file adds is `daemon_persist`'s to test. Adopted
    // without it, the ban's length is its time left, so the next flood extends it.
    let _ = std::fs::remove_dir_all(s.dir.path().join("state"));
    std::thread::sleep(Duration::from_millis(300));
    let d2 = Daemon::start_as(&t.victim, &s, &[], "second");
    let started = d2.of("started").remove(0);
    assert_eq!(started["adopted_bans"], 1, "{started}");
    std::thread::sleep(Duration::from_millis(500));
    wait_samples(&taken, taken.load(std::sync::atomic::Ordering::Relaxed) + 5);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (samples, missing, duplicated) = sampler.join().expect("sampler");
    eprintln!(
        "kill -9 + restart: {samples} samples of {CHAIN}, {missing} without the ban, {duplicated} with two"
    );
    assert!(samples >= 10, "too few samples: {samples}");
    assert_eq!((missing, duplicated), (0, 0), "a gap or a duplicate");
    assert_eq!(jumps(&t.victim, CHAIN), 1, "one jump from INPUT");

    // The adopted ban is listed and explained, and a new flood extends it (no second rule).
    let list: serde_json::Value =
        serde_json::from_str(&d2.cli_ok(&["list", "--format", "json"])).expect("list json");
    let bans = list.as_array().expect("array");
    assert_eq!(bans.len(), 1, "{list}");
    assert_eq!(bans[0]["target"], ATTACKER4);
    assert!(
        !t.attacker_connects(),
        "the attacker connects after the restart"
    );
    let mut d2 = d2;
    let flood = t.flood(300, 1000, &[]);
    d2.wait_event(EVENT, "extend", is_attacker_block);
    flood.wait(Duration::from_secs(30));
    assert!(
        d2.of("block").is_empty(),
        "a second block: {:?}",
        d2.of("block")
    );
    std::thread::sleep(Duration::from_millis(300));
    let chain = t.victim.chain(CHAIN).expect("chain");
    assert_eq!(drops_of(&chain, ATTACKER4), 1, "{chain}");
    assert_eq!(jumps(&t.victim, CHAIN), 1);
}

/// SIGHUP: a good file is swapped in (a raised threshold stops bans), a broken file and a
/// change that needs a restart are refused with `reload_failed` while the last good
/// configuration keeps running, and going back to the shipped thresholds bans again.
#[test]
fn sighup_good_bad_and_restart_needed() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abdh");
    let _svc = t.serve();
    let mut s = Setup::new();
    s.write();
    let shipped = s.text().to_string();
    let mut d = Daemon::start(&t.victim, &s, &[]);
    let explain_conn_burst = |d: &Daemon| -> serde_json::Value {
        let x: serde_json::Value =
            serde_json::from_str(&d.cli_ok(&["explain", ATTACKER4, "--format", "json"]))
                .expect("explain json");
        x["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .find(|r| r["rule"] == "conn-burst")
            .cloned()
            .unwrap_or_else(|| panic!("no conn-burst in {x}"))
    };
    assert_eq!(explain_conn_burst(&d)["threshold"], 28);

    // Good: conn-burst raised to 1000 and syn-flood to 5000.
    s.set("threshold = 28", "threshold = 1000")
        .set("threshold = 24", "threshold = 5000");
    s.write();
    d.signal("HUP");
    let reloaded = d.wait_event(EVENT, "reloaded", |_| true);
    assert!(
        reloaded["rules"].as_array().is_some_and(|r| r.len() == 6),
        "{reloaded}"
    );
    assert_eq!(explain_conn_burst(&d)["threshold"], 1000);
    assert!(d.status()["last_reload"].is_string());
    t.flood(300, 1000, &[]).wait(Duration::from_secs(30));
    let seen = explain_conn_burst(&d);
    assert!(
        seen["value"].as_u64() >= Some(100),
        "the flood was not counted: {seen}"
    );
    assert!(
        d.of("block").is_empty(),
        "banned under the raised threshold"
    );

    // Bad: a syntax error and an unknown key; the old configuration keeps running.
    std::fs::write(&s.config, format!("{}\n[enforce2]\nnope = 1\n", s.text())).expect("write");
    d.signal("HUP");
    let failed = d.wait_event(EVENT, "reload_failed", |_| true);
    assert!(
        failed["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    std::fs::write(&s.config, "[[rule]]\nname = \"x\"\nthreshold = \n").expect("write");
    d.signal("HUP");
    d.wait_event(EVENT, "reload_failed", |e| e != &failed);
    assert_eq!(explain_conn_burst(&d)["threshold"], 1000);

    // Needs a restart: refused, and says which key.
    let mut ipset = Setup::new();
    ipset.backend("ipset");
    let text = ipset
        .text()
        .replace(&path_of(&ipset.socket), &path_of(&s.socket))
        .replace(
            &path_of(&ipset.dir.path().join("state")),
            &path_of(&s.dir.path().join("state")),
        );
    std::fs::write(&s.config, text).expect("write");
    d.signal("HUP");
    let restart = d.wait_event(EVENT, "reload_failed", |e| {
        e.to_string().contains("enforce.backend")
    });
    assert!(!restart.to_string().contains("control.socket"), "{restart}");
    assert_eq!(d.of("reloaded").len(), 1);

    // Back to the shipped thresholds: the next flood is banned.
    std::fs::write(&s.config, &shipped).expect("write");
    d.signal("HUP");
    poll(EVENT, || d.of("reloaded").len() == 2);
    assert_eq!(explain_conn_burst(&d)["threshold"], 28);
    let flood = t.flood(300, 1000, &[]);
    d.wait_event(EVENT, "block", is_attacker_block);
    flood.wait(Duration::from_secs(30));
    assert!(poll(EVENT, || banned_in_kernel(&t, "iptables", ATTACKER4)));
}

fn path_of(p: &std::path::Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// The CLI against the running daemon (ipset backend): ban (IPv4 and an IPv6 prefix), list,
/// explain, status, unban; refusals and exit codes; every change reaches the kernel's sets.
#[test]
fn cli_ban_list_explain_status_unban() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abdc");
    let mut s = Setup::new();
    s.backend("ipset");
    s.write();
    let mut d = Daemon::start(&t.victim, &s, &[]);
    let out = d.cli_ok(&[
        "ban",
        "10.201.9.9",
        "fd00:201:9::/64",
        "--for",
        "1h",
        "--reason",
        "abuse report 12",
    ]);
    assert!(
        out.contains("10.201.9.9") && out.contains("fd00:201:9::/64"),
        "{out}"
    );
    assert!(
        poll(EVENT, || t.victim.set_members(SET4).is_some_and(|m| m
            .iter()
            .any(|l| l.starts_with("10.201.9.9 ")))),
        "{:?}",
        t.victim.set_members(SET4)
    );
    assert!(
        poll(EVENT, || t.victim.set_members(SET6).is_some_and(|m| m
            .iter()
            .any(|l| l.starts_with("fd00:201:9::/64 ")))),
        "{:?}",
        t.victim.set_members(SET6)
    );
    let blocks = d.of("block");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert!(
        blocks.iter().all(|b| b["manual"] == true
            && b["rule"] == "manual"
            && b["comment"] == "abuse report 12"),
        "the rule is `manual`, the reason a comment: {blocks:?}"
    );

    let list: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["list", "--format", "json"])).expect("list json");
    let list = list.as_array().expect("array").clone();
    assert_eq!(list.len(), 2);
    for b in &list {
        assert_eq!(b["manual"], true);
        assert_eq!(b["reason"], "abuse report 12");
        assert_eq!(b["rule"], "manual");
        let left = b["remaining_secs"].as_u64().expect("remaining");
        assert!((3500..=3600).contains(&left), "{b}");
    }
    let table = d.cli_ok(&["list"]);
    assert!(table.contains("2 active bans"), "{table}");
    let x: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["explain", "10.201.9.9", "--format", "json"]))
            .expect("explain json");
    assert_eq!(x["ban"]["reason"], "abuse report 12", "{x}");
    assert_eq!(x["local"], false);
    let x: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["explain", VICTIM_A4, "--format", "json"]))
            .expect("explain json");
    assert_eq!(x["local"], true, "{x}");
    assert!(
        d.cli_ok(&["explain", "fd00:201:9::77"])
            .contains("abuse report 12")
    );
    let st = d.status();
    assert_eq!(st["backend"], "ipset");
    assert_eq!(st["active_bans"], 2, "{st}");
    assert_eq!(st["bans_total"], 2, "{st}");
    assert_eq!(st["dry_run"], false);
    assert_eq!(st["interfaces"].as_array().map(Vec::len), Some(2), "{st}");

    // Refused: our own address, and loopback (allowlisted); exit 1, nothing in the kernel.
    let out = d.cli(&["ban", VICTIM_A4, "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(t.victim.set_members(SET4).map(|m| m.len()), Some(1));

    let out = d.cli_ok(&["unban", "10.201.9.9", "fd00:201:9::/64"]);
    assert!(out.contains("unbanned 10.201.9.9"), "{out}");
    assert!(
        poll(EVENT, || t
            .victim
            .set_members(SET4)
            .is_some_and(|m| m.is_empty())
            && t.victim.set_members(SET6).is_some_and(|m| m.is_empty())),
        "{:?} {:?}",
        t.victim.set_members(SET4),
        t.victim.set_members(SET6)
    );
    d.wait_event(EVENT, "unblock", |e| e["ip"] == "10.201.9.9");
    let out = d.cli(&["unban", "10.201.9.9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not banned"));
    assert!(d.cli_ok(&["list"]).contains("no active bans"));
    assert_eq!(d.status()["active_bans"], 0);
}

/// An nmap SYN scan, paced under the connection-burst rule (20 probes/s), is banned by the
/// `port-scan` rule (distinct destination ports) of the shipped config (iptables backend).
#[test]
fn nmap_port_scan_blocked_by_dst_ports_rule() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abdn");
    let _svc = t.serve();
    let s = Setup::new();
    let mut d = Daemon::start(&t.victim, &s, &[]);
    let scan = std::process::Command::new("ip")
        .args(["netns", "exec", t.attacker.name()])
        .args([
            "timeout",
            "60",
            "nmap",
            "-Pn",
            "-n",
            "-sS",
            "--max-rate",
            "20",
            "--max-retries",
            "0",
            "--host-timeout",
            "40s",
            "-p",
            "1-150",
            VICTIM_A4,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn nmap");
    let report = String::from_utf8_lossy(&scan.stdout);
    let block = d.wait_event(EVENT, "block", is_attacker_block);
    assert_eq!(block["rule"], "port-scan", "{block}\n{report}");
    assert_eq!(block["metric"], "dst_ports");
    assert!(block["observed"].as_u64() > Some(60), "{block}");
    assert!(
        poll(EVENT, || banned_in_kernel(&t, "iptables", ATTACKER4)),
        "no DROP for the scanner"
    );
    // The probes after the ban went unanswered: nmap saw filtered ports.
    assert!(
        report.contains("filtered"),
        "nmap saw no filtered port:\n{report}"
    );
    assert!(!t.attacker_connects());
    assert!(t.client_connects());
    eprintln!("nmap scan banned: {block}");
}

/// `hping3 --rand-source`: many spoofed sources, one packet each. No per-address ban, the
/// source table stops at `max_tracked_sources`, and the daemon's peak RSS stays bounded.
#[test]
fn random_source_flood_no_bans_bounded_memory() {
    if !require_root() {
        return;
    }
    const MAX_TRACKED: u64 = 2000;
    let t = Topo::new("abdr");
    let mut s = Setup::new();
    s.backend("ipset").set(
        "max_tracked_sources = 1000000",
        &format!("max_tracked_sources = {MAX_TRACKED}"),
    );
    s.write();
    let d = Daemon::start(&t.victim, &s, &[]);
    let before = d.peak_rss();
    let started = Instant::now();
    t.flood(40_000, 10, &["--rand-source"])
        .wait(Duration::from_secs(60));
    let secs = started.elapsed().as_secs_f64();
    // Let the engine drain what was captured.
    let mut packets = 0;
    poll(Duration::from_secs(10), || {
        let st = d.status();
        let now: u64 = st["interfaces"]
            .as_array()
            .expect("interfaces")
            .iter()
            .map(|i| i["packets"].as_u64().unwrap_or(0))
            .sum();
        let settled = now == packets && now > 0;
        packets = now;
        settled
    });
    let st = d.status();
    let peak = d.peak_rss();
    let anon = d.anon_rss();
    let tracked = st["tracked_sources"].as_u64().expect("tracked");
    let mib = |b: u64| b as f64 / 1048576.0;
    eprintln!(
        "random-source flood: {packets} packets captured in {secs:.1}s (~{:.0}/s), tracked \
         {tracked} (max {MAX_TRACKED}), peak RSS (VmHWM) {:.1} MiB (before the flood {:.1} MiB), \
         RssAnon after {:.1} MiB",
        packets as f64 / secs,
        mib(peak),
        mib(before),
        mib(anon)
    );
    assert!(packets >= 10_000, "too few packets captured: {packets}");
    assert!(tracked <= MAX_TRACKED, "{st}");
    assert!(tracked >= MAX_TRACKED / 2, "the table was not filled: {st}");
    // The sources it turned away are said so: in `status`, and once in the log.
    let untracked = st["untracked_packets"].as_u64().unwrap_or(0);
    assert!(untracked > 0, "a full table and no untracked packets: {st}");
    let log = std::fs::read_to_string(&d.stderr).unwrap_or_default();
    assert!(
        log.contains("could not track (limits.max_tracked_sources)"),
        "no warning about the full table in the log:\n{log}"
    );
    assert!(
        d.of("block").is_empty(),
        "per-address bans: {:?}",
        d.of("block")
    );
    assert_eq!(st["active_bans"], 0);
    assert_eq!(t.victim.set_members(SET4).map(|m| m.len()), Some(0));
    // The bound. VmHWM is mostly fixed and file-backed: the mapped debug binary (~77 MB) and
    // libpcap's capture rings, resident before the first packet (~83 MiB here). What a flood
    // can grow is the heap: the source table (at most MAX_TRACKED sources, each with a window
    // per rule: well under 1 KiB a source, so < 2 MiB), capture batches (at most 1024 queued)
    // and event buffers. So the peak may grow by at most 32 MiB over the pre-flood peak, and
    // the anonymous memory stays under 32 MiB (~4 MiB idle).
    let growth = peak.saturating_sub(before);
    assert!(
        growth <= 32 << 20,
        "peak RSS grew by {:.1} MiB",
        mib(growth)
    );
    assert!(anon <= 32 << 20, "RssAnon {:.1} MiB", mib(anon));
}

/// `--dry-run`: decisions are events with `"dry_run":true`; the kernel is never touched
/// (no chain, no set, no jump), for automatic and manual bans alike.
#[test]
fn dry_run_logs_but_leaves_the_kernel_alone() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abdd");
    let _svc = t.serve();
    let mut s = Setup::new();
    s.set("listen = \"\"", "listen = \"127.0.0.1:9477\"");
    s.write();
    let before = t.victim.normalized_dump();
    let mut d = Daemon::start(&t.victim, &s, &["--dry-run"]);
    assert_eq!(d.of("started")[0]["dry_run"], true);
    let flood = t.flood(300, 1000, &[]);
    let block = d.wait_event(EVENT, "block", is_attacker_block);
    assert_eq!(block["dry_run"], true, "{block}");
    flood.wait(Duration::from_secs(30));
    d.cli_ok(&["ban", "10.201.9.9"]);
    let manual = d.wait_event(EVENT, "block", |e| e["ip"] == "10.201.9.9");
    assert_eq!(manual["dry_run"], true, "{manual}");
    assert_eq!(d.status()["dry_run"], true);
    assert!(t.attacker_connects(), "dry run blocked the attacker");
    assert!(d.of("applied").is_empty());
    assert!(t.victim.chain(CHAIN).is_none(), "a chain in dry run");
    // The Prometheus endpoint (inside the namespace, on its loopback) counts what happened.
    let metrics = fetch_metrics(&t.victim, "127.0.0.1", "9477");
    assert!(
        metrics.starts_with("HTTP/1.0 200") || metrics.starts_with("HTTP/1.1 200"),
        "{metrics}"
    );
    assert!(
        metrics.contains("autoblock_bans_total{rule=\"syn-flood\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("autoblock_reaction_seconds_count"),
        "{metrics}"
    );
    // Every interface together (a family's samples come in no fixed order).
    let packets: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("autoblock_packets_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(packets >= 300, "packets seen: {packets}\n{metrics}");
    let all = t.victim.ok(&["iptables-save"]);
    assert!(!all.contains(CHAIN), "{all}");
    assert_eq!(t.victim.normalized_dump(), before);
}

/// `GET /metrics` from inside `ns` with netcat (a request line on stdin, the answer on stdout).
pub(crate) fn fetch_metrics(ns: &Netns, host: &str, port: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "nc",
            "-N",
            "-w",
            "3",
            host,
            port,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nc");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    }
    let out = child.wait_with_output().expect("nc output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Adds rules and a set autoblock does not own; returns the normalized dump with them.
fn foreign_rules(t: &Topo) -> String {
    let v = &t.victim;
    v.ok(&[
        "iptables",
        "-w",
        "-A",
        "INPUT",
        "-s",
        "10.201.7.7",
        "-j",
        "DROP",
    ]);
    v.ok(&["iptables", "-w", "-N", "MINE"]);
    v.ok(&[
        "iptables",
        "-w",
        "-A",
        "MINE",
        "-s",
        "10.201.7.8",
        "-j",
        "DROP",
    ]);
    v.ok(&[
        "ip6tables",
        "-w",
        "-A",
        "INPUT",
        "-s",
        "fd00:201:7::7",
        "-j",
        "DROP",
    ]);
    v.ok(&["ipset", "create", "keepme", "hash:ip"]);
    v.ok(&["ipset", "add", "keepme", "10.201.7.9"]);
    v.normalized_dump()
}

/// SIGTERM with `keep_on_exit = true` stops within 5 s and leaves the bans in the kernel;
/// then `autoblock flush` removes exactly what autoblock created. Both backends.
#[test]
fn sigterm_keeps_bans_then_flush_removes_only_ours() {
    if !require_root() {
        return;
    }
    for backend in ["iptables", "ipset"] {
        let t = Topo::new("abdt");
        let original = foreign_rules(&t);
        let mut s = Setup::new();
        s.backend(backend);
        s.write();
        let mut d = Daemon::start(&t.victim, &s, &[]);
        d.cli_ok(&["ban", "10.201.9.9", "fd00:201:9::/64"]);
        assert!(poll(EVENT, || banned_in_kernel(&t, backend, "10.201.9.9")));
        d.signal("TERM");
        let (st, took) = d.wait_exit(Duration::from_secs(10));
        assert!(st.success(), "{backend}: exit {st}");
        assert!(
            took <= Duration::from_secs(5),
            "{backend}: stopped in {took:?}"
        );
        let stopped = d.of("stopped");
        assert_eq!(stopped.len(), 1, "{backend}");
        assert_eq!(stopped[0]["kept_bans"], true);
        assert_eq!(stopped[0]["flushed"], false);
        assert!(
            banned_in_kernel(&t, backend, "10.201.9.9"),
            "{backend}: ban gone"
        );
        assert_eq!(jumps(&t.victim, CHAIN), 1);
        assert_ne!(t.victim.normalized_dump(), original);
        eprintln!("{backend}: SIGTERM (keep) stopped in {took:?}");

        let out = t.victim.exec(&[
            env!("CARGO_BIN_EXE_autoblock"),
            "flush",
            "--config",
            s.config.to_str().expect("utf-8 path"),
        ]);
        assert!(out.status.success(), "{backend}: flush: {out:?}");
        assert_eq!(
            t.victim.normalized_dump(),
            original,
            "{backend}: flush left or took more"
        );
    }
}

/// SIGTERM with `keep_on_exit = false`: stops within 5 s and removes the chain, its jumps
/// and sets, and nothing else. Both backends.
#[test]
fn sigterm_without_keep_removes_the_chain() {
    if !require_root() {
        return;
    }
    for backend in ["iptables", "ipset"] {
        let t = Topo::new("abdu");
        let original = foreign_rules(&t);
        let mut s = Setup::new();
        s.backend(backend)
            .set("keep_on_exit = true", "keep_on_exit = false");
        s.write();
        let mut d = Daemon::start(&t.victim, &s, &[]);
        d.cli_ok(&["ban", "10.201.9.9"]);
        assert!(poll(EVENT, || banned_in_kernel(&t, backend, "10.201.9.9")));
        d.signal("TERM");
        let (st, took) = d.wait_exit(Duration::from_secs(10));
        assert!(st.success(), "{backend}: exit {st}");
        assert!(
            took <= Duration::from_secs(5),
            "{backend}: stopped in {took:?}"
        );
        let stopped = d.of("stopped");
        assert_eq!(stopped[0]["kept_bans"], false, "{backend}");
        assert_eq!(stopped[0]["flushed"], true, "{backend}");
        assert!(t.victim.chain(CHAIN).is_none(), "{backend}: chain left");
        assert_eq!(t.victim.normalized_dump(), original, "{backend}");
        eprintln!("{backend}: SIGTERM (no keep) stopped in {took:?}");
    }
}

#[test]
fn offense_history_and_manual_bans_survive_a_restart() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abds");
    let _svc = t.serve();
    let mut s = Setup::new();
    // The chain is removed at exit, so anything back after the restart came from the state file.
    s.set("keep_on_exit = true", "keep_on_exit = false");
    s.write();
    let mut d = Daemon::start_as(&t.victim, &s, &[], "first");
    let flood = t.flood(300, 1000, &[]);
    let first = d.wait_event(EVENT, "block", is_attacker_block);
    assert_eq!(first["offense"], 1, "{first}");
    flood.wait(Duration::from_secs(30));
    d.cli_ok(&["unban", ATTACKER4]);
    d.cli_ok(&[
        "ban",
        "198.51.100.77",
        "--for",
        "1h",
        "--reason",
        "abuse-report",
    ]);
    d.signal("TERM");
    let (status, _) = d.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(
        t.victim.chain(CHAIN).is_none(),
        "keep_on_exit = false removes the chain"
    );

    let mut d2 = Daemon::start_as(&t.victim, &s, &[], "second");
    // The manual ban is back in the kernel, with its reason and about an hour left.
    assert!(
        poll(EVENT, || banned_in_kernel(&t, "iptables", "198.51.100.77")),
        "manual ban not restored"
    );
    let list: serde_json::Value =
        serde_json::from_str(&d2.cli_ok(&["list", "--format", "json"])).expect("list json");
    let manual = list
        .as_array()
        .and_then(|a| a.iter().find(|b| b["target"] == "198.51.100.77"))
        .cloned()
        .expect("manual ban listed");
    assert_eq!(manual["manual"], true, "{manual}");
    assert_eq!(manual["reason"], "abuse-report", "{manual}");
    assert!(
        manual["remaining_secs"].as_u64().unwrap_or(0) > 3500,
        "{manual}"
    );
    // The attacker comes back: a repeat offense, so a longer ban.
    let flood = t.flood(300, 1000, &[]);
    let second = d2.wait_event(EVENT, "block", is_attacker_block);
    assert_eq!(second["offense"], 2, "{second}");
    assert!(
        second["ban_secs"].as_u64().unwrap_or(0) > first["ban_secs"].as_u64().unwrap_or(0),
        "{first} then {second}"
    );
    flood.wait(Duration::from_secs(30));
}

#[test]
fn a_second_daemon_refuses_to_start_and_touches_nothing() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abd2");
    let _svc = t.serve();
    let mut s = Setup::new();
    s.set("keep_on_exit = true", "keep_on_exit = false");
    s.write();
    let d = Daemon::start_as(&t.victim, &s, &[], "first");
    d.cli_ok(&["ban", "198.51.100.88"]);
    assert!(poll(EVENT, || banned_in_kernel(
        &t,
        "iptables",
        "198.51.100.88"
    )));
    let before = t.victim.chain(CHAIN);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", t.victim.name()])
        .arg(env!("CARGO_BIN_EXE_autoblock"))
        .args(["run", "--config"])
        .arg(&s.config)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("second daemon");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("another autoblock is running"), "{err}");
    // It neither emitted `started` nor flushed the first daemon's chain on its way out.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"started\""));
    assert_eq!(t.victim.chain(CHAIN), before);
    assert_eq!(d.status()["active_bans"], 1);
}

#[test]
fn a_capture_that_dies_stops_the_daemon_for_a_restart() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abdf");
    let s = Setup::new();
    let mut d = Daemon::start(&t.victim, &s, &[]);
    // The client's link disappears (a hot-unplug, a container gone): capture on it ends.
    t.victim.ok(&["ip", "link", "del", "vc"]);
    let (status, took) = d.wait_exit(Duration::from_secs(15));
    assert_eq!(
        status.code(),
        Some(1),
        "exit so that Restart=on-failure restarts it"
    );
    assert!(took < Duration::from_secs(10), "noticed in {took:?}");
    let fatal = d.of("fatal");
    assert_eq!(fatal.len(), 1, "{:?}", d.events());
    assert!(
        fatal[0]["error"].as_str().unwrap_or("").contains("vc"),
        "{}",
        fatal[0]
    );
    assert_eq!(
        d.of("stopped").len(),
        1,
        "a clean stop after the fatal event"
    );
}
