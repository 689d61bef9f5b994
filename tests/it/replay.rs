//! `autoblock replay` over the shared third-party captures with the shipped rules.toml:
//! attacks and scans block their sources and nothing else, benign traffic blocks nothing,
//! odd formats are read (or fail loudly), spoofed floods stay within the memory bound.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde_json::Value;

use crate::harness::{self, require_pcaps, shipped_rules};

/// Runs `replay --format json` and returns (exit code, events, stderr).
fn replay_json(files: &[&Path], extra: &[&str]) -> (i32, Vec<Value>, String) {
    let rules = shipped_rules();
    let mut args: Vec<String> = vec![
        "replay".into(),
        "--config".into(),
        rules.display().to_string(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(files.iter().map(|f| f.display().to_string()));
    let out = harness::bin().args(&args).output().expect("run autoblock");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap_or(-1), events, stderr)
}

fn blocked(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e["event"] == "block")
        .map(|e| e["ip"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn summary(events: &[Value]) -> &Value {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "summary")
        .expect("a summary event")
}

/// manifest.tsv rows by file, as column name -> value.
fn manifest(dir: &Path) -> HashMap<String, HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("manifest.tsv")).expect("read manifest");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    lines
        .map(|l| {
            let row: HashMap<String, String> = header
                .iter()
                .zip(l.split('\t'))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            (row["file"].clone(), row)
        })
        .collect()
}

fn files_in(dir: &Path, sub: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join(sub))
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    v.sort();
    v
}

#[test]
fn syn_flood_blocks_the_flooder_and_nothing_else() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let f = dir.join("attack/cicddos2019-SynFlood.pcap");
    let (code, events, err) = replay_json(&[&f], &["--local", "192.168.50.4"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(blocked(&events), BTreeSet::from(["172.16.0.5".to_string()]));
    let s = summary(&events);
    assert_eq!(s["packets"], 26316);
    assert_eq!(s["complete"], true);
    assert_eq!(s["blocked"], 1);
    // A flood's pace: the 100 ms syn-flood rule fires first (conn-burst, at 28 per second,
    // would need more SYNs) and bans for its own 10 minutes.
    let first = events
        .iter()
        .find(|e| e["event"] == "block")
        .expect("block");
    assert_eq!(first["rule"], "syn-flood");
    assert_eq!(first["ban_secs"], 600);
    assert!(first["observed"].as_u64().unwrap_or(0) > first["threshold"].as_u64().unwrap_or(0));
}

#[test]
fn each_scan_blocks_its_scanner_and_nothing_else() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let scanners = [
        ("chrissanders-synscan.pcapng", "172.16.0.8"),
        ("esnet-masscan-tcp_0_1000_20190821.pcap", "172.31.15.102"),
        ("esnet-masscan-udp_0_1000_20190821.pcap", "172.31.15.102"),
        ("esnet-nmap_80_all.pcap", "10.87.1.10"),
        ("ndpi-synscan.pcap", "172.16.0.8"),
        ("pcaphunt-hs-icmpScan.pcapng", "10.0.0.128"),
        ("pcaphunt-hs-tcp_synPingSweepRand.pcapng", "10.0.0.128"),
        ("pcaphunt-ps-tcp_ack.pcap", "10.0.0.135"),
        ("pcaphunt-ps-tcp_syn.pcap", "10.0.0.140"),
        ("pcaphunt-ps-udp.pcap", "10.0.0.135"),
    ];
    let all = files_in(&dir, "scan");
    assert_eq!(
        all.len(),
        scanners.len(),
        "a new file in scan/ needs its scanner listed here"
    );
    for (file, scanner) in scanners {
        let (code, events, err) = replay_json(&[&dir.join("scan").join(file)], &[]);
        assert_eq!(code, 0, "{file}: {err}");
        assert_eq!(
            blocked(&events),
            BTreeSet::from([scanner.to_string()]),
            "{file}"
        );
    }
}

#[test]
fn pcap_and_pcapng_copies_of_one_trace_give_identical_verdicts() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let (_, a, _) = replay_json(&[&dir.join("scan/chrissanders-synscan.pcapng")], &[]);
    let (_, b, _) = replay_json(&[&dir.join("scan/ndpi-synscan.pcap")], &[]);
    let strip = |v: &[Value]| -> Vec<Value> {
        v.iter()
            .filter(|e| e["event"] != "summary")
            .cloned()
            .map(|mut e| {
                // `peaks` names its file: the rest must match.
                e.as_object_mut().map(|o| o.remove("file"));
                e
            })
            .collect()
    };
    assert!(!strip(&a).is_empty());
    assert_eq!(strip(&a), strip(&b));
}

