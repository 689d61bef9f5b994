//! Typed rules on [`Backend::Nftables`](super::Backend::Nftables): they live in the regular
//! chain `rules` of our table, jumped to from every base chain after the set rules, one rule
//! line per entry (two for log-and-drop) with `until=SECS REASON` in its comment
//! (`nft_rule_text`). Pure additions are appended; a removal, a replacement or an expiry
//! rewrites the chain (`flush chain` and every line again) inside one transaction, so packets
//! never see it half done. Like the iptables backend, the kernel does not expire them:
//! [`Firewall::expire_due`] does. Every line carries a `counter`: [`listed_counters`] reads
//! what each rule dropped back from a listing.

use super::ban::{Family, RuleEntry};
use super::batch::{self, Desired};
use super::counters::RuleCounter;
use super::guard::{Refusal, Refused};
use super::mirror::Mirror;
use super::nft_parse::{NftTable, tokenize_nft};
use super::nft_render::Script;
use super::nft_rule_text::{RULES_CHAIN, comment_problem, parse_line, rule_lines};
use super::parse::classify;
use super::rule::Action;
use super::rule_text::Target;
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

/// The counters of the typed rules a listed table holds, IPv4 then IPv6 in chain order: the
/// values of each drop or reject line (the log line of a log-and-drop rule counts what it
/// logged, which its drop line counts too; plain bans and lines not ours are left out).
pub(crate) fn listed_counters(t: &NftTable) -> Vec<RuleCounter> {
    let Some(chain) = t.chains.get(RULES_CHAIN) else {
        return Vec::new();
    };
    let mut out: Vec<RuleCounter> = chain
        .listed
        .iter()
        .filter_map(|l| counter_of_line(l))
        .collect();
    out.sort_by_key(|c| c.rule.family() == Some(Family::V6));
    out
}

/// One listed line of `rules` as a typed rule's counter (`counter packets P bytes B`).
fn counter_of_line(line: &str) -> Option<RuleCounter> {
    let l = parse_line(line)?;
    if l.target == Target::Log || l.rule.is_source_ban() {
        return None;
    }
    let tokens = tokenize_nft(line);
    let at = tokens.iter().position(|w| w == "counter")?;
    let (packets, bytes) = match tokens.get(at + 1..at + 5)? {
        [p, n, b, m] if p == "packets" && b == "bytes" => (n.parse().ok()?, m.parse().ok()?),
        _ => return None,
    };
    let action = match l.target {
        Target::Reject => Action::Reject,
        _ => Action::Drop,
    };
    Some(RuleCounter {
        rule: l.rule.action(action),
        reason: l.reason,
        packets,
        bytes,
    })
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

    /// The counters of the typed rules our table holds now (none when it is absent).
    pub(crate) fn nft_rule_counters(&self) -> Result<Vec<RuleCounter>, FirewallError> {
        Ok(self
            .nft_read(true)?
            .map(|t| listed_counters(&t))
            .unwrap_or_default())
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
