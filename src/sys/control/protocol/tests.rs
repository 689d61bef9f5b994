//! Protocol fixtures: every variant round-trips, the wire text is what the docs say, and every
//! bad line is a plain error.

use super::*;

fn net(s: &str) -> IpNet {
    parse_net(s).expect(s)
}

fn ban_info() -> BanInfo {
    BanInfo {
        target: net("203.0.113.7"),
        reason: "syn-flood".into(),
        since: "2026-11-24T10:00:00.000Z".into(),
        until: "2026-11-24T10:10:00.000Z".into(),
        remaining_secs: 512,
        offense: 2,
        manual: false,
    }
}

fn status() -> StatusInfo {
    StatusInfo {
        version: "0.1.0".into(),
        pid: 4242,
        uptime_secs: 3600,
        config: "/etc/autoblock/rules.toml".into(),
        backend: "ipset".into(),
        chain: "AUTOBLOCK".into(),
        dry_run: false,
        interfaces: vec![InterfaceStats {
            name: "eth0".into(),
            packets: 1_000_000,
            kernel_drops: 3,
            interface_drops: 0,
            queue_drops: 12,
        }],
        tracked_sources: 64_000,
        active_bans: 1,
        bans_total: 5,
        events_suppressed: 0,
        last_reload: None,
        enforcer_errors: 0,
        pending_decisions: 0,
    }
}

fn explanation() -> Explanation {
    Explanation {
        addr: "2001:db8::7".parse().expect("addr"),
        allowlisted: true,
        allowlisted_by: Some(net("2001:db8::/32")),
        local: false,
        rules: vec![RuleWindow {
            rule: "port-scan".into(),
            metric: "dst_ports".into(),
            value: 12,
            threshold: 60,
            window_secs: 0.5,
            key: net("2001:db8::/64"),
        }],
        ban: Some(ban_info()),
        offenses: 1,
        last_offense: Some("2026-11-24T10:00:00.000Z".into()),
    }
}

#[test]
fn every_request_round_trips() {
    let requests = [
        Request::Status,
        Request::List,
        Request::Ban {
            targets: vec![net("203.0.113.7"), net("2001:db8::/64")],
            duration_secs: Some(600),
            reason: Some("abuse report #12".into()),
            force: true,
        },
        Request::Ban {
            targets: vec![],
            duration_secs: None,
            reason: None,
            force: false,
        },
        Request::Unban {
            targets: vec![net("10.0.0.0/8")],
        },
        Request::Explain {
            addr: "198.51.100.1".parse().expect("addr"),
        },
    ];
    for req in requests {
        let line = encode_request(&req);
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(decode_request(line.as_bytes()), Ok(req), "{line}");
    }
}

#[test]
fn every_response_round_trips() {
    let responses = [
        Response::Status(status()),
        Response::List(vec![ban_info()]),
        Response::List(vec![]),
        Response::Banned {
            applied: vec![ban_info()],
            refused: vec![Refusal {
                target: net("192.0.2.1"),
                reason: "allowlisted (use --force)".into(),
            }],
        },
        Response::Unbanned {
            removed: vec![net("203.0.113.7")],
            not_found: vec![net("2001:db8::1")],
        },
        Response::Explain(explanation()),
        Response::Error {
            message: "engine stopped".into(),
        },
    ];
    for resp in responses {
        let line = encode_response(&resp) + "\r\n";
        assert_eq!(decode_response(line.as_bytes()), Ok(resp), "{line}");
    }
}

#[test]
fn wire_text_is_documented_shape() {
    assert_eq!(
        encode_request(&Request::Status),
        r#"{"type":"status","v":1}"#
    );
    let ban = Request::Ban {
        targets: vec![net("203.0.113.7/32"), net("10.1.2.3/8")],
        duration_secs: None,
        reason: None,
        force: false,
    };
    let line = encode_request(&ban);
    assert!(
        line.contains(r#""targets":["203.0.113.7","10.0.0.0/8"]"#),
        "{line}"
    );
    // Optional fields may be left out by hand-written clients (`socat`, scripts).
    let short = br#"{"v":1,"type":"ban","data":{"targets":["2001:db8::1"]}}"#;
    assert_eq!(
        decode_request(short),
        Ok(Request::Ban {
            targets: vec![net("2001:db8::1")],
            duration_secs: None,
            reason: None,
            force: false,
        })
    );
}

#[test]
fn version_mismatch_is_named() {
    let err = decode_request(br#"{"v":2,"type":"status"}"#).expect_err("v2");
    assert_eq!(err, ProtocolError::Version { peer: "2".into() });
    let text = err.to_string();
    assert!(text.contains("peer speaks v2"), "{text}");
    assert!(text.contains("speaks v1"), "{text}");
    // The version is checked before the body: an unknown v2 request type still says "version".
    assert!(matches!(
        decode_response(br#"{"v":"2.0","type":"future_thing"}"#),
        Err(ProtocolError::Version { .. })
    ));
    assert_eq!(
        decode_request(br#"{"type":"status"}"#),
        Err(ProtocolError::NoVersion)
    );
    assert_eq!(decode_request(b"[1,2]"), Err(ProtocolError::NoVersion));
}

#[test]
fn bad_lines_are_plain_errors() {
    for bad in [
        &b"hello"[..],
        b"",
        b"{\"v\":1,",
        b"\xff\xfe",
        b"{\"v\":1,\"type\":\"status\"} trailing",
    ] {
        let err = decode_request(bad).expect_err("bad json");
        assert!(matches!(err, ProtocolError::Json(_)), "{err:?}");
        assert!(err.to_string().starts_with("not valid JSON: "), "{err}");
    }
    let cases: [(&[u8], &str); 5] = [
        (br#"{"v":1,"type":"reboot"}"#, "unknown variant `reboot`"),
        (br#"{"v":1}"#, "missing field `type`"),
        (
            br#"{"v":1,"type":"ban","data":{"targets":["nope"]}}"#,
            "`nope` is not an IP address or CIDR",
        ),
        (
            br#"{"v":1,"type":"explain","data":{"addr":"10.0.0.0/8"}}"#,
            "invalid IP address syntax",
        ),
        (
            br#"{"v":1,"type":"ban","data":{"targets":[],"fource":true}}"#,
            "unknown field `fource`",
        ),
    ];
    for (line, want) in cases {
        let err = decode_request(line).expect_err(want);
        let text = err.to_string();
        assert!(text.starts_with("malformed request: "), "{text}");
        assert!(text.contains(want), "{text}");
    }
}

#[test]
fn net_text_drops_host_prefix() {
    assert_eq!(net_text(&net("203.0.113.7")), "203.0.113.7");
    assert_eq!(net_text(&net("2001:db8::1/128")), "2001:db8::1");
    assert_eq!(net_text(&net("2001:db8::1/64")), "2001:db8::/64");
    assert_eq!(net_text(&net("0.0.0.0/0")), "0.0.0.0/0");
    assert_eq!(parse_net("300.1.1.1"), None);
    assert_eq!(parse_net(" 1.2.3.4"), None);
}
