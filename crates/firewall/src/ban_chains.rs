//! Where the iptables backend keeps plain bans (pure): in private chains of ours grouped by end
//! time, `CHAIN.<hex>` ("buckets", one per [`BUCKET_SECS`] of `until`), all reached through
//! one private dispatch chain `CHAIN.bans` that our chain jumps to. Expiring or removing bans
//! then rewrites only their buckets — a bucket whose bans all ended is flushed and deleted —
//! and never our chain itself, whose hand-added rules must survive: no re-read of the table,
//! no rebuild of the other bans. Names never clash with another handle's chain: chain names
//! have no `.`. Everything in a private chain is ours; a rule added there by hand is removed
//! by the next rewrite of that chain.
//!
//! In a bucket, only the first ban of each run of bans with the same end time and reason
//! carries our comment (`autoblock until=SECS rule=REASON`); the bans after it are bare
//! `-s NET -j DROP` rules that take the comment of the run (`parse` reads them so). Each
//! write starts a run, so an append never extends another write's run. The kernel's cost of a
//! rule is a third higher with a comment (iptables-nft makes it an `xt` match): 10,000 bans
//! from one feed or one rule then cost what 10,000 bare rules cost. A run's bans need its
//! first rule: when it is deleted by hand, the bans after it read as orphans or, behind another
//! run in the same chain, as bans of that run (its end time, under 32 s off, and its reason);
//! a bare rule appended by hand reads as a ban of the last run. The next check finds the chain
//! changed and writes it again from memory, but a reopen after a crash adopts what it reads.
//! A version before runs reads bare bans as orphans.

use std::collections::{BTreeMap, BTreeSet};

use super::ban::{Ban, Family};
use super::mirror::Mirror;
use super::render;

/// Bans whose `until` falls in the same span of this many seconds share a bucket chain. Larger
/// spans mean fewer chains for every packet to enter, smaller ones less to rewrite when part
/// of a bucket ends (a bucket is rewritten, not flushed, while some of its bans go on).
pub(crate) const BUCKET_SECS: u64 = 32;

/// The largest bucket number: seven hex digits, so `CHAIN.` plus the number fits iptables'
/// 28-character chain names with a chain of up to [`MAX_CHAIN_LEN`]. Bans ending after the
/// year 2242 share this last bucket.
const LAST_BUCKET: u64 = 0xFFF_FFFF;

/// The longest chain name [`Backend::Iptables`](crate::Backend::Iptables) takes: iptables' 28
/// characters minus the `.` and seven hex digits of its ban chains' names (`MYAPP.3584a1c`).
pub const MAX_CHAIN_LEN: usize = 20;

/// The bucket of a ban that ends at `until`.
pub(crate) fn bucket(until: u64) -> u64 {
    (until / BUCKET_SECS).min(LAST_BUCKET)
}

/// `CHAIN.bans`: the private chain our chain jumps to, which jumps to every bucket.
pub(crate) fn dispatch(chain: &str) -> String {
    format!("{chain}.bans")
}

/// `CHAIN.<hex>`: the private chain holding the bans of bucket `k`.
pub(crate) fn bucket_chain(chain: &str, k: u64) -> String {
    format!("{chain}.{k:x}")
}

/// What a chain named `name` is to our `chain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Private {
    Dispatch,
    Bucket(u64),
}

/// `Some` when `name` is one of `chain`'s private chains, exactly as we name them.
pub(crate) fn private(chain: &str, name: &str) -> Option<Private> {
    let suffix = name.strip_prefix(chain)?.strip_prefix('.')?;
    if suffix == "bans" {
        return Some(Private::Dispatch);
    }
    let k = u64::from_str_radix(suffix, 16).ok()?;
    (k <= LAST_BUCKET && bucket_chain(chain, k) == name).then_some(Private::Bucket(k))
}

/// The `-A CHAIN -j CHAIN.bans` line of our chain.
pub(crate) fn dispatch_jump(chain: &str) -> String {
    format!("-A {chain} -j {}", dispatch(chain))
}

/// The bans of `family` per bucket, each bucket in net order.
pub(crate) fn buckets(bans: &Mirror<Ban>, family: Family) -> BTreeMap<u64, Vec<&Ban>> {
    let mut out: BTreeMap<u64, Vec<&Ban>> = BTreeMap::new();
    for b in bans.family(family) {
        out.entry(bucket(b.until)).or_default().push(b);
    }
    out
}

/// The names of the bucket chains the bans of `family` need, in bucket order.
pub(crate) fn bucket_names(chain: &str, bans: &Mirror<Ban>, family: Family) -> Vec<String> {
    buckets(bans, family)
        .into_keys()
        .map(|k| bucket_chain(chain, k))
        .collect()
}

/// Appends `bans` to bucket chain `name` as runs: bans with the same end time and reason are
/// written together, the first of each run with our comment, the others bare. The first ban
/// written always starts a run (the chain may hold another write's bans before it).
fn push_runs(out: &mut Vec<String>, name: &str, bans: &[&Ban]) {
    let mut sorted = bans.to_vec();
    // Stable: net order within a run.
    sorted.sort_by(|a, b| (a.until, &a.reason).cmp(&(b.until, &b.reason)));
    let mut run: Option<(u64, &str)> = None;
    for b in sorted {
        if run == Some((b.until, b.reason.as_str())) {
            out.push(render::bare_ban_rule(name, &b.net));
        } else {
            out.push(render::ban_rule(name, b));
            run = Some((b.until, b.reason.as_str()));
        }
    }
}

