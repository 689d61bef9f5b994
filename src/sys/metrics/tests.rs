use super::*;
use std::sync::Arc;
use std::time::Duration;

fn fixture() -> Metrics {
    let m = Metrics::new(["eth0", "wg\"0"], ["syn-flood", "port-scan"]);
    m.add_packets(0, 1000);
    m.add_packets(1, 7);
    m.add_packets(9, 5); // unknown interface: ignored
    m.set_capture_drops(0, 12, 3, 40);
    m.set_capture_drops(0, 15, 3, 41); // totals are stored, not added
    m.set_tracked_sources(4096);
    m.set_untracked(5, 30);
    m.set_untracked(7, 30); // totals are stored, not added
    m.set_active_bans(2);
    m.ban("syn-flood");
    m.ban("syn-flood");
    m.extend("syn-flood");
    m.unban("port-scan");
    m.suppressed(SuppressReason::Allowlist);
    m.suppressed(SuppressReason::Cap);
    m.suppressed(SuppressReason::Cap);
    m.enforcer_error();
    m.repair();
    m.observe_reaction(Duration::from_millis(3));
    m.observe_reaction(Duration::from_millis(10)); // on a bound: in that bucket (le is <=)
    m.observe_reaction(Duration::from_secs(3)); // above every bound: only +Inf
    m.set_events_dropped("stdout", 40);
    m.set_events_dropped("stdout", 42); // totals are stored, not added
    m.add_floods(["udp-flood-dst", "syn-flood-dst"]);
    m.attack("syn-flood-dst");
    m.attack("syn-flood-dst");
    m.signature_drops("syn-flood-dst", 1200, 72_000);
    m.signature_drops("syn-flood-dst", 300, 18_000);
    m
}

