//! Named TOML fixtures through `parse_str`: a good file, defaults, and one fixture per kind of
//! problem, each checked for its line, column, key and wording.

use std::path::Path;
use std::time::Duration;

use super::*;

const GOOD: &str = r#"
[capture]
interfaces = ["eth0", "eth1"]
bpf_filter = "not port 22"
snaplen = 256

[enforce]
backend = "ipset"
chain = "AB-1"
hooks = ["INPUT", "raw:PREROUTING"]
ban = "5m"
max_ban = "1d"
repeat_window = "2h"
repeat_multiplier = 1.5
max_active_bans = 5000
max_new_bans_per_sec = 50
keep_on_exit = false
dry_run = true
extend_while_active = false
check_interval = "30s"

[allow]
nets = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.0.0.0/8"]

[limits]
max_tracked_sources = 2000

[events]
file = "/var/log/autoblock/events.jsonl"

[control]
socket = "/tmp/ab.sock"

[state]
dir = "/tmp/ab-state"

[metrics]
listen = "127.0.0.1:9477"

[[rule]]
name = "syn-flood"
protocol = "tcp"
tcp_flags = "syn"
dst_ports = [443, 80, "8000-8002", 80]
metric = "packets"
threshold = 2000
window = "1s"
ban = "10m"
aggregate_v4 = 24
aggregate_v6 = 64

[[rule]]
name = "port-scan"
metric = "dst_ports"
threshold = 60
window = "10s"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str(text, Path::new("rules.toml"))
}

/// The problems as displayed, one string each.
fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("fixture unexpectedly valid:\n{text}"),
        Err(e) => {
            assert!(e.is_invalid(), "{e}");
            e.problems().iter().map(ToString::to_string).collect()
        }
    }
}

fn one_problem(text: &str) -> String {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    p.into_iter().next().unwrap_or_default()
}

#[test]
fn good_file_is_read_in_full() {
    let c = parse(GOOD).expect("valid");
    assert_eq!(c.capture.interfaces, ["eth0", "eth1"]);
    assert_eq!(c.capture.bpf_filter.as_deref(), Some("not port 22"));
    assert_eq!(c.capture.snaplen, 256);
    assert_eq!(c.enforce.backend, BackendChoice::Fixed(Backend::Ipset));
    assert_eq!(c.enforce.hooks, ["INPUT", "raw:PREROUTING"]);
    assert_eq!(c.enforce.ban, Duration::from_secs(300));
    assert_eq!(c.enforce.max_ban, Duration::from_secs(86_400));
    assert_eq!(c.enforce.repeat_multiplier, 1.5);
    assert_eq!(c.enforce.max_new_bans_per_sec, 50);
    assert!(!c.enforce.keep_on_exit && c.enforce.dry_run && !c.enforce.extend_while_active);
    let nets: Vec<String> = c.allow.nets.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
    assert_eq!(
        c.metrics.listen,
        Some("127.0.0.1:9477".parse().expect("addr"))
    );
    assert_eq!(c.rules.len(), 2);
    let syn = &c.rules[0];
    assert_eq!(syn.protocol, Protocol::Tcp);
    assert_eq!(syn.tcp_flags, Some(TcpFlagsFilter::Syn));
    assert_eq!(
        syn.dst_ports.as_deref(),
        Some(&[80, 443, 8000, 8001, 8002][..])
    );
    assert_eq!((syn.threshold, syn.window), (2000, Duration::from_secs(1)));
    assert_eq!((syn.aggregate_v4, syn.aggregate_v6), (24, 64));
    let scan = &c.rules[1];
    assert_eq!(
        (scan.protocol, scan.metric, scan.ban),
        (Protocol::Any, Metric::DstPorts, None)
    );
    assert_eq!((scan.aggregate_v4, scan.aggregate_v6), (32, 128));
}

