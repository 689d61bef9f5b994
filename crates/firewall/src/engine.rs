//! The engine behind [`Firewall`]: what we hold between calls, the shared helpers (reading a
//! table, restoring, the chains' full content) and reading entries back. Opening lives in
//! `reconcile.rs`, committing and expiring in `commit.rs`, repair in `repair.rs`, flush in
//! `flush.rs`; where the iptables backend's bans go in `ban_chains.rs`. Decisions are
//! made by the pure modules (parse, mirror, batch, render, guard); these files only sequence
//! them around [`Exec`](super::exec::Exec) calls.

use std::collections::{HashMap, HashSet};

use super::ban::{Ban, Family, RuleEntry};
use super::ban_chains;
use super::exec::XTABLES_WAIT;
use super::guard::Guard;
use super::mirror::Mirror;
use super::options::Backend;
use super::parse::{self, TableState};
use super::render::{self, TableEdit};
use super::{Firewall, FirewallError};

/// What we hold between calls.
#[derive(Debug)]
pub(crate) struct State {
    /// Our plain bans, one per net.
    pub(crate) mirror: Mirror<Ban>,
    /// Our typed rules, one per set of matches.
    pub(crate) rules: Mirror<RuleEntry>,
    /// Rules in our chain that are not ours, per (family, table), as last read: a rebuild
    /// keeps them.
    pub(crate) foreign: HashMap<(Family, String), Vec<String>>,
    /// Our private ban chains per (family, table), as last read: a rebuild deletes those it
    /// no longer wants.
    pub(crate) private: HashMap<(Family, String), Vec<String>>,
    /// What blocks are refused; its protected nets change with `set_protected`.
    pub(crate) guard: Guard,
    /// nftables: the sets (family, prefix length) our chains match.
    pub(crate) nft_sets: std::collections::BTreeSet<super::nft_render::SetKey>,
}

impl State {
    /// Keeps what a read of `table` says that the next rebuild needs: the foreign rules of our
    /// chain (when it exists) and the private chains to delete if no longer wanted.
    pub(crate) fn remember(&mut self, family: Family, table: &str, st: &TableState) {
        if st.chain_exists {
            self.foreign
                .insert((family, table.to_string()), st.foreign.clone());
        }
        self.private
            .insert((family, table.to_string()), st.private.clone());
    }

    pub(crate) fn new(guard: Guard) -> State {
        State {
            mirror: Mirror::default(),
            rules: Mirror::default(),
            foreign: HashMap::new(),
            private: HashMap::new(),
            guard,
            nft_sets: Default::default(),
        }
    }
}

impl Firewall {
    pub(super) fn ipset(&self) -> bool {
        self.settings.backend == Backend::Ipset
    }

    pub(super) fn set_name(&self, family: Family) -> String {
        self.settings.set_name(family == Family::V6)
    }

    pub(super) fn read_table(
        &self,
        family: Family,
        table: &str,
    ) -> Result<TableState, FirewallError> {
        let argv = [family.save_cmd(), "-t", table];
        let text = self.exec.run(&argv, None)?;
        let set = self.ipset().then(|| self.set_name(family));
        parse::parse_save(&text, table, &self.settings.chain, set.as_deref(), family).map_err(
            |why| FirewallError::UnreadableTable {
                command: argv.join(" "),
                family,
                table: table.to_string(),
                detail: why.0,
            },
        )
    }

    pub(super) fn iptables_restore(
        &self,
        family: Family,
        edits: &[TableEdit],
    ) -> Result<(), FirewallError> {
        let text = render::restore(&self.settings.chain, edits);
        if text.is_empty() {
            return Ok(());
        }
        let argv = [family.restore_cmd(), "-w", XTABLES_WAIT, "--noflush"];
        self.exec.run(&argv, Some(&text))?;
        // Emptied private chains, deleted best effort: all of a table at once, else one by one
        // (a chain someone else jumps to stays, empty and unreached, until the next try).
        for edit in edits.iter().filter(|e| !e.delete.is_empty()) {
            let all = render::delete_chains(&edit.table, &edit.delete);
            if self.exec.run(&argv, Some(&all)).is_err() {
                for name in &edit.delete {
                    let one = render::delete_chains(&edit.table, std::slice::from_ref(name));
                    let _ = self.exec.run(&argv, Some(&one));
                }
            }
        }
        Ok(())
    }

    pub(super) fn ipset_restore(&self, text: &str) -> Result<(), FirewallError> {
        if !text.is_empty() {
            self.exec.run(&["ipset", "restore", "-exist"], Some(text))?;
        }
        Ok(())
    }

    pub(super) fn ipset_names(&self) -> Result<HashSet<String>, FirewallError> {
        let text = self.exec.run(&["ipset", "list", "-n"], None)?;
        Ok(text.lines().map(|l| l.trim().to_string()).collect())
    }

