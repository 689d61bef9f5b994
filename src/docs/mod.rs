//! The manual pages, generated from the sources they describe so that they cannot drift:
//! autoblock(8) and one page per subcommand from the CLI definition (the same text as
//! `--help`, via clap_mangen), with FILES, SIGNALS, EXIT STATUS, EVENTS (from [`events`], which
//! also makes the README's table) and SEE ALSO; autoblock-rules.toml(5) from [`keys`] (checked
//! against the raw config structs). `make assets` writes them (`examples/gen_docs.rs`); a test
//! compares the packaged pages with a fresh generation.

pub mod events;
pub mod keys;

use clap::CommandFactory;
use roff::{Roff, bold, italic, roman};

use crate::cli::{Cli, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE};

/// Section of the command pages: system administration commands.
const SECTION: &str = "8";
/// The configuration file's page.
pub const RULES_PAGE: &str = "autoblock-rules.toml";

/// Every page: (path under a MANPATH directory such as `man8/autoblock.8`, roff text).
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = vec![(format!("man{SECTION}/autoblock.{SECTION}"), main_page(&cmd))];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = clap_mangen::Man::new(sub.clone())
            .section(SECTION)
            .source(format!("autoblock {}", env!("CARGO_PKG_VERSION")));
        let mut buf = Vec::new();
        // Rendering into memory cannot fail.
        let _ = man.render(&mut buf);
        let name = man.get_filename();
        let mut page = String::from_utf8_lossy(&buf).into_owned();
        page.push_str(&see_also(&["autoblock(8)", &format!("{RULES_PAGE}(5)")]));
        pages.push((format!("man{SECTION}/{name}"), page.into_bytes()));
    }
    pages.push((format!("man5/{RULES_PAGE}.5"), rules_page()));
    pages
}

fn main_page(cmd: &clap::Command) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd.clone()).section(SECTION);
    let mut buf = Vec::new();
    let _ = man.render_title(&mut buf);
    let _ = man.render_name_section(&mut buf);
    let _ = man.render_synopsis_section(&mut buf);
    let _ = man.render_description_section(&mut buf);
    buf.extend(overview().render().into_bytes());
    let _ = man.render_subcommands_section(&mut buf);
    let mut r = Roff::new();
    exit_status(&mut r);
    files(&mut r);
    signals(&mut r);
    events_section(&mut r);
    environment(&mut r);
    buf.extend(r.render().into_bytes());
    let mut subs: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| format!("autoblock-{}({SECTION})", s.get_name()))
        .collect();
    subs.push(format!("{RULES_PAGE}(5)"));
    for other in [
        "iptables(8)",
        "ipset(8)",
        "systemctl(1)",
        "journalctl(1)",
        "jq(1)",
    ] {
        subs.push(other.to_owned());
    }
    let refs: Vec<&str> = subs.iter().map(String::as_str).collect();
    buf.extend(see_also(&refs).into_bytes());
    buf
}

fn overview() -> Roff {
    let mut r = Roff::new();
    r.control("PP", [] as [&str; 0]).text([roman(
        "The daemon (autoblock run) captures packets with libpcap, counts per source what each \
         [[rule]] of rules.toml matches within a sliding window, and bans a source whose count \
         goes over a threshold with an expiring DROP rule in a chain of its own, or an entry in \
         an ipset set. Every decision is a JSON event line. autoblock replay runs the same engine \
         over capture files (through the same bpf_filter), to tune thresholds before trusting \
         them live: it shows the highest value each rule saw and from which source, and with \
         --report draws it against the threshold; autoblock top, \
         status, list, explain, ban, unban and reload talk to the running daemon over its \
         control socket.",
    )]);
    r
}

fn exit_status(r: &mut Roff) {
    r.control("SH", ["EXIT STATUS"]);
    for (code, text) in [
        (EXIT_OK, "Success."),
        (
            EXIT_RUNTIME,
            "A runtime error: I/O, a capture file not read to the end, no daemon answering, a \
             firewall command that failed, a target that was not banned.",
        ),
        (
            EXIT_USAGE,
            "A usage or configuration error: bad arguments, an invalid, missing or directory \
             configuration file, a reload the daemon refused.",
        ),
    ] {
        r.control("TP", [] as [&str; 0])
            .text([bold(code.to_string())])
            .text([roman(text)]);
    }
}

