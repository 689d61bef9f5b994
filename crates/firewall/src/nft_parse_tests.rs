//! Fixtures for the nftables parser: real `nft list table` output (nft 1.0.6) and odd cases.

use super::*;
use crate::ban::Family;

/// `nft list table inet autoblock` with elements over two lines, a comment holding a comma
/// and a brace, a permanent element (not ours), and both rule shapes.
pub(crate) const TABLE_FULL: &str = r#"table inet autoblock {
	set v4_32 {
		type ipv4_addr
		size 1000
		flags timeout
		elements = { 10.0.0.5 timeout 10m expires 9m59s992ms comment "syn-flood", 10.0.0.6 timeout 1h expires 1h59s comment "a, b }",
			     10.0.0.7 comment "permanent" }
	}

	set v4_24 {
		type ipv4_addr
		size 1000
		flags timeout
		elements = { 10.0.0.0 timeout 2h expires 1h59m59s992ms comment "feed" }
	}

	set v6_128 {
		type ipv6_addr
		size 1000
		flags timeout
	}

	set v6_64 {
		type ipv6_addr
		size 1000
		flags timeout
		elements = { 2001:db8:bad:: timeout 100d expires 99d23h59m59s992ms }
	}

	chain input {
		type filter hook input priority filter - 10; policy accept;
		ip saddr @v4_32 counter packets 3 bytes 180 drop
		ip saddr & 255.255.255.0 == @v4_24 counter packets 0 bytes 0 drop
		ip6 saddr @v6_128 counter packets 0 bytes 0 drop
		ip6 saddr & ffff:ffff:ffff:ffff:: == @v6_64 counter packets 0 bytes 0 drop
		tcp dport 22 accept
	}

	chain raw_prerouting {
		type filter hook prerouting priority raw - 10; policy accept;
	}
}
"#;

#[test]
fn full_listing() {
    let t = parse_table(TABLE_FULL, "autoblock").unwrap();
    assert_eq!(
        t.sets.keys().collect::<Vec<_>>(),
        ["v4_24", "v4_32", "v6_128", "v6_64"]
    );
    let v4 = &t.sets["v4_32"];
    assert!(v4.fits(SetKey::host(Family::V4)));
    assert!(!v4.fits(SetKey::host(Family::V6)));
    assert_eq!(
        v4.elements,
        vec![
            Element {
                addr: "10.0.0.5".parse().unwrap(),
                expires_ms: 599_992,
                comment: Some("syn-flood".into())
            },
            Element {
                addr: "10.0.0.6".parse().unwrap(),
                expires_ms: 3_659_000,
                comment: Some("a, b }".into())
            },
        ]
    );
    assert_eq!(t.sets["v6_64"].elements[0].comment, None);
    assert_eq!(t.sets["v6_64"].elements[0].expires_ms, 100 * 86_400_000 - 8);
    let input = &t.chains["input"];
    assert_eq!(
        (input.kind.as_deref(), input.hook.as_deref(), input.priority),
        (Some("filter"), Some("input"), Some(-10))
    );
    for key in ["v4_32", "v4_24", "v6_128", "v6_64"] {
        let body = SetKey::parse(key).unwrap().rule_body();
        assert_eq!(input.count(&body), 1, "{body} in {:?}", input.rules);
    }
    assert_eq!(input.rules[4], "tcp dport 22 accept");
    assert_eq!(t.chains["raw_prerouting"].priority, Some(-310));
    assert!(t.chains["raw_prerouting"].rules.is_empty());
}

#[test]
fn terse_listing_and_no_table() {
    let terse = "table inet ab {\n\tset v4_32 {\n\t\ttype ipv4_addr\n\t\tsize 1000\n\t\tflags interval,timeout\n\t}\n\n\tchain input {\n\t\ttype filter hook input priority -5; policy accept;\n\t}\n}\n";
    let t = parse_table(terse, "ab").unwrap();
    assert_eq!(t.sets["v4_32"].flags, ["interval", "timeout"]);
    assert!(!t.sets["v4_32"].fits(SetKey::host(Family::V4)), "interval");
    assert_eq!(t.chains["input"].priority, Some(-5));
    assert_eq!(parse_table("", "ab"), None);
    assert_eq!(parse_table(terse, "abc"), None);
    assert_eq!(
        parse_table("Error: No such file or directory\n", "ab"),
        None
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration_ms("9m59s992ms"), Some(599_992));
    assert_eq!(parse_duration_ms("1d"), Some(86_400_000));
    assert_eq!(parse_duration_ms("2h3m"), Some(7_380_000));
    assert_eq!(parse_duration_ms("5ms"), Some(5));
    assert_eq!(parse_duration_ms("0ms"), Some(0));
    for bad in ["", "5", "5x", "m", "1h2"] {
        assert_eq!(parse_duration_ms(bad), None, "{bad}");
    }
    assert_eq!(parse_duration_ms(&format!("{}d", u64::MAX)), None);
}

#[test]
fn priorities() {
    assert_eq!(parse_priority("filter - 10"), Some(-10));
    assert_eq!(parse_priority("raw - 10"), Some(-310));
    assert_eq!(parse_priority("mangle + 5"), Some(-145));
    assert_eq!(parse_priority("filter"), Some(0));
    assert_eq!(parse_priority("-400"), Some(-400));
    assert_eq!(parse_priority("nonsense - 1"), None);
}

#[test]
fn a_long_listing_parses_every_element() {
    // 20k elements over 10k lines, as nft wraps them (two per line).
    let mut text = String::from(
        "table inet ab {\n\tset v4_32 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t\telements = { ",
    );
    for i in 0..20_000u32 {
        let addr = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        text.push_str(&format!("{addr} timeout 1h expires 59m comment \"r\""));
        text.push_str(match (i == 19_999, i % 2) {
            (true, _) => " }\n",
            (false, 1) => ",\n\t\t\t     ",
            _ => ", ",
        });
    }
    text.push_str("\t}\n}\n");
    let t = parse_table(&text, "ab").unwrap();
    assert_eq!(t.sets["v4_32"].elements.len(), 20_000);
    assert!(
        t.sets["v4_32"]
            .elements
            .iter()
            .all(|e| e.expires_ms == 3_540_000)
    );
}

#[test]
fn our_table_is_picked_out_of_a_ruleset() {
    let ruleset = "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip saddr 192.0.2.1 counter packets 0 bytes 0 drop\n\t}\n}\n\
table inet ab {\n\tset v4_32 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t}\n\n\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tip saddr @v4_32 counter packets 0 bytes 0 drop\n\t}\n}\n\
table inet abc {\n\tset v4_24 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t}\n\n\tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n\t}\n}\n";
    let t = parse_table(ruleset, "ab").unwrap();
    assert_eq!(t.sets.keys().collect::<Vec<_>>(), ["v4_32"]);
    assert_eq!(t.chains.keys().collect::<Vec<_>>(), ["input"]);
    assert_eq!(t.chains["input"].rules, ["ip saddr @v4_32 counter drop"]);
    let other = parse_table(ruleset, "abc").unwrap();
    assert_eq!(other.chains.keys().collect::<Vec<_>>(), ["forward"]);
}