#[test]
fn empty_file_gives_defaults_and_no_rules() {
    let c = parse("").expect("valid");
    assert!(c.capture.interfaces.is_empty());
    assert_eq!(c.capture.bpf_filter, None);
    assert_eq!(c.capture.snaplen, 128);
    assert_eq!(c.enforce.backend, BackendChoice::Auto);
    assert_eq!(c.enforce.chain, "AUTOBLOCK");
    assert_eq!(c.enforce.hooks, ["INPUT"]);
    assert_eq!(c.enforce.ban, Duration::from_secs(600));
    assert_eq!(c.enforce.check_interval, Duration::from_secs(10));
    assert!(c.enforce.keep_on_exit && !c.enforce.dry_run && c.enforce.extend_while_active);
    assert_eq!(c.allow.nets.len(), 2);
    assert_eq!(c.limits.max_tracked_sources, 1_000_000);
    assert_eq!(c.events.file, None);
    assert_eq!(c.metrics.listen, None);
    assert!(c.rules.is_empty());
}

const UNKNOWN_TOP_LEVEL: &str = "bann = \"10m\"\n";
const UNKNOWN_IN_ENFORCE: &str = "[enforce]\nban = \"10m\"\nbann = \"10m\"\n";
const UNKNOWN_IN_RULE: &str = r#"
[[rule]]
name = "a"
metric = "packets"
threshold = 1
window = "1s"

[[rule]]
name = "b"
metric = "packets"
treshold = 5
"#;

#[test]
fn unknown_keys_name_line_column_and_key() {
    let p = one_problem(UNKNOWN_TOP_LEVEL);
    assert!(
        p.starts_with("rules.toml:1:1: bann: unknown key `bann`, expected one of"),
        "{p}"
    );
    let p = one_problem(UNKNOWN_IN_ENFORCE);
    assert!(
        p.starts_with("rules.toml:3:1: enforce.bann: unknown key `bann`"),
        "{p}"
    );
    assert!(p.contains("`max_ban`"), "lists what is expected: {p}");
    let p = one_problem(UNKNOWN_IN_RULE);
    assert!(
        p.starts_with(
            "rules.toml:11:1: rule[2] (b).treshold: unknown key `treshold` (did you mean `threshold`?)"
        ),
        "{p}"
    );
}

const WRONG_TYPE: &str = "[[rule]]\nname = \"a\"\nmetric = \"packets\"\nthreshold = \"lots\"\n";
const WRONG_TYPE_DURATION: &str = "[enforce]\nban = 600\n";
const WRONG_TYPE_TABLE: &str = "enforce = 5\n";
const SYNTAX: &str = "[enforce]\nban = \n";

#[test]
fn wrong_types_and_syntax_say_what_was_expected() {
    assert_eq!(
        one_problem(WRONG_TYPE),
        "rules.toml:4:13: rule[1] (a).threshold: invalid type: string \"lots\", expected an integer"
    );
    let p = one_problem(WRONG_TYPE_DURATION);
    assert!(
        p.starts_with(
            "rules.toml:2:7: enforce.ban: invalid type: integer `600`, expected a duration string"
        ),
        "{p}"
    );
    assert_eq!(
        one_problem(WRONG_TYPE_TABLE),
        "rules.toml:1:11: enforce: invalid type: integer `5`, expected a table"
    );
    let p = one_problem(SYNTAX);
    assert!(p.starts_with("rules.toml:2:7: enforce.ban: "), "{p}");
}

#[test]
fn hooks_take_user_chains_such_as_docker_user_but_never_our_own_chain() {
    // Finding 10: the README's Docker hook.
    let c = parse("[enforce]\nhooks = [\"INPUT\", \"DOCKER-USER\"]\n").unwrap();
    assert_eq!(c.enforce.hooks, ["INPUT", "DOCKER-USER"]);
    let c = parse("[enforce]\nhooks = [\"filter:DOCKER-USER\", \"raw:PREROUTING\"]\n").unwrap();
    assert_eq!(c.enforce.hooks, ["filter:DOCKER-USER", "raw:PREROUTING"]);
    // A hook on our own chain would make it jump to itself: refused by check, not at start.
    for (text, col) in [
        ("[enforce]\nhooks = [\"INPUT\", \"filter:AUTOBLOCK\"]\n", 19),
        (
            "[enforce]\nchain = \"AB-1\"\nhooks = [\"INPUT\", \"AB-1\"]\n",
            19,
        ),
    ] {
        let p = one_problem(text);
        assert!(p.contains(&format!(":{col}: enforce.hooks[1]: ")), "{p}");
        assert!(p.contains("our own chain"), "{p}");
    }
    // A built-in chain of another table, a bad table, a bad name.
    for hook in ["raw:INPUT", "nat:PREROUTING", "filter:", "INPUT -j X", "-X"] {
        let p = one_problem(&format!("[enforce]\nhooks = [{hook:?}]\n"));
        assert!(p.contains("enforce.hooks[0]: "), "{hook}: {p}");
    }
}

