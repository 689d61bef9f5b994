//! The `peaks` event replay writes after each file (pure): per rule, the highest window value
//! any source reached and which source, so a threshold can be set with a known margin.

use serde::Serialize;

use crate::config::Metric;
use crate::engine::peaks::RulePeak;
use crate::time::Timestamp;

/// `{"event":"peaks","file":…,"rules":[…]}`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PeaksFields {
    /// The file replayed.
    pub file: String,
    /// Every rule, in file order.
    pub rules: Vec<PeakFields>,
}

/// One rule's peak.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PeakFields {
    pub rule: String,
    /// The highest window value any source reached (0: nothing matched the rule).
    pub peak: u64,
    pub threshold: u64,
    /// The source (or prefix) that reached it first; `null` when nothing matched.
    pub ip: Option<String>,
    /// What the rule counts.
    pub metric: &'static str,
    /// When it was first reached; `null` when nothing matched.
    pub at: Option<String>,
    /// The peak is the distinct metric's cap (2×threshold+1): the real count may be higher.
    #[serde(skip_serializing_if = "crate::event::is_false")]
    pub capped: bool,
}

impl PeaksFields {
    pub fn new(file: String, peaks: &[RulePeak]) -> PeaksFields {
        let rules = peaks
            .iter()
            .map(|p| {
                let top = p.top.first();
                PeakFields {
                    rule: p.rule.to_string(),
                    peak: p.peak(),
                    threshold: p.threshold,
                    ip: top.map(|t| t.0.to_string()),
                    metric: Metric::as_str(p.metric),
                    at: top.map(|t| t.2.to_string()),
                    capped: p.capped(),
                }
            })
            .collect();
        PeaksFields { file, rules }
    }

    /// The `peaks` event line at `ts` (the file's last packet), no trailing newline.
    pub fn json(self, ts: Timestamp) -> String {
        super::Event::Peaks(self).at(ts).line()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sources::SourceKey;

    #[test]
    fn the_names_of_the_issue_come_first() {
        let key = SourceKey::new("192.0.2.7".parse().unwrap(), 32, 128);
        let peaks = [
            RulePeak {
                rule: "conn-burst".into(),
                metric: Metric::Packets,
                threshold: 28,
                cap: None,
                top: vec![(key, 26, Timestamp(1_000_000))],
            },
            RulePeak {
                rule: "port-scan".into(),
                metric: Metric::DstPorts,
                threshold: 60,
                cap: Some(121),
                top: Vec::new(),
            },
        ];
        let line = PeaksFields::new("f.pcap".into(), &peaks).json(Timestamp(2_000_000));
        assert_eq!(
            line,
            r#"{"ts":"1970-01-01T00:00:02.000Z","event":"peaks","file":"f.pcap","rules":[{"rule":"conn-burst","peak":26,"threshold":28,"ip":"192.0.2.7","metric":"packets","at":"1970-01-01T00:00:01.000Z"},{"rule":"port-scan","peak":0,"threshold":60,"ip":null,"metric":"dst_ports","at":null}]}"#
        );
    }
}
