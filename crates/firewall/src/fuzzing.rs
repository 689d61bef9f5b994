//! Entry points for fuzzing the readers of the tools' output (`iptables-save`, `ipset save`,
//! `ipset list -t`): not part of the API (hidden from the docs), used by the workspace's
//! `fuzz/` targets and its never-panics property tests.
//!
//! The property: no input panics, and every entry read back from a table renders and reads
//! back as the same entry (so what a rebuild writes is what the next read finds).

use super::ban::Family;
use super::ban_chains;
use super::mirror::Mirror;
use super::parse;
use super::render;

/// Our chain and set names in the fuzzed text.
const CHAIN: &str = "AUTOBLOCK";
const SET: &str = "autoblock4";

/// Runs every reader on `text`; panics only if an entry does not survive render and read.
pub fn parse_tool_output(text: &str) {
    for family in [Family::V4, Family::V6] {
        for table in ["filter", "raw", "mangle"] {
            for set in [Some(SET), None] {
                if let Ok(st) = parse::parse_save(text, table, CHAIN, set, family) {
                    round_trip(&st, table, set, family);
                    let _ = st.jump_positions("INPUT");
                }
            }
        }
    }
    if let Some(st) = parse::parse_ipset_save(text, SET) {
        let _ = st.compatible("inet");
    }
    if let Some((header, _)) = parse::parse_ipset_terse(text) {
        let _ = parse::terse_compatible(&header, "inet6");
    }
    let _ = parse::tokenize(text, true);
    let _ = parse::tokenize(text, false);
}

fn round_trip(st: &parse::TableState, table: &str, set: Option<&str>, family: Family) {
    let mut lines: Vec<String> = st.bans.iter().map(|b| render::ban_rule(CHAIN, b)).collect();
    lines.extend(st.rules.iter().flat_map(|r| render::typed_rule(CHAIN, r)));
    let text = format!("*{table}\n:{CHAIN} - [0:0]\n{}\nCOMMIT\n", lines.join("\n"));
    let again = match parse::parse_save(&text, table, CHAIN, set, family) {
        Ok(again) => again,
        Err(e) => panic!("our own rendering is unreadable ({e:?}):\n{text}"),
    };
    assert_eq!(again.bans, st.bans, "bans changed through render:\n{text}");
    assert_eq!(
        again.rules, st.rules,
        "rules changed through render:\n{text}"
    );
    assert!(
        again.foreign.is_empty(),
        "ours read back as foreign:\n{text}"
    );
    bucketed_round_trip(st, table, family);
}

/// The bans written as the iptables backend keeps them (bucket chains, one comment per run of
/// bans with the same end and reason) read back as the same bans, with no orphan.
fn bucketed_round_trip(st: &parse::TableState, table: &str, family: Family) {
    let bans = Mirror::adopt(st.bans.iter().cloned(), 0);
    let whole = ban_chains::whole(CHAIN, &bans, family, true, &[]);
    let text = format!(
        "*{table}\n:{CHAIN} - [0:0]\n{}\n{}\nCOMMIT\n",
        whole.before.join("\n"),
        ban_chains::dispatch_jump(CHAIN)
    );
    let again = match parse::parse_save(&text, table, CHAIN, None, family) {
        Ok(again) => again,
        Err(e) => panic!("our own bucket chains are unreadable ({e:?}):\n{text}"),
    };
    let mut read: Vec<_> = again.bans;
    read.sort_by_key(|b| b.net);
    assert!(
        read.iter().eq(bans.family(family)),
        "bans changed through the bucket chains:\n{text}"
    );
    assert_eq!(
        (again.orphans, again.misplaced),
        (0, 0),
        "bucket chains read back out of place:\n{text}"
    );
}
