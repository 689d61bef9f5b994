//! One literal line per event kind and shape: the wire format is pinned byte for byte.

use super::*;
use crate::engine::bans::ActiveBan;
use crate::engine::sources::SourceKey;
use crate::engine::{SuppressReason, UnblockReason};
use std::time::Duration;

const T0: Timestamp = Timestamp(1_795_514_400_123_000);

fn verdict() -> Verdict {
    Verdict {
        key: SourceKey::new("203.0.113.7".parse().unwrap(), 32, 128),
        rule: Arc::from("syn-flood"),
        comment: None,
        metric: Some(Metric::Packets),
        observed: 2001,
        threshold: 2000,
        window: Duration::from_secs(1),
        ban: Duration::from_secs(600),
        until: Timestamp(T0.0 + 600_000_000),
        offense: 1,
        at: T0,
        origin: None,
    }
}

fn manual_verdict() -> Verdict {
    Verdict {
        key: SourceKey::from_net("2001:db8::/64".parse().unwrap()),
        rule: Arc::from("manual"),
        comment: Some(Arc::from("abuse report")),
        metric: None,
        observed: 0,
        threshold: 0,
        ..verdict()
    }
}

fn ban(manual: bool) -> ActiveBan {
    ActiveBan {
        key: SourceKey::new("203.0.113.7".parse().unwrap(), 32, 128),
        until: T0,
        since: T0,
        rule: Arc::from(if manual { "manual" } else { "syn-flood" }),
        comment: manual.then(|| Arc::from("abuse report")),
        offense: 2,
        duration: Duration::from_secs(600),
        peak: 0,
        manual,
        origin: None,
    }
}

/// The line for `e` at [`T0`], checking that `kind()` names the `event` field.
fn line(e: Event) -> String {
    let kind = e.kind();
    let text = e.at(T0).line();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["event"], kind, "{text}");
    text
}

fn decision_line(d: &Decision, dry_run: bool) -> String {
    let text = decision_json(d, dry_run).expect("an event");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let event = Event::decision(d, dry_run).expect("an event").event;
    assert_eq!(v["event"], event.kind());
    text
}

#[test]
fn block() {
    assert_eq!(
        decision_line(&Decision::Block(verdict()), false),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"block","ip":"203.0.113.7","rule":"syn-flood","metric":"packets","observed":2001,"threshold":2000,"window_secs":1.0,"ban_secs":600,"offense":1,"until":"2026-11-24T10:10:00.123Z"}"#
    );
}

#[test]
fn block_manual_and_dry_run() {
    assert_eq!(
        decision_line(&Decision::Block(manual_verdict()), true),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"block","ip":"2001:db8::/64","rule":"manual","ban_secs":600,"offense":1,"until":"2026-11-24T10:10:00.123Z","manual":true,"comment":"abuse report","dry_run":true}"#
    );
}

#[test]
fn extend() {
    assert_eq!(
        decision_line(&Decision::Extend(verdict()), false),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"extend","ip":"203.0.113.7","rule":"syn-flood","metric":"packets","observed":2001,"threshold":2000,"window_secs":1.0,"ban_secs":600,"offense":1,"until":"2026-11-24T10:10:00.123Z"}"#
    );
}

#[test]
fn suppressed() {
    let d = Decision::Suppressed {
        verdict: verdict(),
        reason: SuppressReason::Allowlist,
    };
    assert_eq!(
        decision_line(&d, true),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"suppressed","ip":"203.0.113.7","rule":"syn-flood","reason":"allowlist","metric":"packets","observed":2001,"threshold":2000,"window_secs":1.0,"ban_secs":600,"offense":1,"until":"2026-11-24T10:10:00.123Z","dry_run":true}"#
    );
}

#[test]
fn suppressed_on_a_verified_peer_says_why() {
    use crate::trust::peers::{Kinds, PeerKind};
    let kinds = Kinds::of(PeerKind::Gateway).with(Kinds::of(PeerKind::Established));
    let d = Decision::Suppressed {
        verdict: verdict(),
        reason: SuppressReason::Peer(kinds),
    };
    assert_eq!(
        decision_line(&d, false),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"suppressed","ip":"203.0.113.7","rule":"syn-flood","reason":"peer","peer":"gateway, established","metric":"packets","observed":2001,"threshold":2000,"window_secs":1.0,"ban_secs":600,"offense":1,"until":"2026-11-24T10:10:00.123Z"}"#
    );
}

#[test]
fn unblock() {
    let expired = Decision::Unblock {
        ban: ban(false),
        at: T0,
        reason: UnblockReason::Expired,
    };
    assert_eq!(
        decision_line(&expired, false),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"unblock","ip":"203.0.113.7","rule":"syn-flood","reason":"expired","offense":2}"#
    );
    let manual = Decision::Unblock {
        ban: ban(true),
        at: T0,
        reason: UnblockReason::Manual,
    };
    assert_eq!(
        decision_line(&manual, true),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"unblock","ip":"203.0.113.7","rule":"manual","reason":"manual","offense":2,"manual":true,"comment":"abuse report","dry_run":true}"#
    );
}

