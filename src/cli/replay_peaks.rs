//! Replay's tuning help in the table: per rule, the highest value any source reached, which
//! source, and the margin to the threshold (the `peaks` event in words).

use std::io::Write;

use super::remote::table;
use crate::engine::peaks::RulePeak;

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

/// `121+` when the value is a distinct metric's cap.
pub fn peak_text(value: u64, capped: bool) -> String {
    if capped {
        format!("{value}+")
    } else {
        value.to_string()
    }
}

/// The peak as a share of the threshold: `93%`, `≥202%` when capped, `-` for nothing counted.
fn margin(peak: u64, threshold: u64, capped: bool) -> String {
    if peak == 0 || threshold == 0 {
        return "-".to_string();
    }
    let pct = (peak as f64 * 100.0 / threshold as f64).round();
    format!("{}{pct:.0}%", if capped { "≥" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_read_as_shares_of_the_threshold() {
        assert_eq!(margin(26, 28, false), "93%");
        assert_eq!(margin(121, 60, true), "≥202%");
        assert_eq!(margin(0, 60, false), "-");
        assert_eq!(peak_text(121, true), "121+");
    }
}