/// What operators' dashboards rely on: names, labels, types and help texts (the samples of a
/// family may come in any order; see [`by_family`]).
const EXPECTED: &str = r#"# HELP autoblock_packets_total Packets captured, per interface.
# TYPE autoblock_packets_total counter
autoblock_packets_total{interface="eth0"} 1000
autoblock_packets_total{interface="wg\"0"} 7
# HELP autoblock_capture_drops_total Packets dropped, per interface: by the kernel or the interface (libpcap), or by us when the engine's queue was full (queue).
# TYPE autoblock_capture_drops_total counter
autoblock_capture_drops_total{interface="eth0",where="kernel"} 15
autoblock_capture_drops_total{interface="eth0",where="interface"} 3
autoblock_capture_drops_total{interface="eth0",where="queue"} 41
autoblock_capture_drops_total{interface="wg\"0",where="kernel"} 0
autoblock_capture_drops_total{interface="wg\"0",where="interface"} 0
autoblock_capture_drops_total{interface="wg\"0",where="queue"} 0
# HELP autoblock_tracked_sources Sources in the counter table.
# TYPE autoblock_tracked_sources gauge
autoblock_tracked_sources 4096
# HELP autoblock_untracked_packets_total Packets not fully counted, per reason: the source table was full (table_full), or a dst_ports/dst_addrs window could not store a value because the pool of distinct-value sets was spent (distinct_sets_full).
# TYPE autoblock_untracked_packets_total counter
autoblock_untracked_packets_total{reason="table_full"} 7
autoblock_untracked_packets_total{reason="distinct_sets_full"} 30
# HELP autoblock_active_bans Bans currently in force.
# TYPE autoblock_active_bans gauge
autoblock_active_bans 2
# HELP autoblock_bans_total Bans put in force, per rule.
# TYPE autoblock_bans_total counter
autoblock_bans_total{rule="port-scan"} 0
autoblock_bans_total{rule="syn-flood"} 2
# HELP autoblock_unbans_total Bans lifted, per rule.
# TYPE autoblock_unbans_total counter
autoblock_unbans_total{rule="port-scan"} 1
autoblock_unbans_total{rule="syn-flood"} 0
# HELP autoblock_extends_total Active bans extended, per rule.
# TYPE autoblock_extends_total counter
autoblock_extends_total{rule="port-scan"} 0
autoblock_extends_total{rule="syn-flood"} 1
# HELP autoblock_suppressed_total Verdicts not enforced, per reason.
# TYPE autoblock_suppressed_total counter
autoblock_suppressed_total{reason="allowlist"} 1
autoblock_suppressed_total{reason="local"} 0
autoblock_suppressed_total{reason="cap"} 2
autoblock_suppressed_total{reason="rate"} 0
# HELP autoblock_enforcer_errors_total Firewall commands that failed.
# TYPE autoblock_enforcer_errors_total counter
autoblock_enforcer_errors_total 1
# HELP autoblock_repairs_total Times the kernel state was repaired.
# TYPE autoblock_repairs_total counter
autoblock_repairs_total 1
# HELP autoblock_reaction_seconds Seconds from the packet that crossed a threshold to the ban in the kernel.
# TYPE autoblock_reaction_seconds histogram
autoblock_reaction_seconds_bucket{le="0.001"} 0
autoblock_reaction_seconds_bucket{le="0.0025"} 0
autoblock_reaction_seconds_bucket{le="0.005"} 1
autoblock_reaction_seconds_bucket{le="0.01"} 2
autoblock_reaction_seconds_bucket{le="0.025"} 2
autoblock_reaction_seconds_bucket{le="0.05"} 2
autoblock_reaction_seconds_bucket{le="0.1"} 2
autoblock_reaction_seconds_bucket{le="0.25"} 2
autoblock_reaction_seconds_bucket{le="0.5"} 2
autoblock_reaction_seconds_bucket{le="1"} 2
autoblock_reaction_seconds_bucket{le="2.5"} 2
autoblock_reaction_seconds_bucket{le="+Inf"} 3
autoblock_reaction_seconds_sum 3.013
autoblock_reaction_seconds_count 3
# HELP autoblock_events_dropped_total Event lines an output left out because it fell behind or failed, per output.
# TYPE autoblock_events_dropped_total counter
autoblock_events_dropped_total{output="file"} 0
autoblock_events_dropped_total{output="stdout"} 42
# HELP autoblock_flood_attacks_total Flood attacks detected, per flood detector.
# TYPE autoblock_flood_attacks_total counter
autoblock_flood_attacks_total{rule="syn-flood-dst"} 2
autoblock_flood_attacks_total{rule="udp-flood-dst"} 0
# HELP autoblock_signature_dropped_packets_total Packets the kernel dropped by a flood detector's signature rules.
# TYPE autoblock_signature_dropped_packets_total counter
autoblock_signature_dropped_packets_total{rule="syn-flood-dst"} 1500
autoblock_signature_dropped_packets_total{rule="udp-flood-dst"} 0
# HELP autoblock_signature_dropped_bytes_total Bytes the kernel dropped by a flood detector's signature rules.
# TYPE autoblock_signature_dropped_bytes_total counter
autoblock_signature_dropped_bytes_total{rule="syn-flood-dst"} 90000
autoblock_signature_dropped_bytes_total{rule="udp-flood-dst"} 0
"#;

/// The exposition as families in order, each with its HELP and TYPE lines and its samples
/// sorted (the encoder keeps a family's samples in a hash map).
fn by_family(text: &str) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if line.starts_with("# HELP") {
            out.push((line.to_string(), String::new(), Vec::new()));
        } else if let Some(last) = out.last_mut() {
            if line.starts_with("# TYPE") {
                last.1 = line.to_string();
            } else {
                last.2.push(line.to_string());
                last.2.sort();
            }
        } else {
            panic!("a sample before any family: {line}");
        }
    }
    out
}

#[test]
fn renders_the_names_labels_types_and_help_texts_operators_rely_on() {
    let text = fixture().render();
    assert_eq!(by_family(&text), by_family(EXPECTED), "{text}");
    assert!(text.ends_with('\n'));
}

#[test]
fn the_comparison_sees_a_renamed_metric_or_label() {
    let renamed = EXPECTED.replace("autoblock_active_bans 2", "autoblock_bans_active 2");
    assert_ne!(by_family(&renamed), by_family(EXPECTED));
    let relabelled = EXPECTED.replace("where=\"kernel\"", "kind=\"kernel\"");
    assert_ne!(by_family(&relabelled), by_family(EXPECTED));
}

