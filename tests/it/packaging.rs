//! Packaging and a new user's first minutes: the systemd unit verifies clean, the .deb that
//! `make deb` built holds everything (binary, conffiles, unit, man pages, completions,
//! logrotate) with the right relations, the logrotate snippet rotates, `packaging/demo.sh`
//! shows a ban and its expiry and leaves nothing behind, and every subcommand's help has an
//! example.
//!
//! `make test` builds the .deb before `cargo test` (cargo deb inside cargo test would fight
//! over the build lock), and installs the tools used here; so a missing .deb or tool skips
//! locally and fails on CI.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;

use crate::harness::{self, require_deb, require_root, require_tool};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The package's files unpacked into a temp dir.
fn unpack(deb: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir.path()));
    dir
}

#[test]
fn unit_verifies_clean_with_the_packaged_binary_and_man_pages() {
    if !require_tool("systemd-analyze") || !require_tool("man") {
        return;
    }
    let Some(deb) = require_deb() else { return };
    let pkg = unpack(&deb);
    // The shipped unit, with /usr/bin/autoblock pointing into the unpacked package (verify
    // checks that ExecStart exists), and the packaged man pages for Documentation=.
    let unit = std::fs::read_to_string(root().join("packaging/autoblock.service")).unwrap();
    let packaged =
        std::fs::read_to_string(pkg.path().join("usr/lib/systemd/system/autoblock.service"))
            .expect("the unit is in the package");
    assert_eq!(
        packaged, unit,
        "the package ships packaging/autoblock.service as is"
    );
    let bin = pkg.path().join("usr/bin/autoblock");
    let units = tempfile::tempdir().unwrap();
    let copy = units.path().join("autoblock.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/autoblock", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .env("MANPATH", pkg.path().join("usr/share/man"))
        .output()
        .expect("spawn systemd-analyze");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "systemd-analyze verify reported ({}):\n{report}",
        out.status
    );
}

/// The packaged man pages are exactly what the generator makes from this source: none is
/// stale, none is missing, none is extra.
#[test]
fn packaged_man_pages_match_a_fresh_generation() {
    if !require_tool("dpkg-deb") || !require_tool("gzip") {
        return;
    }
    let Some(deb) = require_deb() else { return };
    let pkg = unpack(&deb);
    let man = pkg.path().join("usr/share/man");
    let mut packaged = Vec::new();
    for section in ["man5", "man8", "man1"] {
        let Ok(entries) = std::fs::read_dir(man.join(section)) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            packaged.push(format!("{section}/{}", name.trim_end_matches(".gz")));
        }
    }
    packaged.sort();
    let fresh = autoblock::docs::man_pages();
    let mut names: Vec<String> = fresh.iter().map(|(p, _)| p.clone()).collect();
    names.sort();
    assert_eq!(
        packaged, names,
        "the packaged pages (rebuild with `make deb`)"
    );
    for (path, text) in fresh {
        let gz = man.join(format!("{path}.gz"));
        let out = Command::new("gzip")
            .arg("-dc")
            .arg(&gz)
            .output()
            .expect("gzip");
        assert!(
            out.stdout == text,
            "{path} in the .deb differs from a fresh generation: run `make deb`"
        );
    }
}

