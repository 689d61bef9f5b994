//! The flood detectors' events (pure): the fields of `attack`, `mitigate`, `unmitigate` and
//! `attack_end`, each a struct in the order written (after `ts` and `event`), and the event
//! for each [`FloodDecision`].
//!
//! `attack`: rule, target, observed, threshold, window_secs, sources, spoofed, fingerprint
//! (protocol, src_port, dst_port, tcp_flags, fragments, length), top_sources, action, then
//! `refused` when the configured action was not taken. A fingerprint field that no value
//! dominates (80% of the packets) is `null`; `tcp_flags` uses the rule words.

use std::sync::Arc;

use serde::Serialize;

use super::{Event, Stamped, is_false};
use crate::engine::flood::{AttackEnd, AttackStart, FloodDecision, Mitigation};

/// The fields of `attack`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct AttackFields {
    /// The `[[flood]]` detector.
    pub rule: Arc<str>,
    /// The protected address, or `total`.
    pub target: String,
    /// The window value that crossed.
    pub observed: u64,
    /// The detector's threshold.
    pub threshold: u64,
    /// The detector's window.
    pub window_secs: f64,
    /// Distinct sources in the window (estimated beyond a few thousand).
    pub sources: u64,
    /// Mostly one packet per source and, for a SYN flood, no handshake completed.
    pub spoofed: bool,
    /// What the attack's packets have in common.
    pub fingerprint: FingerprintFields,
    /// The heaviest sources and their shares of the window's packets.
    pub top_sources: Vec<SourceShare>,
    /// `signature`, `sources` or `alert` (`alert` also when the configured action was
    /// refused).
    pub action: &'static str,
    /// Why the configured action was not taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Logged only: the kernel is not touched.
    #[serde(skip_serializing_if = "is_false")]
    pub dry_run: bool,
}

/// What an attack's packets have in common; `null` where no value carries 80% of them.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct FingerprintFields {
    /// `tcp`, `udp`, `icmp` or `other`.
    pub protocol: Option<&'static str>,
    /// The dominant source port.
    pub src_port: Option<u16>,
    /// The dominant destination port.
    pub dst_port: Option<u16>,
    /// The dominant TCP flags, in the rule words (`syn`, `synack`, `ack`, `rst`, `fin`).
    pub tcp_flags: Option<&'static str>,
    /// Share of non-first fragments (0 to 1).
    pub fragments: f64,
    /// Smallest and largest packet on the wire, in bytes.
    pub length: [u32; 2],
}

/// One of an attack's heaviest sources.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct SourceShare {
    /// The source address.
    pub ip: String,
    /// Its share of the window's packets (0 to 1).
    pub share: f64,
}

/// The fields of `mitigate` and `unmitigate`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct MitigateFields {
    /// The `[[flood]]` detector.
    pub rule: Arc<str>,
    /// The protected address.
    pub target: String,
    /// The kernel rule, in iptables words (`-d 10.10.10.10/32 -p udp --sport 4500 -j DROP`).
    pub kernel_rule: String,
    /// How long it stays after the attack was last over threshold (the detector's `ban`).
    pub hold_secs: u64,
    /// Logged only: the kernel is not touched.
    #[serde(skip_serializing_if = "is_false")]
    pub dry_run: bool,
}

/// The fields of `attack_end`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct AttackEndFields {
    /// The `[[flood]]` detector.
    pub rule: Arc<str>,
    /// The protected address, or `total`.
    pub target: String,
    /// From the crossing to the last time it was over threshold.
    pub duration_secs: f64,
    /// Packets the detector counted toward the target during the attack.
    pub packets: u64,
    /// Bytes of those packets.
    pub bytes: u64,
    /// The highest window value, in packets per second.
    pub peak_pps: f64,
    /// The highest window value, in bits per second.
    pub peak_bps: f64,
    /// Absent when the attack went quiet; `file_ended` (replay: still going at the end of
    /// the capture), `stopped` (the daemon stopped) or `reload` (its detector changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Logged only: the kernel is not touched.
    #[serde(skip_serializing_if = "is_false")]
    pub dry_run: bool,
}

/// `x` with `places` decimals.
fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

impl AttackFields {
    /// The `attack` fields of an attack that began.
    pub fn of(a: &AttackStart, dry_run: bool) -> AttackFields {
        let fp = &a.fingerprint;
        AttackFields {
            rule: a.rule.clone(),
            target: a.target.to_string(),
            observed: a.observed,
            threshold: a.threshold,
            window_secs: a.window.as_secs_f64(),
            sources: fp.sources,
            spoofed: a.spoofed,
            fingerprint: FingerprintFields {
                protocol: fp.dominant_protocol().map(|p| p.as_str()),
                src_port: fp.dominant_src_port(),
                dst_port: fp.dominant_dst_port(),
                tcp_flags: fp.dominant_flags().map(|f| f.as_str()),
                fragments: round(fp.fragments, 4),
                length: [fp.length.0, fp.length.1],
            },
            top_sources: fp
                .top_sources
                .iter()
                .map(|s| SourceShare {
                    ip: s.value.to_string(),
                    share: round(s.fraction(), 4),
                })
                .collect(),
            action: a.action.as_str(),
            refused: a.refused.as_ref().map(ToString::to_string),
            dry_run,
        }
    }
}