/// A ban from the fleet: no measure, `origin` set; `manual` only when the origin's operator
/// set it (its rule is then `manual`).
fn remote_verdict(manual: bool) -> Verdict {
    Verdict {
        metric: None,
        observed: 0,
        threshold: 0,
        window: Duration::ZERO,
        rule: Arc::from(if manual { "manual" } else { "syn-flood" }),
        origin: Some(Arc::from("web-1")),
        ..verdict()
    }
}

#[test]
fn decisions_from_the_fleet_name_their_origin() {
    assert_eq!(
        decision_line(&Decision::Block(remote_verdict(false)), false),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"block","ip":"203.0.113.7","rule":"syn-flood","ban_secs":600,"offense":1,"until":"2026-11-24T10:10:00.123Z","origin":"web-1"}"#
    );
    assert_eq!(
        decision_line(&Decision::Extend(remote_verdict(true)), false),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"extend","ip":"203.0.113.7","rule":"manual","ban_secs":600,"offense":1,"until":"2026-11-24T10:10:00.123Z","manual":true,"origin":"web-1"}"#
    );
    let refused = Decision::Suppressed {
        verdict: remote_verdict(false),
        reason: SuppressReason::Allowlist,
    };
    assert_eq!(
        decision_line(&refused, false),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"suppressed","ip":"203.0.113.7","rule":"syn-flood","reason":"allowlist","ban_secs":600,"offense":1,"until":"2026-11-24T10:10:00.123Z","origin":"web-1"}"#
    );
    let lifted = Decision::Unblock {
        ban: ActiveBan {
            origin: Some(Arc::from("web-1")),
            ..ban(false)
        },
        at: T0,
        reason: UnblockReason::Manual,
    };
    assert_eq!(
        decision_line(&lifted, false),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"unblock","ip":"203.0.113.7","rule":"syn-flood","reason":"manual","offense":2,"origin":"web-1"}"#
    );
}

#[test]
fn suppressed_dropped() {
    assert_eq!(
        line(Event::SuppressedDropped { count: 2 }),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"suppressed_dropped","count":2}"#
    );
}

#[test]
fn events_dropped() {
    assert_eq!(
        line(Event::EventsDropped {
            count: 7,
            output: "stdout"
        }),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"events_dropped","count":7,"output":"stdout"}"#
    );
}

#[test]
fn applied_with_and_without_blocks() {
    let applied = |blocks, reaction_ms| Event::Applied {
        blocks,
        unblocks: 1,
        commit_ms: 2.587,
        reaction_ms,
    };
    assert_eq!(
        line(applied(1, Some(2.682))),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"applied","blocks":1,"unblocks":1,"commit_ms":2.587,"reaction_ms":2.682}"#
    );
    assert_eq!(
        line(applied(0, None)),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"applied","blocks":0,"unblocks":1,"commit_ms":2.587,"reaction_ms":null}"#
    );
}

#[test]
fn started() {
    let e = Event::Started(Box::new(StartedFields {
        version: "0.1.0",
        pid: 4242,
        config: "/etc/autoblock/rules.toml".into(),
        interfaces: vec!["eth0".into()],
        backend: "ipset",
        chain: "AUTOBLOCK".into(),
        dry_run: false,
        adopted_bans: 3,
        restored_bans: 2,
        local_addresses: vec!["127.0.0.0/8".into(), "::1/128".into()],
        rules: 6,
        backend_config: "auto",
        backend_skipped: vec!["nftables: `nft` is not installed".into()],
    }));
    assert_eq!(
        line(e),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"started","version":"0.1.0","pid":4242,"config":"/etc/autoblock/rules.toml","interfaces":["eth0"],"backend":"ipset","chain":"AUTOBLOCK","dry_run":false,"adopted_bans":3,"restored_bans":2,"local_addresses":["127.0.0.0/8","::1/128"],"rules":6,"backend_config":"auto","backend_skipped":["nftables: `nft` is not installed"]}"#
    );
    let fixed = Event::Started(Box::new(StartedFields {
        version: "0.1.0",
        pid: 4242,
        config: "r.toml".into(),
        interfaces: vec![],
        backend: "nftables",
        chain: "AUTOBLOCK".into(),
        dry_run: false,
        adopted_bans: 0,
        restored_bans: 0,
        local_addresses: vec![],
        rules: 0,
        backend_config: "nftables",
        backend_skipped: vec![],
    }));
    assert!(
        line(fixed).ends_with(r#""rules":0,"backend_config":"nftables"}"#),
        "backend_skipped only when auto passed something over"
    );
}

#[test]
fn stopped() {
    let e = Event::Stopped {
        kept_bans: false,
        flushed: true,
        stop_secs: 0.054970894,
    };
    assert_eq!(
        line(e),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"stopped","kept_bans":false,"flushed":true,"stop_secs":0.054970894}"#
    );
}

#[test]
fn reloaded() {
    let e = Event::Reloaded {
        config: "rules.toml".into(),
        rules: vec!["syn-flood".into(), "port-scan".into()],
    };
    assert_eq!(
        line(e),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"reloaded","config":"rules.toml","rules":["syn-flood","port-scan"]}"#
    );
}