#[test]
fn deb_holds_everything_a_package_install_needs() {
    if !require_tool("dpkg-deb") {
        return;
    }
    let Some(deb) = require_deb() else { return };
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    let has = |path: &str| files.iter().any(|f| f.trim_start_matches('.') == path);
    let mut wanted = vec![
        "/usr/bin/autoblock".to_string(),
        "/etc/autoblock/rules.toml".into(),
        "/etc/logrotate.d/autoblock".into(),
        "/usr/lib/systemd/system/autoblock.service".into(),
        "/usr/lib/tmpfiles.d/autoblock.conf".into(),
        "/usr/share/man/man8/autoblock.8.gz".into(),
        "/usr/share/man/man5/autoblock-rules.toml.5.gz".into(),
        "/usr/share/bash-completion/completions/autoblock".into(),
        "/usr/share/zsh/vendor-completions/_autoblock".into(),
        "/usr/share/fish/vendor_completions.d/autoblock.fish".into(),
    ];
    for sub in autoblock::cli::Cli::command().get_subcommands() {
        wanted.push(format!(
            "/usr/share/man/man8/autoblock-{}.8.gz",
            sub.get_name()
        ));
    }
    let missing: Vec<&String> = wanted.iter().filter(|w| !has(w)).collect();
    assert!(
        missing.is_empty(),
        "missing from the .deb: {missing:?}\n{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("./usr/bin/autoblock")),
        "the binary is 0755:\n{listing}"
    );

    let info = ok(Command::new("dpkg-deb").arg("-I").arg(&deb));
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{info}"))
            .to_string()
    };
    let depends = field("Depends");
    for dep in ["libpcap0.8", "iptables"] {
        assert!(depends.contains(dep), "Depends lacks {dep}: {depends}");
    }
    assert_eq!(field("Recommends"), "ipset, nftables");
    let conffiles = ok(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles"));
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort();
    assert_eq!(
        conffiles,
        ["/etc/autoblock/rules.toml", "/etc/logrotate.d/autoblock"]
    );
    // Removal flushes autoblock's chain after the service stopped; purge drops state and logs.
    let prerm = ok(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("prerm"));
    assert!(
        prerm.contains("deb-systemd-invoke stop autoblock.service"),
        "{prerm}"
    );
    assert!(
        prerm.contains("autoblock flush --config /etc/autoblock/rules.toml"),
        "{prerm}"
    );
    // The tmpfiles.d entry is applied at install, not only at the next boot.
    let postinst = ok(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("postinst"));
    assert!(
        postinst.contains("systemd-tmpfiles") && postinst.contains("autoblock.conf"),
        "{postinst}"
    );
    let postrm = ok(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("postrm"));
    assert!(
        postrm.contains("rm -rf /var/lib/autoblock /var/log/autoblock"),
        "{postrm}"
    );

    // The packaged config: the repo's rules with the events file under /var/log/autoblock
    // (where the unit's LogsDirectory and the logrotate snippet are), and valid.
    let pkg = unpack(&deb);
    let rules = pkg.path().join("etc/autoblock/rules.toml");
    let text = std::fs::read_to_string(&rules).unwrap();
    assert!(
        text.lines()
            .any(|l| l == r#"file = "/var/log/autoblock/events.jsonl""#),
        "packaged rules.toml does not write the events file"
    );
    let shipped = std::fs::read_to_string(harness::shipped_rules()).unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| !l.starts_with("file = "))
            .collect::<Vec<_>>(),
        shipped
            .lines()
            .filter(|l| !l.starts_with("file = "))
            .collect::<Vec<_>>(),
        "the packaged rules.toml differs from rules.toml in more than [events] file"
    );
    let out = harness::run(&["check", "--config", rules.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The packaged binary runs and is the one this tree builds.
    let version = ok(Command::new(pkg.path().join("usr/bin/autoblock")).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("autoblock {}", env!("CARGO_PKG_VERSION"))
    );

    // lintian is not required; its report is shown when it is there.
    if Command::new("lintian").arg("--version").output().is_ok() {
        let out = Command::new("lintian").arg(&deb).output().unwrap();
        eprintln!(
            "lintian {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn logrotate_snippet_rotates_without_signal_or_copy() {
    if !require_tool("logrotate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    let snippet = std::fs::read_to_string(root().join("packaging/logrotate")).unwrap();
    assert!(snippet.contains("/var/log/autoblock/*.jsonl {"));
    let directives: Vec<&str> = snippet
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for d in ["copytruncate", "postrotate"] {
        assert!(
            !directives.contains(&d),
            "{d}: the daemon follows the rotation itself"
        );
    }
    let conf = dir.path().join("autoblock");
    std::fs::write(
        &conf,
        snippet.replace("/var/log/autoblock", logs.to_str().unwrap()),
    )
    .unwrap();
    std::fs::write(logs.join("events.jsonl"), "{\"event\":\"block\"}\n").unwrap();
    let state = dir.path().join("state");
    ok(Command::new("logrotate")
        .arg("--force")
        .arg("--state")
        .arg(&state)
        .arg(&conf));
    // Moved away (the daemon notices the new inode and creates the file itself); not yet
    // compressed (delaycompress: the daemon may still hold it open).
    assert!(logs.join("events.jsonl.1").is_file());
    assert!(!logs.join("events.jsonl").exists());
}

#[test]
fn every_subcommand_help_shows_an_example_and_top_level_the_exit_codes() {
    let top = harness::run(&["--help"]);
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(top.status.success());
    for want in [
        "Exit codes:",
        "0  success",
        "1  runtime error",
        "2  usage or configuration error",
        "Example",
    ] {
        assert!(
            text.contains(want),
            "top-level --help lacks {want:?}:\n{text}"
        );
    }
    let cmd = autoblock::cli::Cli::command();
    let subs: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
    assert!(subs.len() >= 9, "{subs:?}");
    for sub in subs {
        for flag in ["--help", "-h"] {
            let out = harness::run(&[sub, flag]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{sub} {flag}");
            assert!(
                text.contains("Example"),
                "`autoblock {sub} {flag}` shows no example:\n{text}"
            );
        }
    }
}

/// The host's firewall and links, normalized (no counters, no timestamps).
fn host_snapshot() -> String {
    let mut s = String::new();
    for argv in [
        &["iptables-save"][..],
        &["ip6tables-save"],
        &["ipset", "list", "-n"],
    ] {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .expect("spawn");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = match line.find(" [") {
                Some(i) if line.starts_with(':') => &line[..i],
                _ => line,
            };
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

fn netns_with(prefix: &str) -> Vec<String> {
    let out = ok(Command::new("ip").args(["netns", "list"]));
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(String::from)
        .collect()
}

#[test]
fn demo_shows_a_ban_and_its_expiry_and_leaves_nothing_behind() {
    if !require_root() || !require_tool("hping3") {
        return;
    }
    let prefix = format!("abdt{}", std::process::id());
    let before = host_snapshot();
    let out = Command::new("bash")
        .arg(root().join("packaging/demo.sh"))
        .env("AUTOBLOCK_BIN", env!("CARGO_BIN_EXE_autoblock"))
        .env("DEMO_PREFIX", &prefix)
        .current_dir(root())
        .output()
        .expect("spawn demo.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "demo failed ({}):\n{text}",
        out.status
    );
    for want in [
        r#""event":"block""#,
        "1 active ban",
        "-j DROP",
        "2 packets transmitted, 0 packets received",
        r#""event":"unblock""#,
        r#""reason":"expired""#,
        "no active bans",
        r#""flushed":true"#,
    ] {
        assert!(text.contains(want), "demo output lacks {want:?}:\n{text}");
    }
    // Nothing left: namespaces, interfaces, the temp dir, the daemon, the host firewall.
    assert_eq!(netns_with(&prefix), Vec::<String>::new());
    let links_after = ok(Command::new("ip").args(["-o", "link", "show"]));
    for name in ["veth-atk", "veth-vic"] {
        assert!(!links_after.contains(name), "{name} left on the host");
    }
    let tmp = text
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("/tmp/autoblock-demo."))
        })
        .expect("the demo names its temp dir");
    assert!(!Path::new(tmp).exists(), "{tmp} left behind");
    let ps = ok(Command::new("ps").args(["-eo", "args"]));
    assert!(!ps.contains(tmp), "a process of the demo still runs:\n{ps}");
    assert_eq!(host_snapshot(), before, "the host's firewall changed");
}