#[test]
fn chain_names_over_20_characters_are_refused_with_the_iptables_backend_only() {
    let long = "A".repeat(21);
    let p = one_problem(&format!(
        "[enforce]\nbackend = \"iptables\"\nchain = \"{long}\"\n"
    ));
    assert!(p.contains(":3:9: enforce.chain: "), "{p}");
    assert!(
        p.contains("at most 20") && p.contains(&format!("{long}.<7 hex digits>")),
        "{p}"
    );
    let twenty = "A".repeat(20);
    let c = parse(&format!(
        "[enforce]\nbackend = \"iptables\"\nchain = \"{twenty}\"\n"
    ))
    .unwrap();
    assert_eq!(c.enforce.chain, twenty);
    for backend in ["ipset", "nftables", "auto"] {
        let c = parse(&format!(
            "[enforce]\nbackend = \"{backend}\"\nchain = \"{long}\"\n"
        ));
        assert!(c.is_ok(), "{backend}: {c:?}");
    }
}

const BAD_CIDR: &str = "[allow]\nnets = [\"10.0.0.0/8\", \"10.0.0.300/8\", \"::1/129\"]\n";

#[test]
fn bad_cidrs_are_quoted() {
    assert_eq!(
        problems(BAD_CIDR),
        [
            "rules.toml:2:23: allow.nets[1]: `10.0.0.300/8` is not an address or network such as 192.0.2.0/24, 2001:db8::/32 or 192.0.2.7",
            "rules.toml:2:39: allow.nets[2]: `::1/129` is not an address or network such as 192.0.2.0/24, 2001:db8::/32 or 192.0.2.7",
        ]
    );
}

const BAD_DURATION: &str = "[enforce]\nrepeat_window = \"10x\"\n";

#[test]
fn bad_duration_is_quoted() {
    assert_eq!(
        one_problem(BAD_DURATION),
        "rules.toml:2:17: enforce.repeat_window: expected a duration such as 90s, 10m, 2h or 1d, found `10x`"
    );
}

const ZERO_THRESHOLD: &str = r#"
[[rule]]
name = "a"
metric = "packets"
threshold = 1
window = "1s"

[[rule]]
name = "b"
metric = "packets"
threshold = 0
window = "1s"
"#;

#[test]
fn zero_threshold() {
    assert_eq!(
        one_problem(ZERO_THRESHOLD),
        "rules.toml:11:13: rule[2] (b).threshold: must be greater than 0, found 0"
    );
}

const WINDOW_OUT_OF_RANGE: &str = r#"
[[rule]]
name = "short"
metric = "packets"
threshold = 1
window = "50ms"

[[rule]]
name = "long"
metric = "packets"
threshold = 1
window = "2h"
"#;

#[test]
fn window_out_of_range() {
    assert_eq!(
        problems(WINDOW_OUT_OF_RANGE),
        [
            "rules.toml:6:10: rule[1] (short).window: must be between 100ms and 1h, found 50ms",
            "rules.toml:12:10: rule[2] (long).window: must be between 100ms and 1h, found 2h",
        ]
    );
}

const DUPLICATE_NAME: &str = r#"
[[rule]]
name = "flood"
metric = "packets"
threshold = 1
window = "1s"

[[rule]]
name = "flood"
metric = "bytes"
threshold = 1
window = "1s"
"#;

