//! `autoblock check` as an operator runs it: the shipped file passes; each bad file exits 2 with
//! `file:line:col` and the key on stderr; an unreadable file exits 1; no panic, no Debug dump.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::harness::{run, shipped_rules};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Nothing a user sees may look like a crash or a Rust value dump.
fn assert_clean(o: &Output) {
    let all = stdout(o) + &stderr(o);
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "Error {",
        "Some(",
        "kind:",
        "Spanned",
    ] {
        assert!(!all.contains(bad), "output contains {bad:?}:\n{all}");
    }
}

fn check(path: &Path) -> Output {
    let out = run(&["check", "--config", &path.to_string_lossy()]);
    assert_clean(&out);
    out
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

#[test]
fn shipped_rules_pass() {
    let path = shipped_rules();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("ok: {}\n", path.display())),
        "{text}"
    );
    assert!(
        text.contains("syn-flood: tcp syn: packets > 1000 per 1s, ban 10m, per /32 (v4) /128 (v6)"),
        "{text}"
    );
    let rules = std::fs::read_to_string(&path).unwrap_or_default();
    let n = rules.lines().filter(|l| l.trim() == "[[rule]]").count();
    assert!(text.contains("\nbackend auto: "), "{text}");
    assert_eq!(
        text.lines().count(),
        n + 2,
        "ok line, the auto backend line and one per rule:\n{text}"
    );
    assert!(stderr(&out).is_empty());
}

#[test]
fn no_rules_means_detection_is_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check(&write(&dir, "empty.toml", "# nothing\n"));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("detection is off"),
        "{}",
        stdout(&out)
    );
}

/// (fixture name, text, expected `line:col: key` on stderr)
const BAD: &[(&str, &str, &str)] = &[
    (
        "unknown-top.toml",
        "bann = \"10m\"\n",
        ":1:1: bann: unknown key",
    ),
    (
        "unknown-enforce.toml",
        "[enforce]\nban = \"10m\"\nbann = \"1h\"\n",
        ":3:1: enforce.bann: unknown key",
    ),
    (
        "unknown-rule.toml",
        "[[rule]]\nname = \"a\"\nmetric = \"packets\"\nthreshold = 1\nwindow = \"1s\"\nwindw = \"2s\"\n",
        ":6:1: rule[0].windw: unknown key",
    ),
    (
        "wrong-type.toml",
        "[capture]\nsnaplen = \"big\"\n",
        ":2:11: capture.snaplen: invalid type",
    ),
    (
        "bad-cidr.toml",
        "[allow]\nnets = [\"10.0.0.0/33\"]\n",
        ":2:9: allow.nets[0]: `10.0.0.0/33`",
    ),
    (
        "bad-duration.toml",
        "[enforce]\nban = \"10x\"\n",
        ":2:7: enforce.ban: expected a duration such as 90s, 10m, 2h or 1d, found `10x`",
    ),
    (
        "zero-threshold.toml",
        "[[rule]]\nname = \"a\"\nmetric = \"packets\"\nthreshold = 0\nwindow = \"1s\"\n",
        ":4:13: rule[0].threshold: must be greater than 0",
    ),
    (
        "window-range.toml",
        "[[rule]]\nname = \"a\"\nmetric = \"packets\"\nthreshold = 1\nwindow = \"2h\"\n",
        ":5:10: rule[0].window: must be between 100ms and 1h",
    ),
    (
        "duplicate-name.toml",
        "[[rule]]\nname = \"a\"\nmetric = \"bytes\"\nthreshold = 1\nwindow = \"1s\"\n\n\
         [[rule]]\nname = \"a\"\nmetric = \"packets\"\nthreshold = 1\nwindow = \"1s\"\n",
        ":8:8: rule[1].name: duplicate rule name `a`",
    ),
    ("syntax.toml", "[enforce\nban = \"1m\"\n", ":1:"),
];

#[test]
fn each_bad_file_exits_2_with_position_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text, want) in BAD {
        let path = write(&dir, name, text);
        let out = check(&path);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        let want = format!("{}{want}", path.display());
        assert!(err.contains(&want), "{name}: expected {want:?} in:\n{err}");
        assert!(stdout(&out).is_empty(), "{name}: nothing on stdout");
    }
}

#[test]
fn several_problems_are_all_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "[capture]\nsnaplen = 1\n\n[enforce]\nbackend = \"pf\"\n\n\
                [[rule]]\nname = \"a\"\nprotocol = \"udp\"\ntcp_flags = \"syn\"\nthreshold = 0\nwindow = \"1s\"\n";
    let path = write(&dir, "several.toml", text);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for want in [
        ":2:11: capture.snaplen:",
        ":5:11: enforce.backend:",
        ":7:1: rule[0].metric: missing required key `metric`",
        ":10:13: rule[0].tcp_flags:",
        ":11:13: rule[0].threshold:",
    ] {
        assert!(
            err.contains(&format!("{}{want}", path.display())),
            "{want:?} in:\n{err}"
        );
    }
    assert!(err.contains("5 problems"), "{err}");
}

#[test]
fn missing_file_exits_1_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.toml");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        format!("error: cannot read {}: no such file", path.display())
    );
}

#[test]
fn directory_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}
