//! Typed rules on a real kernel, every backend: a flood signature (`-d SERVER -p udp --sport
//! 4500`) and TCP rules drop only the packets they match (real packets between namespaces);
//! rules are listed, their counters read back, adopted on reopen, repaired after a flush,
//! expired by call. And one handle per chain: a second handle, or a chain named like ours but
//! for case, is refused.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use autoblock::firewall::{
    Action, Backend, Batch, Firewall, FirewallError, FirewallOptions, Protocol, Repair, Rule,
    TcpFlags,
};

use crate::harness::netns::{self, Netns, Pair};
use crate::harness::require_root;

const HOUR: Duration = Duration::from_secs(3600);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn open(ns: &Netns, backend: Backend, chain: &str) -> Result<Firewall, FirewallError> {
    Firewall::open(FirewallOptions::new(backend, chain).netns(ns.name()))
}

/// A TCP connection from `src` (port `sport`, or any) to `dst` port 7000 within 1 s.
fn connects(pair: &Pair, src: &str, sport: Option<&str>, dst: &str) -> bool {
    let mut argv = vec!["nc", "-z", "-n", "-w", "1", "-s", src];
    if let Some(p) = sport {
        argv.extend(["-p", p]);
    }
    argv.extend([dst, "7000"]);
    pair.client.exec(&argv).status.success()
}

