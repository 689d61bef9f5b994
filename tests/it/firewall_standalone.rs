//! The firewall library stands alone: a program generated in a temporary directory that depends
//! only on `crates/firewall` builds offline with libpcap hidden from the build (no pkg-config
//! path, no library path, `LIBPCAP_LIBDIR` pointing nowhere), has no pcap anywhere in its
//! dependency tree nor in its linked libraries, and runs in a namespace. Two processes on one
//! chain: while the program holds it, another open fails naming its pid.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use autoblock::firewall::{Backend, Firewall, FirewallError, FirewallOptions};

use crate::harness::netns::Netns;
use crate::harness::require_root;

const MAIN: &str = r#"use autoblock_firewall::{Backend, Batch, Firewall, FirewallOptions, Protocol, Rule};
use std::{io::Read, net::Ipv4Addr, time::Duration};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let netns = args.next().ok_or("usage: standalone NETNS BACKEND [hold]")?;
    let backend: Backend = args.next().ok_or("BACKEND missing")?.parse()?;
    let fw = Firewall::open(FirewallOptions::new(backend, "STANDALONE").netns(netns))?;
    let mut batch = Batch::new();
    batch.block(Ipv4Addr::new(203, 0, 113, 7), Duration::from_secs(600), "standalone");
    batch.block(
        Rule::new().dst(Ipv4Addr::new(10, 10, 10, 10)).protocol(Protocol::Udp).sport(4500),
        Duration::from_secs(600),
        "ike flood",
    );
    batch.block(Ipv4Addr::LOCALHOST, Duration::from_secs(600), "oops");
    for refused in fw.commit(batch)?.refused {
        println!("{refused}");
    }
    println!("holding {} entries", fw.len());
    if args.next().as_deref() == Some("hold") {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
    }
    Ok(())
}
"#;

fn target_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target"));
    let base = if base.is_relative() {
        manifest.join(base)
    } else {
        base
    };
    base.join("standalone-firewall")
}

/// Writes the program's crate into `dir` and builds it with libpcap out of reach; returns the
/// binary.
fn build(dir: &Path) -> PathBuf {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/firewall");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"standalone\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\nautoblock-firewall = {{ path = {:?} }}\n\n[workspace]\n",
            lib.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), MAIN).unwrap();
    let empty = dir.join("no-libs");
    std::fs::create_dir_all(&empty).unwrap();
    let cargo = |args: &[&str]| {
        Command::new(env!("CARGO"))
            .current_dir(dir)
            .args(args)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("PKG_CONFIG_PATH", &empty)
            .env("PKG_CONFIG_LIBDIR", &empty)
            .env("LIBRARY_PATH", &empty)
            .env("LIBPCAP_LIBDIR", &empty)
            .env_remove("RUSTFLAGS")
            .output()
            .expect("spawn cargo")
    };
    let out = cargo(&["build", "--offline", "--quiet"]);
    assert!(
        out.status.success(),
        "the library alone did not build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = cargo(&["tree", "--offline", "--edges", "normal,build"]);
    let tree = String::from_utf8_lossy(&tree.stdout).into_owned();
    assert!(tree.contains("autoblock-firewall"), "{tree}");
    assert!(!tree.contains("pcap") && !tree.contains("tokio"), "{tree}");
    let bin = target_dir().join("debug/standalone");
    let ldd = Command::new("ldd").arg(&bin).output().expect("spawn ldd");
    let libs = String::from_utf8_lossy(&ldd.stdout);
    assert!(!libs.contains("libpcap"), "{libs}");
    bin
}

#[test]
fn a_program_on_the_library_alone_builds_without_libpcap_and_runs() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = build(dir.path());
    let ns = Netns::new("abs");
    for backend in ["ipset", "iptables"] {
        let out = Command::new(&bin)
            .args([ns.name(), backend])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("refused 127.0.0.1/32: "), "{stdout}");
        assert!(stdout.contains("holding 2 entries"), "{stdout}");
        let dump = ns.firewall_dump();
        assert!(dump.contains("203.0.113.7"), "{dump}");
        assert!(
            dump.contains("-d 10.10.10.10/32 -p udp -m udp --sport 4500"),
            "{dump}"
        );
        let opts = FirewallOptions::new(backend.parse::<Backend>().unwrap(), "STANDALONE");
        Firewall::open(opts.netns(ns.name()))
            .unwrap()
            .flush()
            .unwrap();
    }

    // Two processes, one chain: the second open fails while the first holds it.
    let mut child = Command::new(&bin)
        .args([ns.name(), "ipset", "hold"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let held = lines.any(|l| l.is_ok_and(|l| l.starts_with("holding ")));
    assert!(held, "the program did not get going");
    let open =
        || Firewall::open(FirewallOptions::new(Backend::Ipset, "standalone").netns(ns.name()));
    let e = open().unwrap_err();
    assert!(matches!(e, FirewallError::ChainInUse { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("process {} holds", child.id())),
        "{e}"
    );
    let _ = child.stdin.take().unwrap().write_all(b"x");
    drop(lines);
    assert!(child.wait().unwrap().success());
    let fw = Firewall::open(FirewallOptions::new(Backend::Ipset, "STANDALONE").netns(ns.name()))
        .unwrap();
    assert_eq!(fw.len(), 2, "adopted what the other process left");
    fw.flush().unwrap();
}
