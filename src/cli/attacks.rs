//! Flood attacks in words: a few lines per attack in progress (`status`, `explain`), the flood
//! detectors' windows toward one address (`explain`), and the attacks section of a replay
//! table.

use std::io::Write;

use super::remote::{human_secs, table};
use crate::replay_attacks::AttackReport;
use crate::sys::control::protocol::{AttackInfo, FloodWindow};

/// `flood attacks in progress:` and a few lines per attack; empty when there is none.
pub fn render_attacks(attacks: &[AttackInfo]) -> String {
    if attacks.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nflood attacks in progress:\n");
    for a in attacks {
        out.push_str(&format!(
            "  {} on {} since {}: {} / {} per {} ms now, {} packets, {} sources{}, ends in {} unless it crosses again\n",
            a.rule,
            a.target,
            a.since,
            a.value,
            a.threshold,
            a.window_ms,
            a.packets,
            a.sources,
            if a.spoofed { " (spoofed)" } else { "" },
            human_secs(a.ends_in_secs),
        ));
        out.push_str(&format!("    fingerprint: {}\n", a.fingerprint));
        let action = match (&a.kernel_rule, &a.refused) {
            (Some(rule), _) => format!("signature `{rule}`"),
            (None, Some(why)) => format!("alert only, refused: {why}"),
            (None, None) => a.action.clone(),
        };
        out.push_str(&format!("    mitigation: {action}\n"));
    }
    out
}

/// The flood detectors' windows toward one address; empty when none counts anything.
pub fn render_windows(windows: &[FloodWindow]) -> String {
    if windows.iter().all(|w| w.value == 0) {
        return String::new();
    }
    let rows: Vec<Vec<String>> = windows
        .iter()
        .map(|w| {
            vec![
                w.rule.clone(),
                w.metric.clone(),
                format!("{} / {}", w.value, w.threshold),
                format!("{}s", w.window_secs),
                if w.value > w.threshold { "over" } else { "" }.to_owned(),
            ]
        })
        .collect();
    let mut out = String::from("\nas a flood target (all sources together):\n");
    out.push_str(&table(
        &["DETECTOR", "METRIC", "NOW / LIMIT", "WINDOW", ""],
        &rows,
    ));
    out
}

/// The attacks section of a replay table: a few lines per attack, and the packets toward
/// destinations beyond the detectors' bound (`untracked`).
pub fn write_replay(
    out: &mut impl Write,
    attacks: &[AttackReport],
    untracked: u64,
) -> std::io::Result<()> {
    if untracked > 0 {
        writeln!(
            out,
            "  {untracked} packets toward destinations beyond the flood detectors' {} were not counted",
            crate::engine::flood::MAX_TARGETS
        )?;
    }
    if attacks.is_empty() {
        return writeln!(out, "  no flood attack");
    }
    for r in attacks {
        let a = &r.start;
        let fp = &a.fingerprint;
        let still = match r.ended.and_then(|e| e.word()) {
            Some("file_ended") => " (still going when the file ended)",
            _ => "",
        };
        writeln!(
            out,
            "  attack on {} by {} at {}: {} packets in {:.3} s{still}, peak {:.0} packets/s ({:.1} Mbit/s), {} sources{}, spoofed: {}",
            a.target,
            a.rule,
            a.at,
            r.packets,
            r.last_over.since(a.at).as_secs_f64(),
            r.peak_pps,
            r.peak_bps / 1e6,
            fp.sources,
            if fp.sources_exact { "" } else { " (estimated)" },
            if a.spoofed { "yes" } else { "no" },
        )?;
        writeln!(out, "    fingerprint: {}", fp.words())?;
        let tops: Vec<String> = fp
            .top_sources
            .iter()
            .map(|s| format!("{} {:.1}%", s.value, s.fraction() * 100.0))
            .collect();
        writeln!(out, "    top sources: {}", tops.join(", "))?;
        match (&r.kernel_rule, &a.refused) {
            (Some(rule), _) => writeln!(out, "    action: signature `{rule}`")?,
            (None, Some(why)) => writeln!(out, "    action: alert only, refused: {why}")?,
            (None, None) => writeln!(out, "    action: {}", a.action.as_str())?,
        }
    }
    Ok(())
}
