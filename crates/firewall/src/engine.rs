//! The engine behind [`Firewall`]: reading the kernel, reconciling at open, committing plans,
//! expiring (repair and flush live in `repair.rs`). Decisions are made by the pure modules
//! (parse, mirror, batch, render); this file only sequences them around
//! [`Exec`](super::exec::Exec) calls.

use super::exec::XTABLES_WAIT;
use std::collections::{HashMap, HashSet};

use super::ban::{Ban, Family};
use super::batch::{self, Op};
use super::mirror::Mirror;
use super::options::Backend;
use super::parse::{self, TableState};
use super::render::{self, IPSET_MAX_TIMEOUT, TableEdit};
use super::{Firewall, FirewallError};

/// What we hold between calls.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Our bans, one per net.
    pub(crate) mirror: Mirror,
    /// Rules in our chain that are not ours, per (family, table), as last read: a rebuild
    /// keeps them.
    pub(crate) foreign: HashMap<(Family, String), Vec<String>>,
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
        let text = self.exec.run(&[family.save_cmd(), "-t", table], None)?;
        let set = self.ipset().then(|| self.set_name(family));
        Ok(parse::parse_save(
            &text,
            table,
            &self.settings.chain,
            set.as_deref(),
        ))
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
        self.exec.run(
            &[family.restore_cmd(), "-w", XTABLES_WAIT, "--noflush"],
            Some(&text),
        )?;
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

    /// Our chain's full content for `family`: foreign rules first, then ours.
    pub(super) fn chain_body(
        &self,
        state: &State,
        mirror: &Mirror,
        family: Family,
        table: &str,
    ) -> Vec<String> {
        let chain = &self.settings.chain;
        let mut rules = state
            .foreign
            .get(&(family, table.to_string()))
            .cloned()
            .unwrap_or_default();
        if self.ipset() {
            rules.push(render::match_rule(chain, &self.set_name(family)));
        } else {
            rules.extend(mirror.family(family).map(|b| render::ban_rule(chain, &b)));
        }
        rules
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

    fn rebuild_edits(&self, state: &State, mirror: &Mirror, family: Family) -> Vec<TableEdit> {
        self.settings
            .tables
            .iter()
            .map(|table| TableEdit {
                table: table.clone(),
                rebuild: true,
                rules: self.chain_body(state, mirror, family, table),
                jumps: Vec::new(),
            })
            .collect()
    }

    /// Adopts the kernel's state and creates whatever is missing (see [`Firewall::open`]).
    pub(crate) fn reconcile(&self, state: &mut State, now: u64) -> Result<(), FirewallError> {
        let mut adopted: Vec<Ban> = Vec::new();
        let mut in_set: HashSet<ipnet::IpNet> = HashSet::new();
        if self.ipset() {
            let names = self.ipset_names()?;
            let mut create = String::new();
            for family in Family::BOTH {
                let name = self.set_name(family);
                if names.contains(&name) {
                    let text = self.exec.run(&["ipset", "save", &name], None)?;
                    let set = parse::parse_ipset_save(&text, &name)
                        .filter(|s| s.compatible(family.inet()))
                        .ok_or_else(|| FirewallError::IncompatibleSet {
                            name: name.clone(),
                            family: family.inet(),
                            header: text.lines().next().unwrap_or_default().to_string(),
                        })?;
                    for (net, left, reason) in set.entries {
                        in_set.insert(net);
                        adopted.push(Ban {
                            net,
                            until: now + left,
                            reason,
                        });
                    }
                } else {
                    create.push_str(&render::ipset_create(
                        &name,
                        family.inet(),
                        self.settings.maxelem,
                    ));
                }
            }
            self.ipset_restore(&create)?;
        }
        let mut tables = Vec::new();
        for family in Family::BOTH {
            for table in &self.settings.tables {
                let st = self.read_table(family, table)?;
                // With ipset, per-rule bans left by the iptables backend move into the set.
                adopted.extend(st.bans.iter().cloned());
                state
                    .foreign
                    .insert((family, table.clone()), st.foreign.clone());
                tables.push((family, table.clone(), st));
            }
        }
        let mirror = Mirror::adopt(adopted, now);
        if self.ipset() {
            let adds: String = mirror
                .all()
                .filter(|b| !in_set.contains(&b.net))
                .map(|b| render::ipset_add(&self.set_name(Family::of(&b.net)), &b, now))
                .collect();
            self.ipset_restore(&adds)?;
        }
        for family in Family::BOTH {
            let mut wanted: Vec<Ban> = mirror.family(family).collect();
            wanted.sort_by_key(|b| b.net);
            let mut edits = Vec::new();
            for (_, table, st) in tables.iter().filter(|(f, _, _)| *f == family) {
                let mut have = st.bans.clone();
                have.sort_by_key(|b| b.net);
                let content_ok = if self.ipset() {
                    st.match_rules == 1 && st.bans.is_empty()
                } else {
                    have == wanted
                };
                let jumps = self.jump_fixes(table, st);
                let rebuild = !st.chain_exists || !content_ok;
                edits.push(TableEdit {
                    table: table.clone(),
                    rebuild,
                    rules: if rebuild {
                        self.chain_body(state, &mirror, family, table)
                    } else {
                        Vec::new()
                    },
                    jumps,
                });
            }
            self.iptables_restore(family, &edits)?;
        }
        state.mirror = mirror;
        Ok(())
    }

    /// Applies a batch (see [`Batch::commit`](super::Batch::commit)).
    pub(crate) fn commit_ops(
        &self,
        state: &mut State,
        ops: &[Op],
        now: u64,
    ) -> Result<(), FirewallError> {
        let max_ttl = if self.ipset() {
            IPSET_MAX_TIMEOUT
        } else {
            u64::MAX
        };
        let plan = batch::plan(ops, &state.mirror, now, max_ttl);
        if self.ipset() {
            let mut text = String::new();
            for net in &plan.remove {
                text.push_str(&render::ipset_del(&self.set_name(Family::of(net)), net));
            }
            for ban in plan.add.iter().chain(&plan.replace) {
                text.push_str(&render::ipset_add(
                    &self.set_name(Family::of(&ban.net)),
                    ban,
                    now,
                ));
            }
            self.ipset_restore(&text)?;
            for family in Family::BOTH {
                plan.apply_to(&mut state.mirror, family);
            }
            return Ok(());
        }
        for family in Family::BOTH.into_iter().filter(|f| plan.touches(*f)) {
            if plan.rebuilds(family) {
                let mut next = state.mirror.clone();
                plan.apply_to(&mut next, family);
                let edits = self.rebuild_edits(state, &next, family);
                self.iptables_restore(family, &edits)?;
                state.mirror = next;
            } else {
                let rules: Vec<String> = plan
                    .add
                    .iter()
                    .filter(|b| Family::of(&b.net) == family)
                    .map(|b| render::ban_rule(&self.settings.chain, b))
                    .collect();
                let edits: Vec<TableEdit> = self
                    .settings
                    .tables
                    .iter()
                    .map(|t| TableEdit {
                        table: t.clone(),
                        rules: rules.clone(),
                        ..Default::default()
                    })
                    .collect();
                self.iptables_restore(family, &edits)?;
                plan.apply_to(&mut state.mirror, family);
            }
        }
        Ok(())
    }

    pub(crate) fn expire(&self, state: &mut State, now: u64) -> Result<Vec<Ban>, FirewallError> {
        let mut next = state.mirror.clone();
        let due = next.take_due(now);
        if !self.ipset() {
            for family in Family::BOTH {
                if due.iter().any(|b| Family::of(&b.net) == family) {
                    let edits = self.rebuild_edits(state, &next, family);
                    self.iptables_restore(family, &edits)?;
                }
            }
        }
        state.mirror = next;
        Ok(due)
    }

    pub(crate) fn read_bans(&self, now: u64) -> Result<Vec<Ban>, FirewallError> {
        let mut bans = Vec::new();
        if self.ipset() {
            let names = self.ipset_names()?;
            for family in Family::BOTH {
                let name = self.set_name(family);
                if !names.contains(&name) {
                    continue;
                }
                let text = self.exec.run(&["ipset", "save", &name], None)?;
                if let Some(set) = parse::parse_ipset_save(&text, &name) {
                    bans.extend(set.entries.into_iter().map(|(net, left, reason)| Ban {
                        net,
                        until: now + left,
                        reason,
                    }));
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
}
