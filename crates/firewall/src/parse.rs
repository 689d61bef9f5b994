//! Reading the kernel's state (pure): `iptables-save` / `ip6tables-save` text for one table,
//! and `ipset save` / `ipset list -t` text for one set. Anything in our chain that is not exactly
//! one of our rules is kept aside as foreign, never dropped.

use ipnet::IpNet;

use super::ban::{Ban, Family, RuleEntry};
use super::ban_chains::{self, Private};
use super::rule::{Action, Rule};
use super::rule_text::{self, Line, Target, parse_net};

/// What one table says about our chain and its jumps.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TableState {
    /// `:CHAIN` is declared in this table.
    pub(crate) chain_exists: bool,
    /// Every chain declared in this table (built-in and user chains).
    pub(crate) chains: Vec<String>,
    /// Our plain bans, in chain order (may hold duplicates and expired bans).
    pub(crate) bans: Vec<Ban>,
    /// Our typed rules, in chain order (may hold duplicates and expired ones).
    pub(crate) rules: Vec<RuleEntry>,
    /// Lines of ours that make no entry (a log line without its drop, a rule without any
    /// address): a rebuild drops them.
    pub(crate) orphans: usize,
    /// How many `-m set --match-set SET src -j DROP` rules our chain holds.
    pub(crate) match_rules: usize,
    /// Other rules in our chain, as `-A CHAIN ...` lines, in order.
    pub(crate) foreign: Vec<String>,
    /// For each built-in chain with jumps to ours: the 1-based positions of `-A HOOK -j CHAIN`.
    pub(crate) jumps: Vec<(String, Vec<usize>)>,
    /// Chains named like ours but for case that match our set: they would share our sets.
    pub(crate) set_users: Vec<String>,
    /// Our private ban chains declared in this table (`CHAIN.bans`, `CHAIN.<hex>`, see
    /// `ban_chains`), in declaration order.
    pub(crate) private: Vec<String>,
    /// Those of `private` that hold at least one rule.
    pub(crate) private_filled: Vec<String>,
    /// How many `-A CHAIN -j CHAIN.bans` our chain holds.
    pub(crate) dispatch_jumps: usize,
    /// The bucket chains `CHAIN.bans` jumps to, in order.
    pub(crate) dispatch: Vec<String>,
    /// Entries not where the iptables backend puts them: bans in our chain or in the bucket
    /// of another end time, typed rules in a bucket.
    pub(crate) misplaced: usize,
}

impl TableState {
    /// Positions of our jump in `hook` (empty when none).
    pub(crate) fn jump_positions(&self, hook: &str) -> &[usize] {
        self.jumps
            .iter()
            .find(|(h, _)| h == hook)
            .map(|(_, p)| p.as_slice())
            .unwrap_or(&[])
    }

    /// Sorts the lines of our chain (`main`) and of our bucket chains (`bucketed`) into
    /// entries, counting what is out of place.
    fn classify(&mut self, main: Vec<Line>, bucketed: Vec<Line>) {
        let (bans, rules, orphans) = classify(main);
        self.misplaced += bans.len();
        self.bans.extend(bans);
        self.rules.extend(rules);
        self.orphans += orphans;
        let (bans, rules, orphans) = classify(bucketed);
        self.misplaced += rules.len();
        self.bans.extend(bans);
        self.rules.extend(rules);
        self.orphans += orphans;
    }
}

/// Sorts our lines into bans, typed rules and orphans (lines of ours that make no entry): a log
/// line pairs with the drop line of the same matches, expiry and reason.
pub(crate) fn classify(lines: Vec<Line>) -> (Vec<Ban>, Vec<RuleEntry>, usize) {
    let (mut bans, mut rules, mut orphans) = (Vec::new(), Vec::new(), 0);
    let (mut logs, rest): (Vec<Line>, Vec<Line>) =
        lines.into_iter().partition(|l| l.target == Target::Log);
    for line in rest {
        if line.rule.src.is_none() && line.rule.dst.is_none() {
            // No address: a drop-all an older version let through (`0.0.0.0/0` prints as
            // nothing). Ours, and removed by the next rebuild.
            orphans += 1;
            continue;
        }
        let mut action = match line.target {
            Target::Reject => Action::Reject,
            _ => Action::Drop,
        };
        if line.target == Target::Drop
            && let Some(i) = logs
                .iter()
                .position(|l| (l.rule, l.until, &l.reason) == (line.rule, line.until, &line.reason))
        {
            logs.swap_remove(i);
            action = Action::LogAndDrop;
        }
        let rule = line.rule.action(action);
        match rule.src.filter(|_| rule.is_source_ban()) {
            Some(net) => bans.push(Ban {
                net,
                until: line.until,
                reason: line.reason,
            }),
            None => rules.push(RuleEntry {
                rule,
                until: line.until,
                reason: line.reason,
            }),
        }
    }
    (bans, rules, orphans + logs.len())
}

