//! Restore text (pure): `iptables-restore --noflush` input for appends, chain rebuilds, jump
//! fixes and removal, and `ipset restore` input. Every value that reaches this text is typed
//! (nets, numbers) or already validated (chain, hook and set names; reasons without `"` or
//! control characters, escaped for iptables where needed).

use std::fmt::Write;

use super::ban::{Ban, RuleEntry};
use super::rule::Rule;
use super::rule_text::entry_lines;

/// The kernel's largest ipset timeout, in seconds.
pub(crate) const IPSET_MAX_TIMEOUT: u64 = 2_147_483;

/// `-A CHAIN -s NET -m comment --comment "autoblock until=U rule=R" -j DROP`
pub(crate) fn ban_rule(chain: &str, ban: &Ban) -> String {
    entry_lines(chain, &Rule::from(ban.net), ban.until, &ban.reason).concat()
}

/// `-A CHAIN -s NET -j DROP`: a ban in a bucket chain that takes its end time and reason from
/// the commented ban before it (see [`ban_chains`](super::ban_chains)).
pub(crate) fn bare_ban_rule(chain: &str, net: &ipnet::IpNet) -> String {
    format!("-A {chain} -s {net} -j DROP")
}

/// The `-A` lines of a typed rule (two for [`Action::LogAndDrop`](super::Action::LogAndDrop)).
pub(crate) fn typed_rule(chain: &str, e: &RuleEntry) -> Vec<String> {
    entry_lines(chain, &e.rule, e.until, &e.reason)
}

/// `-A CHAIN -m set --match-set SET src -j DROP`
pub(crate) fn match_rule(chain: &str, set: &str) -> String {
    format!("-A {chain} -m set --match-set {set} src -j DROP")
}

/// What one restore call does to one table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TableEdit {
    pub(crate) table: String,
    /// Declare (create or empty) our chain before the rules: a rebuild.
    pub(crate) rebuild: bool,
    /// `-A` lines for our chain (the whole chain when rebuilding, else appended).
    pub(crate) rules: Vec<String>,
    /// Jumps to put at position 1: (hook, how many existing copies to delete first).
    pub(crate) jumps: Vec<(String, usize)>,
    /// Lines for our private ban chains, before our chain's (it may jump to them).
    pub(crate) before: Vec<String>,
    /// Lines after our chain's: private chains it no longer jumps to, emptied.
    pub(crate) after: Vec<String>,
    /// Private chains to delete once this edit is applied, best effort (in a call of their
    /// own: someone else's jump to one must not make the edit fail).
    pub(crate) delete: Vec<String>,
}

impl TableEdit {
    pub(crate) fn is_noop(&self) -> bool {
        !self.rebuild
            && self.rules.is_empty()
            && self.jumps.is_empty()
            && self.before.is_empty()
            && self.after.is_empty()
            && self.delete.is_empty()
    }
}

/// Input for `iptables-restore --noflush` deleting `names` in `table`.
pub(crate) fn delete_chains(table: &str, names: &[String]) -> String {
    let mut out = format!("*{table}\n");
    for name in names {
        let _ = writeln!(out, "-X {name}");
    }
    out.push_str("COMMIT\n");
    out
}

