use super::*;

fn fixture() -> Metrics {
    let m = Metrics::new(["eth0", "wg\"0"], ["syn-flood", "port-scan"]);
    m.add_packets(0, 1000);
    m.add_packets(1, 7);
    m.add_packets(9, 5); // unknown interface: ignored
    m.set_capture_drops(0, 12, 3, 40);
    m.set_capture_drops(0, 15, 3, 41); // totals are stored, not added
    m.set_tracked_sources(4096);
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
    m
}

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
"#;

#[test]
fn renders_the_fixture_exactly() {
    assert_eq!(fixture().render(), EXPECTED);
}

#[test]
fn empty_metrics_render_zeroes_and_no_interface_or_rule_samples() {
    let m = Metrics::new(Vec::<String>::new(), Vec::<String>::new());
    let text = m.render();
    assert!(!text.contains("autoblock_packets_total{"));
    assert!(!text.contains("autoblock_bans_total{"));
    assert!(text.contains("autoblock_active_bans 0\n"));
    assert!(text.contains("autoblock_reaction_seconds_bucket{le=\"+Inf\"} 0\n"));
    assert!(text.contains("autoblock_reaction_seconds_sum 0\n"));
    assert!(text.contains("autoblock_reaction_seconds_count 0\n"));
}

#[test]
fn histogram_buckets_are_cumulative_and_end_at_count() {
    let m = Metrics::new(["lo"], ["r"]);
    // One observation per bucket, plus one above every bound.
    for ns in BUCKET_NS {
        m.observe_reaction(Duration::from_nanos(ns));
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
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn label_values_escape_backslash_quote_and_newline() {
    let mut s = String::new();
    escape_label(&mut s, "a\\b\"c\nd");
    assert_eq!(s, r#"a\\b\"c\nd"#);
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
}

#[test]
fn cached_rule_counters_are_the_shared_ones() {
    let m = Metrics::new(["eth0"], ["syn-flood"]);
    let r = m.rule("syn-flood");
    r.bans.fetch_add(3, Relaxed);
    m.ban("syn-flood");
    assert_eq!(m.rule("syn-flood").bans.load(Relaxed), 4);
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
