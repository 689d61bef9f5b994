//! `[cluster]` fixtures through `parse_str`: a full table, the defaults, and one fixture per
//! kind of problem, each checked for its line, column, key and wording.

use std::path::{Path, PathBuf};

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

const FULL: &str = r#"
[cluster]
servers = ["nats://10.0.0.5:4222", "tls://nats-2.example.net:4443", "nats://[2001:db8::7]:4222"]
name = "web"
node = "web-1"
share = ["manual"]
accept = false
credentials = "/etc/autoblock/fleet.creds"
"#;

#[test]
fn full_table_is_read() {
    let c = parse(FULL).expect("valid").cluster;
    assert!(c.enabled());
    assert_eq!(
        c.servers,
        [
            "nats://10.0.0.5:4222",
            "tls://nats-2.example.net:4443",
            "nats://[2001:db8::7]:4222"
        ]
    );
    assert_eq!(c.name, "web");
    assert_eq!(c.node.as_deref(), Some("web-1"));
    assert_eq!(
        c.share,
        ShareKinds {
            rules: false,
            manual: true
        }
    );
    assert!(!c.accept);
    assert_eq!(
        c.credentials,
        Some(PathBuf::from("/etc/autoblock/fleet.creds"))
    );
}

#[test]
fn defaults_share_nothing_and_leave_the_node_to_the_host_name() {
    let c = parse("").expect("valid").cluster;
    assert!(!c.enabled());
    assert_eq!(c, ClusterConfig::default());
    assert_eq!(c.name, "default");
    assert_eq!(c.node, None, "resolved at start, not in the config");
    assert!(c.share.rules && c.share.manual && c.accept);
    assert_eq!(c.credentials, None);
    // Empty strings mean "default", as elsewhere in the file.
    let c = parse("[cluster]\nnode = \"\"\ncredentials = \"\"\nshare = []\n")
        .expect("valid")
        .cluster;
    assert_eq!((c.node, c.credentials), (None, None));
    assert!(
        !c.share.rules && !c.share.manual,
        "share = [] publishes nothing"
    );
}

#[test]
fn bad_server_urls_are_quoted_with_the_reason() {
    let p = problems(
        "[cluster]\nservers = [\n  \"10.0.0.5:4222\",\n  \"http://10.0.0.5:4222\",\n  \"nats://\",\n  \"nats://a:99999\",\n  \"nats://a:4222/x\",\n  \"nats://a:4222\",\n  \"nats://a:4222\",\n]\n",
    );
    assert_eq!(p.len(), 6, "{p:#?}");
    assert!(
        p[0].starts_with("rules.toml:3:3: cluster.servers[0]: `10.0.0.5:4222` is not a NATS server URL such as nats://10.0.0.5:4222")
            && p[0].ends_with("(no scheme)"),
        "{p:?}"
    );
    assert!(
        p[1].starts_with("rules.toml:4:3: cluster.servers[1]:")
            && p[1].ends_with("(scheme `http`, expected nats or tls)"),
        "{p:?}"
    );
    assert!(
        p[2].starts_with("rules.toml:5:3: cluster.servers[2]:"),
        "{p:?}"
    );
    assert!(
        p[3].starts_with("rules.toml:6:3: cluster.servers[3]:") && p[3].contains("invalid"),
        "{p:?}"
    );
    assert!(p[4].ends_with("(a path is not allowed)"), "{p:?}");
    assert_eq!(
        p[5],
        "rules.toml:9:3: cluster.servers[6]: `nats://a:4222` is listed twice"
    );
}

#[test]
fn names_must_be_subject_tokens() {
    let p = problems("[cluster]\nname = \"web.eu\"\nnode = \"web 1\"\n");
    assert_eq!(
        p,
        [
            "rules.toml:2:8: cluster.name: `web.eu` is not a name here (1-32 characters of A-Z a-z 0-9 _ -)",
            "rules.toml:3:8: cluster.node: `web 1` is not a name here (1-64 characters of A-Z a-z 0-9 _ -)",
        ]
    );
    let p = problems(&format!(
        "[cluster]\nname = \"\"\nnode = \"{}\"\n",
        "n".repeat(65)
    ));
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].contains("cluster.name: `` is not a name"), "{p:?}");
    assert!(p[1].contains("cluster.node:"), "{p:?}");
    assert!(parse(&format!("[cluster]\nnode = \"{}\"\n", "n".repeat(64))).is_ok());
}

#[test]
fn share_kinds_are_known_and_listed_once() {
    let p = problems("[cluster]\nshare = [\"rules\", \"auto\", \"rules\"]\n");
    assert_eq!(
        p,
        [
            "rules.toml:2:19: cluster.share[1]: unknown kind `auto`, expected \"rules\" or \"manual\"",
            "rules.toml:2:27: cluster.share[2]: `rules` is listed twice",
        ]
    );
}

#[test]
fn unknown_keys_and_wrong_types_name_the_key() {
    let p = problems("[cluster]\nserver = \"nats://a\"\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("rules.toml:2:1: cluster.server: unknown key `server`"),
        "{p:?}"
    );
    let p = problems("[cluster]\nservers = \"nats://a:4222\"\n");
    assert!(
        p[0].starts_with("rules.toml:2:11: cluster.servers: invalid type: string"),
        "{p:?}"
    );
    let p = problems("[cluster]\naccept = \"yes\"\n");
    assert!(p[0].contains("cluster.accept: invalid type"), "{p:?}");
}

#[test]
fn name_predicate() {
    assert!(is_cluster_name("web-1_A", NODE_NAME_MAX));
    for bad in ["", "a.b", "a*", "a>", "a b", "é", "a/b"] {
        assert!(!is_cluster_name(bad, NODE_NAME_MAX), "{bad:?}");
    }
    assert!(!is_cluster_name(&"a".repeat(33), FLEET_NAME_MAX));
}
