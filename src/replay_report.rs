//! The picture for tuning (pure: data in, text out; the CLI writes the file): per rule, the
//! window values of its top sources over capture time against the threshold line, with each
//! ban and each flood attack marked. SVG drawn by plotters (its SVG backend only: no fonts
//! read, no bitmap code), or the same SVG inside a self-contained HTML page with the peaks
//! table; nothing is loaded from the network.

use std::fmt::Write as _;
use std::time::Duration;

use plotters::prelude::*;

use crate::engine::peaks::{RulePeak, Series, margin, peak_text};
use crate::engine::sources::SourceKey;
use crate::time::Timestamp;

/// Pixels per rule chart.
const WIDTH: u32 = 1100;
const CHART_HEIGHT: u32 = 260;
/// Source colours, in order (distinct from the threshold's red and the attacks' orange).
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const THRESHOLD: RGBColor = RGBColor(214, 39, 40);
const ATTACK: RGBColor = RGBColor(255, 127, 14);

/// One replayed file, as the picture needs it.
pub struct FileReport {
    pub file: String,
    pub first: Timestamp,
    pub last: Timestamp,
    /// Per rule (file order): its peak, window, and traced sources' values.
    pub rules: Vec<RuleReport>,
    /// Flood attacks: detector, target, start, end.
    pub attacks: Vec<(String, String, Timestamp, Timestamp)>,
}

pub struct RuleReport {
    pub peak: RulePeak,
    pub window: Duration,
    pub series: Vec<(SourceKey, Series)>,
    /// Blocks (and re-blocks) this rule made: target and time.
    pub bans: Vec<(SourceKey, Timestamp)>,
}

/// What went wrong drawing (plotters' error, in words).
#[derive(Debug, thiserror::Error)]
#[error("drawing the report: {0}")]
pub struct ReportError(String);

fn draw_err(e: impl std::fmt::Display) -> ReportError {
    ReportError(e.to_string())
}

/// Every rule chart of every file, stacked, as one SVG document.
pub fn svg(files: &[FileReport]) -> Result<String, ReportError> {
    let charts: usize = files.iter().map(|f| f.rules.len()).sum();
    let height = CHART_HEIGHT * u32::try_from(charts.max(1)).unwrap_or(1);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let areas = root.split_evenly((charts.max(1), 1));
        let mut area = areas.iter();
        for f in files {
            for rule in &f.rules {
                if let Some(a) = area.next() {
                    chart(a, f, rule, files.len() > 1)?;
                }
            }
        }
        root.present().map_err(draw_err)?;
    }
    Ok(out)
}

/// Seconds from the file's first packet.
fn secs(f: &FileReport, t: Timestamp) -> f64 {
    t.since(f.first).as_secs_f64()
}

fn chart(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    f: &FileReport,
    r: &RuleReport,
    name_file: bool,
) -> Result<(), ReportError> {
    let p = &r.peak;
    let span = secs(f, f.last).max(r.window.as_secs_f64()).max(0.001);
    let ymax = (p.peak().max(p.threshold) as f64 * 1.15).max(1.0);
    let margin = margin(p.peak(), p.threshold, p.capped());
    let caption = format!(
        "{}{} ({} per {:?}): peak {} of threshold {} ({margin})",
        if name_file {
            format!("{}: ", f.file)
        } else {
            String::new()
        },
        p.rule,
        p.metric.as_str(),
        r.window,
        peak_text(p.peak(), p.capped()),
        p.threshold,
    );
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..span, 0f64..ymax)
        .map_err(draw_err)?;
    c.configure_mesh()
        .x_desc("seconds since the first packet")
        .y_desc(p.metric.as_str())
        .draw()
        .map_err(draw_err)?;
    draw_attacks(&mut c, f, span, ymax)?;
    let thr = p.threshold as f64;
    c.draw_series(LineSeries::new(
        [(0.0, thr), (span, thr)],
        THRESHOLD.stroke_width(2),
    ))
    .map_err(draw_err)?
    .label(format!("threshold {}", p.threshold))
    .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], THRESHOLD.stroke_width(2)));
    for (i, (key, points)) in r.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path = steps(f, points, r.window);
        c.draw_series(LineSeries::new(path, colour.stroke_width(1)))
            .map_err(draw_err)?
            .label(key.to_string())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour.stroke_width(2)));
    }
    draw_bans(&mut c, f, &r.bans, ymax)?;
    c.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Each flood attack of the file as a shaded span from its start to its last crossing.