    /// Our set of `family` as the kernel holds it: (net, seconds left, comment) per entry.
    pub(super) fn read_set(
        &self,
        family: Family,
    ) -> Result<Vec<(ipnet::IpNet, u64, String)>, FirewallError> {
        let name = self.set_name(family);
        let text = self.exec.run(&["ipset", "save", &name], None)?;
        let set = parse::parse_ipset_save(&text, &name)
            .filter(|s| s.compatible(family.inet()))
            .ok_or_else(|| FirewallError::IncompatibleSet {
                name: name.clone(),
                family: family.inet(),
                header: text.lines().next().unwrap_or_default().to_string(),
            })?;
        Ok(set.entries)
    }

    /// Our chain's full content for `family`: foreign rules first, then the jump to our ban
    /// chains (or the set match rule), then typed rules.
    pub(super) fn chain_body(
        &self,
        foreign: &HashMap<(Family, String), Vec<String>>,
        rules: &Mirror<RuleEntry>,
        family: Family,
        table: &str,
    ) -> Vec<String> {
        let chain = &self.settings.chain;
        let mut body = foreign
            .get(&(family, table.to_string()))
            .cloned()
            .unwrap_or_default();
        if self.ipset() {
            body.push(render::match_rule(chain, &self.set_name(family)));
        } else {
            body.push(ban_chains::dispatch_jump(chain));
        }
        body.extend(
            rules
                .family(family)
                .flat_map(|r| render::typed_rule(chain, r)),
        );
        body
    }

    /// Jumps in `table` that are not exactly once at position 1: (hook, copies to delete).
    pub(super) fn jump_fixes(&self, table: &str, st: &TableState) -> Vec<(String, usize)> {
        self.settings
            .hooks
            .iter()
            .filter(|h| h.table == table)
            .filter_map(|h| {
                let pos = st.jump_positions(&h.chain);
                (pos != [1]).then(|| (h.chain.clone(), pos.len()))
            })
            .collect()
    }

    /// Reads the rules in our chain that are not ours again (someone may have added one since
    /// the last read), so a rebuild keeps them; and which private chains exist.
    pub(super) fn refresh_foreign(
        &self,
        state: &mut State,
        family: Family,
    ) -> Result<(), FirewallError> {
        for table in &self.settings.tables {
            let st = self.read_table(family, table)?;
            state.remember(family, table, &st);
        }
        Ok(())
    }

    /// A rebuild of our chain and our private ban chains in every table of `family` from
    /// `bans` and `rules`.
    pub(super) fn rebuild_edits(
        &self,
        state: &State,
        bans: &Mirror<Ban>,
        rules: &Mirror<RuleEntry>,
        family: Family,
    ) -> Vec<TableEdit> {
        self.settings
            .tables
            .iter()
            .map(|table| self.rebuild_edit(state, bans, rules, family, table))
            .collect()
    }

    /// [`Firewall::rebuild_edits`] for one table.
    pub(super) fn rebuild_edit(
        &self,
        state: &State,
        bans: &Mirror<Ban>,
        rules: &Mirror<RuleEntry>,
        family: Family,
        table: &str,
    ) -> TableEdit {
        let existing = state
            .private
            .get(&(family, table.to_string()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let whole = ban_chains::whole(&self.settings.chain, bans, family, !self.ipset(), existing);
        TableEdit {
            table: table.to_string(),
            rebuild: true,
            rules: self.chain_body(&state.foreign, rules, family, table),
            jumps: Vec::new(),
            before: whole.before,
            after: whole.after,
            delete: whole.delete,
        }
    }

    /// The plain bans the kernel holds now (see [`Firewall::list`]). With ipset, whose
    /// timeouts count down in whole seconds, an entry within a second of what memory holds is
    /// reported with memory's end time, so `list` and `next_expiry` agree.
    pub(crate) fn read_bans(&self, state: &State, now: u64) -> Result<Vec<Ban>, FirewallError> {
        if self.nft() {
            let mut bans = self.nft_read_bans(state, now)?;
            bans.sort_by_key(|b| b.net);
            return Ok(bans);
        }
        let mut bans = Vec::new();
        if self.ipset() {
            let names = self.ipset_names()?;
            for family in Family::BOTH {
                if !names.contains(&self.set_name(family)) {
                    continue;
                }
                for (net, left, reason) in self.read_set(family)? {
                    let mut until = now + left;
                    if let Some(mine) = state.mirror.get(&net)
                        && (until..=until + 1).contains(&mine.until)
                    {
                        until = mine.until;
                    }
                    bans.push(Ban { net, until, reason });
                }
            }
        } else if let Some(table) = self.settings.tables.first() {
            for family in Family::BOTH {
                bans.extend(self.read_table(family, table)?.bans);
            }
        }
        bans.sort_by_key(|b| b.net);
        Ok(bans)
    }

    /// The typed rules the kernel holds now in our chain (first hook's table).
    pub(crate) fn read_rules(&self) -> Result<Vec<RuleEntry>, FirewallError> {
        if self.nft() {
            return self.nft_read_rules();
        }
        let mut rules = Vec::new();
        if let Some(table) = self.settings.tables.first() {
            for family in Family::BOTH {
                rules.extend(self.read_table(family, table)?.rules);
            }
        }
        rules.sort_by_key(|r| r.rule);
        Ok(rules)
    }
}
