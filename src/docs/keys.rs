//! Every key of `rules.toml`: its section, default and meaning, for autoblock-rules.toml(5).
//! A test checks this list against the raw serde structs (`config::keys`), so a key cannot be
//! parsed without being documented, nor documented without being parsed.

/// One key of the configuration file.
pub struct KeyDoc {
    /// `capture`, `enforce`, ..., `rule` for `[[rule]]`, `flood` for `[[flood]]`.
    pub section: &'static str,
    /// The key.
    pub key: &'static str,
    /// Its default as written in TOML (`required` when it has none).
    pub default: &'static str,
    /// What it does.
    pub text: &'static str,
}

const fn k(
    section: &'static str,
    key: &'static str,
    default: &'static str,
    text: &'static str,
) -> KeyDoc {
    KeyDoc {
        section,
        key,
        default,
        text,
    }
}

/// Every key, in the order of the shipped file.
pub const KEYS: &[KeyDoc] = &[
    k(
        "capture",
        "interfaces",
        "[]",
        "Interfaces to capture on; [] means the interface of the default route. Changing it needs a restart.",
    ),
    k(
        "capture",
        "bpf_filter",
        "\"\"",
        "Extra libpcap filter (tcpdump syntax), used as given; \"\" captures everything. autoblock check compiles it with libpcap. VLAN-tagged traffic needs \"vlan and ...\".",
    ),
    k(
        "capture",
        "snaplen",
        "128",
        "Bytes kept per packet (64 to 65535); only headers are read, and they fit in 128.",
    ),
    k(
        "enforce",
        "backend",
        "\"auto\"",
        "\"auto\": the first of nftables, ipset, iptables that works on this host and fits the configuration (chosen at start; status and the started event say which and why others were passed over); \"nftables\": one table with a timeout set per prefix length, constant cost per packet at 100k bans (needs nft); \"ipset\": two hash:net sets with kernel timeouts, fast at 100k bans (needs the ipset tool); \"iptables\": one DROP rule per ban in the chain (fine up to a few thousand bans).",
    ),
    k(
        "enforce",
        "chain",
        "\"AUTOBLOCK\"",
        "The chain autoblock owns (1 to 28 characters of A-Z a-z 0-9 _ -).",
    ),
    k(
        "enforce",
        "hooks",
        "[\"INPUT\"]",
        "Where traffic jumps to the chain: \"INPUT\", \"FORWARD\", or \"table:CHAIN\" with table filter, raw or mangle (\"raw:PREROUTING\" drops before connection tracking).",
    ),
    k(
        "enforce",
        "priority",
        "-10",
        "nftables only: the base chains' priority relative to their hook's table (filter 0, raw -300, mangle -150), -1000 to 1000; -10 drops banned packets just before iptables' own chains. Changing it needs a restart.",
    ),
    k(
        "enforce",
        "ban",
        "\"10m\"",
        "The first ban of a source, unless its rule sets its own.",
    ),
    k(
        "enforce",
        "max_ban",
        "\"24h\"",
        "No ban is longer, however often a source comes back; a longer autoblock ban --for is capped, and says so.",
    ),
    k(
        "enforce",
        "repeat_window",
        "\"1h\"",
        "A source banned again within this long after its last offense is a repeat offender.",
    ),
    k(
        "enforce",
        "repeat_multiplier",
        "2.0",
        "A repeat offender's ban is the previous one times this (at least 1.0), up to max_ban.",
    ),
    k(
        "enforce",
        "max_active_bans",
        "100000",
        "Most bans held at once; beyond it verdicts are suppressed with reason cap.",
    ),
    k(
        "enforce",
        "max_new_bans_per_sec",
        "1000",
        "New bans per second at most; beyond it verdicts are suppressed with reason rate (a spoofed flood never becomes a rule storm).",
    ),
    k(
        "enforce",
        "keep_on_exit",
        "true",
        "Leave the bans in the kernel when the daemon stops; the next start adopts them. false removes the chain and sets at exit.",
    ),
    k(
        "enforce",
        "dry_run",
        "false",
        "Decide and report every ban (events carry \"dry_run\":true), never touch the kernel.",
    ),
    k(
        "enforce",
        "extend_while_active",
        "true",
        "A banned source still over a threshold gets its ban extended (the capture sees packets before the firewall drops them).",
    ),
    k(
        "enforce",
        "check_interval",
        "\"10s\"",
        "How often the kernel state is checked for outside changes and repaired (1s to 1h).",
    ),
    k(
        "allow",
        "nets",
        "[\"127.0.0.0/8\", \"::1/128\"]",
        "Never counted as offenders, never banned, and no prefix ban overlaps them. CIDR networks or plain addresses; host bits (192.0.2.7/24) are an error.",
    ),
    k(
        "limits",
        "max_tracked_sources",
        "1000000",
        "Most sources tracked at once; beyond it new sources are not tracked (and counted), which bounds memory under spoofed floods.",
    ),
    k(
        "events",
        "file",
        "\"\"",
        "Events are appended to this file as JSON lines as well as written to stdout; \"\" means stdout only.",
    ),
    k(
        "control",
        "socket",
        "\"/run/autoblock/autoblock.sock\"",
        "The control socket the CLI talks to (mode 0600).",
    ),
    k(
        "state",
        "dir",
        "\"/var/lib/autoblock\"",
        "Offense history and manual bans, kept across restarts. An unwritable directory is reported at start.",
    ),
    k(
        "metrics",
        "listen",
        "\"\"",
        "Prometheus endpoint such as \"127.0.0.1:9477\"; \"\" disables it.",
    ),
    k(
        "cluster",
        "servers",
        "[]",
        "NATS servers (JetStream) through which a fleet shares its bans: every member of a NATS cluster, e.g. [\"nats://10.0.0.5:4222\"]; tls://host:port for TLS. [] means no sharing.",
    ),
    k(
        "cluster",
        "name",
        "\"default\"",
        "The fleet, 1 to 32 characters of A-Z a-z 0-9 _ -: nodes with the same name share their bans.",
    ),
    k(
        "cluster",
        "node",
        "\"\"",
        "This node's name, unique in the fleet (1 to 64 characters of A-Z a-z 0-9 _ -); \"\" means the host name.",
    ),
    k(
        "cluster",
        "share",
        "[\"rules\", \"manual\"]",
        "Which of our own bans (with their extensions and unbans) are published: \"rules\", \"manual\".",
    ),
    k(
        "cluster",
        "accept",
        "true",
        "Apply the bans other nodes publish; the allowlist and our own addresses always win.",
    ),
    k(
        "cluster",
        "credentials",
        "\"\"",
        "NATS credentials file (.creds) when the servers require one; \"\" means none.",
    ),
    k(
        "rule",
        "name",
        "required",
        "Unique name, 1 to 32 characters of A-Z a-z 0-9 _ . -; shown in events, list and the kernel rule comments.",
    ),
    k(
        "rule",
        "protocol",
        "\"any\"",
        "\"tcp\", \"udp\", \"icmp\" (ICMP and ICMPv6) or \"any\".",
    ),
    k(
        "rule",
        "tcp_flags",
        "(all)",
        "\"syn\": SYN without ACK (connection attempts); only with protocol \"tcp\".",
    ),
    k(
        "rule",
        "dst_ports",
        "(all)",
        "Only packets to these destination ports count, such as [80, 443, \"8000-8100\"].",
    ),
    k(
        "rule",
        "metric",
        "required",
        "What is counted per source: \"packets\", \"bytes\", \"dst_ports\" (distinct destination ports: scans) or \"dst_addrs\" (distinct destination addresses: sweeps).",
    ),
    k(
        "rule",
        "threshold",
        "required",
        "The rule fires when the count within the window goes over this (greater than 0).",
    ),
    k(
        "rule",
        "window",
        "required",
        "The sliding window the count covers, 100ms to 1h.",
    ),
    k(
        "rule",
        "ban",
        "[enforce] ban",
        "This rule's ban, at most [enforce] max_ban.",
    ),
    k(
        "rule",
        "aggregate_v4",
        "32",
        "Prefix length that groups IPv4 sources into one offender (1 to 32; 24 counts and bans whole /24s). 0 is refused: it would ban 0.0.0.0/0.",
    ),
    k(
        "rule",
        "aggregate_v6",
        "128",
        "The same for IPv6 (1 to 128); 64 is one typical end site.",
    ),
    k(
        "rule",
        "skip_replies",
        "true for dst_ports and dst_addrs, else false",
        "Packets from a service port (< 1024) to an ephemeral port (>= 1024), such as DNS answers, are replies and not counted.",
    ),
    k(
        "rule",
        "ban_verified_peers",
        "false",
        "true: this rule may ban a verified peer (an established TCP peer, an SSH session, a default gateway, a resolver). Off: such a peer is reported (a suppressed event with reason peer), never banned, since SYN, UDP and ICMP counts can be forged with its address.",
    ),
    k(
        "rule",
        "mode",
        "\"enforce\"",
        "\"log\": the rule decides and reports (a suppressed event with reason log, once per would-be ban) but never bans or extends a ban; for trying a rule on live traffic.",
    ),
    k(
        "rule",
        "exempt",
        "[]",
        "Sources in these networks are not counted by this rule (other rules still count them); host bits are an error.",
    ),
    k(
        "flood",
        "name",
        "required",
        "Unique among rules and detectors, same characters as a rule name; shown in events as rule and in the signature rule's comment.",
    ),
    k(
        "flood",
        "protocol",
        "\"any\"",
        "\"tcp\", \"udp\", \"icmp\" (ICMP and ICMPv6) or \"any\".",
    ),
    k(
        "flood",
        "src_ports",
        "(all)",
        "Only packets from these source ports count, such as [53, 123, \"500-501\"] (reflection of one service).",
    ),
    k(
        "flood",
        "dst_ports",
        "(all)",
        "Only packets to these destination ports count.",
    ),
    k(
        "flood",
        "tcp_flags",
        "\"any\"",
        "\"syn\" (SYN without ACK), \"synack\", \"ack\" (ACK without SYN, RST, FIN), \"rst\", \"fin\" or \"any\"; only with protocol \"tcp\".",
    ),
    k(
        "flood",
        "fragments",
        "\"include\"",
        "Non-first IP fragments (no ports, no flags): \"include\" counts them when no port or flag filter is set, \"exclude\" never, \"only\" counts nothing else (fragment floods).",
    ),
    k(
        "flood",
        "metric",
        "required",
        "What is counted toward a destination, all sources together: \"packets\" or \"bytes\".",
    ),
    k(
        "flood",
        "threshold",
        "required",
        "The detector crosses when the count within the window goes over this (greater than 0): an attack starts.",
    ),
    k(
        "flood",
        "window",
        "required",
        "The sliding window the count covers, 100ms to 1h.",
    ),
    k(
        "flood",
        "action",
        "\"alert\"",
        "\"signature\": a DROP rule for the attack's fingerprint toward the target (protocol, dominant source or destination port, TCP flags), unless it would also drop traffic we verifiably serve (then refused and reported); \"sources\": ban the sources that carry it through the normal bans, never when they look spoofed; \"alert\": events only.",
    ),
    k(
        "flood",
        "ban",
        "[enforce] ban",
        "How long an attack and its signature stay after it was last over threshold (a returning attack brings the rule back); the ban of a sources action. At most [enforce] max_ban.",
    ),
    k(
        "flood",
        "scope",
        "\"destination\"",
        "\"destination\": one count per protected address; \"total\": one for all of them together (not with action \"signature\").",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parsed_key_is_documented_and_every_documented_key_parsed() {
        let mut parsed = Vec::new();
        for s in crate::config::keys::sections() {
            for key in s.keys {
                parsed.push((s.name, *key));
            }
        }
        let documented: Vec<(&str, &str)> = KEYS.iter().map(|k| (k.section, k.key)).collect();
        for p in &parsed {
            assert!(documented.contains(p), "[{}] {} has no KeyDoc", p.0, p.1);
        }
        for d in &documented {
            assert!(parsed.contains(d), "KeyDoc [{}] {} is not a key", d.0, d.1);
        }
    }

    #[test]
    fn the_defaults_are_the_parsers() {
        // Each table key's documented default is what an empty file gives.
        let mut sections: Vec<(&str, Vec<String>)> = Vec::new();
        for k in KEYS
            .iter()
            .filter(|k| k.section != "rule" && k.section != "flood")
        {
            let line = format!("{} = {}", k.key, k.default);
            match sections.iter_mut().find(|s| s.0 == k.section) {
                Some(s) => s.1.push(line),
                None => sections.push((k.section, vec![line])),
            }
        }
        let file: String = sections
            .iter()
            .map(|(s, lines)| format!("[{s}]\n{}\n", lines.join("\n")))
            .collect();
        let from_docs = crate::config::parse_str(&file, std::path::Path::new("d.toml"))
            .expect("the documented defaults are valid");
        let empty = crate::config::parse_str("", std::path::Path::new("d.toml")).expect("valid");
        assert_eq!(
            crate::config::diff(&empty, &from_docs),
            Vec::<String>::new()
        );
        assert_eq!(from_docs.capture, empty.capture);
        assert_eq!(from_docs.enforce, empty.enforce);
        assert_eq!(from_docs.allow, empty.allow);
        assert_eq!(from_docs.control, empty.control);
        assert_eq!(from_docs.state, empty.state);
    }
}
