//! The fuzz targets' properties as property tests, so CI checks them without cargo-fuzz
//! (issue 11 item 8): the readers of untrusted text never panic on the seeds in `fuzz/seeds/`
//! mutated at random (lines dropped, doubled and swapped, words replaced by other words of
//! the same seeds, bytes inserted, text cut), nor on arbitrary text. Each target's own checks
//! (round trips) run too: these call the same entry points as `fuzz/fuzz_targets/`.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use autoblock::sys::control::protocol::{decode_request, decode_response, encode_request};
use autoblock::trust::peers::{PeerKind, PeerSet};
use autoblock::trust::proc_net;

fn seeds(target: &str) -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("seed"))
        .collect();
    assert!(!texts.is_empty(), "no seeds in {}", dir.display());
    texts
}

/// One random change to a text.
#[derive(Debug, Clone)]
enum Edit {
    DropLine(usize),
    DoubleLine(usize),
    SwapLines(usize, usize),
    ReplaceWord(usize, usize, usize),
    Insert(usize, String),
    Cut(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let ix = any::<usize>;
    prop_oneof![
        ix().prop_map(Edit::DropLine),
        ix().prop_map(Edit::DoubleLine),
        (ix(), ix()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (ix(), ix(), ix()).prop_map(|(l, w, n)| Edit::ReplaceWord(l, w, n)),
        (ix(), "\\PC{0,8}|[\\x00-\\x7f]{0,4}|\"|\\\\|=|:|/|-")
            .prop_map(|(p, s)| Edit::Insert(p, s)),
        ix().prop_map(Edit::Cut),
    ]
}

/// `text` with `edits` applied; replacement words come from `pool`.
fn mutate(text: &str, edits: &[Edit], pool: &[&str]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::DropLine(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::DoubleLine(i) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
            Edit::ReplaceWord(l, w, p) if !lines.is_empty() && !pool.is_empty() => {
                let line = &mut lines[l % n];
                let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
                let at = w % words.len().max(1);
                if let Some(word) = words.get_mut(at) {
                    *word = pool[p % pool.len()].to_string();
                }
                *line = words.join(" ");
            }
            Edit::Insert(p, s) => {
                let joined = lines.join("\n");
                let at = floor_boundary(&joined, p % (joined.len() + 1));
                let out = format!("{}{s}{}", &joined[..at], &joined[at..]);
                lines = out.split('\n').map(str::to_string).collect();
            }
            Edit::Cut(p) => {
                let joined = lines.join("\n");
                let at = floor_boundary(&joined, p % (joined.len() + 1));
                lines = joined[..at].split('\n').map(str::to_string).collect();
            }
            _ => {}
        }
    }
    lines.join("\n") + "\n"
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Every word of every seed: what replacement words are drawn from.
fn words(texts: &[String]) -> Vec<&str> {
    texts.iter().flat_map(|t| t.split_whitespace()).collect()
}

/// Mutated seeds of `target`, and the seeds themselves, checked with `check`.
fn run(target: &str, cases: u32, check: impl Fn(&str)) {
    let texts = seeds(target);
    for t in &texts {
        check(t);
    }
    let pool = words(&texts);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (0..texts.len(), proptest::collection::vec(edit(), 1..8));
    let result = runner.run(&strategy, |(seed, edits)| {
        check(&mutate(&texts[seed], &edits, &pool));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{target}: {e}");
    }
    let result = runner.run(&"\\PC{0,200}", |text| {
        check(&text);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{target} (arbitrary text): {e}");
    }
}

#[test]
fn firewall_tool_output_readers_never_panic() {
    run("firewall_output", 2000, |text| {
        autoblock::firewall::fuzzing::parse_tool_output(text)
    });
}

#[test]
fn control_protocol_decoders_never_panic_and_requests_round_trip() {
    run("control_request", 2000, |text| {
        if let Ok(req) = decode_request(text.as_bytes()) {
            let line = encode_request(&req);
            assert_eq!(decode_request(line.as_bytes()).ok(), Some(req), "{line}");
        }
        let _ = decode_response(text.as_bytes());
    });
}

#[test]
fn config_never_panics_and_errors_print() {
    run("config", 500, |text| {
        if let Err(e) = autoblock::config::parse_str(text, Path::new("rules.toml")) {
            let _ = e.to_string();
        }
    });
}

#[test]
fn proc_net_readers_and_the_peer_set_never_panic() {
    run("proc_net", 2000, |text| {
        let mut b = PeerSet::builder(64);
        for c in proc_net::established(text) {
            b.host(c.remote.ip(), PeerKind::Established);
        }
        for a in proc_net::conntrack_established(text) {
            b.host(a, PeerKind::Established);
        }
        for g in proc_net::gateways_v4(text)
            .into_iter()
            .chain(proc_net::gateways_v6(text))
        {
            b.host(g.addr, PeerKind::Gateway);
        }
        for r in proc_net::nameservers(text) {
            b.net(r.into(), PeerKind::Allowlist);
        }
        let set = b.build();
        for p in set.iter() {
            assert!(set.protection(p.net.addr()).is_some(), "{p:?}");
            assert!(set.covered_by(p.net).is_some(), "{p:?}");
        }
    });
}
