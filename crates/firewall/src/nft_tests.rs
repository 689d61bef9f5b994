//! nftables engine tests against the recording fake: which `nft` calls each operation makes,
//! with which script. Real-kernel behaviour is tested in `tests/it/firewall_nft.rs`.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crate::tests_support::{Fake, open};
use crate::{Backend, Batch, FirewallOptions, Protocol, Repair, Rule};

const LIST: &str = "nft list table inet ab";
const TERSE: &str = "nft -t list ruleset";

fn opts() -> FirewallOptions {
    FirewallOptions::new(Backend::Nftables, "AB").maxelem(10)
}

/// What `open` creates on an empty kernel.
const CREATE: &str = "add table inet ab\n\
add chain inet ab input { type filter hook input priority -10; policy accept; }\n\
add set inet ab v4_32 { type ipv4_addr; flags timeout; size 10; }\n\
add set inet ab v6_128 { type ipv6_addr; flags timeout; size 10; }\n\
add chain inet ab rules\n\
add rule inet ab input ip saddr @v4_32 counter drop\n\
add rule inet ab input ip6 saddr @v6_128 counter drop\n\
add rule inet ab input jump rules\n";

/// An intact table holding two bans, as `nft list table` prints it.
const INTACT: &str = r#"table inet ab {
	set v4_32 {
		type ipv4_addr
		size 10
		flags timeout
		elements = { 192.0.2.1 timeout 10m expires 9m59s600ms comment "a", 192.0.2.2 timeout 10m expires 300ms comment "b" }
	}

	set v4_24 {
		type ipv4_addr
		size 10
		flags timeout
		elements = { 198.51.100.0 timeout 1h expires 59m59s comment "feed" }
	}

	set v6_128 {
		type ipv6_addr
		size 10
		flags timeout
	}

	chain input {
		type filter hook input priority filter - 10; policy accept;
		ip saddr @v4_32 counter packets 0 bytes 0 drop
		ip6 saddr @v6_128 counter packets 0 bytes 0 drop
		ip saddr & 255.255.255.0 == @v4_24 counter packets 1 bytes 60 drop
		jump rules
	}

	chain rules {
	}
}
"#;

fn calls(fake: &Fake) -> Vec<(String, Option<String>)> {
    fake.take()
}

#[test]
fn open_on_empty_kernel_creates_table_in_one_transaction() {
    let fake = Arc::new(Fake::default());
    let fw = open(opts(), &fake, 1000);
    let c = calls(&fake);
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(c[0].0, LIST);
    assert_eq!(c[1].0, "nft -f -");
    assert_eq!(c[1].1.as_deref(), Some(CREATE));
    assert!(fw.is_empty());
}

#[test]
fn open_adopts_an_intact_table_without_touching_it() {
    let fake = Arc::new(Fake::default());
    fake.set(LIST, INTACT);
    let fw = open(opts(), &fake, 1000);
    assert_eq!(calls(&fake).len(), 1, "only the listing");
    // 192.0.2.2 has 0.3 s left: it rounds to an end at `now` and is not adopted.
    assert_eq!(fw.len(), 2);
    assert_eq!(
        fw.next_expiry(),
        Some(UNIX_EPOCH + Duration::from_secs(1600))
    );
    let bans = fw.list().unwrap();
    let got: Vec<(String, u64, &str)> = bans
        .iter()
        .map(|b| (b.net.to_string(), b.until, b.reason.as_str()))
        .collect();
    assert!(
        got.contains(&("198.51.100.0/24".into(), got[2].1, "feed")),
        "{got:?}"
    );
    assert_eq!(got.len(), 3, "list reads the kernel: {got:?}");
}

