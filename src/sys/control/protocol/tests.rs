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
        rule: "syn-flood".into(),
        dry_run: false,
        origin: None,
    }
}

fn status() -> StatusInfo {
    StatusInfo {
        version: "0.1.0".into(),
        pid: 4242,
        uptime_secs: 3600,
        config: "/etc/autoblock/rules.toml".into(),
        backend: "ipset".into(),
        backend_config: "auto".into(),
        backend_skipped: vec!["nftables: `nft` is not installed".into()],
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
        untracked_packets: 0,
        untracked_distinct_packets: 0,
        active_bans: 1,
        bans_total: 5,
        events_suppressed: 0,
        last_reload: None,
        enforcer_errors: 0,
        pending_decisions: 0,
        events_dropped: 0,
        reload: Some(ReloadInfo {
            at: "2026-11-24T10:00:00.000Z".into(),
            ok: false,
            errors: vec!["rules.toml:3:13: rule[1] (a).threshold: must be greater than 0".into()],
            changes: vec![],
            by: "control".into(),
        }),
        rules: vec![RuleStatus {
            rule: "syn-flood".into(),
            mode: "enforce".into(),
            metric: "packets".into(),
            threshold: 24,
            top_value: 30,
            top_source: Some(net("203.0.113.7")),
            active_bans: 1,
            bans: 3,
            suppressed: 0,
        }],
        state_error: None,
        attacks: vec![attack()],
        recent_events: vec![r#"{"event":"block"}"#.into()],
        cluster: Some(Box::new(crate::cluster::ClusterStatus {
            fleet: "web".into(),
            node: "web-1".into(),
            connected: true,
            published: 3,
            received: 5,
            ..Default::default()
        })),
    }
}

fn attack() -> AttackInfo {
    AttackInfo {
        rule: "udp-flood-dst".into(),
        target: "10.10.10.10".into(),
        since: "2026-11-24T10:00:00.000Z".into(),
        last_over: "2026-11-24T10:00:09.000Z".into(),
        value: 4000,
        threshold: 1000,
        window_ms: 1000,
        packets: 36_000,
        sources: 2700,
        spoofed: false,
        fingerprint: "udp, sport 4500 (100%), length 246-246, fragments 0.0%".into(),
        action: "signature".into(),
        kernel_rule: Some("-d 10.10.10.10/32 -p udp --sport 4500 -j DROP".into()),
        refused: None,
        ends_in_secs: 119,
    }
}

fn explanation() -> Explanation {
    Explanation {
        addr: "2001:db8::7".parse().expect("addr"),
        allowlisted: true,
        allowlisted_by: Some(net("2001:db8::/32")),
        local: false,
        peer: Some("established".into()),
        exempt: vec![],
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
        floods: vec![FloodWindow {
            rule: "udp-flood-dst".into(),
            metric: "packets".into(),
            value: 4000,
            threshold: 1000,
            window_secs: 1.0,
        }],
        attacks: vec![attack()],
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
            replace: true,
        },
        Request::Ban {
            targets: vec![],
            duration_secs: None,
            reason: None,
            force: false,
            replace: false,
        },
        Request::Unban {
            targets: vec![net("10.0.0.0/8")],
            covering: true,
            all: false,
            rule: Some("conn-burst".into()),
        },
        Request::Reload,
        Request::Top { per_rule: 3 },
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
            kept: vec![ban_info()],
            state_error: Some("cannot write".into()),
        },
        Response::Unbanned {
            removed: vec![net("203.0.113.7")],
            not_found: vec![net("2001:db8::1")],
            covered: vec![Covered {
                target: net("2001:db8:1::1"),
                by: ban_info(),
            }],
        },
        Response::Reloaded(ReloadInfo {
            at: "2026-11-24T10:00:00.000Z".into(),
            ok: true,
            errors: vec![],
            changes: vec!["rule a: threshold 5 -> 50".into()],
            by: "signal".into(),
        }),
        Response::Top(TopInfo {
            rules: vec![RuleTopInfo {
                rule: "syn-flood".into(),
                mode: "log".into(),
                metric: "packets".into(),
                threshold: 24,
                window_secs: 0.1,
                sources: vec![SourceValue {
                    source: net("203.0.113.0/24"),
                    value: 30,
                }],
            }],
            bans: vec![ban_info()],
            active_bans: 1,
        }),
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
        replace: false,
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
            replace: false,
        })
    );
    // Older peers' lines still read: the fields added since have defaults.
    let old = br#"{"v":1,"type":"banned","data":{"applied":[],"refused":[]}}"#;
    assert!(
        matches!(decode_response(old), Ok(Response::Banned { kept, state_error: None, .. }) if kept.is_empty())
    );
    assert_eq!(
        encode_request(&Request::Reload),
        r#"{"type":"reload","v":1}"#
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

fn ban_line(targets: &str, reason: &str) -> String {
    let reason = serde_json::to_string(reason).expect("json");
    format!(r#"{{"v":1,"type":"ban","data":{{"targets":{targets},"reason":{reason}}}}}"#)
}

#[test]
fn a_reason_longer_than_the_bound_or_with_control_characters_is_refused() {
    // Issue 11: a 47 KB reason became a 33 MB response and state file.
    let long = "x".repeat(47 * 1024);
    let e = decode_request(ban_line(r#"["10.0.0.1"]"#, &long).as_bytes()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "reason is {} bytes, at most {MAX_REASON_BYTES}",
            47 * 1024
        )),
        "{text}"
    );
    // ESC sequences and newlines were printed raw by `list`.
    for bad in [
        "\u{1b}[2J\u{1b}[31mowned",
        "two\nlines",
        "nul\0",
        "bidi \u{202e}txt.exe",
    ] {
        let e = decode_request(ban_line(r#"["10.0.0.1"]"#, bad).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("control character"), "{bad:?}: {e}");
    }
    let fine = "x".repeat(MAX_REASON_BYTES);
    for ok in ["abuse report #12 \"quoted\" é", fine.as_str()] {
        let Request::Ban { reason, .. } =
            decode_request(ban_line(r#"["10.0.0.1"]"#, ok).as_bytes()).unwrap()
        else {
            panic!("not a ban");
        };
        assert_eq!(reason.as_deref(), Some(ok));
    }
    assert_eq!(check_reason("ok"), Ok(()));
}

#[test]
fn ipv4_mapped_targets_are_ipv4() {
    // Issue 11: `::ffff:127.0.0.1` got past the 127/8 allowlist as an IPv6 target.
    let line = ban_line(
        r#"["::ffff:127.0.0.1", "::ffff:10.1.2.0/120", "::ffff:0:0/95"]"#,
        "x",
    );
    let Request::Ban { targets, .. } = decode_request(line.as_bytes()).unwrap() else {
        panic!("not a ban");
    };
    assert_eq!(
        targets,
        [net("127.0.0.1"), net("10.1.2.0/24"), net("::fffe:0:0/95")]
    );
    let line = r#"{"v":1,"type":"explain","data":{"addr":"::ffff:192.0.2.7"}}"#;
    assert_eq!(
        decode_request(line.as_bytes()).unwrap(),
        Request::Explain {
            addr: "192.0.2.7".parse().unwrap()
        }
    );
    let line = r#"{"v":1,"type":"unban","data":{"targets":["::ffff:192.0.2.7"]}}"#;
    assert_eq!(
        decode_request(line.as_bytes()).unwrap(),
        Request::Unban {
            targets: vec![net("192.0.2.7")],
            covering: false,
            all: false,
            rule: None,
        }
    );
    assert_eq!(
        parse_net("::ffff:203.0.113.7/128"),
        Some(net("203.0.113.7"))
    );
}