/// Packets counted by our drop rule for UDP from port 4500.
fn counted(ns: &Netns, backend: Backend) -> u64 {
    if backend == Backend::Nftables {
        let listing = ns.ok(&["nft", "list", "chain", "inet", "abtest", "rules"]);
        return listing
            .lines()
            .find(|l| l.contains("udp sport 4500") && l.contains(" drop "))
            .and_then(|l| l.split(" packets ").nth(1)?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no udp sport 4500 rule in {listing}"));
    }
    ns.ok(&["iptables", "-w", "-n", "-v", "-x", "-L", "ABTEST"])
        .lines()
        .find(|l| l.contains("udp spt:4500") && l.contains("DROP"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no rule with udp spt:4500"))
}

/// Where the log-and-drop rule's log line shows, and what shows it.
fn has_log_rule(ns: &Netns, backend: Backend) -> bool {
    if backend == Backend::Nftables {
        let t = ns.ok(&["nft", "list", "chain", "inet", "abtest", "rules"]);
        return t.contains("limit rate 10/second burst 20 packets")
            && t.contains("log prefix \"ABTEST \"");
    }
    let v6 = ns.ok(&["ip6tables-save", "-t", "filter"]);
    v6.contains("-j LOG --log-prefix \"ABTEST \"")
}

/// Deletes our typed rules behind the library's back (IPv6 ones only with iptables).
fn damage(ns: &Netns, backend: Backend) {
    if backend == Backend::Nftables {
        ns.ok(&["nft", "flush", "chain", "inet", "abtest", "rules"]);
    } else {
        ns.ok(&["ip6tables", "-w", "-F", "ABTEST"]);
    }
}

/// Three UDP packets from the client's first address, source port `sport`, to the server.
fn udp_from(pair: &Pair, sport: &str) {
    let out = pair.client.exec(&[
        "timeout",
        "5",
        "hping3",
        "-2",
        "-q",
        "-c",
        "3",
        "-i",
        "u10000",
        "-s",
        sport,
        "-k",
        "-p",
        "9",
        "-a",
        netns::CLIENT4,
        netns::SERVER4,
    ]);
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{out:?}"
    );
}

fn signatures(backend: Backend) {
    if !require_root() {
        return;
    }
    let pair = Pair::new("abr");
    let _listeners = pair.listen();
    let fw = open(&pair.server, backend, "ABTEST").unwrap();
    let ike = Rule::new()
        .dst(ip(netns::SERVER4))
        .protocol(Protocol::Udp)
        .sport(4500);
    let by_port = |server: &str| {
        Rule::new()
            .dst(ip(server))
            .protocol(Protocol::Tcp)
            .sport(4500)
    };
    let syn_from_b = Rule::new()
        .src(ip(netns::CLIENT4_B))
        .protocol(Protocol::Tcp)
        .dport(7000)
        .tcp_flags(TcpFlags::syn())
        .action(Action::Reject);
    let logged = Rule::new()
        .src(ip(netns::CLIENT6_B))
        .protocol(Protocol::Tcp)
        .dport(7000..=7001)
        .action(Action::LogAndDrop);
    let mut b = Batch::new();
    b.block(ike, HOUR, "ike flood")
        .block(by_port(netns::SERVER4), HOUR, "sig")
        .block(by_port(netns::SERVER6), HOUR, "sig")
        .block(syn_from_b, HOUR, "syn")
        .block(logged, HOUR, "logged");
    assert!(fw.commit(b).unwrap().refused.is_empty());
    assert_eq!(fw.list_rules().unwrap().len(), 5);
    assert!(fw.list().unwrap().is_empty(), "no plain bans");

    // UDP from port 4500 is dropped, from 4501 not (counted by the signature's rule).
    udp_from(&pair, "4500");
    assert_eq!(counted(&pair.server, backend), 3);
    udp_from(&pair, "4501");
    assert_eq!(counted(&pair.server, backend), 3);
    // The library reads the same counts back (every backend), each typed rule once.
    let counters = fw.rule_counters().unwrap();
    assert_eq!(counters.len(), 5, "{counters:?}");
    let c = counters
        .iter()
        .find(|c| c.rule == ike)
        .expect("the ike rule");
    assert_eq!((c.packets, c.reason.as_str()), (3, "ike flood"), "{c:?}");
    assert!(c.bytes >= 3 * 28, "{c:?}");

    // TCP from source port 4500 is dropped for both families, other ports pass.
    for (src, dst) in [
        (netns::CLIENT4, netns::SERVER4),
        (netns::CLIENT6, netns::SERVER6),
    ] {
        assert!(
            !connects(&pair, src, Some("4500"), dst),
            "{src}:4500 passed"
        );
        assert!(
            connects(&pair, src, Some("4501"), dst),
            "{src}:4501 dropped"
        );
    }
    // New connections from CLIENT4_B are rejected; CLIENT6_B's are logged and dropped.
    assert!(!connects(&pair, netns::CLIENT4_B, None, netns::SERVER4));
    assert!(!connects(&pair, netns::CLIENT6_B, None, netns::SERVER6));
    assert!(connects(&pair, netns::CLIENT6, None, netns::SERVER6));
    assert!(has_log_rule(&pair.server, backend));

    // Adopted on reopen, repaired after a flush, removed by matches whatever the action.
    drop(fw);
    let fw = open(&pair.server, backend, "ABTEST").unwrap();
    assert_eq!(fw.len(), 5);
    damage(&pair.server, backend);
    let repairs = fw.check_and_repair().unwrap();
    assert!(
        repairs.iter().any(|r| matches!(
            r,
            Repair::ChainRebuilt { .. }
                | Repair::MatchRuleRestored { .. }
                | Repair::RulesRestored { rules: 5, .. }
        )),
        "{repairs:?}"
    );
    assert!(!connects(
        &pair,
        netns::CLIENT6,
        Some("4500"),
        netns::SERVER6
    ));
    let mut b = Batch::new();
    b.unblock(logged.action(Action::Drop)).unblock(syn_from_b);
    let _ = fw.commit(b).unwrap();
    assert!(connects(&pair, netns::CLIENT4_B, None, netns::SERVER4));
    assert!(connects(&pair, netns::CLIENT6_B, None, netns::SERVER6));
    assert_eq!(fw.list_rules().unwrap().len(), 3);

    if backend == Backend::Nftables {
        // The whole table gone: rebuilt with the typed rules.
        pair.server.ok(&["nft", "flush", "ruleset"]);
        let repairs = fw.check_and_repair().unwrap();
        assert!(
            matches!(&repairs[..], [Repair::TableRestored { entries: 3, .. }]),
            "{repairs:?}"
        );
        assert!(!connects(
            &pair,
            netns::CLIENT4,
            Some("4500"),
            netns::SERVER4
        ));
    }

    // Expired by call (every backend: the kernel does not expire rules).
    let expired = fw
        .expire_due(SystemTime::now() + HOUR + Duration::from_secs(1))
        .unwrap();
    assert_eq!(expired.rules.len(), 3);
    assert!(fw.list_rules().unwrap().is_empty());
    assert!(connects(
        &pair,
        netns::CLIENT4,
        Some("4500"),
        netns::SERVER4
    ));
    fw.flush().unwrap();
}

#[test]
fn iptables_typed_rules_drop_only_what_they_match() {
    signatures(Backend::Iptables);
}

#[test]
fn ipset_typed_rules_drop_only_what_they_match() {
    signatures(Backend::Ipset);
}

#[test]
fn nftables_typed_rules_drop_only_what_they_match() {
    signatures(Backend::Nftables);
}

#[test]
fn one_handle_per_chain() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("abr");
    let first = open(&ns, Backend::Ipset, "ABTEST").unwrap();
    for chain in ["ABTEST", "abtest"] {
        let e = open(&ns, Backend::Iptables, chain).unwrap_err();
        assert!(
            matches!(e, FirewallError::ChainInUse { .. }),
            "{chain}: {e}"
        );
        assert!(
            e.to_string()
                .contains(&format!("process {} holds", std::process::id())),
            "{e}"
        );
    }
    let mut b = Batch::new();
    b.block(ip("192.0.2.1"), HOUR, "first");
    let _ = first.commit(b).unwrap();
    drop(first);
    // Sequentially, a chain named like ours but for case would share our sets: refused.
    let e = open(&ns, Backend::Ipset, "abtest").unwrap_err();
    assert!(
        e.to_string()
            .contains("chain ABTEST matches the same set abtest4"),
        "{e}"
    );
    let again = open(&ns, Backend::Ipset, "ABTEST").unwrap();
    assert!(again.is_blocked(ip("192.0.2.1")), "adopted");
    again.flush().unwrap();
}