/// Input for `iptables-restore --noflush`: per table, the private chains' lines, optionally
/// `:CHAIN - [0:0]` (which creates or empties the chain), its rules, the lines after them,
/// then each jump deleted and inserted at 1.
pub(crate) fn restore(chain: &str, edits: &[TableEdit]) -> String {
    let mut out = String::new();
    for edit in edits.iter().filter(|e| !e.is_noop()) {
        let _ = writeln!(out, "*{}", edit.table);
        for line in &edit.before {
            out.push_str(line);
            out.push('\n');
        }
        if edit.rebuild {
            let _ = writeln!(out, ":{chain} - [0:0]");
        }
        for rule in edit.rules.iter().chain(&edit.after) {
            out.push_str(rule);
            out.push('\n');
        }
        for (hook, delete) in &edit.jumps {
            for _ in 0..*delete {
                let _ = writeln!(out, "-D {hook} -j {chain}");
            }
            let _ = writeln!(out, "-I {hook} 1 -j {chain}");
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// One table's part of a removal.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Removal {
    pub(crate) table: String,
    /// Jumps to our chain to delete: (hook, copies).
    pub(crate) jumps: Vec<(String, usize)>,
    /// Our chain is in this table.
    pub(crate) has_chain: bool,
    /// Foreign rules to keep: when there are any, our chain stays, holding only them.
    pub(crate) keep: Vec<String>,
    /// Our private ban chains in this table, all deleted.
    pub(crate) private: Vec<String>,
}

/// Input for `iptables-restore --noflush` that removes our jumps, our rules and our private
/// chains from each table, and our chain too unless foreign rules are kept in it.
pub(crate) fn remove(chain: &str, tables: &[Removal]) -> String {
    let mut out = String::new();
    for r in tables {
        let _ = writeln!(out, "*{}", r.table);
        for (hook, n) in &r.jumps {
            for _ in 0..*n {
                let _ = writeln!(out, "-D {hook} -j {chain}");
            }
        }
        if r.has_chain && r.keep.is_empty() {
            let _ = writeln!(out, "-F {chain}\n-X {chain}");
        } else if r.has_chain {
            let _ = writeln!(out, ":{chain} - [0:0]");
            for rule in &r.keep {
                let _ = writeln!(out, "{rule}");
            }
        }
        // Emptied first (the dispatch chain jumps to the others), then deleted.
        for name in &r.private {
            let _ = writeln!(out, ":{name} - [0:0]");
        }
        for name in &r.private {
            let _ = writeln!(out, "-X {name}");
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// `create NAME hash:net family inet|inet6 timeout 0 comment maxelem N`
pub(crate) fn ipset_create(name: &str, inet: &str, maxelem: u32) -> String {
    format!("create {name} hash:net family {inet} timeout 0 comment maxelem {maxelem}\n")
}

/// `add SET NET timeout T comment "R"`, T = seconds from `now` to the ban's end, 1..=max. The
/// reason goes in raw: ipset takes everything between the quotes literally.
pub(crate) fn ipset_add(set: &str, ban: &Ban, now: u64) -> String {
    let timeout = ban.until.saturating_sub(now).clamp(1, IPSET_MAX_TIMEOUT);
    format!(
        "add {set} {} timeout {timeout} comment \"{}\"\n",
        ban.net, ban.reason
    )
}

/// `del SET NET`
pub(crate) fn ipset_del(set: &str, net: &ipnet::IpNet) -> String {
    format!("del {set} {net}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::ban;

    #[test]
    fn append_text() {
        let edit = TableEdit {
            table: "filter".into(),
            rules: vec![
                ban_rule("AUTOBLOCK", &ban("203.0.113.7/32", 1795566000, "syn-flood")),
                ban_rule("AUTOBLOCK", &ban("2001:db8:bad::/48", 1795566001, "feed")),
            ],
            ..Default::default()
        };
        assert_eq!(
            restore("AUTOBLOCK", &[edit]),
            "*filter\n\
             -A AUTOBLOCK -s 203.0.113.7/32 -m comment --comment \"autoblock until=1795566000 rule=syn-flood\" -j DROP\n\
             -A AUTOBLOCK -s 2001:db8:bad::/48 -m comment --comment \"autoblock until=1795566001 rule=feed\" -j DROP\n\
             COMMIT\n"
        );
    }

    #[test]
    fn rebuild_text_with_foreign_rules_and_jump_fixes() {
        let edits = [
            TableEdit {
                table: "filter".into(),
                rebuild: true,
                rules: vec![
                    "-A AB -s 10.0.0.0/8 -j ACCEPT".into(),
                    "-A AB -j AB.bans".into(),
                ],
                jumps: vec![("INPUT".into(), 2), ("FORWARD".into(), 0)],
                before: vec![
                    ":AB.0 - [0:0]".into(),
                    ban_rule("AB.0", &ban("192.0.2.1/32", 9, "x")),
                ],
                after: vec![":AB.1 - [0:0]".into()],
                delete: vec!["AB.1".into()],
            },
            TableEdit {
                table: "raw".into(),
                ..Default::default()
            },
            TableEdit {
                table: "raw".into(),
                rebuild: true,
                rules: vec![match_rule("AB", "ab4")],
                ..Default::default()
            },
        ];
        assert_eq!(
            restore("AB", &edits),
            "*filter\n\
             :AB.0 - [0:0]\n\
             -A AB.0 -s 192.0.2.1/32 -m comment --comment \"autoblock until=9 rule=x\" -j DROP\n\
             :AB - [0:0]\n\
             -A AB -s 10.0.0.0/8 -j ACCEPT\n\
             -A AB -j AB.bans\n\
             :AB.1 - [0:0]\n\
             -D INPUT -j AB\n\
             -D INPUT -j AB\n\
             -I INPUT 1 -j AB\n\
             -I FORWARD 1 -j AB\n\
             COMMIT\n\
             *raw\n\
             :AB - [0:0]\n\
             -A AB -m set --match-set ab4 src -j DROP\n\
             COMMIT\n"
        );
    }

    #[test]
    fn empty_rebuild_still_declares_chain() {
        let e = TableEdit {
            table: "filter".into(),
            rebuild: true,
            ..Default::default()
        };
        assert_eq!(restore("AB", &[e]), "*filter\n:AB - [0:0]\nCOMMIT\n");
    }

    #[test]
    fn remove_text() {
        let t = vec![
            Removal {
                table: "filter".to_string(),
                jumps: vec![("INPUT".to_string(), 1), ("FORWARD".to_string(), 2)],
                has_chain: true,
                private: vec!["AB.bans".to_string(), "AB.3584a1c".to_string()],
                ..Default::default()
            },
            Removal {
                table: "raw".to_string(),
                has_chain: true,
                keep: vec!["-A AB -s 10.0.0.0/8 -j RETURN".to_string()],
                ..Default::default()
            },
            Removal {
                table: "mangle".to_string(),
                private: vec!["AB.bans".to_string()],
                ..Default::default()
            },
        ];
        assert_eq!(
            remove("AB", &t),
            "*filter\n-D INPUT -j AB\n-D FORWARD -j AB\n-D FORWARD -j AB\n-F AB\n-X AB\n\
             :AB.bans - [0:0]\n:AB.3584a1c - [0:0]\n-X AB.bans\n-X AB.3584a1c\nCOMMIT\n\
             *raw\n:AB - [0:0]\n-A AB -s 10.0.0.0/8 -j RETURN\nCOMMIT\n\
             *mangle\n:AB.bans - [0:0]\n-X AB.bans\nCOMMIT\n"
        );
    }

    #[test]
    fn ipset_text() {
        assert_eq!(
            ipset_create("autoblock6", "inet6", 200000),
            "create autoblock6 hash:net family inet6 timeout 0 comment maxelem 200000\n"
        );
        assert_eq!(
            ipset_add(
                "autoblock4",
                &ban("203.0.113.7/32", 1600, "login-abuse"),
                1000
            ),
            "add autoblock4 203.0.113.7/32 timeout 600 comment \"login-abuse\"\n"
        );
        // Never 0 (which would mean permanent), never past the kernel's limit.
        assert!(ipset_add("s", &ban("10.0.0.0/8", 5, "x"), 9).contains(" timeout 1 "));
        assert!(ipset_add("s", &ban("10.0.0.0/8", u64::MAX, "x"), 0).contains(" timeout 2147483 "));
        assert_eq!(
            ipset_del("autoblock6", &"2001:db8:bad::/48".parse().unwrap()),
            "del autoblock6 2001:db8:bad::/48\n"
        );
    }
}
