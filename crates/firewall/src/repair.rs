//! [`Repair`]: one thing [`Firewall::check_and_repair`](super::Firewall::check_and_repair) found
//! missing and put back (its `Display` is a short sentence for logs and `repaired` events), the
//! check itself (our chains entry by entry, the sets by count). Removal of everything is `flush.rs`.

use std::fmt;

use super::ban::{Ban, Family};
use super::engine::State;
use super::parse::{self, TableState};
use super::render::{self, TableEdit};
use super::{Firewall, FirewallError};

/// One repair made by [`Firewall::check_and_repair`](super::Firewall::check_and_repair).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repair {
    /// Our chain was missing from `table` and was created again with all its rules.
    ChainRecreated {
        /// Which tool's tables.
        family: Family,
        /// The table (`filter`, `raw`, `mangle`).
        table: String,
    },
    /// Our chain held fewer or more of our rules than we hold entries (flushed or edited); it
    /// was rebuilt with `rules` of them (ban rules with the iptables backend, plus typed rules).
    ChainRebuilt {
        /// Which tool's tables.
        family: Family,
        /// The table.
        table: String,
        /// Entries the chain holds now.
        rules: usize,
    },
    /// The `--match-set` rule was missing or duplicated and was put back once (ipset backend).
    MatchRuleRestored {
        /// Which tool's tables.
        family: Family,
        /// The table.
        table: String,
    },
    /// The jump from `hook` to our chain was missing, duplicated or not first; it is now
    /// present once, at position 1.
    JumpRestored {
        /// Which tool's tables.
        family: Family,
        /// The table.
        table: String,
        /// The built-in chain holding the jump.
        hook: String,
    },
    /// Our set was missing; it was created and refilled with `entries` bans (remaining TTLs).
    SetRecreated {
        /// The set's family.
        family: Family,
        /// The set name.
        set: String,
        /// Entries put back.
        entries: usize,
    },
    /// Our set held fewer entries than we hold live bans; `entries` were added back.
    SetRefilled {
        /// The set's family.
        family: Family,
        /// The set name.
        set: String,
        /// Entries put back.
        entries: usize,
    },
    /// Our nftables table was missing or damaged (`problem`: what was wrong); it was rebuilt
    /// in one transaction with `entries` bans and typed rules (bans with remaining TTLs).
    TableRestored {
        /// `inet <name>`.
        table: String,
        /// What was missing or changed, e.g. `table missing`, `chain input missing`.
        problem: String,
        /// Bans and typed rules put back.
        entries: usize,
    },
    /// The typed rules in our nftables table's `rules` chain differed from ours (deleted,
    /// edited, added by hand); the chain was rewritten with our `rules` in one transaction.
    RulesRestored {
        /// `inet <name>`.
        table: String,
        /// What differed.
        problem: String,
        /// Typed rules the chain holds now.
        rules: usize,
    },
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::ChainRecreated { family, table } => {
                write!(f, "{family} {table}: chain recreated")
            }
            Repair::ChainRebuilt {
                family,
                table,
                rules,
            } => {
                write!(f, "{family} {table}: chain rebuilt with {rules} ban rules")
            }
            Repair::MatchRuleRestored { family, table } => {
                write!(f, "{family} {table}: match-set rule restored")
            }
            Repair::JumpRestored {
                family,
                table,
                hook,
            } => {
                write!(
                    f,
                    "{family} {table}: jump from {hook} restored at position 1"
                )
            }
            Repair::SetRecreated {
                family,
                set,
                entries,
            } => {
                write!(f, "{family}: set {set} recreated with {entries} entries")
            }
            Repair::SetRefilled {
                family,
                set,
                entries,
            } => {
                write!(f, "{family}: set {set} refilled with {entries} entries")
            }
            Repair::RulesRestored {
                table,
                problem,
                rules,
            } => {
                write!(
                    f,
                    "nftables table {table}: typed rules rewritten, {rules} now ({problem})"
                )
            }
            Repair::TableRestored {
                table,
                problem,
                entries,
            } => {
                write!(
                    f,
                    "nftables table {table} rebuilt with {entries} entries ({problem})"
                )
            }
        }
    }
}

