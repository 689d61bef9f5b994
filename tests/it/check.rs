//! `autoblock check` as an operator runs it: the shipped file passes; each bad file exits 2 with
//! `file:line:col` and the key on stderr (every problem at once, rules named `rule[N] (name)`);
//! a missing file or a directory exits 2; warnings go to stderr with exit 0; no panic, no
//! Debug dump.

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
        text.contains(
            "syn-flood: tcp syn: packets > 24 per 100ms, ban 10m, per /32 (v4) /128 (v6)"
        ),
        "{text}"
    );
    assert!(
        text.contains("udp-flood-dst: flood of udp toward each protected address: packets > 1000 per 1s, action signature, held 2m"),
        "{text}"
    );
    let rules = std::fs::read_to_string(&path).unwrap_or_default();
    let n = rules
        .lines()
        .filter(|l| l.trim() == "[[rule]]" || l.trim() == "[[flood]]")
        .count();
    assert!(text.contains("\nbackend auto: "), "{text}");
    assert_eq!(
        text.lines().count(),
        n + 5,
        "ok line, the auto backend line, capture, enforce, allowlist and one per rule and flood detector:\n{text}"
    );
    for want in [
        "capture:   interfaces the default route's; bpf_filter none; snaplen 128",
        "enforce:   backend auto, chain AUTOBLOCK, hooks INPUT; dry_run no",
        "allowlist: 127.0.0.0/8, ::1",
    ] {
        assert!(text.lines().any(|l| l == want), "{want:?} in:\n{text}");
    }
    assert!(stderr(&out).is_empty(), "no warning: {}", stderr(&out));
}

#[test]
fn no_rules_means_detection_is_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(&dir, "empty.toml", "# nothing\n");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("detection is off"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        stderr(&out),
        format!(
            "warning: {}: the file is empty: every default applies and there is no [[rule]], so nothing is detected\n",
            path.display()
        )
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
        ":6:1: rule[1] (a).windw: unknown key `windw` (did you mean `window`?)",
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
        ":4:13: rule[1] (a).threshold: must be greater than 0",
    ),
    (
        "window-range.toml",
        "[[rule]]\nname = \"a\"\nmetric = \"packets\"\nthreshold = 1\nwindow = \"2h\"\n",
        ":5:10: rule[1] (a).window: must be between 100ms and 1h",
    ),
    (
        "duplicate-name.toml",
        "[[rule]]\nname = \"a\"\nmetric = \"bytes\"\nthreshold = 1\nwindow = \"1s\"\n\n\
         [[rule]]\nname = \"a\"\nmetric = \"packets\"\nthreshold = 1\nwindow = \"1s\"\n",
        ":8:8: rule[2] (a).name: duplicate rule name `a`",
    ),
    ("syntax.toml", "[enforce\nban = \"1m\"\n", ":1:"),
    (
        "unclosed.toml",
        "[enforce]\nhooks = [\"INPUT\",\n\n[allow]\nnets = []\n",
        ":2:9: enforce.hooks: this array is never closed (at line 5:",
    ),
    (
        "bad-filter.toml",
        "[capture]\nbpf_filter = \"tcp and and port 80\"\n",
        ":2:14: capture.bpf_filter: libpcap cannot compile `tcp and and port 80`: can't parse filter expression: syntax error",
    ),
    (
        "zero-prefix.toml",
        "[[rule]]\nname = \"a\"\nmetric = \"packets\"\nthreshold = 1\nwindow = \"1s\"\naggregate_v4 = 0\n",
        ":6:16: rule[1] (a).aggregate_v4: 0 would count every address as one source and ban them all (0.0.0.0/0)",
    ),
    (
        "host-bits.toml",
        "[allow]\nnets = [\"192.0.2.7/24\"]\n",
        ":2:9: allow.nets[0]: `192.0.2.7/24` has host bits set",
    ),
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
        ":7:1: rule[1] (a).metric: missing required key `metric`",
        ":10:13: rule[1] (a).tcp_flags:",
        ":11:13: rule[1] (a).threshold:",
    ] {
        assert!(
            err.contains(&format!("{}{want}", path.display())),
            "{want:?} in:\n{err}"
        );
    }
    assert!(err.contains("5 problems"), "{err}");
}

#[test]
fn three_typos_are_three_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "[enforce]\nbann = \"1m\"\nchian = \"X\"\n\n[capture]\nsnaplne = 128\n";
    let path = write(&dir, "typos.toml", text);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("3 problems"), "{err}");
    for want in [
        ":2:1: enforce.bann:",
        ":3:1: enforce.chian:",
        ":6:1: capture.snaplne:",
    ] {
        assert!(
            err.contains(&format!("{}{want}", path.display())),
            "{want:?} in:\n{err}"
        );
    }
}

#[test]
fn a_shadowed_rule_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rule = |name: &str, threshold: u32| {
        format!(
            "[[rule]]\nname = \"{name}\"\nprotocol = \"tcp\"\ntcp_flags = \"syn\"\nmetric = \"packets\"\nthreshold = {threshold}\nwindow = \"1s\"\n\n"
        )
    };
    let path = write(
        &dir,
        "shadow.toml",
        &(rule("flood", 1000) + &rule("burst", 28)),
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "warning: {}:2:1: rule[1] (flood): rule[2] (burst) counts the same packets",
            path.display()
        )),
        "{err}"
    );
    assert!(err.contains("flood can never start a ban"), "{err}");
}

#[test]
fn a_missing_file_exits_2_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.toml");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        format!("error: cannot read {}: no such file", path.display())
    );
}

#[test]
fn a_directory_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("it is a directory, not a file"),
        "{}",
        stderr(&out)
    );
}

/// Finding 10 (issue 11): the README's Docker hook passed nothing (`-` was refused), and a hook
/// on our own chain passed `check` only to fail at start.
#[test]
fn docker_user_hook_passes_and_a_hook_on_our_own_chain_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = std::fs::read_to_string(shipped_rules()).expect("rules.toml");
    assert_eq!(shipped.matches("hooks = [\"INPUT\"]").count(), 1);
    let docker = shipped.replace(
        "hooks = [\"INPUT\"]",
        "hooks = [\"INPUT\", \"DOCKER-USER\"]",
    );
    let out = check(&write(&dir, "docker.toml", &docker));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let own = shipped.replace(
        "hooks = [\"INPUT\"]",
        "hooks = [\"INPUT\", \"filter:AUTOBLOCK\"]",
    );
    let path = write(&dir, "own.toml", &own);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("enforce.hooks[1]: hook \"filter:AUTOBLOCK\" names our own chain"),
        "{err}"
    );
}
