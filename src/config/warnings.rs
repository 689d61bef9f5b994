//! What is valid but probably not meant: an empty file, a rule that another rule always beats
//! to the ban, an aggregation prefix so short that one ban covers millions of addresses. A
//! warning never stops a start or a reload; `check` prints each one and the daemon logs them.

use super::error::{Problem, line_col};
use super::{Config, Rule, RuleMode};

/// The warnings for a valid `config` read from `text`.
pub(super) fn warnings(config: &Config, text: &str, file: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let warn = |position, key: String, message: String| Problem {
        file: file.to_owned(),
        position,
        key,
        message,
    };
    if is_empty(text) {
        out.push(warn(
            None,
            String::new(),
            "the file is empty: every default applies and there is no [[rule]], so nothing is detected".into(),
        ));
    }
    for (j, r) in config.rules.iter().enumerate() {
        let key = format!("rule[{}] ({})", j + 1, r.name);
        let at = name_position(text, &r.name);
        if let Some((i, s)) = config
            .rules
            .iter()
            .enumerate()
            .find(|&(i, s)| i != j && shadows(s, i, r, j))
        {
            let message = format!(
                "rule[{}] ({}) counts the same packets and needs no more ({} > {} over {} against {} > {} over {}), so it always fires first: {} can never start a ban, only extend one. Give {} a lower threshold over a shorter window, or remove it",
                i + 1,
                s.name,
                s.metric.as_str(),
                s.threshold,
                super::duration::format(s.window),
                r.metric.as_str(),
                r.threshold,
                super::duration::format(r.window),
                r.name,
                r.name,
            );
            out.push(warn(at, key.clone(), message));
        }
        for (len, min, family, key_name) in [
            (r.aggregate_v4, 8, 32, "aggregate_v4"),
            (r.aggregate_v6, 16, 128, "aggregate_v6"),
        ] {
            if len < min {
                let message = format!(
                    "{key_name} = {len}: one ban covers a /{len}, 2^{} addresses",
                    family - len
                );
                out.push(warn(at, format!("{key}.{key_name}"), message));
            }
        }
    }
    out
}

/// True when `s` (rule `i`) always fires before `r` (rule `j`) for every source: it counts the
/// same packets under the same key, exempts nothing `r` counts, bans, and reaches its
/// threshold no later (a threshold no higher over a window no shorter; the first in file
/// order wins a tie, as the engine evaluates them in that order).
fn shadows(s: &Rule, i: usize, r: &Rule, j: usize) -> bool {
    let same_packets = s.protocol == r.protocol
        && s.tcp_flags == r.tcp_flags
        && s.dst_ports == r.dst_ports
        && s.metric == r.metric
        && s.skip_replies == r.skip_replies
        && (s.ban_verified_peers || !r.ban_verified_peers)
        && s.aggregate_v4 == r.aggregate_v4
        && s.aggregate_v6 == r.aggregate_v6;
    let exempts_less = s
        .exempt
        .iter()
        .all(|n| r.exempt.iter().any(|m| m.contains(n)));
    let sooner = s.threshold <= r.threshold && s.window >= r.window;
    let tie = s.threshold == r.threshold && s.window == r.window;
    same_packets && exempts_less && s.mode == RuleMode::Enforce && sooner && (!tie || i < j)
}

/// No key, table or value: blank lines and comments only.
fn is_empty(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    })
}

/// Line and column of `name = "NAME"`, for a warning about that rule.
fn name_position(text: &str, name: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("name")
            && let Some(value) = rest.trim_start().strip_prefix('=')
        {
            let value = value.trim();
            let value = value.split('#').next().unwrap_or("").trim();
            if value.trim_matches(|c| c == '"' || c == '\'') == name {
                return Some(line_col(text, offset + (line.len() - t.len())));
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn warnings(text: &str) -> Vec<String> {
        let c = super::super::parse_str(text, Path::new("r.toml")).expect("valid");
        c.warnings.iter().map(ToString::to_string).collect()
    }

    const RULES: &str = r#"
[[rule]]
name = "flood"
protocol = "tcp"
tcp_flags = "syn"
metric = "packets"
threshold = 1000
window = "1s"

[[rule]]
name = "burst"
protocol = "tcp"
tcp_flags = "syn"
metric = "packets"
threshold = 28
window = "1s"
"#;

    #[test]
    fn a_rule_another_rule_always_beats_is_named() {
        let w = warnings(RULES);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            w[0].starts_with(
                "r.toml:3:1: rule[1] (flood): rule[2] (burst) counts the same packets"
            ),
            "{}",
            w[0]
        );
        assert!(w[0].contains("flood can never start a ban"), "{}", w[0]);
        // A shorter window with a lower threshold fires first on a fast flood: no warning.
        let fixed = RULES
            .replace("threshold = 1000", "threshold = 20")
            .replace("window = \"1s\"\n\n", "window = \"100ms\"\n\n");
        assert!(warnings(&fixed).is_empty(), "{:#?}", warnings(&fixed));
        // In log mode the shadowing rule bans nothing.
        let log = RULES.replace("threshold = 28", "threshold = 28\nmode = \"log\"");
        assert!(warnings(&log).is_empty());
    }

    #[test]
    fn an_empty_file_and_short_prefixes_are_warned_about() {
        assert_eq!(
            warnings("# nothing here\n\n"),
            [
                "r.toml: the file is empty: every default applies and there is no [[rule]], so nothing is detected"
            ]
        );
        let short = "[[rule]]\nname = \"x\"\nmetric = \"packets\"\nthreshold = 5\nwindow = \"1s\"\naggregate_v4 = 4\n";
        assert_eq!(
            warnings(short),
            [
                "r.toml:2:1: rule[1] (x).aggregate_v4: aggregate_v4 = 4: one ban covers a /4, 2^28 addresses"
            ]
        );
    }
}