#[test]
fn benign_traffic_blocks_nothing() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    for f in files_in(&dir, "benign") {
        let (code, events, err) = replay_json(&[&f], &[]);
        assert_eq!(code, 0, "{}: {err}", f.display());
        assert!(
            blocked(&events).is_empty(),
            "{}: {:?}",
            f.display(),
            blocked(&events)
        );
        assert_eq!(summary(&events)["complete"], true);
    }
}

#[test]
fn loopback_traffic_is_exempt_by_the_default_allowlist() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    // 1000 HTTP requests in 0.6 s from ::1: fast enough to fire, but ::1 is allowlisted.
    let f = dir.join("attack/zeek-http-1000-requests-one-dropped-response.pcap");
    let (code, events, _) = replay_json(&[&f], &[]);
    assert_eq!(code, 0);
    assert!(blocked(&events).is_empty());
    assert_eq!(summary(&events)["sources"], 1);
}

#[test]
fn format_files_are_read_with_the_manifest_counts() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let m = manifest(&dir);
    let partial = [
        ("pcapplusplus-many_interfaces-1.pcapng", 0u64),
        ("pcapplusplus-pcapng-example.pcapng", 59u64),
    ];
    for f in files_in(&dir, "format") {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let row = &m[&format!("format/{name}")];
        let (code, events, err) = replay_json(&[&f], &[]);
        let s = summary(&events);
        if let Some((_, delivered)) = partial.iter().find(|(n, _)| *n == name) {
            assert_eq!(code, 1, "{name}: a partial read must not exit 0");
            assert_eq!(s["complete"], false, "{name}");
            assert_eq!(s["packets"], *delivered, "{name}");
            assert!(err.contains("stopped after"), "{name}: {err}");
            assert!(
                err.contains("different from the type of the first interface"),
                "{err}"
            );
            continue;
        }
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(s["complete"], true, "{name}");
        let packets: u64 = row["packets"].parse().unwrap_or(0);
        assert_eq!(s["packets"], packets, "{name}");
        // The manifest counts non-IP frames as one more source, "(non-ip)".
        let distinct: u64 = row["distinct_src"].parse().unwrap_or(0);
        let non_ip = s["unparsed"].as_u64().unwrap_or(0) > 0;
        assert_eq!(
            s["sources"].as_u64().unwrap_or(0) + u64::from(non_ip),
            distinct,
            "{name}: {s}"
        );
    }
}

#[test]
fn spoofed_floods_block_no_address_and_stay_within_the_memory_bound() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let m = manifest(&dir);
    // A small table bound, so the flood (37k sources) overflows it.
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules = std::fs::read_to_string(shipped_rules()).expect("read rules");
    let small = rules.replace(
        "max_tracked_sources = 1000000",
        "max_tracked_sources = 5000",
    );
    assert_ne!(
        small, rules,
        "shipped rules.toml should set max_tracked_sources = 1000000"
    );
    let cfg = tmp.path().join("rules.toml");
    std::fs::write(&cfg, small).expect("write rules");
    for name in [
        "attack/stopddos-pkt.TCP.synflood.spoofed.pcap",
        "attack/stopddos-pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng",
    ] {
        let out = harness::bin()
            .args(["replay", "--format", "json", "--config"])
            .arg(&cfg)
            .arg(dir.join(name))
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0));
        let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert!(blocked(&events).is_empty(), "{name}");
        let s = summary(&events);
        // More sources than the report's bound (max_tracked_sources): the count is the
        // sketch's estimate, said so, within its error (~1.6%; 3% allowed).
        let distinct: u64 = m[name]["distinct_src"].parse().unwrap_or(0);
        assert!(
            distinct > 5000,
            "{name}: {distinct} sources do not overflow the bound"
        );
        assert_eq!(s["sources_estimated"], true, "{name}");
        let sources = s["sources"].as_u64().unwrap_or(0);
        assert!(
            sources.abs_diff(distinct) * 100 <= distinct * 3,
            "{name}: estimated {sources} sources, the file has {distinct}"
        );
        // The bound was hit, and the table stayed within it: about 0.5 KiB per tracked
        // source with the shipped rules, whatever the number of spoofed sources.
        let peak = s["peak_table_bytes"].as_u64().unwrap_or(u64::MAX);
        assert!(peak <= 5000 * 1024, "{name}: table peaked at {peak} bytes");
        let rss = s["peak_rss_bytes"].as_u64().unwrap_or(u64::MAX);
        assert!(rss <= 64 << 20, "{name}: peak RSS {rss} bytes");
    }
}

