//! `replay --report FILE.html` (or `.svg`): after a file's replay, a second pass over it records
//! the values of each rule's top sources (its peaks and its offenders) at every packet; the
//! charts are drawn by `replay_report.rs` and written once every file is done.

use std::path::{Path, PathBuf};

use super::{CliError, CliResult};
use crate::config::Config;
use crate::engine::Decision;
use crate::engine::sources::SourceKey;
use crate::replay::{ReplayOptions, ReplayReport, replay_file};
use crate::replay_report::{FileReport, RuleReport, html, svg};

/// Sources drawn per rule at most.
const SOURCES_PER_RULE: usize = 8;

/// The report's format, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    Html,
    Svg,
}

/// `.html`/`.htm` or `.svg`; anything else is a usage error. Standard input cannot be read
/// twice, so `-` is refused too.
pub fn kind_of(path: &Path, files: &[PathBuf]) -> Result<ReportKind, CliError> {
    if files.iter().any(|f| f == Path::new("-")) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--report reads each capture file twice: it cannot read standard input (`-`)"
        )));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => Ok(ReportKind::Html),
        Some("svg") => Ok(ReportKind::Svg),
        _ => Err(CliError::usage(anyhow::anyhow!(
            "--report {}: the name must end in .html (a page with the peaks and the charts) or .svg (the charts)",
            path.display()
        ))),
    }
}

/// Per rule, the sources worth drawing: those that went highest, then its offenders.
fn watch_list(first: &ReplayReport) -> Vec<Vec<SourceKey>> {
    first
        .peaks
        .iter()
        .map(|p| {
            let mut keys: Vec<SourceKey> = p.top.iter().map(|t| t.0).collect();
            let offenders = first
                .offenders
                .iter()
                .filter(|o| o.rule == p.rule && o.suppressed.is_none());
            for o in offenders {
                if !keys.contains(&o.key) {
                    keys.push(o.key);
                }
            }
            keys.truncate(SOURCES_PER_RULE);
            keys
        })
        .collect()
}

/// Replays `path` again, tracing the sources worth drawing.
pub fn trace_file(
    config: &Config,
    path: &Path,
    local: &[ipnet::IpNet],
    first: &ReplayReport,
) -> Result<FileReport, CliError> {
    let opts = ReplayOptions {
        local: local.to_vec(),
        progress: false,
        trace: Some(watch_list(first)),
        peak_sources: 1,
    };
    let mut blocks: Vec<(std::sync::Arc<str>, SourceKey, crate::time::Timestamp)> = Vec::new();
    let mut on_decision = |d: &Decision| {
        if let Decision::Block(v) = d {
            blocks.push((v.rule.clone(), v.key, v.at));
        }
    };
    let second = replay_file(config, path, &opts, &mut on_decision)
        .map_err(|e| CliError::runtime(anyhow::anyhow!("--report: {e}")))?;
    let mut trace = second.trace.into_iter();
    let rules = first
        .peaks
        .iter()
        .zip(&config.rules)
        .map(|(peak, rule)| RuleReport {
            peak: peak.clone(),
            window: rule.window,
            series: trace.next().unwrap_or_default(),
            bans: blocks
                .iter()
                .filter(|b| b.0 == peak.rule)
                .map(|b| (b.1, b.2))
                .collect(),
        })
        .collect();
    let attacks = first
        .attacks
        .iter()
        .map(|a| {
            (
                a.start.rule.to_string(),
                a.start.target.to_string(),
                a.start.at,
                a.last_over,
            )
        })
        .collect();
    Ok(FileReport {
        file: first.summary.file.clone(),
        first: second.first_ts,
        last: second.summary.ts,
        rules,
        attacks,
    })
}

/// Draws every file's charts into `path` (exit 1 when it cannot be written).
pub fn write(path: &Path, kind: ReportKind, files: &[FileReport]) -> CliResult {
    let text = match kind {
        ReportKind::Html => html(files),
        ReportKind::Svg => svg(files),
    }
    .map_err(CliError::runtime)?;
    std::fs::write(path, text).map_err(|e| {
        CliError::runtime(anyhow::Error::new(e).context(format!("writing {}", path.display())))
    })?;
    tracing::info!("report written to {}", path.display());
    Ok(())
}
