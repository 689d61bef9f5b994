//! `autoblock top`: a live view of the running daemon over the control socket, redrawn every
//! second (ratatui on crossterm: raw mode, the alternate screen, redraws of what changed only,
//! resizes; fine over ssh in 80x24). `q`, Esc or Ctrl-C quits. `--once` prints one frame as
//! plain text and exits (two samples `--interval` apart, so rates are real).
//!
//! Each refresh asks `status` (answered from shared counters) and `top` (answered by the
//! engine from a few leaders per rule: no walk of the source table); see `frame.rs` for what
//! is shown.

mod frame;

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Text};
use ratatui::widgets::Paragraph;

use super::remote::{RemoteArgs, emit, parse_duration, unexpected};
use super::{CliError, CliResult};
use crate::sys::control::protocol::{Request, Response, StatusInfo, TopInfo};
use frame::{Row, Sample, Tone};

#[derive(Debug, clap::Args)]
#[command(after_help = "Keys: q, Esc or Ctrl-C quits.\n\n\
Example:\n  sudo autoblock top\n  \
sudo autoblock top --once --width 120 | grep OVER")]
pub struct TopArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Print one frame as plain text and exit (for scripts)
    #[arg(long)]
    pub once: bool,
    /// Time between refreshes (and between the two samples of --once)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_refresh)]
    pub interval: Duration,
    /// Sources shown per rule, and bans
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub sources: usize,
    /// Width of a --once frame (the terminal's own in the live view)
    #[arg(long, value_name = "COLUMNS", default_value_t = 80)]
    pub width: usize,
    /// Height of a --once frame (the terminal's own in the live view)
    #[arg(long, value_name = "LINES", default_value_t = 24)]
    pub height: usize,
}

/// A refresh of at least 100 ms and at most 1 s (the view must move at least once a second).
fn parse_refresh(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(1) {
        return Err("the refresh interval is 100ms to 1s".to_owned());
    }
    Ok(d)
}

/// Runs the command.
pub fn run(args: &TopArgs) -> CliResult {
    if args.once {
        return once(args);
    }
    let mut terminal = ratatui::try_init().map_err(|e| {
        CliError::runtime(anyhow::Error::new(e).context("cannot set up the terminal"))
    })?;
    let result = live(args, &mut terminal);
    let _ = ratatui::try_restore();
    result
}

/// Status, then top: one sample of the daemon.
fn sample(args: &TopArgs) -> Result<(StatusInfo, TopInfo), CliError> {
    let status = match args.remote.call(&Request::Status)? {
        Response::Status(s) => s,
        other => return Err(unexpected(other)),
    };
    let top = match args.remote.call(&Request::Top {
        per_rule: args.sources.max(1),
    })? {
        Response::Top(t) => t,
        other => return Err(unexpected(other)),
    };
    Ok((status, top))
}

fn once(args: &TopArgs) -> CliResult {
    let (first, _) = sample(args)?;
    let taken = Instant::now();
    std::thread::sleep(args.interval);
    let (status, top) = sample(args)?;
    let s = Sample {
        status: &status,
        top: &top,
        before: Some((&first, taken.elapsed().as_secs_f64())),
    };
    emit(&frame::plain(&frame::frame(
        &s,
        args.width.max(40),
        args.height.max(10),
    )));
    Ok(())
}

fn live(args: &TopArgs, terminal: &mut ratatui::DefaultTerminal) -> CliResult {
    let mut before: Option<(StatusInfo, Instant)> = None;
    loop {
        let (status, top) = sample(args)?;
        let prev = before
            .as_ref()
            .map(|(s, at)| (s, at.elapsed().as_secs_f64()));
        let s = Sample {
            status: &status,
            top: &top,
            before: prev,
        };
        terminal
            .draw(|f| {
                let area = f.area();
                let rows = frame::frame(&s, usize::from(area.width), usize::from(area.height));
                f.render_widget(Paragraph::new(styled(&rows)), area);
            })
            .map_err(|e| CliError::runtime(anyhow::Error::new(e).context("cannot draw")))?;
        before = Some((status, Instant::now()));
        if wait_for_quit(args.interval)? {
            return Ok(());
        }
    }
}

/// Waits up to `limit` for a key; true when it asks to quit.
fn wait_for_quit(limit: Duration) -> Result<bool, CliError> {
    let deadline = Instant::now() + limit;
    let io = |e: std::io::Error| CliError::runtime(anyhow::Error::new(e).context("terminal"));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !event::poll(left).map_err(io)? {
            return Ok(false);
        }
        if let Event::Key(k) = event::read().map_err(io)?
            && k.kind == KeyEventKind::Press
        {
            let ctrl_c =
                k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
            if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                return Ok(true);
            }
        }
    }
}

fn styled(rows: &[Row]) -> Text<'static> {
    let lines: Vec<Line<'static>> = rows
        .iter()
        .map(|r| {
            let style = match r.tone {
                Tone::Heading => Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED),
                Tone::Plain => Style::default(),
                Tone::Alert => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            };
            Line::styled(r.text.clone(), style)
        })
        .collect();
    let mut text = Text::from(lines);
    text.push_line(Line::styled(
        "q quit",
        Style::default().add_modifier(Modifier::DIM),
    ));
    text
}
