//! `autoblock replay` as a tuning tool (issue 14, findings 2-5 and items 4-5), over the shared
//! third-party captures: `[capture] bpf_filter` applies as live, the `peaks` event and table,
//! the OBSERVED column explained, spoofed floods named as such, the `--report` picture.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{self, require_pcaps, shipped_rules};

/// The shipped rules.toml with `bpf_filter` set, written into `dir`.
fn rules_with_filter(dir: &Path, filter: &str) -> PathBuf {
    let text = std::fs::read_to_string(shipped_rules()).expect("read rules.toml");
    assert!(
        text.contains("bpf_filter = \"\""),
        "the shipped file sets no filter"
    );
    let text = text.replace("bpf_filter = \"\"", &format!("bpf_filter = {filter:?}"));
    let path = dir.join("rules.toml");
    std::fs::write(&path, text).expect("write rules.toml");
    path
}

/// Runs `autoblock replay ARGS`; returns (exit code, stdout, stderr).
pub fn replay(args: &[&str]) -> (i32, String, String) {
    let out = harness::bin()
        .arg("replay")
        .args(args)
        .output()
        .expect("run autoblock");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// The JSON event lines of a `--format json` run.
pub fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn pcap(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[test]
fn replay_applies_the_configs_bpf_filter_as_live_capture_does() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let flood = pcap(&dir, "attack/cicddos2019-SynFlood.pcap");
    // Without the flooder's packets nothing is blocked, and the summary says a filter ran.
    let rules = rules_with_filter(tmp.path(), "not host 172.16.0.5");
    let rules = rules.display().to_string();
    let (code, out, err) = replay(&["-c", &rules, "--format", "json", &flood]);
    assert_eq!(code, 0, "{err}");
    let ev = events(&out);
    assert!(!ev.iter().any(|e| e["event"] == "block"), "{out}");
    let s = ev
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    // The manifest: 18778 from the flooder, 7538 from 192.168.50.4.
    assert_eq!(s["packets"], 7538, "{s}");
    assert_eq!(s["bpf_filter"], "not host 172.16.0.5");
    let (code, table, err) = replay(&["-c", &rules, &flood]);
    assert_eq!(code, 0, "{err}");
    assert!(
        table.contains("capture.bpf_filter `not host 172.16.0.5` applied"),
        "{table}"
    );
}

#[test]
fn a_bpf_filter_that_does_not_compile_is_a_config_error_naming_the_key() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let flood = pcap(&dir, "attack/cicddos2019-SynFlood.pcap");
    let rules = rules_with_filter(tmp.path(), "tcp and and port 80");
    let rules = rules.display().to_string();
    let (code, out, err) = replay(&["-c", &rules, "--format", "json", &flood]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("capture.bpf_filter"), "{err}");
    assert!(
        err.contains(&format!("{rules}:20:")),
        "line of the key: {err}"
    );
    assert!(err.contains("syntax error"), "{err}");
    // Compiled for the file's own link type: Ethernet addresses mean nothing on raw IP.
    let rules = rules_with_filter(tmp.path(), "ether host 00:11:22:33:44:55");
    let rules = rules.display().to_string();
    let raw = pcap(&dir, "format/pcapplusplus-raw_ip.pcap");
    let (code, _, err) = replay(&["-c", &rules, &raw]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("capture.bpf_filter") && err.contains("RAW"),
        "{err}"
    );
    let (code, _, err) = replay(&["-c", &rules, &flood]);
    assert_eq!(code, 0, "an Ethernet capture takes it: {err}");
}