#[test]
fn an_unreadable_capture_fails_with_how_far_it_got() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    // A copy cut in the middle of a record (in a temp dir, never in the project).
    let bytes = std::fs::read(dir.join("scan/pcaphunt-ps-tcp_syn.pcap")).expect("read");
    let cut = tmp.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 7]).expect("write");
    let (code, events, err) = replay_json(&[&cut], &[]);
    assert_eq!(code, 1, "{err}");
    let s = summary(&events);
    assert_eq!(s["complete"], false);
    assert!(s["packets"].as_u64().unwrap_or(0) > 1000);
    assert!(err.contains("stopped after"), "{err}");
    // Not a capture at all: a clear error, exit 1, and a summary that says it was not read.
    let junk = tmp.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file").expect("write");
    let (code, events, err) = replay_json(&[&junk], &[]);
    assert_eq!(code, 1);
    assert_eq!(events.len(), 1, "{events:?}");
    let s = summary(&events);
    assert_eq!(s["complete"], false);
    assert_eq!(s["packets"], 0);
    assert!(
        s["error"]
            .as_str()
            .unwrap_or("")
            .contains("not a capture file"),
        "{s}"
    );
    assert!(err.contains("cannot open"), "{err}");
}

#[test]
fn the_table_reports_a_prefix_offender_with_its_traffic() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules = std::fs::read_to_string(shipped_rules()).expect("read rules");
    // Every 1 s rule counts per /24 (the [[flood]] detectors after them have no aggregation).
    let (rule_part, flood_part) = rules.split_at(rules.find("\n[[flood]]").unwrap_or(rules.len()));
    let agg =
        rule_part.replace("window = \"1s\"\n", "window = \"1s\"\naggregate_v4 = 24\n") + flood_part;
    assert_ne!(agg, rules);
    let cfg = tmp.path().join("rules.toml");
    std::fs::write(&cfg, agg).expect("write rules");
    let out = harness::bin()
        .args(["replay", "--local", "192.168.50.4", "--config"])
        .arg(&cfg)
        .arg(dir.join("attack/cicddos2019-SynFlood.pcap"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("172.16.0.0/24"))
        .unwrap_or_else(|| panic!("no /24 offender:\n{text}"));
    assert!(line.trim_start().starts_with("block"), "{line}");
    assert!(
        line.trim_end().ends_with("18778"),
        "all of the flooder's packets: {line}"
    );
}

/// The table for people: "1 packet", long IPv6 sources keep the columns aligned, the top
/// talkers say what they are; the JSON summary carries them too; a file that cannot be opened
/// still gets its summary; `-` reads standard input.
#[test]
fn tables_read_well_and_every_file_gets_a_summary() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let rules = shipped_rules().display().to_string();
    let one = dir.join("attack/ndpi-NTPv2-monlist-response.pcap");
    let v6 = dir.join("benign/ndpi-reddit-ipv6.pcap");
    let out = harness::run(&[
        "replay",
        "--config",
        &rules,
        &one.to_string_lossy(),
        &v6.to_string_lossy(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(": 1 packet (1 parsed, 0 unparsed), 1 source, 0 blocked"),
        "{text}"
    );
    assert!(
        text.contains("  top talkers (the 10 sources that sent the most packets, of 30):"),
        "{text}"
    );
    // The second file's talkers: the rows under the last header.
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .rposition(|l| l.contains("SOURCE") && l.contains("PACKETS"))
        .expect("a talkers header");
    let header = lines[at];
    let rows: Vec<&str> = lines[at + 1..]
        .iter()
        .copied()
        .take_while(|l| !l.is_empty())
        .collect();
    let col = header.find("PACKETS").expect("PACKETS column");
    assert!(rows.len() == 10, "{text}");
    for r in &rows {
        assert_eq!(
            r.as_bytes().get(col - 1),
            Some(&b' '),
            "misaligned: {r}\n{text}"
        );
        assert!(
            r[col..].starts_with(|c: char| c.is_ascii_digit()),
            "misaligned: {r}\n{text}"
        );
    }

    let (code, events, _) = replay_json(&[&v6, Path::new("/nonexistent.pcap")], &[]);
    assert_eq!(code, 1);
    let summaries: Vec<&Value> = events.iter().filter(|e| e["event"] == "summary").collect();
    assert_eq!(summaries.len(), 2, "{events:?}");
    assert_eq!(
        summaries[0]["top_talkers"][0]["ip"],
        "2a01:cb01:2049:8b07:991d:ec85:28df:f629"
    );
    assert_eq!(summaries[0]["top_talkers"][0]["packets"], 961);
    assert_eq!(summaries[1]["complete"], false);
    assert!(
        summaries[1]["error"]
            .as_str()
            .is_some_and(|e| e.ends_with("no such file"))
    );

    let bytes = std::fs::read(&one).expect("read");
    let mut child = harness::bin()
        .args(["replay", "--config", &rules, "--format", "json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(last.contains(r#""file":"-","packets":1"#), "{last}");
}