#[test]
fn open_rebuilds_a_damaged_table_keeping_its_bans() {
    let fake = Arc::new(Fake::default());
    // The v4_24 rule is gone: the table is rebuilt in one transaction with every ban.
    fake.set(
        LIST,
        &INTACT.replace(
            "\t\tip saddr & 255.255.255.0 == @v4_24 counter packets 1 bytes 60 drop\n",
            "",
        ),
    );
    let fw = open(opts(), &fake, 1000);
    let c = calls(&fake);
    assert_eq!(c.len(), 2);
    let script = c[1].1.as_deref().unwrap();
    assert!(
        script.starts_with("delete table inet ab\nadd table inet ab\n"),
        "{script}"
    );
    assert!(
        script.contains("add rule inet ab input ip saddr & 255.255.255.0 @v4_24 counter drop\n")
    );
    assert!(
        script.contains(
            "add element inet ab v4_24 { 198.51.100.0 timeout 3599s comment \"feed\" }\n"
        )
    );
    assert!(
        script.contains("add element inet ab v4_32 { 192.0.2.1 timeout 600s comment \"a\" }\n")
    );
    assert_eq!(fw.len(), 2);
}

#[test]
fn commit_is_one_transaction_with_new_sets_replacements_and_removals() {
    let fake = Arc::new(Fake::default());
    fake.set(LIST, INTACT);
    let fw = open(opts(), &fake, 1000);
    calls(&fake);
    let mut b = Batch::new();
    b.block(
        "10.9.0.0/16".parse::<ipnet::IpNet>().unwrap(),
        Duration::from_secs(60),
        "x",
    );
    b.block(
        "192.0.2.1".parse::<std::net::IpAddr>().unwrap(),
        Duration::from_secs(3600),
        "longer",
    );
    b.unblock("198.51.100.0/24".parse::<ipnet::IpNet>().unwrap());
    b.block(
        "::ffff:203.0.113.7".parse::<std::net::IpAddr>().unwrap(),
        Duration::from_secs(60),
        "mapped",
    );
    // A typed rule goes in the same transaction; one whose reason would not fit the rule's
    // comment is refused, the rest is applied.
    let dns = Rule::new()
        .dst(std::net::Ipv4Addr::new(10, 10, 10, 10))
        .protocol(Protocol::Udp)
        .dport(53);
    b.block(dns, Duration::from_secs(60), "dns");
    b.block(dns.sport(53), Duration::from_secs(60), &"x".repeat(128));
    let committed = fw.commit(b).unwrap();
    assert_eq!(committed.refused.len(), 1, "{:?}", committed.refused);
    let why = committed.refused[0].to_string();
    assert!(
        why.contains("an nftables rule comment holds 128 bytes"),
        "{why}"
    );
    let c = calls(&fake);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].0, "nft -f -");
    // The fake's clock is the real one at commit time; compare with the timeouts cut out.
    let script = c[0].1.as_deref().unwrap();
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "add set inet ab v4_16 { type ipv4_addr; flags timeout; size 10; }",
            "insert rule inet ab input ip saddr & 255.255.0.0 @v4_16 counter drop",
            "add element inet ab v4_24 { 198.51.100.0 timeout 1s }",
            "delete element inet ab v4_24 { 198.51.100.0 }",
            "add element inet ab v4_32 { 192.0.2.1 timeout 1s }",
        ]
    );
    assert_eq!(lines[5], "delete element inet ab v4_32 { 192.0.2.1 }");
    assert!(
        lines[6].starts_with("add element inet ab v4_16 { 10.9.0.0 timeout 60s comment \"x\" }")
    );
    assert!(
        lines[7].starts_with("add element inet ab v4_32 { ")
            && lines[7].contains("203.0.113.7 timeout 60s comment \"mapped\"")
            && lines[7].contains("192.0.2.1 timeout 3600s comment \"longer\""),
        "{}",
        lines[7]
    );
    assert!(
        lines[8].starts_with("add rule inet ab rules ip daddr 10.10.10.10/32 udp dport 53 counter drop comment \"until="),
        "{}",
        lines[8]
    );
    assert_eq!(lines.len(), 9);
    assert_eq!(fw.len(), 4);
    // The new set is known now: the next ban of that length adds an element only.
    let mut b = Batch::new();
    b.block(
        "10.8.0.0/16".parse::<ipnet::IpNet>().unwrap(),
        Duration::from_secs(60),
        "x",
    );
    let done = fw.commit(b).unwrap();
    assert!(done.refused.is_empty(), "{:?}", done.refused);
    let c = calls(&fake);
    assert_eq!(c[0].1.as_deref().unwrap().lines().count(), 1);
}