/// Splits an `iptables-save` / `ipset save` line into words; double quotes group. With
/// `escapes` (iptables), `\"` and `\\` escape inside quotes; ipset prints comments raw.
pub(crate) fn tokenize(line: &str, escapes: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted && escapes => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Why `iptables-save` output gives no complete view of a table: acting on it would be a guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable(pub(crate) String);

/// Checks that `text` shows `table` whole: its `*table` section is present and ends with
/// `COMMIT`, and iptables-save did not call the table incompatible (an iptables-nft table holding
/// rules iptables cannot translate prints only `# Table `filter' is incompatible, use 'nft'
/// tool.`, and a rule it fails to parse cuts the output short).
pub(crate) fn check_readable(text: &str, table: &str) -> Result<(), Unreadable> {
    let incompatible = format!("# Table `{table}' is incompatible");
    if let Some(line) = text.lines().find(|l| l.starts_with(&incompatible)) {
        return Err(Unreadable(format!("iptables-save says `{}`", line.trim())));
    }
    let header = format!("*{table}");
    let mut lines = text.lines().map(str::trim_end);
    if !lines.any(|l| l == header) {
        return Err(Unreadable(format!("its output has no `{header}` section")));
    }
    match lines.find(|l| *l == "COMMIT" || l.starts_with('*')) {
        Some("COMMIT") => Ok(()),
        _ => Err(Unreadable(format!(
            "its `{header}` section ends without COMMIT (output cut short)"
        ))),
    }
}

/// Reads `table` from `iptables-save` output (one or many tables) of `family` for our
/// `chain`; a rule that matches `set` (if given) counts as our match rule. Output that does not
/// show the table whole ([`check_readable`]) is an error, never an empty table.
pub(crate) fn parse_save(
    text: &str,
    table: &str,
    chain: &str,
    set: Option<&str>,
    family: Family,
) -> Result<TableState, Unreadable> {
    check_readable(text, table)?;
    let mut st = TableState::default();
    let mut lines = Vec::new();
    let mut bucketed = Vec::new();
    let mut in_table = false;
    let mut counters: Vec<(String, usize)> = Vec::new();
    let mut run = None;
    let decl = format!(":{chain} ");
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix('*') {
            in_table = name == table;
            continue;
        }
        if !in_table {
            continue;
        }
        if let Some(decl_line) = line.strip_prefix(':') {
            st.chain_exists |= line.starts_with(&decl);
            if let Some(name) = decl_line.split_whitespace().next() {
                if ban_chains::private(chain, name).is_some() {
                    st.private.push(name.to_string());
                }
                st.chains.push(name.to_string());
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("-A ") else {
            continue;
        };
        let words = tokenize(rest, true);
        let Some((owner, args)) = words.split_first() else {
            continue;
        };
        let is_match = |set: &str| {
            args.len() == 7
                && args[..3] == ["-m", "set", "--match-set"]
                && args[3] == set
                && args[4..] == ["src", "-j", "DROP"]
        };
        if let Some(private) = ban_chains::private(chain, owner) {
            if st.private_filled.last() != Some(owner) && !st.private_filled.contains(owner) {
                st.private_filled.push(owner.clone());
            }
            st.private_line(
                chain,
                (owner, private),
                args,
                family,
                &mut bucketed,
                &mut run,
            );
            continue;
        }
        if owner == chain {
            if args.len() == 2 && args[0] == "-j" && args[1] == ban_chains::dispatch(chain) {
                st.dispatch_jumps += 1;
            } else if set.is_some_and(is_match) {
                st.match_rules += 1;
            } else if let Some(l) = rule_text::parse_line(args, family) {
                lines.push(l);
            } else {
                st.foreign.push(line.to_string());
            }
            continue;
        }
        if owner.eq_ignore_ascii_case(chain) && set.is_some_and(is_match) {
            st.set_users.push(owner.clone());
        }
        let pos = match counters.iter_mut().find(|(c, _)| c == owner) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                counters.push((owner.clone(), 1));
                1
            }
        };
        if args.len() == 2 && args[0] == "-j" && args[1] == chain {
            match st.jumps.iter_mut().find(|(h, _)| h == owner) {
                Some((_, p)) => p.push(pos),
                None => st.jumps.push((owner.clone(), vec![pos])),
            }
        }
    }
    st.classify(lines, bucketed);
    Ok(st)
}

