//! The wire format: exact bytes of a message, round trips, canonical targets, one fixture per
//! kind of refusal, and property tests that no input makes the decoder panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::prelude::*;

use super::message::*;
use crate::time::Timestamp;

const GOOD: &str = r#"{"v":1,"id":"web-1-18f3a2c4d5e-42","kind":"block","target":"203.0.113.7","until_ms":1795514400123,"at_ms":1795513800123,"rule":"syn-flood","offense":2,"manual":false,"origin":"web-1"}"#;

fn net(s: &str) -> IpNet {
    canonical_target(s).expect("target")
}

fn sample(kind: BanKind) -> BanMessage {
    BanMessage::new(
        "web-1-18f3a2c4d5e-42".into(),
        "web-1".into(),
        kind,
        net("203.0.113.7"),
        Timestamp(1_795_514_400_123_456),
        Timestamp(1_795_513_800_123_999),
        "syn-flood",
        2,
        false,
    )
}

/// `GOOD` with `from` replaced by `to` (exactly once).
fn edit(from: &str, to: &str) -> Vec<u8> {
    assert_eq!(GOOD.matches(from).count(), 1, "{from}");
    GOOD.replacen(from, to, 1).into_bytes()
}

fn refusal(payload: &[u8]) -> String {
    match decode(payload) {
        Ok(m) => panic!("accepted: {m:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn encodes_exactly_the_documented_object_in_milliseconds() {
    let m = sample(BanKind::Block);
    assert_eq!(String::from_utf8(m.encode()).expect("utf8"), GOOD);
    assert_eq!(
        m.until,
        Timestamp(1_795_514_400_123_000),
        "ms precision kept"
    );
}

#[test]
fn every_kind_round_trips() {
    for kind in [BanKind::Block, BanKind::Extend, BanKind::Unblock] {
        let m = sample(kind);
        assert_eq!(decode(&m.encode()), Ok(m.clone()), "{kind:?}");
        assert!(m.encode().len() < 400);
    }
    let v6 = BanMessage {
        target: net("2001:db8:7::/48"),
        manual: true,
        ..sample(BanKind::Unblock)
    };
    assert_eq!(decode(&v6.encode()), Ok(v6));
}

#[test]
fn targets_are_canonical() {
    assert_eq!(net("::ffff:192.0.2.7"), net("192.0.2.7/32"));
    assert_eq!(net("::ffff:192.0.2.7/128"), net("192.0.2.7"));
    assert_eq!(net("::ffff:192.0.2.0/120"), net("192.0.2.0/24"));
    assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
    assert_eq!(net("2001:db8::1/64").to_string(), "2001:db8::/64");
    assert_eq!(net(" 198.51.100.1 ").to_string(), "198.51.100.1/32");
    // A v6 prefix wider than the mapped range stays v6.
    assert!(matches!(net("::ffff:0:0/95"), IpNet::V6(_)));
    assert_eq!(canonical_target("example.org"), None);
    assert_eq!(canonical_target("10.0.0.0/33"), None);
    // What is received is canonical too.
    let m = decode(&edit("\"203.0.113.7\"", "\"::ffff:203.0.113.7\"")).expect("valid");
    assert_eq!(target_text(m.target), "203.0.113.7");
    assert_eq!(target_text(net("10.9.0.0/16")), "10.9.0.0/16");
}

#[test]
fn our_own_fields_are_cleaned_before_sending() {
    let m = BanMessage::new(
        "n-1-0".into(),
        "n".into(),
        BanKind::Block,
        IpNet::from(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped())),
        Timestamp(5_000_000),
        Timestamp(9_000_000),
        &format!("bad\u{1b}[31m\nreason {}", "é".repeat(100)),
        0,
        true,
    );
    assert_eq!(m.target, net("192.0.2.9"));
    assert!(m.rule.starts_with("bad[31mreason éé") && m.rule.len() <= RULE_MAX);
    assert_eq!(
        (m.offense, m.until),
        (1, m.at),
        "never ends before it was made"
    );
    assert_eq!(decode(&m.encode()), Ok(m.clone()));
    let empty = BanMessage::new(
        "n-1-1".into(),
        "n".into(),
        BanKind::Block,
        net("192.0.2.9"),
        Timestamp(9_000_000),
        Timestamp(5_000_000),
        "\n",
        1,
        true,
    );
    assert_eq!(empty.rule, "manual");
}

#[test]
fn refusals_say_what_is_wrong() {
    let big = format!("{GOOD:<5000}");
    assert_eq!(
        refusal(big.as_bytes()),
        "message of 5000 bytes is over the 4096-byte limit"
    );
    assert!(refusal(b"").starts_with("not a ban message: EOF"));
    assert!(refusal(b"[1,2]").starts_with("not a ban message"));
    assert!(refusal(b"{\"v\":\"1\"}").starts_with("not a ban message"));
    assert_eq!(
        refusal(&edit("\"v\":1", "\"v\":2,\"ttl\":5")),
        "schema version 2 is not supported (this node reads version 1)"
    );
    assert!(
        refusal(&edit("\"manual\":false", "\"manual\":false,\"x\":1"))
            .contains("unknown field `x`")
    );
    assert!(refusal(&edit(",\"offense\":2", "")).contains("missing field `offense`"));
    let field = |from: &str, to: &str| refusal(&edit(from, to));
    assert!(field("\"203.0.113.7\"", "\"203.0.113.7/40\"").starts_with("field `target`"));
    assert!(field("\"203.0.113.7\"", "\"\"").starts_with("field `target`"));
    assert!(field("\"origin\":\"web-1\"", "\"origin\":\"web.1\"").starts_with("field `origin`"));
    assert!(field("\"id\":\"web-1-18f3a2c4d5e-42\"", "\"id\":\"a b\"").starts_with("field `id`"));
    assert!(field("\"syn-flood\"", "\"syn\\u001bflood\"").starts_with("field `rule`"));
    assert!(field("\"syn-flood\"", "\"\"").starts_with("field `rule`"));
    assert!(field("\"offense\":2", "\"offense\":0").starts_with("field `offense`"));
    assert!(field("\"offense\":2", "\"offense\":-1").starts_with("not a ban message"));
    assert!(field("\"kind\":\"block\"", "\"kind\":\"ban\"").contains("unknown variant `ban`"));
    assert!(field("1795514400123", "0").starts_with("field `until_ms`"));
    assert!(field("1795514400123", "18446744073709551615").starts_with("field `until_ms`"));
    assert_eq!(
        field("1795514400123", "1795513800122"),
        "field `until_ms`: a ban cannot end before it was made"
    );
    // An unblock carries the end of the ban it lifts, which may be past.
    let lifted = edit("\"kind\":\"block\"", "\"kind\":\"unblock\"");
    let lifted = String::from_utf8(lifted)
        .expect("utf8")
        .replace("1795514400123", "1");
    assert!(decode(lifted.as_bytes()).is_ok());
}

fn any_target() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, p)| { IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), p).expect("prefix") }),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, p)| { IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), p).expect("prefix") }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes);
    }

    /// Any edit of a good message is refused or accepted, never a panic; whatever is accepted
    /// encodes back to something that decodes to the same message.
    #[test]
    fn edited_messages_never_panic(cut in 0usize..GOOD.len(), len in 0usize..30, insert in "\\PC{0,12}") {
        let mut text = GOOD.to_owned();
        let start = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let end = (start + len).min(text.len());
        let end = (end..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        text.replace_range(start..end, &insert);
        if let Ok(m) = decode(text.as_bytes()) {
            prop_assert_eq!(decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn messages_we_make_are_accepted(
        target in any_target(),
        until in 1u64..(u64::MAX / 1000),
        back in 0u64..1_000_000_000,
        rule in "\\PC{0,200}",
        offense in any::<u32>(),
        kind in prop_oneof![Just(BanKind::Block), Just(BanKind::Extend), Just(BanKind::Unblock)],
        manual in any::<bool>(),
    ) {
        let until = Timestamp(until * 1000);
        let m = BanMessage::new("n-0-1".into(), "node_A-1".into(), kind, target, until,
            until.saturating_sub(std::time::Duration::from_millis(back)), &rule, offense, manual);
        let bytes = m.encode();
        prop_assert!(bytes.len() <= MAX_MESSAGE_BYTES);
        prop_assert_eq!(decode(&bytes), Ok(m));
    }
}