#[test]
fn reload_failed() {
    let e = Event::reload_failed(
        "rules.toml".into(),
        vec!["capture.interfaces changed: this needs a restart".into()],
    );
    assert_eq!(
        line(e),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"reload_failed","config":"rules.toml","errors":["capture.interfaces changed: this needs a restart"],"message":"the previous configuration keeps running"}"#
    );
}

#[test]
fn repaired() {
    let e = Event::Repaired {
        repairs: vec!["jump from INPUT".into()],
    };
    assert_eq!(
        line(e),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"repaired","repairs":["jump from INPUT"]}"#
    );
}

#[test]
fn enforcer_error_in_four_shapes() {
    let commit = Event::CommitFailed {
        error: "ipset: not found".into(),
        pending: 4,
        retry_in_secs: Some(0.5),
    };
    assert_eq!(
        line(commit),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"enforcer_error","error":"ipset: not found","pending":4,"retry_in_secs":0.5}"#
    );
    let no_retry = Event::CommitFailed {
        error: "x".into(),
        pending: 0,
        retry_in_secs: None,
    };
    assert!(line(no_retry).ends_with(r#""pending":0,"retry_in_secs":null}"#));
    let check = Event::CheckFailed {
        error: "x".into(),
        during: "check",
    };
    assert_eq!(
        line(check),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"enforcer_error","error":"x","during":"check"}"#
    );
    let refused = Event::Refused {
        error: "203.0.113.0/24: protected".into(),
        during: "commit",
    };
    assert_eq!(
        line(refused),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"enforcer_error","error":"203.0.113.0/24: protected","during":"commit"}"#
    );
    let exit = Event::EnforcerError {
        error: "firewall still in use at exit; chain kept".into(),
    };
    assert_eq!(
        line(exit),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"enforcer_error","error":"firewall still in use at exit; chain kept"}"#
    );
}

#[test]
fn capture_drops() {
    let e = Event::CaptureDrops {
        interface: "eth0".into(),
        received: 9800,
        lost: 200,
        loss_percent: 2.0,
        window_secs: 60,
        message: PARTLY_BLIND,
    };
    assert_eq!(
        line(e),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"capture_drops","interface":"eth0","received":9800,"lost":200,"loss_percent":2.0,"window_secs":60,"message":"detection is partly blind: packets were lost before autoblock saw them"}"#
    );
}

#[test]
fn capture_error() {
    let e = Event::CaptureError {
        error: "interface vc: capture failed".into(),
    };
    assert_eq!(
        line(e),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"capture_error","error":"interface vc: capture failed"}"#
    );
}

#[test]
fn local_addresses() {
    let e = Event::LocalAddresses {
        addresses: vec!["10.0.0.2/24".into()],
    };
    assert_eq!(
        line(e),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"local_addresses","addresses":["10.0.0.2/24"]}"#
    );
}

#[test]
fn state_error_in_two_shapes() {
    let load = Event::StateLoadFailed {
        error: "corrupt".into(),
        saving: true,
    };
    assert_eq!(
        line(load),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"state_error","error":"corrupt","saving":true}"#
    );
    let save = Event::StateSaveFailed {
        error: "read-only".into(),
    };
    assert_eq!(
        line(save),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"state_error","error":"read-only"}"#
    );
}

#[test]
fn fatal() {
    let e = Event::Fatal {
        error: "the capture on vc stopped (interface gone?)".into(),
    };
    assert_eq!(
        line(e),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"fatal","error":"the capture on vc stopped (interface gone?)"}"#
    );
}

#[test]
fn control_error() {
    let e = Event::ControlError {
        error: "the control server stopped".into(),
    };
    assert_eq!(
        line(e),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"control_error","error":"the control server stopped"}"#
    );
}

#[test]
fn summary() {
    let mut s = Summary::new("a.pcap".into(), T0);
    s.packets = 26316;
    s.parsed = 26316;
    s.sources = 2;
    s.blocked = 2;
    s.peak_table_bytes = 2747;
    s.peak_rss_bytes = Some(7864320);
    assert_eq!(
        s.json(),
        r#"{"ts":"2026-11-24T10:00:00.123Z","event":"summary","file":"a.pcap","packets":26316,"parsed":26316,"unparsed":0,"sources":2,"blocked":2,"local_packets":0,"untracked_packets":0,"peak_table_bytes":2747,"peak_rss_bytes":7864320,"complete":true}"#
    );
    s.complete = false;
    s.error = Some("stopped after 3 frames".into());
    s.peak_rss_bytes = None;
    assert!(s.json().ends_with(
        r#""peak_table_bytes":2747,"complete":false,"error":"stopped after 3 frames"}"#
    ));
    s.top_talkers = vec![TalkerFields {
        ip: "172.16.0.5".into(),
        packets: 18778,
        bytes: 1126680,
    }];
    assert!(s.json().ends_with(
        r#""error":"stopped after 3 frames","top_talkers":[{"ip":"172.16.0.5","packets":18778,"bytes":1126680}]}"#
    ));
    assert_eq!(Event::Summary(s).kind(), "summary");
}
