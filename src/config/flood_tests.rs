//! `[[flood]]` fixtures through `parse_str`: every key read, defaults, and each kind of
//! problem with its line, column, key and wording.

use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str(text, Path::new("rules.toml"))
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("fixture unexpectedly valid:\n{text}"),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

const EVERY_KEY: &str = r#"
[enforce]
ban = "5m"

[[flood]]
name = "ike-reflection"
protocol = "udp"
src_ports = [4500, "500-501"]
dst_ports = ["1024-1025"]
fragments = "exclude"
metric = "bytes"
threshold = 1000000
window = "2s"
action = "signature"
ban = "30s"
scope = "destination"

[[flood]]
name = "syn"
protocol = "tcp"
tcp_flags = "syn"
metric = "packets"
threshold = 3000
window = "1s"
scope = "total"
action = "sources"
"#;

#[test]
fn every_flood_key_is_read_and_defaults_apply() {
    let c = parse(EVERY_KEY).expect("valid");
    assert_eq!(c.floods.len(), 2);
    let ike = &c.floods[0];
    assert_eq!(ike.name, "ike-reflection");
    assert_eq!(ike.protocol, Protocol::Udp);
    assert_eq!(ike.src_ports.as_deref(), Some(&[500, 501, 4500][..]));
    assert_eq!(ike.dst_ports.as_deref(), Some(&[1024, 1025][..]));
    assert_eq!(ike.tcp_flags, None);
    assert_eq!(ike.fragments, Fragments::Exclude);
    assert_eq!(ike.metric, FloodMetric::Bytes);
    assert_eq!(
        (ike.threshold, ike.window, ike.ban),
        (1_000_000, Duration::from_secs(2), Duration::from_secs(30))
    );
    assert_eq!(
        (ike.action, ike.scope),
        (FloodAction::Signature, FloodScope::Destination)
    );
    let syn = &c.floods[1];
    assert_eq!(syn.tcp_flags, Some(FloodFlags::Syn));
    assert_eq!(syn.fragments, Fragments::Include);
    assert_eq!(syn.ban, Duration::from_secs(300), "enforce.ban by default");
    assert_eq!(
        (syn.action, syn.scope),
        (FloodAction::Sources, FloodScope::Total)
    );
}

#[test]
fn every_flag_word_and_any() {
    for (word, want) in [
        ("syn", Some(FloodFlags::Syn)),
        ("synack", Some(FloodFlags::Synack)),
        ("ack", Some(FloodFlags::Ack)),
        ("rst", Some(FloodFlags::Rst)),
        ("fin", Some(FloodFlags::Fin)),
        ("any", None),
    ] {
        let text = format!(
            "[[flood]]\nname = \"f\"\nprotocol = \"tcp\"\ntcp_flags = \"{word}\"\nmetric = \"packets\"\nthreshold = 1\nwindow = \"1s\"\n"
        );
        let c = parse(&text).expect("valid");
        assert_eq!(c.floods[0].tcp_flags, want, "{word}");
        assert_eq!(c.floods[0].action, FloodAction::Alert, "alert by default");
        if let Some(f) = want {
            assert_eq!(f.as_str(), word);
        }
    }
}

const BAD: &str = r#"
[[rule]]
name = "udp-flood"
metric = "packets"
threshold = 1
window = "1s"

[[flood]]
name = "udp-flood"
protocol = "icmp"
src_ports = [53]
tcp_flags = "syn"
fragments = "some"
metric = "dst_ports"
threshold = 0
window = "10ms"
action = "drop"
ban = "2d"
scope = "everywhere"

[[flood]]
protocol = "tcp"
tcp_flags = "psh"

[[flood]]
name = "frag"
protocol = "udp"
dst_ports = [53]
fragments = "only"
metric = "packets"
threshold = 1
window = "1s"
action = "signature"
scope = "total"
"#;

#[test]
fn every_flood_problem_is_reported_with_its_place() {
    assert_eq!(
        problems(BAD),
        [
            "rules.toml:9:8: flood[1] (udp-flood).name: duplicate name `udp-flood` (first defined at line 3); rules and floods share names",
            "rules.toml:11:13: flood[1] (udp-flood).src_ports: ICMP has no ports: remove src_ports or use protocol tcp, udp or any",
            "rules.toml:12:13: flood[1] (udp-flood).tcp_flags: needs protocol = \"tcp\"",
            "rules.toml:13:13: flood[1] (udp-flood).fragments: unknown fragments `some`, expected `include`, `exclude`, `only`",
            "rules.toml:14:10: flood[1] (udp-flood).metric: unknown metric `dst_ports`, expected `packets`, `bytes`",
            "rules.toml:15:13: flood[1] (udp-flood).threshold: must be greater than 0, found 0",
            "rules.toml:16:10: flood[1] (udp-flood).window: must be between 100ms and 1h, found 10ms",
            "rules.toml:17:10: flood[1] (udp-flood).action: unknown action `drop`, expected `signature`, `sources`, `alert`",
            "rules.toml:18:7: flood[1] (udp-flood).ban: 2d is longer than enforce.max_ban (1d)",
            "rules.toml:19:9: flood[1] (udp-flood).scope: unknown scope `everywhere`, expected `destination`, `total`",
            "rules.toml:21:1: flood[2].name: missing required key `name`",
            "rules.toml:21:1: flood[2].metric: missing required key `metric`",
            "rules.toml:21:1: flood[2].threshold: missing required key `threshold`",
            "rules.toml:21:1: flood[2].window: missing required key `window`",
            "rules.toml:23:13: flood[2].tcp_flags: unknown tcp_flags `psh`, expected `syn`, `synack`, `ack`, `rst`, `fin`, `any`",
            "rules.toml:29:13: flood[3] (frag).fragments: a non-first fragment has no ports or TCP flags: remove src_ports, dst_ports and tcp_flags, or count fragments with \"include\"",
            "rules.toml:34:9: flood[3] (frag).scope: a signature drops traffic toward one destination: use scope = \"destination\" or another action",
        ]
    );
}

#[test]
fn a_syntax_error_inside_a_flood_names_its_table() {
    let text = "[[rule]]\nname = \"a\"\n[[flood]]\nname = \"b\"\n[[flood]]\nthreshold = = 3\n";
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("flood[2].threshold"), "{p:?}");
}

#[test]
fn an_unknown_key_in_a_flood_is_named_with_its_detector() {
    let text = "[[flood]]\nname = \"f\"\nmetric = \"packets\"\ntreshold = 3\nwindow = \"1s\"\n";
    let p = problems(text);
    assert!(
        p.iter().any(|l| l.starts_with(
            "rules.toml:4:1: flood[1] (f).treshold: unknown key `treshold` (did you mean `threshold`?)"
        )),
        "{p:?}"
    );
}