#[test]
fn expiry_is_the_kernels_and_memory_follows() {
    let fake = Arc::new(Fake::default());
    fake.set(LIST, INTACT);
    let fw = open(opts(), &fake, 1000);
    calls(&fake);
    let due = fw
        .expire_due(UNIX_EPOCH + Duration::from_secs(1600))
        .unwrap();
    assert_eq!(due.bans.len(), 1);
    assert!(calls(&fake).is_empty(), "no kernel call");
}

#[test]
fn repair_checks_structure_tersely_and_rebuilds_from_memory() {
    let fake = Arc::new(Fake::default());
    fake.set(LIST, INTACT);
    // Repair reads the real clock (to drop what the kernel expired): open at it.
    let now = crate::ban::unix_secs(std::time::SystemTime::now());
    let fw = open(opts(), &fake, now);
    calls(&fake);
    fake.set(TERSE, INTACT);
    assert!(fw.check_and_repair().unwrap().is_empty());
    assert_eq!(calls(&fake).len(), 1, "one terse listing");

    // `nft flush ruleset`: the table is gone; it comes back with both bans.
    fake.set(TERSE, "");
    let r = fw.check_and_repair().unwrap();
    assert_eq!(r.len(), 1);
    assert!(
        matches!(r[0], Repair::TableRestored { entries: 2, .. }),
        "{r:?}"
    );
    assert!(
        r[0].to_string()
            .starts_with("nftables table inet ab rebuilt with 2 entries (table missing)"),
        "{}",
        r[0]
    );
    let c = calls(&fake);
    let script = c[1].1.as_deref().unwrap();
    assert!(
        script.starts_with(CREATE.lines().next().unwrap()),
        "{script}"
    );
    assert!(!script.contains("delete table"), "{script}");
    assert!(script.contains("v4_24 { 198.51.100.0 timeout"), "{script}");

    // A chain hooked elsewhere (e.g. someone replaced it) is a problem too.
    fake.set(
        TERSE,
        &INTACT.replace("priority filter - 10", "priority filter"),
    );
    let r = fw.check_and_repair().unwrap();
    assert!(
        r[0].to_string()
            .contains("chain input is not hooked at input priority -10"),
        "{}",
        r[0]
    );
    assert!(
        calls(&fake)[1]
            .1
            .as_deref()
            .unwrap()
            .starts_with("delete table inet ab\n")
    );
}

#[test]
fn flush_deletes_only_our_table() {
    let fake = Arc::new(Fake::default());
    fake.set(TERSE, INTACT);
    let fw = open(opts(), &fake, 1000);
    calls(&fake);
    // Read once to see what is there; after the delete the ruleset no longer has it.
    fake.queue(TERSE, INTACT);
    fake.set(TERSE, "");
    fw.flush().unwrap();
    let c = calls(&fake);
    // The terse listing (is it there?), the full one (what is removed), the delete, and the
    // terse listing again (is it gone?).
    assert_eq!(c.len(), 4, "{c:?}");
    assert_eq!(c[2].1.as_deref(), Some("delete table inet ab\n"));
}

#[test]
fn hooks_become_base_chains_and_bad_ones_are_refused() {
    let fake = Arc::new(Fake::default());
    let _fw = open(
        opts().hooks(["INPUT", "raw:PREROUTING"]).priority(-5),
        &fake,
        1000,
    );
    let script = calls(&fake)[1].1.clone().unwrap();
    assert!(script.contains(
        "add chain inet ab raw_prerouting { type filter hook prerouting priority -305; policy accept; }"
    ));
    assert!(script.contains("add rule inet ab raw_prerouting ip6 saddr @v6_128 counter drop"));
    let e = opts()
        .hooks(["OUTPUTT"])
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("filter:OUTPUTT"), "{e}");
}