#[test]
fn duplicate_rule_name() {
    assert_eq!(
        one_problem(DUPLICATE_NAME),
        "rules.toml:9:8: rule[2] (flood).name: duplicate rule name `flood` (first defined at line 3)"
    );
}

const SEVERAL: &str = r#"
[capture]
snaplen = 10

[enforce]
backend = "pf"
chain = "TOO LONG AND SPACED"
hooks = ["raw:INPUT", "nat:PREROUTING", "raw:PREROUTING"]
ban = "2d"
max_ban = "1d"
repeat_multiplier = 0.5
max_active_bans = 0

[metrics]
listen = "localhost"

[[rule]]
name = "bad name!"
protocol = "udp"
tcp_flags = "syn"
dst_ports = [0, "9-3", 70000, "http"]
metric = "flows"
threshold = -1
window = "1s"
ban = "3d"
aggregate_v4 = 33
aggregate_v6 = 129

[[rule]]
protocol = "icmp"
dst_ports = [1]
"#;

#[test]
fn several_problems_are_reported_together() {
    let p = problems(SEVERAL);
    let keys: Vec<&str> = p
        .iter()
        .map(|l| l.split(": ").nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        [
            "capture.snaplen",
            "enforce.backend",
            "enforce.chain",
            "enforce.hooks[0]",
            "enforce.hooks[1]",
            "enforce.ban",
            "enforce.repeat_multiplier",
            "enforce.max_active_bans",
            "metrics.listen",
            "rule[1] (bad name!).name",
            "rule[1] (bad name!).tcp_flags",
            "rule[1] (bad name!).dst_ports[0]",
            "rule[1] (bad name!).dst_ports[1]",
            "rule[1] (bad name!).dst_ports[2]",
            "rule[1] (bad name!).dst_ports[3]",
            "rule[1] (bad name!).metric",
            "rule[1] (bad name!).threshold",
            "rule[1] (bad name!).ban",
            "rule[1] (bad name!).aggregate_v4",
            "rule[1] (bad name!).aggregate_v6",
            "rule[2].name",
            "rule[2].metric",
            "rule[2].threshold",
            "rule[2].window",
            "rule[2].dst_ports",
        ],
        "{p:#?}"
    );
    assert!(p.iter().all(|l| l.starts_with("rules.toml:")), "{p:#?}");
    assert!(p.contains(
        &"rules.toml:9:7: enforce.ban: 2d is longer than enforce.max_ban (1d)".to_owned()
    ));
    assert!(p.contains(
        &"rules.toml:20:13: rule[1] (bad name!).tcp_flags: needs protocol = \"tcp\"".to_owned()
    ));
    assert!(p.contains(&"rules.toml:29:1: rule[2].name: missing required key `name`".to_owned()));
}

#[test]
fn not_utf8_is_a_config_problem_and_missing_file_a_read_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"[capture]\nbpf_filter = \"\xff\"\n").expect("write");
    let e = load(&bad).expect_err("not utf-8");
    assert!(e.is_invalid());
    assert!(
        e.to_string()
            .ends_with("bad.toml:2:15: the file is not UTF-8 text"),
        "{e}"
    );

    let missing = dir.path().join("missing.toml");
    let e = load(&missing).expect_err("missing");
    assert!(!e.is_invalid());
    assert_eq!(
        e.to_string(),
        format!("cannot read {}: no such file", missing.display())
    );
}

const SHIPPED: &str = include_str!("../../rules.toml");