impl TableState {
    /// One `-A` line of a private chain: the dispatch chain's jumps, a bucket's bans (a bare
    /// one takes the end time and reason of `run`, the plain ban just before it in the same
    /// chain).
    /// Anything else there is an orphan (private chains are ours alone; a rewrite drops it).
    fn private_line(
        &mut self,
        chain: &str,
        (name, private): (&str, Private),
        args: &[String],
        family: Family,
        bucketed: &mut Vec<Line>,
        run: &mut Option<Run>,
    ) {
        match private {
            Private::Dispatch => match args {
                [j, target] if j == "-j" => match ban_chains::private(chain, target) {
                    Some(Private::Bucket(_)) => self.dispatch.push(target.clone()),
                    _ => self.orphans += 1,
                },
                _ => self.orphans += 1,
            },
            Private::Bucket(k) => {
                let line = rule_text::parse_line(args, family).or_else(|| {
                    let net = rule_text::parse_bare_ban(args, family)?;
                    let r = run.as_ref().filter(|r| r.chain == name)?;
                    Some(Line {
                        rule: Rule::from(net),
                        target: Target::Drop,
                        until: r.until,
                        reason: r.reason.clone(),
                    })
                });
                let Some(l) = line else {
                    self.orphans += 1;
                    *run = None;
                    return;
                };
                if ban_chains::bucket(l.until) != k {
                    self.misplaced += 1;
                }
                // Only a plain ban (as `push_runs` writes) starts a run: a bare line after
                // a typed rule, a reject or a log line is no ban of ours.
                let plain = l.target == Target::Drop && l.rule.is_source_ban();
                *run = plain.then(|| Run {
                    chain: name.to_string(),
                    until: l.until,
                    reason: l.reason.clone(),
                });
                bucketed.push(l);
            }
        }
    }
}

/// The end time and reason that the bare bans after a commented one in a bucket chain take.
#[derive(Debug)]
struct Run {
    chain: String,
    until: u64,
    reason: String,
}

/// One set as `ipset save NAME` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetState {
    /// The `create` line.
    pub(crate) header: String,
    /// Entries with a timeout: (net, seconds left, comment).
    pub(crate) entries: Vec<(IpNet, u64, String)>,
}

impl SetState {
    /// True when the set is `hash:net` of `inet`/`inet6` with timeout and comment support.
    pub(crate) fn compatible(&self, inet: &str) -> bool {
        header_compatible(&self.header, inet)
    }
}

fn header_compatible(header: &str, inet: &str) -> bool {
    let w: Vec<&str> = header.split_whitespace().collect();
    w.contains(&"hash:net")
        && w.windows(2).any(|p| p == ["family", inet])
        && w.contains(&"timeout")
        && w.contains(&"comment")
}

/// Parses `ipset save NAME` output for set `name`. Entries without a timeout (permanent, so not
/// ours) or with `nomatch` are left out.
pub(crate) fn parse_ipset_save(text: &str, name: &str) -> Option<SetState> {
    let mut state: Option<SetState> = None;
    for line in text.lines() {
        let words = tokenize(line, false);
        match words.first().map(String::as_str) {
            Some("create") if words.get(1).is_some_and(|n| n == name) => {
                state = Some(SetState {
                    header: line.trim().to_string(),
                    entries: Vec::new(),
                });
            }
            Some("add") if words.get(1).is_some_and(|n| n == name) => {
                let (Some(st), Some(net)) =
                    (state.as_mut(), words.get(2).and_then(|w| parse_net(w)))
                else {
                    continue;
                };
                let (mut timeout, mut comment, mut ok) = (None, String::from("-"), true);
                let mut it = words[3..].iter();
                while let Some(w) = it.next() {
                    match w.as_str() {
                        "timeout" => timeout = it.next().and_then(|t| t.parse::<u64>().ok()),
                        "comment" => comment = it.next().cloned().unwrap_or_default(),
                        "nomatch" => ok = false,
                        "packets" | "bytes" | "skbmark" | "skbprio" | "skbqueue" => {
                            it.next();
                        }
                        _ => {}
                    }
                }
                if let (true, Some(t @ 1..)) = (ok, timeout) {
                    st.entries.push((net, t, comment));
                }
            }
            _ => {}
        }
    }
    state
}

/// From `ipset list -t NAME`: (header line, number of entries).
pub(crate) fn parse_ipset_terse(text: &str) -> Option<(String, usize)> {
    let mut header = None;
    let mut count = None;
    let mut kind = String::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("Type: ") {
            kind = t.trim().to_string();
        } else if let Some(h) = line.strip_prefix("Header: ") {
            header = Some(format!("{kind} {}", h.trim()));
        } else if let Some(n) = line.strip_prefix("Number of entries: ") {
            count = n.trim().parse().ok();
        }
    }
    Some((header?, count?))
}

/// True when `ipset list -t` header text describes a compatible set.
pub(crate) fn terse_compatible(header: &str, inet: &str) -> bool {
    header_compatible(header, inet)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
