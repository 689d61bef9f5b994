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
}

impl TableEdit {
    pub(crate) fn is_noop(&self) -> bool {
        !self.rebuild && self.rules.is_empty() && self.jumps.is_empty()
    }
}

/// Input for `iptables-restore --noflush`: per table, optionally `:CHAIN - [0:0]` (which
/// creates or empties the chain), its rules, then each jump deleted and inserted at 1.
pub(crate) fn restore(chain: &str, edits: &[TableEdit]) -> String {
    let mut out = String::new();
    for edit in edits.iter().filter(|e| !e.is_noop()) {
        let _ = writeln!(out, "*{}", edit.table);
        if edit.rebuild {
            let _ = writeln!(out, ":{chain} - [0:0]");
        }
        for rule in &edit.rules {
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

/// One table's part of a removal: the table, the jumps to delete (hook, copies), and the
/// foreign rules to keep (when there are any, the chain stays, holding only them).
pub(crate) type Removal = (String, Vec<(String, usize)>, Vec<String>);

/// Input for `iptables-restore --noflush` that removes our jumps and our rules from each table,
/// and our chain too unless foreign rules are kept in it.
pub(crate) fn remove(chain: &str, tables: &[Removal]) -> String {
    let mut out = String::new();
    for (table, jumps, keep) in tables {
        let _ = writeln!(out, "*{table}");
        for (hook, n) in jumps {
            for _ in 0..*n {
                let _ = writeln!(out, "-D {hook} -j {chain}");
            }
        }
        if keep.is_empty() {
            let _ = writeln!(out, "-F {chain}\n-X {chain}");
        } else {
            let _ = writeln!(out, ":{chain} - [0:0]");
            for rule in keep {
                let _ = writeln!(out, "{rule}");
            }
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
                    ban_rule("AB", &ban("192.0.2.1/32", 9, "x")),
                ],
                jumps: vec![("INPUT".into(), 2), ("FORWARD".into(), 0)],
            },
            TableEdit {
                table: "raw".into(),
                ..Default::default()
            },
            TableEdit {
                table: "raw".into(),
                rebuild: true,
                rules: vec![match_rule("AB", "ab4")],
                jumps: vec![],
            },
        ];
        assert_eq!(
            restore("AB", &edits),
            "*filter\n\
             :AB - [0:0]\n\
             -A AB -s 10.0.0.0/8 -j ACCEPT\n\
             -A AB -s 192.0.2.1/32 -m comment --comment \"autoblock until=9 rule=x\" -j DROP\n\
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
            (
                "filter".to_string(),
                vec![("INPUT".to_string(), 1), ("FORWARD".to_string(), 2)],
                vec![],
            ),
            (
                "raw".to_string(),
                vec![],
                vec!["-A AB -s 10.0.0.0/8 -j RETURN".to_string()],
            ),
        ];
        assert_eq!(
            remove("AB", &t),
            "*filter\n-D INPUT -j AB\n-D FORWARD -j AB\n-D FORWARD -j AB\n-F AB\n-X AB\nCOMMIT\n\
             *raw\n:AB - [0:0]\n-A AB -s 10.0.0.0/8 -j RETURN\nCOMMIT\n"
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
