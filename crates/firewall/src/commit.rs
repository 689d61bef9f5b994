//! Committing a batch and expiring entries: the guard and the planner decide, this file
//! sequences the process calls. With ipset, bans go to the sets in one `ipset restore`; typed
//! rules go to our chain and, with iptables, bans to their ban chains (`ban_chains.rs`) in one
//! `iptables-restore` per family: typed rules appended when only added, our chain rebuilt
//! when one is replaced or removed; a ban chain appended to, rewritten or emptied and deleted.

use std::collections::BTreeSet;

use super::ban::{Ban, Expired, Family, RuleEntry};
use super::ban_chains;
use super::batch::{self, Batch, Committed, Plan};
use super::engine::State;
use super::mirror::Mirror;
use super::render::{self, IPSET_MAX_TIMEOUT, TableEdit};
use super::{Firewall, FirewallError};

impl Firewall {
    /// Applies `batch` (see [`Firewall::commit`]).
    pub(crate) fn commit_batch(
        &self,
        state: &mut State,
        batch: &Batch,
        now: u64,
    ) -> Result<Committed, FirewallError> {
        if self.nft() {
            return self.nft_commit(state, batch, now);
        }
        let max_ban = if self.ipset() {
            IPSET_MAX_TIMEOUT
        } else {
            u64::MAX
        };
        let checked = batch::check(batch, &state.guard, now, max_ban);
        let bans = batch::plan(&checked.bans, &state.mirror, batch.exact);
        let rules = batch::plan(&checked.rules, &state.rules, batch.exact);
        if self.ipset() && !bans.is_empty() {
            let mut text = String::new();
            for net in &bans.remove {
                text.push_str(&render::ipset_del(&self.set_name(Family::of(net)), net));
            }
            for ban in bans.add.iter().chain(&bans.replace) {
                let set = self.set_name(Family::of(&ban.net));
                text.push_str(&render::ipset_add(&set, ban, now));
            }
            if let Err(e) = self.ipset_restore(&text) {
                // `ipset restore` applies lines up to the failing one: learn which.
                self.resync_sets(state, &bans, now);
                return Err(e);
            }
            for family in Family::BOTH {
                bans.apply_to(&mut state.mirror, family);
            }
        }
        for family in Family::BOTH {
            let chain_bans = !self.ipset() && bans.touches(family);
            if chain_bans || rules.touches(family) {
                self.commit_chain(state, &bans, &rules, family)?;
            }
        }
        Ok(Committed {
            refused: checked.refused,
        })
    }

    /// The chain part of a commit for one family: a rebuild of our chain when a typed rule is
    /// replaced or removed; otherwise typed rules appended to it and, with iptables, the ban
    /// chains the plan touches rewritten or appended to (see `ban_chains`).
    fn commit_chain(
        &self,
        state: &mut State,
        bans: &Plan<Ban>,
        rules: &Plan<RuleEntry>,
        family: Family,
    ) -> Result<(), FirewallError> {
        // With ipset the bans are in the sets: memory's copy is not needed (nor copied).
        let next_bans = (!self.ipset()).then(|| {
            let mut next = state.mirror.clone();
            bans.apply_to(&mut next, family);
            next
        });
        let mut next_rules = state.rules.clone();
        rules.apply_to(&mut next_rules, family);
        let edits = if rules.rebuilds(family) {
            self.refresh_foreign(state, family)?;
            let bans = next_bans.as_ref().unwrap_or(&state.mirror);
            self.rebuild_edits(state, bans, &next_rules, family)
        } else {
            let chain = &self.settings.chain;
            let lines: Vec<String> = rules
                .add
                .iter()
                .filter(|r| r.rule.family() == Some(family))
                .flat_map(|r| render::typed_rule(chain, r))
                .collect();
            let (before, delete) = match &next_bans {
                Some(next) => self.ban_chain_change(&state.mirror, next, bans, family),
                None => Default::default(),
            };
            self.in_every_table(lines, before, delete)
        };
        self.iptables_restore(family, &edits)?;
        if let Some(next) = next_bans {
            state.mirror = next;
        }
        state.rules = next_rules;
        Ok(())
    }

    /// The same edit of every table we hook into: `rules` appended to our chain, `before` for
    /// the ban chains, `delete` after.
    fn in_every_table(
        &self,
        rules: Vec<String>,
        before: Vec<String>,
        delete: Vec<String>,
    ) -> Vec<TableEdit> {
        self.settings
            .tables
            .iter()
            .map(|t| TableEdit {
                table: t.clone(),
                rules: rules.clone(),
                before: before.clone(),
                delete: delete.clone(),
                ..Default::default()
            })
            .collect()
    }

