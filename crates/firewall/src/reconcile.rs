//! Opening: adopting what the kernel holds (our chain's entries, our private ban chains, our
//! sets), checking it is exactly what memory wants, and creating or rebuilding what is not; an
//! open that fails halfway removes what it created.

use std::collections::HashSet;

use super::ban::{Ban, Family, RuleEntry};
use super::ban_chains;
use super::engine::State;
use super::exec::XTABLES_WAIT;
use super::mirror::Mirror;
use super::parse::TableState;
use super::render::{self, TableEdit};
use super::{Firewall, FirewallError};

/// What `open` created, so a failure can take it back.
#[derive(Default)]
struct Created {
    sets: Vec<String>,
    /// (family, table) where our chain did not exist before.
    chains: Vec<(Family, String)>,
    /// (family, table, name): private ban chains that did not exist before.
    private: Vec<(Family, String, String)>,
}

impl Firewall {
    /// Adopts the kernel's state and creates whatever is missing (see [`Firewall::open`]). On
    /// failure, what this call created is removed again.
    pub(crate) fn reconcile(&self, state: &mut State, now: u64) -> Result<(), FirewallError> {
        if self.nft() {
            return self.nft_reconcile(state, now);
        }
        let mut created = Created::default();
        let result = self.reconcile_steps(state, now, &mut created);
        if result.is_err() {
            self.undo_open(&created);
        }
        result
    }

    fn reconcile_steps(
        &self,
        state: &mut State,
        now: u64,
        created: &mut Created,
    ) -> Result<(), FirewallError> {
        // Read everything first: a conflict is found before anything changes.
        let mut tables = Vec::new();
        let (mut bans, mut rules) = (Vec::new(), Vec::new());
        for family in Family::BOTH {
            for table in &self.settings.tables {
                let st = self.read_table(family, table)?;
                self.check_user_hooks(family, table, &st)?;
                if let Some(other) = st.set_users.first() {
                    return Err(FirewallError::ChainInUse {
                        chain: self.settings.chain.clone(),
                        holder: format!(
                            "chain {other} matches the same set {}: chain names differing only in case share their sets",
                            self.set_name(family)
                        ),
                    });
                }
                // With ipset, per-rule bans left by the iptables backend move into the set.
                bans.extend(st.bans.iter().cloned());
                rules.extend(st.rules.iter().cloned());
                state.remember(family, table, &st);
                tables.push((family, table.clone(), st));
            }
        }
        let in_set = if self.ipset() {
            self.adopt_sets(now, &mut bans, created)?
        } else {
            HashSet::new()
        };
        let mirror = Mirror::adopt(bans, now);
        let rules = Mirror::adopt(rules, now);
        if self.ipset() {
            let adds: String = mirror
                .all()
                .filter(|b| !in_set.contains(&b.net))
                .map(|b| render::ipset_add(&self.set_name(Family::of(&b.net)), b, now))
                .collect();
            self.ipset_restore(&adds)?;
        }
        for family in Family::BOTH {
            let mut edits = Vec::new();
            let mut new_chains = Vec::new();
            let mut new_private = Vec::new();
            for (_, table, st) in tables.iter().filter(|(f, _, _)| *f == family) {
                let rebuild = !st.chain_exists || !self.content_ok(st, &mirror, &rules, family);
                if !st.chain_exists {
                    new_chains.push((family, table.clone()));
                }
                let mut edit = if rebuild {
                    self.rebuild_edit(state, &mirror, &rules, family, table)
                } else {
                    TableEdit {
                        table: table.clone(),
                        ..Default::default()
                    }
                };
                if rebuild && !self.ipset() {
                    let chain = &self.settings.chain;
                    let wanted = ban_chains::bucket_names(chain, &mirror, family)
                        .into_iter()
                        .chain([ban_chains::dispatch(chain)]);
                    new_private.extend(
                        wanted
                            .filter(|n| !st.private.contains(n))
                            .map(|n| (family, table.clone(), n)),
                    );
                }
                edit.jumps = self.jump_fixes(table, st);
                edits.push(edit);
            }
            // Only a successful restore created chains. (A failed one may have applied the parts
            // of the tables before the failing one: the caller's error undoes what it created.)
            self.iptables_restore(family, &edits)?;
            created.chains.extend(new_chains);
            created.private.extend(new_private);
        }
        state.mirror = mirror;
        state.rules = rules;
        Ok(())
    }