#[test]
fn shipped_file_is_valid_and_shows_every_key() {
    let c = parse(SHIPPED).expect("shipped rules.toml is valid");
    // Every shipped rule can start a ban: none is shadowed by another.
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    let names: Vec<&str> = c.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "syn-flood",
            "conn-burst",
            "udp-flood",
            "icmp-flood",
            "port-scan",
            "host-sweep"
        ]
    );
    let floods: Vec<&str> = c.floods.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        floods,
        [
            "syn-flood-dst",
            "synack-reflection",
            "udp-flood-dst",
            "icmp-flood-dst"
        ]
    );
    // Its values are the defaults, apart from the rules and detectors.
    let defaults = parse("").expect("defaults");
    assert_eq!(
        Config {
            rules: Vec::new(),
            floods: Vec::new(),
            warnings: Vec::new(),
            ..c
        },
        Config {
            warnings: Vec::new(),
            ..defaults
        }
    );

    // Every key the raw structs know is in the shipped file: a table's keys with their
    // defaults, the rule and detector keys in the comment that documents them.
    let table: toml::Table = SHIPPED.parse().expect("toml");
    for section in keys::sections() {
        if section.array {
            for key in section.keys {
                let documented = SHIPPED.lines().any(|l| {
                    l.trim_start_matches('#')
                        .trim_start()
                        .starts_with(&format!("{key} "))
                });
                assert!(
                    documented,
                    "[[{}]] key {key} is not documented in the shipped rules.toml",
                    section.name
                );
            }
            continue;
        }
        let t = table.get(section.name).and_then(|t| t.as_table());
        let mut present: Vec<&str> = t
            .map(|t| t.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut keys = section.keys.to_vec();
        present.sort_unstable();
        keys.sort_unstable();
        assert_eq!(
            present, keys,
            "[{}] in the shipped rules.toml",
            section.name
        );
    }
}

proptest::proptest! {
    /// Any edit of a good file gives a config or problems, never a panic; problems always have
    /// a position inside the text.
    #[test]
    fn edited_files_never_panic(cut in 0usize..GOOD.len(), len in 0usize..40, insert in "\\PC{0,8}") {
        let mut text = GOOD.to_owned();
        let start = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let end = (start + len).min(text.len());
        let end = (end..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        text.replace_range(start..end, &insert);
        if let Err(e) = parse(&text) {
            proptest::prop_assert!(!e.problems().is_empty());
            let lines = text.lines().count() + 1;
            for p in e.problems() {
                let (line, _) = p.position.unwrap_or((1, 1));
                proptest::prop_assert!(line <= lines, "{p}");
            }
        }
    }

    #[test]
    fn key_near_never_panics(text in "\\PC{0,60}", offset in 0usize..80) {
        let _ = super::parse::key_near(&text, offset);
    }
}

#[test]
fn ipset_bans_cannot_outlive_the_kernel_timeout_and_checks_are_bounded() {
    let p =
        problems("[enforce]\nbackend = \"ipset\"\nmax_ban = \"30d\"\ncheck_interval = \"0s\"\n");
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].starts_with("rules.toml:3:11: enforce.max_ban: 30d is longer than ipset allows"),
        "{p:?}"
    );
    assert!(p[1].contains("enforce.check_interval"), "{p:?}");
    // The same ban length is fine with iptables (the expiry lives in a comment).
    assert!(parse("[enforce]\nbackend = \"iptables\"\nmax_ban = \"30d\"\n").is_ok());
}

#[test]
fn nftables_backend_priority_and_hooks() {
    let c = parse(
        "[enforce]\nbackend = \"nftables\"\npriority = -20\nhooks = [\"INPUT\", \"raw:PREROUTING\"]\nmax_ban = \"30d\"\n",
    )
    .unwrap();
    assert_eq!(c.enforce.backend, BackendChoice::Fixed(Backend::Nftables));
    assert_eq!(c.enforce.priority, -20);
    assert_eq!(parse("").unwrap().enforce.priority, -10);
    let p = problems(
        "[enforce]\nbackend = \"nftables\"\npriority = 5000\nhooks = [\"mangle:FOO\"]\nmax_ban = \"5000d\"\n",
    );
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(
        p[0].starts_with("rules.toml:3:12: enforce.priority"),
        "{p:?}"
    );
    assert!(
        p[1].starts_with("rules.toml:4:10: enforce.hooks[0]: `mangle:FOO` is not an nftables hook"),
        "{p:?}"
    );
    assert!(
        p[2].contains("enforce.max_ban: 5000d is longer than nft accepts"),
        "{p:?}"
    );
    // The same hook is accepted by iptables (a user chain may be called so).
    assert!(parse("[enforce]\nhooks = [\"mangle:FOO\"]\n").is_ok());
}

