//! Issue 11 finding 3: events never block the daemon. With stdout a pipe nobody reads (a
//! stalled journald), the engine, `status` and SIGTERM must not wait on output: a flood is
//! banned at once, `status` answers and counts the events it had to leave out, SIGTERM stops
//! the daemon within its stop timeout, and the events file (its own writer) misses nothing.

use std::time::{Duration, Instant};

use crate::harness::daemon::{ATTACKER4, Daemon, Setup, Stdout, Topo, poll};
use crate::harness::require_root;

/// Manual bans asked for at once: more block events than a pipe (64 KiB, ~280 lines) and
/// stdout's event queue (16,384 lines) hold.
const BANS: usize = 20_000;

fn manual_targets(n: usize) -> String {
    (0..n)
        .map(|i| format!("198.18.{}.{}\n", i / 250, i % 250 + 1))
        .collect()
}

#[test]
fn a_stalled_stdout_never_stops_bans_status_or_sigterm() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abZo");
    let _svc = t.serve();
    let mut s = Setup::new();
    s.backend("ipset");
    let file = s.events_file();
    s.write();
    let mut d = Daemon::start_with(&t.victim, &s, &[], "stalled", Stdout::Stalled(file.clone()));

    let list = s.dir.path().join("targets.txt");
    std::fs::write(&list, manual_targets(BANS)).expect("write targets");
    let list = list.to_str().expect("utf-8 path");
    let out = d.cli(&["ban", "--file", list, "--for", "1h", "--reason", "list"]);
    assert!(
        out.status.success(),
        "ban --file with stdout stalled: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The flood is banned in the kernel as fast as ever.
    let flood = t.flood(300, 1000, &[]);
    let started = Instant::now();
    let banned = poll(Duration::from_secs(10), || {
        t.victim
            .exec(&["ipset", "test", "autoblock4", ATTACKER4])
            .status
            .success()
    });
    let took = started.elapsed();
    assert!(banned, "the flood was not banned within 10 s");
    eprintln!("stalled stdout: flood banned in the kernel {took:?} after it started");
    assert!(took < Duration::from_secs(3), "banned after {took:?}");
    flood.wait(Duration::from_secs(30));

    // `status` answers and counts what stdout could not take.
    let asked = Instant::now();
    let st = d.status();
    eprintln!("status answered in {:?}: {st}", asked.elapsed());
    assert!(st["active_bans"].as_u64() > Some(BANS as u64), "{st}");
    let dropped = st["events_dropped"].as_u64().unwrap_or(0);
    assert!(dropped > 0, "no dropped events counted: {st}");

    // The events file has its own writer: every block is there, the attacker's too.
    let blocks = d.of("block");
    assert_eq!(blocks.len(), BANS + 1, "blocks in the events file");
    assert!(blocks.iter().any(|b| b["ip"] == ATTACKER4));

    // SIGTERM stops it within its stop timeout, stdout still stalled.
    d.signal("TERM");
    let (status, took) = d.wait_exit(Duration::from_secs(15));
    eprintln!("stalled stdout: SIGTERM stopped the daemon in {took:?} ({dropped} events dropped)");
    assert!(status.success(), "exit {status}");
    assert!(took <= Duration::from_secs(5), "stopped in {took:?}");
    assert_eq!(d.of("stopped").len(), 1, "the file has the stopped event");

    // What stdout got before it stalled is whole lines, in order.
    let text = d.read_pipe();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 10, "stdout got {} lines", lines.len());
    for l in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(l).is_ok(),
            "torn: {l}"
        );
    }
    assert!(text.ends_with('\n'), "stdout ends in a torn line");
}

/// A tmpfs of `size` mounted on a fresh temp dir; unmounted (lazily) on drop.
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    fn mount(size: &str) -> TinyFs {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "abZtiny",
            ])
            .arg(dir.path())
            .output()
            .expect("spawn mount");
        assert!(out.status.success(), "mount: {out:?}");
        TinyFs { dir }
    }

    /// Fills what is left with a file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = [0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let mut byte = [0u8; 1];
        while f.write_all(&byte[..]).is_ok() {
            byte[0] = 1;
        }
        path
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Every line of `path` parsed; panics on a torn one.
fn whole_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("read events file");
    assert!(text.is_empty() || text.ends_with('\n'), "ends mid-line");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect()
}

/// A full disk: the events file keeps only whole lines, the lines it could not take are
/// counted in `status` and, once there is room again, reported in the file itself.
#[test]
fn a_full_disk_never_splits_an_event_line() {
    if !require_root() {
        return;
    }
    let t = Topo::new("abZf");
    let fs = TinyFs::mount("64k");
    let file = fs.dir.path().join("events.jsonl");
    let mut s = Setup::new();
    s.set(
        "file = \"\"",
        &format!("file = {:?}", file.display().to_string()),
    );
    s.write();
    let d = Daemon::start(&t.victim, &s, &[]);
    let filler = fs.fill();

    let list = s.dir.path().join("targets.txt");
    std::fs::write(&list, manual_targets(300)).expect("write targets");
    d.cli_ok(&[
        "ban",
        "--file",
        list.to_str().expect("utf-8"),
        "--for",
        "1h",
    ]);
    assert!(
        poll(Duration::from_secs(10), || !d.of("applied").is_empty()),
        "stdout got the bans"
    );
    let dropped = poll(Duration::from_secs(10), || {
        d.status()["events_dropped"].as_u64() >= Some(250)
    });
    let st = d.status();
    assert!(dropped, "the full disk cost no counted lines: {st}");
    let lines = whole_lines(&file);
    eprintln!(
        "full disk: {} whole lines in the file, {} dropped",
        lines.len(),
        st["events_dropped"]
    );

    // Room again: the next event is written, and every line left out is reported (a short
    // report may already have fitted in while the disk was full).
    std::fs::remove_file(&filler).expect("remove filler");
    d.cli_ok(&["ban", "198.19.0.1"]);
    let total = d.status()["events_dropped"].as_u64().expect("dropped");
    let reported = || -> u64 {
        whole_lines(&file)
            .iter()
            .filter(|e| e["event"] == "events_dropped")
            .map(|e| {
                assert_eq!(e["output"], "file", "{e}");
                e["count"].as_u64().expect("count")
            })
            .sum()
    };
    assert!(
        poll(Duration::from_secs(10), || reported() == total),
        "reported {} of {total} dropped lines",
        reported()
    );
    assert!(whole_lines(&file).iter().any(|e| e["ip"] == "198.19.0.1"));
    drop(d);
}
