//! What the commands that talk to the running daemon (`status`, `list`, `ban`, `unban`,
//! `explain`) share: where the socket is, one request and its errors, and plain-text tables.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::{CliError, CliResult, OutputFormat, load_config};
use crate::config::duration;
use crate::sys::control::client;
use crate::sys::control::protocol::{Request, Response};

#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// Configuration file, read for `[control] socket` [default: ./rules.toml if present, else
    /// /etc/autoblock/rules.toml]
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The daemon's control socket [default: `[control] socket` of the configuration]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// How long to wait for the daemon's answer
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl RemoteArgs {
    /// `--socket`, else the configuration's. With `--socket` the configuration is not read at
    /// all, so a broken file does not lock the operator out of a daemon that still runs on its
    /// last good one.
    pub fn socket_path(&self) -> Result<PathBuf, CliError> {
        if let Some(socket) = &self.socket {
            return Ok(socket.clone());
        }
        load_config(self.config.as_deref())
            .map(|config| config.control.socket)
            .map_err(|e| e.hint("(or name the daemon's socket with --socket PATH)"))
    }

    /// Sends one request and returns the daemon's answer.
    pub fn call(&self, req: &Request) -> Result<Response, CliError> {
        let path = self.socket_path()?;
        client::request(&path, req, self.timeout).map_err(CliError::runtime)
    }
}

/// For clap: a duration such as `90s`, `10m`, `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text).map_err(|e| e.to_string())
}

/// The error for an answer the command did not ask for (`Error` or another kind).
pub fn unexpected(resp: Response) -> CliError {
    let kind = match resp {
        Response::Error { message } => {
            return CliError::runtime(anyhow::anyhow!("the daemon says: {message}"));
        }
        Response::Status(_) => "status",
        Response::List(_) => "list",
        Response::Banned { .. } => "banned",
        Response::Unbanned { .. } => "unbanned",
        Response::Explain(_) => "explain",
    };
    CliError::runtime(anyhow::anyhow!(
        "unexpected `{kind}` answer from the daemon"
    ))
}

/// Writes `text` to stdout; a closed stdout (`| head`) is not an error worth reporting.
pub fn emit(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Prints `value` as a table (through `render`) or as JSON.
pub fn show<T: serde::Serialize>(
    format: OutputFormat,
    value: &T,
    render: impl Fn(&T) -> String,
) -> CliResult {
    let text = match format {
        OutputFormat::Table => render(value),
        OutputFormat::Json => {
            serde_json::to_string_pretty(value).map_err(CliError::runtime)? + "\n"
        }
    };
    emit(&text);
    Ok(())
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<pad$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `9m12s`-style text for a number of seconds: the largest unit and the one below it.
pub fn human_secs(secs: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let Some(i) = UNITS.iter().position(|&(_, size)| secs >= size) else {
        return "0s".to_owned();
    };
    let (name, size) = UNITS[i];
    let mut text = format!("{}{name}", secs / size);
    if let Some(&(minor_name, minor_size)) = UNITS.get(i + 1) {
        let minor = (secs % size) / minor_size;
        if minor > 0 {
            text.push_str(&format!("{minor}{minor_name}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::{Cli, Command, EXIT_USAGE};
    use clap::Parser;

    fn usage_error(args: &[&str]) -> String {
        let err = Cli::try_parse_from(args).expect_err("usage error");
        assert_eq!(err.exit_code(), EXIT_USAGE, "{err}");
        err.to_string()
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        let text = usage_error(&["autoblock", "ban", "203.0.113.7", "nope"]);
        assert!(
            text.contains("`nope` is not an IP address or CIDR"),
            "{text}"
        );
        let text = usage_error(&["autoblock", "ban", "1.2.3.4", "--for", "10x"]);
        assert!(text.contains("expected a duration such as 90s"), "{text}");
        let text = usage_error(&["autoblock", "ban", "1.2.3.4", "--for", "0s"]);
        assert!(text.contains("a ban lasts at least 1s"), "{text}");
        let text = usage_error(&["autoblock", "ban"]);
        assert!(text.contains("required"), "{text}");
        let text = usage_error(&["autoblock", "unban"]);
        assert!(text.contains("required"), "{text}");
        let text = usage_error(&["autoblock", "explain", "10.0.0.0/8"]);
        assert!(text.contains("`10.0.0.0/8` is not an IP address"), "{text}");
        let text = usage_error(&["autoblock", "list", "--format", "xml"]);
        assert!(text.contains("xml"), "{text}");
        let text = usage_error(&["autoblock", "status", "--timeout", "soon"]);
        assert!(text.contains("found `soon`"), "{text}");
    }

    #[test]
    fn good_arguments_parse() {
        let cli = Cli::try_parse_from([
            "autoblock",
            "ban",
            "203.0.113.7",
            "2001:db8::1/64",
            "--for",
            "1.5s",
            "--reason",
            "abuse",
            "--force",
            "--socket",
            "/tmp/s.sock",
        ])
        .expect("parse");
        let Command::Ban(ban) = cli.command else {
            panic!("not ban: {:?}", cli.command);
        };
        assert_eq!(ban.targets.len(), 2);
        assert_eq!(ban.targets[1].to_string(), "2001:db8::/64");
        assert_eq!(ban.duration, Some(Duration::from_millis(1500)));
        assert!(ban.force);
        assert_eq!(ban.remote.socket, Some(PathBuf::from("/tmp/s.sock")));
        assert_eq!(ban.remote.timeout, Duration::from_secs(30));
        let cli = Cli::try_parse_from(["autoblock", "ban", "--file", "-"]).expect("file only");
        assert!(matches!(cli.command, Command::Ban(b) if b.targets.is_empty()));
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            vec![
                "203.0.113.7".to_owned(),
                "syn-flood".to_owned(),
                "9m".to_owned(),
            ],
            vec!["2001:db8::/64".to_owned(), "x".to_owned(), "1h".to_owned()],
        ];
        assert_eq!(
            table(&["TARGET", "REASON", "LEFT"], &rows),
            "TARGET         REASON     LEFT\n\
             203.0.113.7    syn-flood  9m\n\
             2001:db8::/64  x          1h\n"
        );
    }

    #[test]
    fn human_secs_keeps_two_units() {
        assert_eq!(human_secs(0), "0s");
        assert_eq!(human_secs(59), "59s");
        assert_eq!(human_secs(552), "9m12s");
        assert_eq!(human_secs(3600), "1h");
        assert_eq!(human_secs(3 * 3600 + 12 * 60 + 5), "3h12m");
        assert_eq!(human_secs(86_400 + 60), "1d");
        assert_eq!(human_secs(86_400 + 3600), "1d1h");
    }
}
