//! Removing everything we created ([`Firewall::flush`], [`Firewall::remove`]) and
//! [`Flushed`], the report of what was really removed. Every table is read (and must be
//! readable) before anything changes; afterwards the tables and sets are read again, and
//! anything of ours still there is an error, never a silent success.

use std::fmt;

use super::ban::Family;
use super::engine::State;
use super::exec::XTABLES_WAIT;
use super::mirror::Mirror;
use super::parse::{self, TableState};
use super::render;
use super::{Firewall, FirewallError};

/// What [`Firewall::flush`] / [`Firewall::remove`] removed: only what was there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Flushed {
    /// Where our chain was removed: (family, table).
    pub chains: Vec<(Family, String)>,
    /// Where our chain stays, emptied of ours but holding rules that are not ours.
    pub kept: Vec<(Family, String)>,
    /// Jumps to our chain deleted (all hooks, tables and families).
    pub jumps: usize,
    /// Our sets destroyed.
    pub sets: Vec<String>,
    /// Our entries removed with them (bans and typed rules; with ipset, set entries).
    pub entries: usize,
    /// Of `entries`, the typed rules.
    pub rules: usize,
    /// nftables tables of ours deleted (`inet autoblock`), with every chain, set and ban in them.
    pub tables: Vec<String>,
    /// The iptables backend's private ban chains deleted (`CHAIN.bans`, `CHAIN.<hex>`; all
    /// tables and families).
    pub ban_chains: usize,
}

impl Flushed {
    /// True when there was nothing of ours to remove.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
            && self.kept.is_empty()
            && self.jumps == 0
            && self.sets.is_empty()
            && self.tables.is_empty()
            && self.ban_chains == 0
    }
}

fn places(list: &[(Family, String)]) -> String {
    let names: Vec<String> = list.iter().map(|(f, t)| format!("{f} {t}")).collect();
    names.join(", ")
}

impl fmt::Display for Flushed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing to remove (no chain, jump or set of ours)");
        }
        let mut parts = Vec::new();
        if !self.chains.is_empty() {
            parts.push(format!("removed the chain from {}", places(&self.chains)));
        }
        if !self.tables.is_empty() {
            parts.push(format!("deleted table {}", self.tables.join(", ")));
        }
        if !self.kept.is_empty() {
            parts.push(format!(
                "emptied the chain but kept it in {} (it holds rules that are not ours)",
                places(&self.kept)
            ));
        }
        parts.push(format!("{} jumps", self.jumps));
        if self.ban_chains > 0 {
            parts.push(format!("{} ban chains", self.ban_chains));
        }
        if !self.sets.is_empty() {
            parts.push(format!("sets {}", self.sets.join(", ")));
        }
        parts.push(format!("{} entries", self.entries));
        f.write_str(&parts.join("; "))
    }
}

impl Firewall {
    /// Removes our jumps, rules and sets (see [`Firewall::flush`]): a chain holding foreign
    /// rules stays, with only those. Memory is emptied whatever happened: the kernel is read
    /// again by whoever opens next.
    pub(crate) fn remove_everything(&self, state: &mut State) -> Result<Flushed, FirewallError> {
        if self.nft() {
            return self.nft_remove_everything(state);
        }
        let mut done = Flushed::default();
        let result = self.remove_steps(&mut done).and_then(|()| self.leftovers());
        state.mirror = Mirror::default();
        state.rules = Mirror::default();
        state.foreign.clear();
        let reason = match result {
            Ok(left) if left.is_empty() => return Ok(done),
            Ok(left) => format!("still there after the removal: {}", left.join(", ")),
            Err(e) if done.is_empty() => return Err(e),
            Err(e) => e.to_string(),
        };
        Err(FirewallError::FlushIncomplete {
            removed: Box::new(done),
            reason,
        })
    }