impl Firewall {
    pub(crate) fn repair(&self, state: &mut State, now: u64) -> Result<Vec<Repair>, FirewallError> {
        if self.nft() {
            return self.nft_repair(state, now);
        }
        let mut repairs = Vec::new();
        if self.ipset() {
            self.repair_sets(state, now, &mut repairs)?;
        }
        for family in Family::BOTH {
            let mut edits = Vec::new();
            for table in &self.settings.tables {
                let st = self.read_table(family, table)?;
                let problem = self.chain_problem(state, &st, family, table);
                state.remember(family, table, &st);
                let mut edit = match problem {
                    Some(_) => self.rebuild_edit(state, &state.mirror, &state.rules, family, table),
                    None => TableEdit {
                        table: table.clone(),
                        ..Default::default()
                    },
                };
                repairs.extend(problem);
                edit.jumps = self.jump_fixes(table, &st);
                for (hook, _) in &edit.jumps {
                    repairs.push(Repair::JumpRestored {
                        family,
                        table: table.clone(),
                        hook: hook.clone(),
                    });
                }
                edits.push(edit);
            }
            self.iptables_restore(family, &edits)?;
        }
        Ok(repairs)
    }

    /// What is wrong with our chains in one table (entry by entry), as the repair that fixes it.
    fn chain_problem(
        &self,
        state: &State,
        st: &TableState,
        family: Family,
        table: &str,
    ) -> Option<Repair> {
        let table = table.to_string();
        if !st.chain_exists {
            return Some(Repair::ChainRecreated { family, table });
        }
        if self.ipset() && (st.match_rules != 1 || !st.bans.is_empty()) {
            return Some(Repair::MatchRuleRestored { family, table });
        }
        let bans = if self.ipset() {
            0
        } else {
            state.mirror.count(family)
        };
        let rules = state.rules.count(family);
        // Entry by entry: with several tables, iptables-nft applies each table's part of a
        // restore on its own, so a commit that failed in the second table may have added one
        // ban and removed another in the first (same count, other entries).
        (!self.content_ok(st, &state.mirror, &state.rules, family)).then(|| Repair::ChainRebuilt {
            family,
            table,
            rules: bans + rules,
        })
    }

    fn repair_sets(
        &self,
        state: &mut State,
        now: u64,
        repairs: &mut Vec<Repair>,
    ) -> Result<(), FirewallError> {
        // The kernel has dropped these already.
        state.mirror.take_due(now);
        let names = self.ipset_names()?;
        let mut text = String::new();
        for family in Family::BOTH {
            let set = self.set_name(family);
            let live: Vec<&Ban> = state.mirror.family(family).collect();
            let refill = |text: &mut String| {
                for b in &live {
                    text.push_str(&render::ipset_add(&set, b, now));
                }
            };
            if !names.contains(&set) {
                text.push_str(&render::ipset_create(
                    &set,
                    family.inet(),
                    self.settings.maxelem,
                ));
                refill(&mut text);
                repairs.push(Repair::SetRecreated {
                    family,
                    set: set.clone(),
                    entries: live.len(),
                });
                continue;
            }
            let terse = self.exec.run(&["ipset", "list", "-t", &set], None)?;
            let (header, count) = parse::parse_ipset_terse(&terse).unwrap_or_default();
            if !parse::terse_compatible(&header, family.inet()) {
                return Err(FirewallError::IncompatibleSet {
                    name: set,
                    family: family.inet(),
                    header,
                });
            }
            if count < live.len() {
                refill(&mut text);
                repairs.push(Repair::SetRefilled {
                    family,
                    set: set.clone(),
                    entries: live.len(),
                });
            }
        }
        self.ipset_restore(&text)
    }
}