    /// A hook that is not a built-in chain must be a chain that exists (`DOCKER-USER`): a typo
    /// such as `OUTPUTT` is refused before anything changes.
    fn check_user_hooks(
        &self,
        family: Family,
        table: &str,
        st: &TableState,
    ) -> Result<(), FirewallError> {
        let missing = self
            .settings
            .hooks
            .iter()
            .find(|h| h.table == table && !h.builtin && !st.chains.contains(&h.chain));
        match missing {
            Some(h) => Err(FirewallError::InvalidOption(format!(
                "hook {:?}: the {table} table ({family}) has no chain {:?}: not a built-in chain, and no chain of that name exists",
                h.chain, h.chain
            ))),
            None => Ok(()),
        }
    }

    /// Reads our sets into `bans` and creates the missing ones; returns the nets already in a
    /// set.
    fn adopt_sets(
        &self,
        now: u64,
        bans: &mut Vec<Ban>,
        created: &mut Created,
    ) -> Result<HashSet<ipnet::IpNet>, FirewallError> {
        let mut in_set = HashSet::new();
        let names = self.ipset_names()?;
        let mut create = String::new();
        for family in Family::BOTH {
            let name = self.set_name(family);
            if names.contains(&name) {
                for (net, left, reason) in self.read_set(family)? {
                    in_set.insert(net);
                    bans.push(Ban {
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
                created.sets.push(name);
            }
        }
        self.ipset_restore(&create)?;
        Ok(in_set)
    }

    /// True when `st` holds exactly our entries of `family` (and, with ipset, one match rule).
    pub(super) fn content_ok(
        &self,
        st: &TableState,
        bans: &Mirror<Ban>,
        rules: &Mirror<RuleEntry>,
        family: Family,
    ) -> bool {
        let layout =
            ban_chains::layout_problem(&self.settings.chain, st, bans, family, !self.ipset());
        let bans_ok = layout.is_none()
            && if self.ipset() {
                st.match_rules == 1 && st.bans.is_empty()
            } else {
                let mut have = st.bans.clone();
                have.sort_by_key(|b| b.net);
                have.iter().eq(bans.family(family))
            };
        let mut have = st.rules.clone();
        have.sort_by_key(|r| r.rule.key());
        bans_ok && st.orphans == 0 && have.iter().eq(rules.family(family))
    }

    /// Best effort: removes the chains and sets a failed open created (private ban chains only
    /// where our chain is new too: an older chain jumps to them now).
    fn undo_open(&self, created: &Created) {
        for family in Family::BOTH {
            let tables: Vec<render::Removal> = created
                .chains
                .iter()
                .filter(|(f, _)| *f == family)
                .map(|(_, table)| {
                    let jumps = self
                        .settings
                        .hooks
                        .iter()
                        .filter(|h| &h.table == table)
                        .map(|h| (h.chain.clone(), 1))
                        .collect();
                    let private = created
                        .private
                        .iter()
                        .filter(|(f, t, _)| *f == family && t == table)
                        .map(|(_, _, name)| name.clone())
                        .collect();
                    render::Removal {
                        table: table.clone(),
                        jumps,
                        has_chain: true,
                        keep: Vec::new(),
                        private,
                    }
                })
                .collect();
            if !tables.is_empty() {
                let text = render::remove(&self.settings.chain, &tables);
                let _ = self.exec.run(
                    &[family.restore_cmd(), "-w", XTABLES_WAIT, "--noflush"],
                    Some(&text),
                );
            }
        }
        let destroy: String = created
            .sets
            .iter()
            .map(|s| format!("destroy {s}\n"))
            .collect();
        let _ = self.ipset_restore(&destroy);
    }
}