    /// The ban chains' restore lines for `plan` of `family`, from `now` to `next`, and the
    /// chains to delete after (see [`ban_chains::change`]): a new ban
    /// goes at the end of its bucket when that bucket exists and nothing else in it changes;
    /// every other bucket the plan touches is rewritten (or deleted when emptied).
    fn ban_chain_change(
        &self,
        now: &Mirror<Ban>,
        next: &Mirror<Ban>,
        plan: &Plan<Ban>,
        family: Family,
    ) -> (Vec<String>, Vec<String>) {
        let before: BTreeSet<u64> = ban_chains::buckets(now, family).into_keys().collect();
        let old_bucket = |net: &ipnet::IpNet| now.get(net).map(|b| ban_chains::bucket(b.until));
        let replaced = plan.replace.iter().filter(|b| Family::of(&b.net) == family);
        let mut rewrite: BTreeSet<u64> = plan
            .remove
            .iter()
            .filter(|net| Family::of(net) == family)
            .filter_map(old_bucket)
            .chain(replaced.clone().filter_map(|b| old_bucket(&b.net)))
            .chain(replaced.map(|b| ban_chains::bucket(b.until)))
            .collect();
        let adds: Vec<&Ban> = plan
            .add
            .iter()
            .filter(|b| Family::of(&b.net) == family)
            .collect();
        rewrite.extend(
            adds.iter()
                .map(|b| ban_chains::bucket(b.until))
                .filter(|k| !before.contains(k)),
        );
        let appends: Vec<&Ban> = adds
            .into_iter()
            .filter(|b| !rewrite.contains(&ban_chains::bucket(b.until)))
            .collect();
        ban_chains::change(
            &self.settings.chain,
            &before,
            next,
            family,
            &rewrite,
            &appends,
        )
    }

    /// After a failed `ipset restore`: memory takes, for every net the plan touched, what the
    /// kernel holds now (best effort; on a read error memory stays as it was).
    fn resync_sets(&self, state: &mut State, plan: &Plan<Ban>, now: u64) {
        for family in Family::BOTH {
            let Ok(entries) = self.read_set(family) else {
                continue;
            };
            let held: std::collections::HashMap<_, _> = entries
                .into_iter()
                .map(|(net, left, reason)| (net, (left, reason)))
                .collect();
            let touched = plan
                .add
                .iter()
                .chain(&plan.replace)
                .map(|b| b.net)
                .chain(plan.remove.iter().copied())
                .filter(|n| Family::of(n) == family);
            for net in touched {
                match held.get(&net) {
                    Some((left, reason)) => {
                        state.mirror.insert(Ban {
                            net,
                            until: now + left,
                            reason: reason.clone(),
                        });
                    }
                    None => {
                        state.mirror.remove(&net);
                    }
                }
            }
        }
    }

    /// Removes entries that end at or before `now` (see [`Firewall::expire_due`]).
    pub(crate) fn expire(&self, state: &mut State, now: u64) -> Result<Expired, FirewallError> {
        let due = |m: Option<u64>| m.is_some_and(|t| t <= now);
        if !due(state.mirror.next_expiry()) && !due(state.rules.next_expiry()) {
            return Ok(Expired::default());
        }
        let mut bans: Mirror<Ban> = state.mirror.clone();
        let mut rules = state.rules.clone();
        let expired = Expired {
            bans: bans.take_due(now),
            rules: rules.take_due(now),
        };
        if self.nft() && !expired.rules.is_empty() {
            self.nft_rewrite_rules(&rules)?;
        }
        for family in Family::BOTH.into_iter().filter(|_| !self.nft()) {
            let edits = if expired
                .rules
                .iter()
                .any(|r| r.rule.family() == Some(family))
            {
                // A typed rule ended: our chain is rebuilt, after reading it again.
                self.refresh_foreign(state, family)?;
                self.rebuild_edits(state, &bans, &rules, family)
            } else if self.ipset() {
                continue;
            } else {
                let ended = Plan {
                    remove: expired
                        .bans
                        .iter()
                        .filter(|b| Family::of(&b.net) == family)
                        .map(|b| b.net)
                        .collect(),
                    ..Default::default()
                };
                if ended.remove.is_empty() {
                    continue;
                }
                let (before, delete) = self.ban_chain_change(&state.mirror, &bans, &ended, family);
                self.in_every_table(Vec::new(), before, delete)
            };
            self.iptables_restore(family, &edits)?;
        }
        state.mirror = bans;
        state.rules = rules;
        Ok(expired)
    }
}

#[cfg(test)]
#[path = "commit_tests.rs"]
mod tests;