/// Restore lines that declare (create or empty) bucket `k` and fill it.
fn fill_bucket(out: &mut Vec<String>, chain: &str, k: u64, bans: &[&Ban]) {
    let name = bucket_chain(chain, k);
    out.push(format!(":{name} - [0:0]"));
    push_runs(out, &name, bans);
}

/// Restore lines that declare (create or empty) the dispatch chain with a jump per bucket.
fn fill_dispatch<'a>(out: &mut Vec<String>, chain: &str, keys: impl Iterator<Item = &'a u64>) {
    let name = dispatch(chain);
    out.push(format!(":{name} - [0:0]"));
    out.extend(keys.map(|k| format!("-A {name} -j {}", bucket_chain(chain, *k))));
}

/// A change of some bans of `family` for one table (the same in each): restore lines, and the
/// chains to delete once they are applied ([`Firewall`](crate::Firewall) deletes them in a
/// second call, best effort: a chain someone else jumps to cannot be deleted, and must not
/// make the change fail). The buckets in `rewrite` are rewritten from `next` (emptied and left
/// for deletion when `next` has none in them), the bans in `appends` are appended to their
/// bucket (which must exist, and not be in `rewrite`), and the dispatch chain is rewritten
/// when the set of buckets changes from `before`. No line touches our own chain.
pub(crate) fn change(
    chain: &str,
    before: &BTreeSet<u64>,
    next: &Mirror<Ban>,
    family: Family,
    rewrite: &BTreeSet<u64>,
    appends: &[&Ban],
) -> (Vec<String>, Vec<String>) {
    let next_buckets = buckets(next, family);
    let mut out = Vec::new();
    for k in rewrite {
        if let Some(bans) = next_buckets.get(k) {
            fill_bucket(&mut out, chain, *k, bans);
        }
    }
    let mut appended: BTreeMap<u64, Vec<&Ban>> = BTreeMap::new();
    for b in appends {
        appended.entry(bucket(b.until)).or_default().push(b);
    }
    for (k, bans) in &appended {
        push_runs(&mut out, &bucket_chain(chain, *k), bans);
    }
    if !next_buckets.keys().eq(before.iter()) {
        fill_dispatch(&mut out, chain, next_buckets.keys());
    }
    let mut delete = Vec::new();
    for k in rewrite.iter().chain(before).collect::<BTreeSet<_>>() {
        if !next_buckets.contains_key(k) {
            let name = bucket_chain(chain, *k);
            // Emptied (created if missing, so this never fails), after the dispatch chain
            // stopped jumping to it.
            out.push(format!(":{name} - [0:0]"));
            delete.push(name);
        }
    }
    (out, delete)
}

/// Every private chain for some bans of one family, written whole (see [`whole`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Whole {
    /// Restore lines before our chain's own (it jumps to the dispatch chain).
    pub(crate) before: Vec<String>,
    /// Restore lines after our chain's: stale private chains emptied.
    pub(crate) after: Vec<String>,
    /// Those stale chains, to delete once the restore is applied (best effort, see [`change`]).
    pub(crate) delete: Vec<String>,
}

/// Every private chain for `bans` of `family`. `existing` are the private chains the table
/// holds now; those no longer wanted are emptied after our chain stops jumping to them, then
/// deleted. With `in_chains` false (ipset), no private chain is wanted.
pub(crate) fn whole(
    chain: &str,
    bans: &Mirror<Ban>,
    family: Family,
    in_chains: bool,
    existing: &[String],
) -> Whole {
    let mut out = Whole::default();
    let mut wanted = BTreeSet::new();
    if in_chains {
        let all = buckets(bans, family);
        for (k, list) in &all {
            fill_bucket(&mut out.before, chain, *k, list);
            wanted.insert(bucket_chain(chain, *k));
        }
        fill_dispatch(&mut out.before, chain, all.keys());
        wanted.insert(dispatch(chain));
    }
    let stale = existing.iter().filter(|n| !wanted.contains(*n));
    out.delete = stale.cloned().collect();
    out.after = out.delete.iter().map(|n| format!(":{n} - [0:0]")).collect();
    out
}

/// Why `st`'s private chains and the jump to them are not exactly what `bans` of `family` want
/// (`in_chains`: iptables backend), or `None` when they are. The bans themselves are compared
/// by the caller.
pub(crate) fn layout_problem(
    chain: &str,
    st: &super::parse::TableState,
    bans: &Mirror<Ban>,
    family: Family,
    in_chains: bool,
) -> Option<&'static str> {
    if !in_chains {
        let clean = st.private_filled.is_empty() && st.dispatch_jumps == 0;
        return (!clean).then_some("private ban chains left from the iptables backend");
    }
    let want = bucket_names(chain, bans, family);
    // A chain left empty and unreached is harmless: one whose deletion failed (someone else
    // jumps to it) is left so, and deleted again at the next rewrite.
    let mut declared: Vec<String> = st
        .private
        .iter()
        .filter(|n| want.contains(n) || **n == dispatch(chain) || st.private_filled.contains(n))
        .cloned()
        .collect();
    declared.sort();
    let mut expected = want.clone();
    expected.push(dispatch(chain));
    expected.sort();
    if st.dispatch_jumps != 1 {
        Some("our chain does not jump exactly once to its ban chains")
    } else if st.misplaced > 0 {
        Some("bans outside the ban chain of their end time")
    } else if st.dispatch != want {
        Some("the dispatch chain does not jump to each ban chain once, in order")
    } else if declared != expected {
        Some("ban chains missing or left over")
    } else {
        None
    }
}

#[cfg(test)]
#[path = "ban_chains_tests.rs"]
mod tests;