fn files(r: &mut Roff) {
    r.control("SH", ["FILES"]);
    for (path, text) in [
        (
            "/etc/autoblock/rules.toml",
            "The configuration (see autoblock-rules.toml(5)); ./rules.toml is used instead when \
             it exists in the working directory and no --config is given.",
        ),
        (
            "/run/autoblock/autoblock.sock",
            "The control socket ([control] socket), mode 0600: the CLI talks to the daemon here.",
        ),
        (
            "/run/autoblock/autoblock.lock",
            "Held by the running daemon: one daemon per socket.",
        ),
        (
            "/var/lib/autoblock/state.json",
            "Offense history and manual bans across restarts ([state] dir).",
        ),
        (
            "/var/log/autoblock/events.jsonl",
            "Events of the packaged service, one JSON object per line ([events] file); rotated \
             by /etc/logrotate.d/autoblock.",
        ),
        (
            "/lib/systemd/system/autoblock.service",
            "The unit: ExecStartPre is autoblock check, ExecReload is autoblock reload.",
        ),
    ] {
        r.control("TP", [] as [&str; 0])
            .text([italic(path)])
            .text([roman(text)]);
    }
}

fn signals(r: &mut Roff) {
    r.control("SH", ["SIGNALS"]);
    for (sig, text) in [
        (
            "SIGHUP",
            "Reload rules.toml and reopen the events file, as autoblock reload does but without \
             an answer: an invalid file keeps the previous configuration running (a \
             reload_failed event; autoblock status shows it); a change of interfaces, backend, \
             chain, hooks and a few other keys needs a restart and is refused.",
        ),
        (
            "SIGTERM, SIGINT",
            "Stop: the captures end, the state is saved, and the bans stay in the kernel \
             (keep_on_exit = true) for the next start to adopt, or are removed \
             (keep_on_exit = false).",
        ),
    ] {
        r.control("TP", [] as [&str; 0])
            .text([bold(sig)])
            .text([roman(text)]);
    }
}

fn events_section(r: &mut Roff) {
    r.control("SH", ["EVENTS"]);
    r.text([roman(
        "One JSON object per line on standard output (and appended to [events] file): ts \
         first, then event (the kind), then the kind's fields in a fixed order. Fields in \
         brackets appear only when they apply; ip is an address, or a CIDR when the rule \
         aggregates.",
    )]);
    for d in events::EVENTS {
        r.control("TP", [] as [&str; 0])
            .text([bold(plain(d.kind))])
            .text([roman(plain(d.fields))]);
    }
}

fn environment(r: &mut Roff) {
    r.control("SH", ["ENVIRONMENT"]);
    r.control("TP", [] as [&str; 0])
        .text([bold("AUTOBLOCK_LOG")])
        .text([roman(
            "Log filter for standard error (tracing's syntax: error, warn, info, debug, or \
             per module); info for the daemon, warn for the other commands.",
        )]);
}

/// `.SH SEE ALSO` with the references in bold.
fn see_also(refs: &[&str]) -> String {
    let mut r = Roff::new();
    r.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, name) in refs.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(*name));
    }
    r.text(line);
    r.render()
}

/// Markdown code spans to plain text.
fn plain(text: &str) -> String {
    text.replace('`', "")
}

