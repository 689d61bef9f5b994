//! The flood detectors over the shared third-party captures with the shipped rules.toml: each
//! reflection and spoofed flood of issue 13's table reports one attack on its target with the
//! fingerprint an independent decode shows, and a signature for it; no benign or scan capture
//! reports an attack.

use std::path::Path;

use serde_json::Value;

use crate::harness::{self, require_pcaps, shipped_rules};

/// `replay --format json` with the shipped rules; the events.
fn replay(file: &Path, extra: &[&str]) -> Vec<Value> {
    let out = harness::bin()
        .args(["replay", "--format", "json", "--config"])
        .arg(shipped_rules())
        .args(extra)
        .arg(file)
        .output()
        .expect("run autoblock");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// (capture, target, protocol, src_port, dst_port, tcp_flags, kernel rule)
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    Option<u64>,
    Option<u64>,
    Option<&'static str>,
    &'static str,
);

const TABLE: [Expected; 6] = [
    (
        "attack/stopddos-amp.UDP.isakmp.pcap",
        "10.10.10.10",
        "udp",
        Some(4500),
        None,
        None,
        "-d 10.10.10.10/32 -p udp --sport 4500 -j DROP",
    ),
    (
        "attack/stopddos-amp.UDP.snmp.src161.pcapng",
        "10.10.10.10",
        "udp",
        Some(161),
        None,
        None,
        "-d 10.10.10.10/32 -p udp --sport 161 -j DROP",
    ),
    (
        "attack/stopddos-amp.UDP.bacnet.IOT.37810.pcapng",
        "10.10.10.1",
        "udp",
        None,
        Some(30120),
        None,
        "-d 10.10.10.1/32 -p udp --dport 30120 -j DROP",
    ),
    (
        "attack/stopddos-amp.TCP.reflection.SYNACK.pcap",
        "10.10.10.10",
        "tcp",
        Some(80),
        None,
        Some("synack"),
        "-d 10.10.10.10/32 -p tcp --sport 80 --tcp-flags SYN,RST,ACK SYN,ACK -j DROP",
    ),
    (
        "attack/stopddos-pkt.TCP.synflood.spoofed.pcap",
        "10.10.10.10",
        "tcp",
        None,
        Some(25565),
        Some("syn"),
        "-d 10.10.10.10/32 -p tcp --dport 25565 --tcp-flags SYN,RST,ACK SYN -j DROP",
    ),
    (
        "attack/stopddos-pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng",
        "10.10.10.10",
        "tcp",
        None,
        Some(30120),
        Some("syn"),
        "-d 10.10.10.10/32 -p tcp --dport 30120 --tcp-flags SYN,RST,ACK SYN -j DROP",
    ),
];

#[test]
fn each_reflection_and_spoofed_flood_reports_one_attack_with_its_fingerprint() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    for (name, target, protocol, sport, dport, flags, rule) in TABLE {
        let events = replay(&dir.join(name), &[]);
        let attacks = of_kind(&events, "attack");
        assert_eq!(attacks.len(), 1, "{name}: {attacks:#?}");
        let a = attacks[0];
        assert_eq!(a["target"], target, "{name}");
        let fp = &a["fingerprint"];
        assert_eq!(fp["protocol"], protocol, "{name}: {fp}");
        assert_eq!(fp["src_port"].as_u64(), sport, "{name}: {fp}");
        assert_eq!(fp["dst_port"].as_u64(), dport, "{name}: {fp}");
        assert_eq!(fp["tcp_flags"].as_str(), flags, "{name}: {fp}");
        assert_eq!(a["action"], "signature", "{name}");
        let mitigations = of_kind(&events, "mitigate");
        assert_eq!(mitigations.len(), 1, "{name}");
        assert_eq!(mitigations[0]["kernel_rule"], rule, "{name}");
        // Spoofed or reflected: no single source is banned for it, and the attack says so
        // (isakmp's first 1,001 packets come from 762 reflectors, 1.31 packets each, estimated
        // at 748: over the exact bar of 1.25, under the estimate's, see `one_packet_each`).
        assert!(of_kind(&events, "block").is_empty(), "{name}");
        assert_eq!(a["spoofed"], true, "{name}: {a}");
        // The attack ends with the file (or before): its rule goes, its end says how.
        let ends = of_kind(&events, "attack_end");
        assert_eq!(ends.len(), 1, "{name}");
        assert_eq!(of_kind(&events, "unmitigate").len(), 1, "{name}");
        assert!(
            ends[0]["packets"].as_u64() > a["observed"].as_u64(),
            "{name}"
        );
    }
}

#[test]
fn our_own_address_as_the_only_protected_destination_gives_the_same_attack() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let file = dir.join("attack/stopddos-amp.UDP.isakmp.pcap");
    let events = replay(&file, &["--local", "10.10.10.10"]);
    let attacks = of_kind(&events, "attack");
    assert_eq!(attacks.len(), 1);
    assert_eq!(attacks[0]["fingerprint"]["src_port"], 4500);
    // Protecting another address only: its traffic is not counted at all.
    let events = replay(&file, &["--local", "10.10.10.11"]);
    assert!(of_kind(&events, "attack").is_empty());
}

#[test]
fn benign_and_scan_captures_report_no_attack() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    for sub in ["benign", "scan"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
            .expect("read dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{sub} is empty");
        for f in files {
            let events = replay(&f, &[]);
            let attacks = of_kind(&events, "attack");
            assert!(attacks.is_empty(), "{}: {attacks:#?}", f.display());
        }
    }
}

#[test]
fn the_table_has_an_attacks_section() {
    let Some(dir) = require_pcaps() else {
        return;
    };
    let out = harness::bin()
        .args(["replay", "--config"])
        .arg(shipped_rules())
        .arg(dir.join("attack/stopddos-amp.UDP.isakmp.pcap"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("attack on 10.10.10.10 by udp-flood-dst"),
        "{text}"
    );
    assert!(
        text.contains("fingerprint: udp, sport 4500 (100%)"),
        "{text}"
    );
    assert!(
        text.contains("action: signature `-d 10.10.10.10/32 -p udp --sport 4500 -j DROP`"),
        "{text}"
    );
}
