//! One frame of `autoblock top`, as lines of text (pure): the live view draws them with
//! colours, `--once` prints them as they are, so both always show the same thing.
//!
//! Sections, top to bottom, each cut to fit the height (events take what is left): the daemon,
//! capture per interface (rates from two samples), each rule with its leading sources as
//! value/threshold, active bans with time left, flood attacks in progress with their
//! mitigation (when there are any), the last events. Every line is cut to the width: 80x24 over ssh shows all sections.

use crate::cli::remote::human_secs;
use crate::sys::control::protocol::{StatusInfo, TopInfo, net_text};

/// How a line is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// A section heading.
    Heading,
    /// Ordinary.
    Plain,
    /// Over a threshold, a failed reload, drops: look here.
    Alert,
}

/// One line of the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub tone: Tone,
    pub text: String,
}

/// What a frame is made of: the newest status and top answers, and the status before them
/// (with the seconds between) for rates.
pub struct Sample<'a> {
    pub status: &'a StatusInfo,
    pub top: &'a TopInfo,
    pub before: Option<(&'a StatusInfo, f64)>,
}

/// The frame for a `width` x `height` terminal (the last line is left for the key help).
pub fn frame(s: &Sample<'_>, width: usize, height: usize) -> Vec<Row> {
    let mut rows = vec![title(s.status)];
    rows.extend(interfaces(s));
    rows.extend(rules(s.top, width));
    let bans_room = 5.min(s.top.bans.len());
    rows.extend(bans(s.top, bans_room));
    rows.extend(attacks(s.status));
    let room = height.saturating_sub(rows.len() + 2).max(2);
    rows.extend(events(s.status, room));
    rows.truncate(height.saturating_sub(1).max(1));
    for r in &mut rows {
        r.text = cut(&r.text, width);
    }
    rows
}

fn row(tone: Tone, text: impl Into<String>) -> Row {
    Row {
        tone,
        text: text.into(),
    }
}

fn title(s: &StatusInfo) -> Row {
    let reload = match &s.reload {
        Some(r) if !r.ok => " | RELOAD FAILED".to_owned(),
        _ => String::new(),
    };
    let dry = if s.dry_run { " | DRY RUN" } else { "" };
    let tone = if reload.is_empty() {
        Tone::Heading
    } else {
        Tone::Alert
    };
    row(
        tone,
        format!(
            "autoblock {} pid {} up {} | {} bans | {} src{dry}{reload}",
            s.version,
            s.pid,
            human_secs(s.uptime_secs),
            s.active_bans,
            s.tracked_sources,
        ),
    )
}

fn interfaces(s: &Sample<'_>) -> Vec<Row> {
    let mut rows = vec![row(
        Tone::Heading,
        format!(
            "{:<12} {:>10} {:>10} {:>12}",
            "INTERFACE", "PKT/S", "DROPS/S", "DROPS"
        ),
    )];
    for i in &s.status.interfaces {
        let prev = s.before.and_then(|(b, secs)| {
            b.interfaces
                .iter()
                .find(|p| p.name == i.name)
                .map(|p| (p, secs))
        });
        let rate = |now: u64, then: Option<u64>| match (then, prev) {
            (Some(t), Some((_, secs))) if secs > 0.0 => {
                format!("{:.0}", now.saturating_sub(t) as f64 / secs)
            }
            _ => "-".to_owned(),
        };
        let drops = i.kernel_drops + i.interface_drops;
        let pdrops = prev.map(|(p, _)| p.kernel_drops + p.interface_drops);
        let tone = if pdrops.is_some_and(|p| drops > p) {
            Tone::Alert
        } else {
            Tone::Plain
        };
        rows.push(row(
            tone,
            format!(
                "{:<12} {:>10} {:>10} {:>12}",
                i.name,
                rate(i.packets, prev.map(|(p, _)| p.packets)),
                rate(drops, pdrops),
                drops
            ),
        ));
    }
    rows
}

