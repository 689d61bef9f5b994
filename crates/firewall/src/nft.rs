//! The engine for [`Backend::Nftables`](super::Backend::Nftables): our table `inet <chain
//! lowercase>` read with `nft list table`, changed with one `nft -f -` transaction per call.
//! Decisions come from the pure modules (`nft_render`, `nft_parse`, `batch`, `mirror`); this
//! file sequences them around [`Exec`](super::exec::Exec) calls.
//!
//! Typed rules live in the table's regular chain `rules` (see `nft_rules.rs`).
//!
//! Invariants: the table is ours alone (anything in it is ours to rebuild or delete);
//! `state.nft_sets` names every set our chains match; the kernel expires elements, so memory
//! only follows (`expire_due` touches the kernel for typed rules only); a structural problem
//! (table, chain, set or rule missing, wrong hook or priority) is fixed by rebuilding the
//! whole table from memory in the same transaction that deletes the old one, so packets never
//! see it absent; typed rules that differ from memory are rewritten (their chain only).

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::ban::{Ban, Family, RuleEntry};
use super::batch::{self, Batch, Committed};
use super::engine::State;
use super::flush::Flushed;
use super::mirror::Mirror;
use super::nft_parse::{NftTable, parse_table};
use super::nft_render::{BaseChain, NFT_MAX_TIMEOUT, Script, SetKey, base_chains, table_name};
use super::nft_rule_text::RULES_CHAIN;
use super::nft_rules::{fitting, listed_rules, rules_problem};
use super::repair::Repair;
use super::{Backend, Firewall, FirewallError};

impl Firewall {
    pub(super) fn nft(&self) -> bool {
        self.settings.backend == Backend::Nftables
    }

    fn nft_table(&self) -> String {
        table_name(&self.settings.chain)
    }

    fn nft_chains(&self) -> Vec<BaseChain> {
        base_chains(&self.settings.hooks, self.settings.priority)
    }

    /// Runs `script` as one transaction.
    pub(super) fn nft_run(&self, script: Script<'_>) -> Result<(), FirewallError> {
        if !script.is_empty() {
            self.exec.run(&["nft", "-f", "-"], Some(&script.text()))?;
        }
        Ok(())
    }

