//! What the commands that talk to the running daemon (`status`, `list`, `ban`, `unban`,
//! `explain`, `reload`, `top`) share: where the socket is (never failing on the configuration
//! file), one request and its errors, and plain-text tables.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::{CliError, CliResult, OutputFormat};
use crate::config::{DEFAULT_SOCKET, duration};
use crate::sys::control::client;
use crate::sys::control::protocol::{Request, Response};

#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// Configuration file, read for `[control] socket` only (an invalid or missing file falls
    /// back to /run/autoblock/autoblock.sock) [default: ./rules.toml if present, else
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
    /// `--socket`, else `[control] socket` of the configuration, else the default socket. A
    /// client command needs nothing else from the file, so a file that is invalid elsewhere
    /// still gives its socket (read from the TOML directly), and a missing or unreadable one
    /// falls back to the default: a broken file never locks the operator out of a daemon that
    /// still runs on its last good one. Returns the path and, after a fallback, why.
    pub fn socket_path(&self) -> (PathBuf, Option<String>) {
        if let Some(socket) = &self.socket {
            return (socket.clone(), None);
        }
        let path = self
            .config
            .clone()
            .unwrap_or_else(crate::config::default_path);
        socket_of(&path)
    }

    /// Sends one request and returns the daemon's answer. When the socket came from a
    /// fallback and nobody answers, the error says so.
    pub fn call(&self, req: &Request) -> Result<Response, CliError> {
        let (path, fallback) = self.socket_path();
        client::request(&path, req, self.timeout).map_err(|e| {
            let error = CliError::runtime(e);
            match fallback {
                Some(why) => error.hint(format!(
                    "({why}, so the default socket was tried; name the daemon's socket with --socket PATH)"
                )),
                None => error,
            }
        })
    }
}

/// `[control] socket` of the configuration at `path`, read as leniently as possible.
fn socket_of(path: &std::path::Path) -> (PathBuf, Option<String>) {
    let default = PathBuf::from(DEFAULT_SOCKET);
    match crate::config::load(path) {
        Ok(config) => return (config.control.socket, None),
        Err(crate::config::ConfigError::Read { .. }) => {
            return (
                default,
                Some(format!("{} could not be read", path.display())),
            );
        }
        Err(crate::config::ConfigError::Invalid { .. }) => {}
    }
    // Invalid elsewhere: the socket key alone may still be fine.
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let socket = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("control")?.get("socket")?.as_str().map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty());
    match socket {
        Some(socket) => (socket, None),
        None => (default, Some(format!("{} is not valid", path.display()))),
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
        Response::Reloaded(_) => "reloaded",
        Response::Top(_) => "top",
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
    fn the_socket_never_depends_on_a_valid_configuration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rules.toml");
        let missing = socket_of(&path);
        assert_eq!(missing.0, PathBuf::from(DEFAULT_SOCKET));
        assert!(
            missing
                .1
                .is_some_and(|why| why.ends_with("could not be read"))
        );
        // Invalid elsewhere (a zero threshold), its socket is still read.
        let invalid = "[control]\nsocket = \"/tmp/x.sock\"\n[[rule]]\nname = \"a\"\nmetric = \"packets\"\nthreshold = 0\nwindow = \"1s\"\n";
        std::fs::write(&path, invalid).expect("write");
        assert_eq!(socket_of(&path), (PathBuf::from("/tmp/x.sock"), None));
        std::fs::write(&path, "[control\n").expect("write");
        let broken = socket_of(&path);
        assert_eq!(broken.0, PathBuf::from(DEFAULT_SOCKET));
        assert!(broken.1.is_some_and(|why| why.ends_with("is not valid")));
        std::fs::write(&path, "[control]\nsocket = \"/tmp/y.sock\"\n").expect("write");
        assert_eq!(socket_of(&path), (PathBuf::from("/tmp/y.sock"), None));
    }

    #[test]
    fn every_format_option_is_documented() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let mut seen = 0;
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments().filter(|a| a.get_id() == "format") {
                seen += 1;
                assert!(
                    arg.get_help().is_some_and(|h| !h.to_string().is_empty()),
                    "`{} --format` has no help text",
                    sub.get_name()
                );
            }
        }
        assert!(seen >= 4, "only {seen} --format options");
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