fn rules(top: &TopInfo, width: usize) -> Vec<Row> {
    let mut rows = vec![row(
        Tone::Heading,
        format!(
            "{:<14} {:<9} {:>7}  TOP SOURCES (value/limit)",
            "RULE", "METRIC", "LIMIT"
        ),
    )];
    for r in &top.rules {
        let name = if r.mode == "log" {
            format!("{} (log)", r.rule)
        } else {
            r.rule.clone()
        };
        let mut line = format!("{:<14} {:<9} {:>7}  ", name, r.metric, r.threshold);
        let over = r.sources.first().is_some_and(|s| s.value > r.threshold);
        if r.sources.is_empty() {
            line.push('-');
        }
        for (i, src) in r.sources.iter().enumerate() {
            let mark = if src.value > r.threshold { " OVER" } else { "" };
            let item = format!(
                "{}{} {}/{}{mark}",
                if i == 0 { "" } else { ", " },
                net_text(&src.source),
                src.value,
                r.threshold
            );
            if i > 0 && line.chars().count() + item.chars().count() > width {
                break;
            }
            line.push_str(&item);
        }
        rows.push(row(if over { Tone::Alert } else { Tone::Plain }, line));
    }
    rows
}

fn bans(top: &TopInfo, n: usize) -> Vec<Row> {
    let mut rows = vec![row(
        Tone::Heading,
        format!(
            "BANS ({} active{})",
            top.active_bans,
            if top.bans.iter().any(|b| b.dry_run) {
                ", dry run: none in the kernel"
            } else {
                ""
            },
        ),
    )];
    for b in top.bans.iter().take(n) {
        let rule = if b.rule.is_empty() {
            &b.reason
        } else {
            &b.rule
        };
        rows.push(row(
            Tone::Plain,
            format!(
                "{:<40} {:<14} {:>8} left",
                net_text(&b.target),
                rule,
                human_secs(b.remaining_secs)
            ),
        ));
    }
    rows
}

/// Flood attacks in progress, two lines each: the detector, target, window value against
/// the threshold, sources and time left; then its mitigation (the kernel rule, or why the
/// configured action was refused). Heading only when there are any.
fn attacks(s: &StatusInfo) -> Vec<Row> {
    if s.attacks.is_empty() {
        return Vec::new();
    }
    let mut rows = vec![row(Tone::Heading, format!("ATTACKS ({})", s.attacks.len()))];
    for a in &s.attacks {
        rows.push(row(
            Tone::Alert,
            format!(
                "{} -> {} {}/{} {} pkts {} src{} ends {}",
                a.rule,
                a.target,
                a.value,
                a.threshold,
                a.packets,
                a.sources,
                if a.spoofed { " spoofed" } else { "" },
                human_secs(a.ends_in_secs)
            ),
        ));
        let action = match (&a.kernel_rule, &a.refused) {
            (Some(rule), _) => format!("  signature {rule}"),
            (None, Some(why)) => format!("  alert only: {why}"),
            (None, None) => format!("  {}: {}", a.action, a.fingerprint),
        };
        rows.push(row(Tone::Plain, action));
    }
    rows
}

/// The newest `n` events, newest last, each in a few words.
fn events(s: &StatusInfo, n: usize) -> Vec<Row> {
    let mut rows = vec![row(Tone::Heading, "EVENTS")];
    let start = s.recent_events.len().saturating_sub(n);
    for line in &s.recent_events[start..] {
        rows.push(event_row(line));
    }
    rows
}

fn event_row(line: &str) -> Row {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return row(Tone::Plain, line);
    };
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    let ts = text("ts");
    let time = ts.get(11..19).unwrap_or(&ts);
    let kind = text("event");
    let mut out = format!("{time} {kind}");
    for k in ["ip", "rule", "target", "reason", "config", "kernel_rule"] {
        let t = text(k);
        if !t.is_empty() {
            out.push(' ');
            out.push_str(&t);
        }
    }
    if let (Some(o), Some(t)) = (num("observed"), num("threshold")) {
        out.push_str(&format!(" {o}/{t}"));
    }
    if let Some(secs) = num("ban_secs") {
        out.push_str(&format!(" ban {}", human_secs(secs)));
    }
    if let Some(e) = v.get("error").or_else(|| v.get("errors")) {
        out.push_str(&format!(" {e}"));
    }
    let tone = match kind.as_str() {
        "block" | "extend" | "reload_failed" | "enforcer_error" | "capture_drops" | "fatal"
        | "state_error" | "attack" | "mitigate" => Tone::Alert,
        _ => Tone::Plain,
    };
    row(tone, out)
}

/// `text` cut to `width` characters.
fn cut(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// The frame as plain text, one line each (`--once`).
pub fn plain(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(r.text.trim_end());
        out.push('\n');
    }
    out
}