impl MitigateFields {
    /// The `mitigate` / `unmitigate` fields of a signature.
    pub fn of(m: &Mitigation, dry_run: bool) -> MitigateFields {
        MitigateFields {
            rule: m.rule.clone(),
            target: m.target.to_string(),
            kernel_rule: m.signature.to_string(),
            hold_secs: m.hold.as_secs(),
            dry_run,
        }
    }
}

impl AttackEndFields {
    /// The `attack_end` fields of an attack that ended.
    pub fn of(e: &AttackEnd, dry_run: bool) -> AttackEndFields {
        AttackEndFields {
            rule: e.rule.clone(),
            target: e.target.to_string(),
            duration_secs: round(e.duration().as_secs_f64(), 3),
            packets: e.packets,
            bytes: e.bytes,
            peak_pps: round(e.peak_pps, 1),
            peak_bps: e.peak_bps.round(),
            reason: e.reason.word(),
            dry_run,
        }
    }
}

/// The event of a flood decision, at its time; `None` for what makes none (a signature's
/// refresh in the kernel, the bans of a `sources` action, which become `block` events).
pub fn flood_event(d: &FloodDecision, dry_run: bool) -> Option<Stamped> {
    Some(match d {
        FloodDecision::Attack(a) => Event::Attack(Box::new(AttackFields::of(a, dry_run))).at(a.at),
        FloodDecision::Mitigate(m) if !m.refresh => {
            Event::Mitigate(MitigateFields::of(m, dry_run)).at(m.at)
        }
        FloodDecision::Unmitigate(m) => Event::Unmitigate(MitigateFields::of(m, dry_run)).at(m.at),
        FloodDecision::AttackEnd(e) => Event::AttackEnd(AttackEndFields::of(e, dry_run)).at(e.at),
        FloodDecision::Mitigate(_) | FloodDecision::BanSources { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FloodAction, FloodFlags, FloodMetric};
    use crate::engine::flood::{
        EndReason, Fingerprint, FpProto, Refusal, Share, Signature, Target,
    };
    use crate::time::Timestamp;
    use std::time::Duration;

    const AT: Timestamp = Timestamp(1_795_514_400_123_000);

    fn start() -> AttackStart {
        let of = 3984;
        AttackStart {
            rule: "udp-flood-dst".into(),
            target: Target::Addr("10.10.10.10".parse().unwrap()),
            metric: FloodMetric::Packets,
            observed: 1001,
            threshold: 1000,
            window: Duration::from_secs(1),
            fingerprint: Fingerprint {
                packets: of,
                bytes: of * 246,
                protocol: Some(Share {
                    value: FpProto::Udp,
                    count: of,
                    of,
                }),
                src_port: Some(Share {
                    value: 4500,
                    count: of,
                    of,
                }),
                dst_port: Some(Share {
                    value: 13342,
                    count: 4,
                    of,
                }),
                tcp_flags: None,
                fragments: 0.0,
                length: (246, 246),
                sources: 2767,
                sources_exact: false,
                top_sources: vec![Share {
                    value: "31.45.247.231".parse().unwrap(),
                    count: 4,
                    of,
                }],
                allowlisted: 0,
            },
            spoofed: false,
            action: FloodAction::Signature,
            refused: None,
            at: AT,
        }
    }

    fn mitigation(refresh: bool) -> Mitigation {
        Mitigation {
            rule: "udp-flood-dst".into(),
            target: Target::Addr("10.10.10.10".parse().unwrap()),
            signature: Signature {
                dst: "10.10.10.10".parse().unwrap(),
                protocol: FpProto::Udp,
                sport: Some(4500),
                dport: None,
                flags: None,
            },
            until: AT,
            hold: Duration::from_secs(120),
            refresh,
            at: AT,
        }
    }

    fn line(d: FloodDecision, dry_run: bool) -> Option<String> {
        let stamped = flood_event(&d, dry_run)?;
        let text = stamped.line();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"], stamped.event.kind(), "{text}");
        Some(text)
    }

    #[test]
    fn attack_has_the_issue_fields_in_order_and_null_when_nothing_dominates() {
        assert_eq!(
            line(FloodDecision::Attack(Box::new(start())), false).as_deref(),
            Some(
                r#"{"ts":"2026-11-24T10:00:00.123Z","event":"attack","rule":"udp-flood-dst","target":"10.10.10.10","observed":1001,"threshold":1000,"window_secs":1.0,"sources":2767,"spoofed":false,"fingerprint":{"protocol":"udp","src_port":4500,"dst_port":null,"tcp_flags":null,"fragments":0.0,"length":[246,246]},"top_sources":[{"ip":"31.45.247.231","share":0.001}],"action":"signature"}"#
            )
        );
    }

    #[test]
    fn a_refused_attack_says_why_and_names_its_flags() {
        let mut refused = start();
        refused.action = FloodAction::Alert;
        refused.refused = Some(Refusal::Uses(FpProto::Udp, 4500));
        refused.fingerprint.tcp_flags = Some(Share {
            value: Some(FloodFlags::Synack),
            count: 3984,
            of: 3984,
        });
        assert_eq!(
            line(FloodDecision::Attack(Box::new(refused)), true).as_deref(),
            Some(
                r#"{"ts":"2026-11-24T10:00:00.123Z","event":"attack","rule":"udp-flood-dst","target":"10.10.10.10","observed":1001,"threshold":1000,"window_secs":1.0,"sources":2767,"spoofed":false,"fingerprint":{"protocol":"udp","src_port":4500,"dst_port":null,"tcp_flags":"synack","fragments":0.0,"length":[246,246]},"top_sources":[{"ip":"31.45.247.231","share":0.001}],"action":"alert","refused":"we talk to udp port 4500 ourselves: its answers would be dropped too","dry_run":true}"#
            )
        );
    }

    #[test]
    fn mitigate_and_unmitigate_name_the_kernel_rule_and_refreshes_are_silent() {
        assert_eq!(
            line(FloodDecision::Mitigate(mitigation(false)), false).as_deref(),
            Some(
                r#"{"ts":"2026-11-24T10:00:00.123Z","event":"mitigate","rule":"udp-flood-dst","target":"10.10.10.10","kernel_rule":"-d 10.10.10.10/32 -p udp --sport 4500 -j DROP","hold_secs":120}"#
            )
        );
        assert_eq!(line(FloodDecision::Mitigate(mitigation(true)), false), None);
        assert_eq!(
            line(FloodDecision::Unmitigate(mitigation(false)), true).as_deref(),
            Some(
                r#"{"ts":"2026-11-24T10:00:00.123Z","event":"unmitigate","rule":"udp-flood-dst","target":"10.10.10.10","kernel_rule":"-d 10.10.10.10/32 -p udp --sport 4500 -j DROP","hold_secs":120,"dry_run":true}"#
            )
        );
    }

    fn end(reason: EndReason) -> AttackEnd {
        AttackEnd {
            rule: "udp-flood-dst".into(),
            target: Target::Total,
            started: AT,
            last_over: AT.saturating_add(Duration::from_millis(409)),
            packets: 3984,
            bytes: 980_064,
            peak_pps: 3984.0,
            peak_bps: 7_840_512.0,
            reason,
            at: AT.saturating_add(Duration::from_secs(120)),
        }
    }

    #[test]
    fn attack_end_has_duration_packets_bytes_peak_rates_and_why_it_was_cut_short() {
        assert_eq!(
            line(FloodDecision::AttackEnd(end(EndReason::Quiet)), false).as_deref(),
            Some(
                r#"{"ts":"2026-11-24T10:02:00.123Z","event":"attack_end","rule":"udp-flood-dst","target":"total","duration_secs":0.409,"packets":3984,"bytes":980064,"peak_pps":3984.0,"peak_bps":7840512.0}"#
            )
        );
        assert_eq!(
            line(FloodDecision::AttackEnd(end(EndReason::FileEnded)), false).as_deref(),
            Some(
                r#"{"ts":"2026-11-24T10:02:00.123Z","event":"attack_end","rule":"udp-flood-dst","target":"total","duration_secs":0.409,"packets":3984,"bytes":980064,"peak_pps":3984.0,"peak_bps":7840512.0,"reason":"file_ended"}"#
            )
        );
        for (reason, word) in [
            (EndReason::Stopped, "stopped"),
            (EndReason::Reload, "reload"),
        ] {
            let text = line(FloodDecision::AttackEnd(end(reason)), false).unwrap_or_default();
            assert!(text.ends_with(&format!(r#""reason":"{word}"}}"#)), "{text}");
        }
    }

    #[test]
    fn the_bans_of_a_sources_action_make_no_event_of_their_own() {
        let d = FloodDecision::BanSources {
            detector: 0,
            sources: vec!["192.0.2.1".parse().unwrap()],
            observed: 1,
            at: AT,
        };
        assert_eq!(line(d, false), None);
    }
}