#[test]
fn empty_metrics_render_zeroes_and_no_interface_or_rule_samples() {
    let m = Metrics::new(Vec::<String>::new(), Vec::<String>::new());
    let text = m.render();
    assert!(!text.contains("autoblock_packets_total{"));
    assert!(!text.contains("autoblock_bans_total{"));
    assert!(text.contains("autoblock_active_bans 0\n"));
    assert!(text.contains("autoblock_reaction_seconds_bucket{le=\"+Inf\"} 0\n"));
    assert!(text.contains("autoblock_reaction_seconds_count 0\n"));
}

#[test]
fn histogram_buckets_are_cumulative_and_end_at_count() {
    let m = Metrics::new(["lo"], ["r"]);
    // One observation per bucket, plus one above every bound.
    for secs in REACTION_BUCKETS {
        m.observe_reaction(Duration::from_secs_f64(secs));
    }
    m.observe_reaction(Duration::from_secs(60));
    m.observe_reaction(Duration::ZERO);
    let text = m.render();
    let buckets: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("autoblock_reaction_seconds_bucket"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets, vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    assert!(text.contains("autoblock_reaction_seconds_count 13\n"));
}

#[test]
fn label_values_are_escaped() {
    let m = Metrics::new(["a\\b\"c\nd"], Vec::<String>::new());
    let text = m.render();
    assert!(
        text.contains(r#"autoblock_packets_total{interface="a\\b\"c\nd"} 0"#),
        "{text}"
    );
}

#[test]
fn a_rule_added_later_gets_counters_and_old_counters_survive_a_reload() {
    let m = Metrics::new(["eth0"], ["old"]);
    m.ban("old");
    m.ban("from-reload"); // unknown until now: created on first use
    m.add_rules(["new", "old"]);
    m.ban("old");
    let text = m.render();
    assert!(text.contains("autoblock_bans_total{rule=\"from-reload\"} 1\n"));
    assert!(text.contains("autoblock_bans_total{rule=\"new\"} 0\n"));
    assert!(text.contains("autoblock_bans_total{rule=\"old\"} 2\n"));
    assert_eq!(m.bans_total(), 3);
}

#[test]
fn status_reads_the_same_counters() {
    let m = fixture();
    assert_eq!(m.tracked_sources(), 4096);
    assert_eq!(m.active_bans(), 2);
    assert_eq!(m.bans_total(), 2);
    assert_eq!(m.enforcer_errors(), 1);
}

#[test]
fn capture_drop_totals_never_go_backwards() {
    let m = Metrics::new(["eth0"], Vec::<String>::new());
    m.set_capture_drops(0, 10, 0, 0);
    m.set_capture_drops(0, 4, 0, 0);
    assert!(m.render().contains("where=\"kernel\"} 10\n"));
}

#[test]
fn counters_add_up_across_threads() {
    let m = Arc::new(Metrics::new(["a", "b"], ["r"]));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    m.add_packets(t % 2, 1);
                    m.ban("r");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let text = m.render();
    assert!(text.contains("autoblock_packets_total{interface=\"a\"} 2000\n"));
    assert!(text.contains("autoblock_packets_total{interface=\"b\"} 2000\n"));
    assert!(text.contains("autoblock_bans_total{rule=\"r\"} 4000\n"));
}

#[test]
fn metrics_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Metrics>();
}

#[test]
fn the_fleet_families_appear_only_with_sharing_and_never_go_backwards() {
    assert!(!fixture().render().contains("fleet"));
    let m = Metrics::new(["eth0"], ["syn-flood"]).with_fleet();
    let mut s = crate::cluster::ClusterStatus {
        connected: true,
        pending: 7,
        published: 10,
        received: 4,
        repeats: 2,
        waiting: 3,
        ..Default::default()
    };
    m.set_fleet(&s);
    s.published = 9; // a lower total is ignored
    m.set_fleet(&s);
    let text = m.render();
    for line in [
        "# HELP autoblock_fleet_connected 1 while connected to a NATS server of the fleet.",
        "# TYPE autoblock_fleet_connected gauge",
        "autoblock_fleet_connected 1",
        "autoblock_fleet_lag 7",
        "autoblock_fleet_waiting 3",
        "# TYPE autoblock_fleet_published_total counter",
        "autoblock_fleet_published_total 10",
        "autoblock_fleet_received_total 4",
        "autoblock_fleet_skipped_total{reason=\"repeat\"} 2",
        "autoblock_fleet_skipped_total{reason=\"malformed\"} 0",
        "autoblock_fleet_reconnects_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}