fn draw_attacks(
    c: &mut Chart<'_, '_>,
    f: &FileReport,
    span: f64,
    ymax: f64,
) -> Result<(), ReportError> {
    for (detector, target, start, end) in &f.attacks {
        let (x0, x1) = (
            secs(f, *start),
            secs(f, *end).max(secs(f, *start) + span / 500.0),
        );
        c.draw_series([Rectangle::new(
            [(x0, 0.0), (x1, ymax)],
            ATTACK.mix(0.15).filled(),
        )])
        .map_err(draw_err)?
        .label(format!("attack on {target} ({detector})"))
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], ATTACK.mix(0.3).filled()));
    }
    Ok(())
}

/// Each ban as a vertical line, with its target.
fn draw_bans(
    c: &mut Chart<'_, '_>,
    f: &FileReport,
    bans: &[(SourceKey, Timestamp)],
    ymax: f64,
) -> Result<(), ReportError> {
    for (key, at) in bans {
        let x = secs(f, *at);
        c.draw_series([PathElement::new(
            [(x, 0.0), (x, ymax)],
            BLACK.stroke_width(1),
        )])
        .map_err(draw_err)?;
        c.draw_series([Text::new(
            format!("ban {key}"),
            (x, ymax * 0.97),
            ("sans-serif", 12),
        )])
        .map_err(draw_err)?;
    }
    Ok(())
}

/// A source's values as a path: each packet's window value, and back to 0 once a window passed
/// without a packet (the window emptied).
fn steps(f: &FileReport, points: &Series, window: Duration) -> Vec<(f64, f64)> {
    let w = window.as_secs_f64();
    let mut path = Vec::with_capacity(points.len() + 8);
    let mut last: Option<f64> = None;
    for &(t, v) in points {
        let x = secs(f, t);
        if let Some(prev) = last
            && x - prev > w
        {
            path.push((prev + w, 0.0));
            path.push((x, 0.0));
        } else if last.is_none() {
            path.push((x, 0.0));
        }
        path.push((x, v as f64));
        last = Some(x);
    }
    if let Some(prev) = last {
        path.push((prev + w, 0.0));
    }
    thin(path)
}

/// At most about two points per pixel column: each run of points keeps its highest (a peak
/// is never drawn lower than it was), so a long capture does not make a huge file.
fn thin(path: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let max = 2 * WIDTH as usize;
    if path.len() <= 2 * max {
        return path;
    }
    let run = path.len().div_ceil(max);
    path.chunks(run)
        .filter_map(|c| c.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)))
        .collect()
}

/// A self-contained HTML page: per file, its peaks table and its charts (inline SVG).
pub fn html(files: &[FileReport]) -> Result<String, ReportError> {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>autoblock replay report</title>\n<style>body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}td.n{text-align:right}</style>\n</head><body>\n<h1>autoblock replay report</h1>\n<p>Per rule: the window values of the sources that went highest, against the threshold (red); vertical lines are bans, orange spans flood attacks. A window value that stops at 2&times;threshold+1 (distinct metrics) is marked +.</p>\n",
    );
    for f in files {
        let _ = write!(
            out,
            "<h2>{}</h2>\n<table><tr><th>rule</th><th>metric</th><th>peak</th><th>threshold</th><th>peak/threshold</th><th>source</th><th>at</th></tr>\n",
            escape(&f.file)
        );
        for r in &f.rules {
            let p = &r.peak;
            let top = p.top.first();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&p.rule),
                p.metric.as_str(),
                peak_text(p.peak(), p.capped()),
                p.threshold,
                escape(&margin(p.peak(), p.threshold, p.capped())),
                top.map_or("-".into(), |t| t.0.to_string()),
                top.map_or("-".into(), |t| t.2.to_string()),
            );
        }
        out.push_str("</table>\n");
        out.push_str(&svg(std::slice::from_ref(f))?);
        out.push('\n');
    }
    out.push_str("</body></html>\n");
    Ok(out)
}

/// Text safe inside HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_thinned_keeping_their_peaks() {
        let path: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64, (i % 977) as f64)).collect();
        let thinned = thin(path);
        assert!(thinned.len() <= 2 * WIDTH as usize + 1, "{}", thinned.len());
        assert_eq!(thinned.iter().map(|p| p.1).fold(0.0, f64::max), 976.0);
        let short = vec![(0.0, 1.0), (1.0, 2.0)];
        assert_eq!(thin(short.clone()), short);
    }
}