    fn remove_steps(&self, done: &mut Flushed) -> Result<(), FirewallError> {
        // Read everything first: an unreadable table stops the flush before any change.
        let mut tables: Vec<(Family, String, TableState)> = Vec::new();
        for family in Family::BOTH {
            for table in &self.settings.tables {
                tables.push((family, table.clone(), self.read_table(family, table)?));
            }
        }
        let set_names = if self.ipset() {
            self.ipset_names()?
        } else {
            Default::default()
        };
        for family in Family::BOTH {
            let mut removals: Vec<render::Removal> = Vec::new();
            let mut report = Flushed::default();
            for (_, table, st) in tables.iter().filter(|(f, _, _)| *f == family) {
                if !st.chain_exists && st.private.is_empty() {
                    continue;
                }
                let jumps: Vec<(String, usize)> = self
                    .settings
                    .hooks
                    .iter()
                    .filter(|h| &h.table == table)
                    .map(|h| (h.chain.clone(), st.jump_positions(&h.chain).len()))
                    .collect();
                report.jumps += jumps.iter().map(|(_, n)| n).sum::<usize>();
                report.ban_chains += st.private.len();
                if Some(table) == self.settings.tables.first() {
                    report.entries += st.bans.len() + st.rules.len();
                    report.rules += st.rules.len();
                }
                let place = (family, table.clone());
                match (st.chain_exists, st.foreign.is_empty()) {
                    (false, _) => {}
                    (true, true) => report.chains.push(place),
                    (true, false) => report.kept.push(place),
                }
                removals.push(render::Removal {
                    table: table.clone(),
                    jumps,
                    has_chain: st.chain_exists,
                    keep: st.foreign.clone(),
                    private: st.private.clone(),
                });
            }
            if !removals.is_empty() {
                let text = render::remove(&self.settings.chain, &removals);
                self.exec.run(
                    &[family.restore_cmd(), "-w", XTABLES_WAIT, "--noflush"],
                    Some(&text),
                )?;
                done.chains.append(&mut report.chains);
                done.kept.append(&mut report.kept);
                done.jumps += report.jumps;
                done.ban_chains += report.ban_chains;
                done.entries += report.entries;
                done.rules += report.rules;
            }
        }
        for family in Family::BOTH {
            let set = self.set_name(family);
            if !set_names.contains(&set) {
                continue;
            }
            let terse = self.exec.run(&["ipset", "list", "-t", &set], None)?;
            let entries = parse::parse_ipset_terse(&terse).map_or(0, |(_, n)| n);
            self.ipset_restore(&format!("destroy {set}\n"))?;
            done.sets.push(set);
            done.entries += entries;
        }
        Ok(())
    }

    /// Reads every table (and the sets) again: what of ours is left (nothing but a chain kept
    /// for foreign rules may be; no jump from a hook).
    fn leftovers(&self) -> Result<Vec<String>, FirewallError> {
        let mut left = Vec::new();
        for family in Family::BOTH {
            for table in &self.settings.tables {
                let st = self.read_table(family, table)?;
                let jumps: usize = self
                    .settings
                    .hooks
                    .iter()
                    .filter(|h| &h.table == table)
                    .map(|h| st.jump_positions(&h.chain).len())
                    .sum();
                if jumps > 0 {
                    left.push(format!("{jumps} jumps in {family} {table}"));
                }
                let ours = st.bans.len() + st.rules.len() + st.match_rules + st.orphans;
                if st.chain_exists && (st.foreign.is_empty() || ours > 0) {
                    left.push(format!("the chain in {family} {table}"));
                }
                if !st.private.is_empty() {
                    left.push(format!(
                        "{} ban chains in {family} {table}",
                        st.private.len()
                    ));
                }
            }
        }
        if self.ipset() {
            let names = self.ipset_names()?;
            for family in Family::BOTH {
                let set = self.set_name(family);
                if names.contains(&set) {
                    left.push(format!("set {set}"));
                }
            }
        }
        Ok(left)
    }
}
