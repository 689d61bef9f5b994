//! Replay's tuning help in the table: per rule, the highest value any source reached, which
//! source, and the margin to the threshold (the `peaks` event in words).

use std::io::Write;

use super::remote::table;
use crate::engine::peaks::{RulePeak, margin, peak_text};

/// The peaks section: one row per rule, then what the columns mean.
pub fn write_peaks(out: &mut impl Write, peaks: &[RulePeak]) -> std::io::Result<()> {
    if peaks.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "  peaks (per rule, the highest window value any source reached, for tuning):"
    )?;
    let rows: Vec<Vec<String>> = peaks
        .iter()
        .map(|p| {
            let top = p.top.first();
            vec![
                p.rule.to_string(),
                p.metric.as_str().to_string(),
                peak_text(p.peak(), p.capped()),
                p.threshold.to_string(),
                margin(p.peak(), p.threshold, p.capped()),
                top.map_or("-".to_string(), |t| t.0.to_string()),
                top.map_or("-".to_string(), |t| t.2.to_string()),
            ]
        })
        .collect();
    let text = table(
        &[
            "RULE",
            "METRIC",
            "PEAK",
            "THRESHOLD",
            "PEAK/THRESHOLD",
            "SOURCE",
            "AT",
        ],
        &rows,
    );
    for line in text.lines() {
        writeln!(out, "    {line}")?;
    }
    writeln!(
        out,
        "    (a rule fires above its threshold: below 100% nothing fired; `+`: a distinct count stops at 2×threshold+1)"
    )
}
