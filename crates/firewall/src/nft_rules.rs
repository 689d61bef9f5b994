//! Typed rules on [`Backend::Nftables`](super::Backend::Nftables): they live in the regular
//! chain `rules` of our table, jumped to from every base chain after the set rules, one rule
//! line per entry (two for log-and-drop) with `until=SECS REASON` in its comment
//! (`nft_rule_text`). Pure additions are appended; a removal, a replacement or an expiry
//! rewrites the chain (`flush chain` and every line again) inside one transaction, so packets
//! never see it half done. Like the iptables backend, the kernel does not expire them:
//! [`Firewall::expire_due`] does.

use super::ban::RuleEntry;
use super::batch::{self, Desired};
use super::guard::{Refusal, Refused};
use super::mirror::Mirror;
use super::nft_parse::NftTable;
use super::nft_render::Script;
use super::nft_rule_text::{RULES_CHAIN, comment_problem, parse_line, rule_lines};
use super::parse::classify;
use super::{Firewall, FirewallError};

/// The typed rules a listed table holds, and how many lines of its `rules` chain make no
/// entry of ours (unreadable, a log line without its drop, a plain ban).
pub(crate) fn listed_rules(t: &NftTable) -> (Vec<RuleEntry>, usize) {
    let Some(chain) = t.chains.get(RULES_CHAIN) else {
        return (Vec::new(), 0);
    };
    let mut unreadable = 0;
    let lines = chain
        .listed
        .iter()
        .filter_map(|l| {
            let parsed = parse_line(l);
            unreadable += usize::from(parsed.is_none());
            parsed
        })
        .collect();
    let (bans, rules, orphans) = classify(lines);
    (rules, unreadable + orphans + bans.len())
}

/// What differs between the typed rules `t` holds and `mine`; `None` when they agree.
pub(crate) fn rules_problem(t: &NftTable, mine: &Mirror<RuleEntry>) -> Option<String> {
    let (mut have, strangers) = listed_rules(t);
    have.sort_by_key(|r| r.rule.key());
    if strangers == 0 && have.iter().eq(mine.all()) {
        return None;
    }
    Some(format!(
        "chain {RULES_CHAIN} holds {} typed rules and {strangers} other lines, {} expected",
        have.len(),
        mine.len()
    ))
}

/// Splits the typed-rule part of a checked batch: rules whose comment would not fit are
/// refused (added to `refused`), the rest is returned.
pub(crate) fn fitting(
    desired: Vec<Desired<RuleEntry>>,
    refused: &mut Vec<Refused>,
) -> Vec<Desired<RuleEntry>> {
    desired
        .into_iter()
        .filter(|d| match d {
            Desired::Set(e) => match comment_problem(e.until, &e.reason) {
                Some(why) => {
                    refused.push(Refused {
                        rule: e.rule,
                        refusal: Refusal::Reason(why),
                    });
                    false
                }
                None => true,
            },
            Desired::Remove(_) => true,
        })
        .collect()
}

impl Firewall {
    fn log_prefix(&self) -> String {
        format!("{} ", self.settings.chain)
    }

    /// Appends the lines of every entry in `rules` to our `rules` chain.
    pub(crate) fn nft_add_rules<'a>(
        &self,
        script: &mut Script<'_>,
        rules: impl IntoIterator<Item = &'a RuleEntry>,
    ) {
        let prefix = self.log_prefix();
        for e in rules {
            for line in rule_lines(&prefix, e) {
                script.rule("add", RULES_CHAIN, &line);
            }
        }
    }

    /// The typed-rule part of a commit, added to `script`: appends when only adding, else the
    /// chain rewritten. Returns the rules memory will hold once `script` ran.
    pub(crate) fn nft_plan_rules(
        &self,
        script: &mut Script<'_>,
        current: &Mirror<RuleEntry>,
        desired: &[Desired<RuleEntry>],
        exact: bool,
    ) -> Mirror<RuleEntry> {
        let plan = batch::plan(desired, current, exact);
        let mut next = current.clone();
        for family in super::Family::BOTH {
            plan.apply_to(&mut next, family);
        }
        if plan.replace.is_empty() && plan.remove.is_empty() {
            self.nft_add_rules(script, &plan.add);
        } else {
            script.flush_chain(RULES_CHAIN);
            self.nft_add_rules(script, next.all());
        }
        next
    }

    /// Rewrites our `rules` chain with `rules`, in one transaction.
    pub(crate) fn nft_rewrite_rules(&self, rules: &Mirror<RuleEntry>) -> Result<(), FirewallError> {
        let table = super::nft_render::table_name(&self.settings.chain);
        let mut script = Script::new(&table);
        script.flush_chain(RULES_CHAIN);
        self.nft_add_rules(&mut script, rules.all());
        self.nft_run(script)
    }
}

#[cfg(test)]
#[path = "nft_rules_tests.rs"]
mod tests;