const THREE_TYPOS: &str = "[enforce]\nbann = \"1m\"\nchian = \"X\"\n\n[capture]\nsnaplne = 128\n";

#[test]
fn every_unknown_key_is_reported_at_once() {
    let p = problems(THREE_TYPOS);
    let heads: Vec<&str> = p
        .iter()
        .map(|l| l.split(" (did").next().unwrap_or(""))
        .collect();
    assert_eq!(
        heads,
        [
            "rules.toml:2:1: enforce.bann: unknown key `bann`",
            "rules.toml:3:1: enforce.chian: unknown key `chian`",
            "rules.toml:6:1: capture.snaplne: unknown key `snaplne`",
        ],
        "{p:#?}"
    );
    // A wrong type elsewhere is reported beside them.
    let p = problems(&format!(
        "{THREE_TYPOS}[limits]\nmax_tracked_sources = \"x\"\n"
    ));
    assert_eq!(p.len(), 4, "{p:#?}");
    assert!(p[3].starts_with("rules.toml:8:23: limits.max_tracked_sources: invalid type"));
}

const UNCLOSED: &str = "[enforce]\nban = \"10m\"\nhooks = [\"INPUT\",\n\n[allow]\nnets = []\n";

#[test]
fn an_unclosed_array_is_reported_where_it_opened() {
    let p = one_problem(UNCLOSED);
    assert!(
        p.starts_with("rules.toml:3:9: enforce.hooks: this array is never closed (at line 6:"),
        "{p}"
    );
    assert!(p.ends_with("a `]` is missing"), "{p}");
}

const ZERO_AGGREGATE: &str = "[[rule]]\nname = \"all\"\nmetric = \"packets\"\nthreshold = 5\nwindow = \"1s\"\naggregate_v4 = 0\naggregate_v6 = 0\n";

#[test]
fn a_zero_prefix_is_refused_and_host_bits_are_an_error() {
    let p = problems(ZERO_AGGREGATE);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p[0].starts_with("rules.toml:6:16: rule[1] (all).aggregate_v4: 0 would count every address as one source and ban them all (0.0.0.0/0)"),
        "{}",
        p[0]
    );
    assert!(p[1].contains("(::/0)"), "{}", p[1]);
    assert_eq!(
        one_problem("[allow]\nnets = [\"192.0.2.7/24\"]\n"),
        "rules.toml:2:9: allow.nets[0]: `192.0.2.7/24` has host bits set: write the network 192.0.2.0/24 or the address 192.0.2.7"
    );
}

const MODE_AND_EXEMPT: &str = r#"
[[rule]]
name = "trial"
metric = "packets"
threshold = 5
window = "1s"
mode = "log"
exempt = ["192.0.2.0/24", "2001:db8::7"]

[[rule]]
name = "bad"
metric = "packets"
threshold = 5
window = "1s"
mode = "warn"
exempt = ["10.1.2.3/8"]
"#;

#[test]
fn mode_and_exempt_are_read_and_checked() {
    let p = problems(MODE_AND_EXEMPT);
    assert_eq!(
        p,
        [
            "rules.toml:15:8: rule[2] (bad).mode: unknown mode `warn`, expected `enforce` (ban) or `log` (decide and report, never ban)",
            "rules.toml:16:11: rule[2] (bad).exempt[0]: `10.1.2.3/8` has host bits set: write the network 10.0.0.0/8 or the address 10.1.2.3",
        ]
    );
    let good = MODE_AND_EXEMPT
        .split("[[rule]]\nname = \"bad\"")
        .next()
        .unwrap_or("");
    let c = parse(good).expect("valid");
    assert_eq!(c.rules[0].mode, RuleMode::Log);
    let exempt: Vec<String> = c.rules[0].exempt.iter().map(ToString::to_string).collect();
    assert_eq!(exempt, ["192.0.2.0/24", "2001:db8::7/128"]);
    assert_eq!(
        parse(&good.replace("mode = \"log\"\n", ""))
            .expect("valid")
            .rules[0]
            .mode,
        RuleMode::Enforce
    );
}