    /// Our table as the kernel holds it; `None` when absent. `terse` leaves the elements out
    /// and costs a few ms whatever their number: it lists the whole ruleset with `-t`, since
    /// nft 1.0.6 fetches every element for `-t list table` (0.6 s at 100k, measured).
    pub(crate) fn nft_read(&self, terse: bool) -> Result<Option<NftTable>, FirewallError> {
        let table = self.nft_table();
        let argv: &[&str] = if terse {
            &["nft", "-t", "list", "ruleset"]
        } else {
            &["nft", "list", "table", "inet", &table]
        };
        match self.exec.run(argv, None) {
            Ok(text) => Ok(parse_table(&text, &table)),
            Err(FirewallError::CommandFailed { stderr, .. })
                if stderr.starts_with("Error: No such file or directory") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The bans held by our sets, at `now` (whole seconds; `expires` rounded to the nearest).
    fn nft_bans(t: &NftTable, now: u64) -> Vec<Ban> {
        let mut bans = Vec::new();
        for (name, set) in &t.sets {
            let Some(key) = SetKey::parse(name).filter(|k| set.fits(*k)) else {
                continue;
            };
            for e in &set.elements {
                let Ok(net) = IpNet::new(e.addr, key.len) else {
                    continue;
                };
                if Family::of(&net) != key.family {
                    continue;
                }
                bans.push(Ban {
                    net: net.trunc(),
                    until: now + e.expires_ms.saturating_add(500) / 1000,
                    reason: e.comment.clone().unwrap_or_else(|| "-".to_string()),
                });
            }
        }
        bans
    }

    /// What is wrong with the structure of `t` for the sets `keys`: empty when intact.
    fn nft_problems(&self, t: &NftTable, keys: &BTreeSet<SetKey>) -> Vec<String> {
        let mut problems = Vec::new();
        for key in keys {
            match t.sets.get(&key.name()) {
                None => problems.push(format!("set {} missing", key.name())),
                Some(set) if !set.fits(*key) => {
                    problems.push(format!("set {} has the wrong type or flags", key.name()))
                }
                Some(_) => {}
            }
        }
        match t.chains.get(RULES_CHAIN) {
            None => problems.push(format!("chain {RULES_CHAIN} missing")),
            Some(c) if c.hook.is_some() => {
                problems.push(format!("chain {RULES_CHAIN} is a base chain"))
            }
            Some(_) => {}
        }
        let jump = format!("jump {RULES_CHAIN}");
        let chains = self.nft_chains();
        for c in &chains {
            let Some(have) = t.chains.get(&c.name) else {
                problems.push(format!("chain {} missing", c.name));
                continue;
            };
            if have.kind.as_deref() != Some("filter")
                || have.hook.as_deref() != Some(c.hook)
                || have.priority != Some(c.priority)
            {
                problems.push(format!(
                    "chain {} is not hooked at {} priority {}",
                    c.name, c.hook, c.priority
                ));
            }
            for key in keys {
                let n = have.count(&key.rule_body());
                if n != 1 {
                    problems.push(format!(
                        "chain {} has {n} rules for @{}",
                        c.name,
                        key.name()
                    ));
                }
            }
            let n = have.count(&jump);
            if n != 1 {
                problems.push(format!("chain {} has {n} jumps to {RULES_CHAIN}", c.name));
            }
        }
        for (name, have) in &t.chains {
            if have.hook.is_some() && !chains.iter().any(|c| &c.name == name) {
                problems.push(format!("chain {name} is not configured"));
            }
        }
        problems
    }

    /// One transaction: delete our table (when `exists`), create it with every chain, set
    /// and rule, and add every ban in `mirror` and every typed rule in `rules`.
    fn nft_rebuild(
        &self,
        exists: bool,
        (mirror, rules): (&Mirror<Ban>, &Mirror<RuleEntry>),
        keys: &BTreeSet<SetKey>,
        now: u64,
    ) -> Result<(), FirewallError> {
        let table = self.nft_table();
        let mut script = Script::new(&table);
        if exists {
            script.delete_table();
        }
        script.add_table();
        let chains = self.nft_chains();
        for c in &chains {
            script.add_chain(c);
        }
        for key in keys {
            script.add_set(*key, self.settings.maxelem);
        }
        script.add_regular_chain(RULES_CHAIN);
        for c in &chains {
            for key in keys {
                script.add_rule(&c.name, *key);
            }
            script.rule("add", &c.name, &format!("jump {RULES_CHAIN}"));
        }
        self.nft_add_rules(&mut script, rules.all());
        let mut by_key: BTreeMap<SetKey, Vec<&Ban>> = BTreeMap::new();
        for ban in mirror.all() {
            by_key.entry(SetKey::of(&ban.net)).or_default().push(ban);
        }
        for (key, bans) in &by_key {
            script.add_elements(*key, bans.iter().copied(), now);
        }
        self.nft_run(script)
    }

    /// The sets we keep: both host sets, those in `t` that fit, and one per prefix length held.
    fn nft_keys(t: Option<&NftTable>, mirror: &Mirror<Ban>) -> BTreeSet<SetKey> {
        let mut keys: BTreeSet<SetKey> = Family::BOTH.into_iter().map(SetKey::host).collect();
        if let Some(t) = t {
            keys.extend(
                t.sets
                    .iter()
                    .filter_map(|(n, s)| SetKey::parse(n).filter(|k| s.fits(*k))),
            );
        }
        keys.extend(mirror.all().map(|b| SetKey::of(&b.net)));
        keys
    }

    /// Adopts what our table holds and creates or rebuilds what is missing (see
    /// [`Firewall::open`]). An intact table is left exactly as it is.
    pub(crate) fn nft_reconcile(&self, state: &mut State, now: u64) -> Result<(), FirewallError> {
        let current = self.nft_read(false)?;
        let adopted = current
            .as_ref()
            .map(|t| Self::nft_bans(t, now))
            .unwrap_or_default();
        let mirror = Mirror::adopt(adopted, now);
        let rules = Mirror::adopt(
            current
                .as_ref()
                .map(|t| listed_rules(t).0)
                .unwrap_or_default(),
            now,
        );
        let keys = Self::nft_keys(current.as_ref(), &mirror);
        match &current {
            Some(t) if self.nft_problems(t, &keys).is_empty() => {
                // Expired, duplicated or foreign lines go.
                if rules_problem(t, &rules).is_some() {
                    self.nft_rewrite_rules(&rules)?;
                }
            }
            _ => self.nft_rebuild(current.is_some(), (&mirror, &rules), &keys, now)?,
        }
        state.mirror = mirror;
        state.rules = rules;
        state.nft_sets = keys;
        Ok(())
    }

    /// Applies a batch in one transaction: new sets and their rules, removals (tolerant of
    /// elements the kernel already expired), then additions; a replaced ban is removed and
    /// added again, so its timeout and comment both change whatever the kernel version.
    /// Typed rules follow in the same transaction (`nft_rules.rs`).
    pub(crate) fn nft_commit(
        &self,
        state: &mut State,
        batch: &Batch,
        now: u64,
    ) -> Result<Committed, FirewallError> {
        let checked = batch::check(batch, &state.guard, now, NFT_MAX_TIMEOUT);
        let mut refused = checked.refused;
        let rules = fitting(checked.rules, &mut refused);
        let plan = batch::plan(&checked.bans, &state.mirror, batch.exact);
        let table = self.nft_table();
        let mut script = Script::new(&table);
        let new_keys: BTreeSet<SetKey> = plan
            .add
            .iter()
            .chain(&plan.replace)
            .map(|b| SetKey::of(&b.net))
            .filter(|k| !state.nft_sets.contains(k))
            .collect();
        let chains = self.nft_chains();
        for key in &new_keys {
            script.add_set(*key, self.settings.maxelem);
            for c in &chains {
                script.insert_rule(&c.name, *key);
            }
        }
        let mut removals: BTreeMap<SetKey, Vec<IpNet>> = BTreeMap::new();
        for net in plan
            .remove
            .iter()
            .chain(plan.replace.iter().map(|b| &b.net))
        {
            removals.entry(SetKey::of(net)).or_default().push(*net);
        }
        for (key, nets) in &removals {
            script.delete_elements(*key, nets);
        }
        let mut additions: BTreeMap<SetKey, Vec<&Ban>> = BTreeMap::new();
        for ban in plan.add.iter().chain(&plan.replace) {
            additions.entry(SetKey::of(&ban.net)).or_default().push(ban);
        }
        for (key, bans) in &additions {
            script.add_elements(*key, bans.iter().copied(), now);
        }
        let next_rules = self.nft_plan_rules(&mut script, &state.rules, &rules, batch.exact);
        self.nft_run(script)?;
        state.rules = next_rules;
        state.nft_sets.extend(new_keys);
        for family in Family::BOTH {
            plan.apply_to(&mut state.mirror, family);
        }
        Ok(Committed { refused })
    }

    /// The bans our sets hold; one within a second of what memory holds is reported with
    /// memory's end time, so `list` and `next_expiry` agree.
    pub(crate) fn nft_read_bans(&self, state: &State, now: u64) -> Result<Vec<Ban>, FirewallError> {
        let mut bans = self
            .nft_read(false)?
            .map(|t| Self::nft_bans(&t, now))
            .unwrap_or_default();
        for ban in &mut bans {
            if let Some(mine) = state.mirror.get(&ban.net)
                && mine.until.abs_diff(ban.until) <= 1
            {
                ban.until = mine.until;
            }
        }
        Ok(bans)
    }

    /// The typed rules our table holds now, ordered by matches.
    pub(crate) fn nft_read_rules(&self) -> Result<Vec<RuleEntry>, FirewallError> {
        let mut rules = self
            .nft_read(true)?
            .map(|t| listed_rules(&t).0)
            .unwrap_or_default();
        rules.sort_by_key(|r| r.rule);
        Ok(rules)
    }

    /// Checks the table's structure and typed rules (one terse listing: no elements, so the
    /// cost does not grow with the bans) and rebuilds the table from memory when anything is
    /// missing or changed; typed rules alone that differ are rewritten in their chain.
    pub(crate) fn nft_repair(
        &self,
        state: &mut State,
        now: u64,
    ) -> Result<Vec<Repair>, FirewallError> {
        // The kernel has dropped these already.
        state.mirror.take_due(now);
        let current = self.nft_read(true)?;
        let problems = match &current {
            None => vec!["table missing".to_string()],
            Some(t) => self.nft_problems(t, &state.nft_sets),
        };
        let table = format!("inet {}", self.nft_table());
        if problems.is_empty() {
            let Some(problem) = current
                .as_ref()
                .and_then(|t| rules_problem(t, &state.rules))
            else {
                return Ok(Vec::new());
            };
            self.nft_rewrite_rules(&state.rules)?;
            return Ok(vec![Repair::RulesRestored {
                table,
                problem,
                rules: state.rules.len(),
            }]);
        }
        let entries = (&state.mirror, &state.rules);
        self.nft_rebuild(current.is_some(), entries, &state.nft_sets, now)?;
        Ok(vec![Repair::TableRestored {
            table,
            problem: problems.join("; "),
            entries: state.mirror.len() + state.rules.len(),
        }])
    }

    /// Deletes our table (and with it every chain, set and ban), nothing else; says what was
    /// there, and reads the ruleset again: a table of ours still there is an error.
    pub(crate) fn nft_remove_everything(
        &self,
        state: &mut State,
    ) -> Result<Flushed, FirewallError> {
        let mut done = Flushed::default();
        state.mirror = Mirror::default();
        state.rules = Mirror::default();
        state.nft_sets.clear();
        let Some(terse) = self.nft_read(true)? else {
            return Ok(done);
        };
        let table = self.nft_table();
        done.sets = terse.sets.keys().cloned().collect();
        // The terse listing has no elements; the full one counts the bans removed.
        done.entries = self
            .nft_read(false)?
            .map_or(0, |t| t.sets.values().map(|s| s.elements.len()).sum());
        let mut script = Script::new(&table);
        script.delete_table();
        self.nft_run(script)?;
        done.tables.push(format!("inet {table}"));
        if self.nft_read(true)?.is_some() {
            return Err(FirewallError::FlushIncomplete {
                removed: Box::new(done),
                reason: format!("table inet {table} still there after the removal"),
            });
        }
        Ok(done)
    }
}

#[cfg(test)]
#[path = "nft_tests.rs"]
mod nft_tests;