fn rules_page() -> Vec<u8> {
    let mut r = Roff::new();
    r.control("TH", [&RULES_PAGE.to_uppercase(), "5"]);
    r.control("SH", ["NAME"]);
    r.text([roman(format!(
        "{RULES_PAGE} - the configuration of autoblock(8)"
    ))]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([italic("/etc/autoblock/rules.toml")]);
    r.control("SH", ["DESCRIPTION"]);
    r.text([roman(
        "A TOML file. Every table and key is optional and has the default shown; without any \
         [[rule]] or [[flood]] nothing is detected. Durations are strings such as \"100ms\", \"90s\", \
         \"10m\", \"2h\" or \"1d\" (decimals such as \"1.5s\" work). autoblock check reports \
         every problem at once with its line, column and key (rules are named rule[N] (name) and \
         detectors flood[N] (name), counted from 1), compiles bpf_filter with libpcap, and warns about what is valid but \
         probably not meant: an empty file, a rule another rule always beats to the ban, a very \
         short aggregation prefix.",
    )]);
    let mut section = "";
    for key in keys::KEYS {
        if key.section != section {
            section = key.section;
            let title = match section {
                "rule" => "[[rule]] (one table per rule)".to_owned(),
                "flood" => "[[flood]] (one table per flood detector)".to_owned(),
                _ => format!("[{section}]"),
            };
            r.control("SS", [title.as_str()]);
        }
        r.control("TP", [] as [&str; 0])
            .text([bold(key.key), roman(format!(" = {}", key.default))])
            .text([roman(key.text)]);
    }
    r.control("SH", ["EXAMPLE"]);
    r.text([roman(
        "A source opening more than 300 HTTP(S) connections in 10 seconds is banned for an \
         hour, its whole /24 (IPv4) or /64 (IPv6) counted as one source; the office network is \
         exempt from this rule; the rule is tried in log mode first:",
    )]);
    r.control("PP", [] as [&str; 0])
        .control("nf", [] as [&str; 0]);
    for line in EXAMPLE.lines() {
        r.text([roman(line)]);
    }
    r.control("fi", [] as [&str; 0]);
    let mut out = r.render();
    out.push_str(&see_also(&[
        "autoblock(8)",
        "autoblock-check(8)",
        "autoblock-reload(8)",
    ]));
    out.into_bytes()
}

const EXAMPLE: &str = r#"[allow]
nets = ["127.0.0.0/8", "::1/128", "192.0.2.0/24"]

[[rule]]
name = "http-conn-flood"
protocol = "tcp"
tcp_flags = "syn"
dst_ports = [80, 443, "8000-8100"]
metric = "packets"
threshold = 300
window = "10s"
ban = "1h"
aggregate_v4 = 24
aggregate_v6 = 64
exempt = ["198.51.100.0/24"]
mode = "log""#;

#[cfg(test)]
mod tests {
    use super::*;

    fn page(name: &str) -> String {
        man_pages()
            .into_iter()
            .find(|(p, _)| p.ends_with(name))
            .map(|(_, text)| String::from_utf8_lossy(&text).into_owned())
            .unwrap_or_else(|| panic!("no page {name}"))
    }

    #[test]
    fn the_main_page_has_every_section() {
        let text = page("/autoblock.8");
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH \"EXIT STATUS\"",
            ".SH FILES",
            ".SH SIGNALS",
            ".SH EVENTS",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(text.contains(section), "{section} missing");
        }
        assert!(text.contains("autoblock\\-rules.toml(5)"), "{text}");
    }

    #[test]
    fn every_event_kind_is_in_the_events_section() {
        let text = page("/autoblock.8");
        let events = &text[text.find(".SH EVENTS").unwrap_or(0)..];
        for d in events::EVENTS {
            for kind in d.kind.split(", ") {
                let kind = plain(kind).replace(" (replay)", "");
                assert!(
                    events.contains(&kind.replace('-', "\\-")),
                    "event {kind} missing"
                );
            }
        }
    }

    #[test]
    fn the_readme_events_table_is_the_generated_one() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&events::markdown()),
            "README.md's events table differs from docs::events::markdown():\n{}",
            events::markdown()
        );
    }

    #[test]
    fn every_config_key_is_in_the_rules_page_with_its_default() {
        let text = page("/autoblock-rules.toml.5");
        for s in crate::config::keys::sections() {
            for key in s.keys {
                assert!(
                    text.contains(&format!("\\fB{key}\\fR")),
                    "key {key} missing"
                );
            }
        }
        assert!(text.contains("[[rule]]"), "{text}");
        // The example in the page is a valid configuration.
        crate::config::parse_str(EXAMPLE, std::path::Path::new("example.toml"))
            .expect("the example is valid");
    }

    #[test]
    fn every_subcommand_has_a_page_that_points_back() {
        let pages = man_pages();
        for sub in Cli::command().get_subcommands() {
            let name = format!("man8/autoblock-{}.8", sub.get_name());
            let (_, text) = pages
                .iter()
                .find(|(p, _)| *p == name)
                .unwrap_or_else(|| panic!("no {name}"));
            assert!(String::from_utf8_lossy(text).contains(".SH \"SEE ALSO\""));
        }
    }
}
