//! [`Repair`]: one thing [`Firewall::check_and_repair`](super::Firewall::check_and_repair) found
//! missing and put back. Its `Display` is a short sentence for logs and `repaired` events.

use std::fmt;

use super::ban::Family;

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
    /// Our chain held fewer or more ban rules than we hold bans (flushed or edited); it was
    /// rebuilt with `rules` ban rules (iptables backend).
    ChainRebuilt {
        /// Which tool's tables.
        family: Family,
        /// The table.
        table: String,
        /// Ban rules the chain holds now.
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
        }
    }
}
