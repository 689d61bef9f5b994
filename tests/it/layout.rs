//! The layout keeps its promise: the pure core (`src/engine`, `src/packet`, `src/event.rs`,
//! `src/trust`) never does I/O, never reads the clock and never reaches into an edge or the
//! wiring.

use std::path::{Path, PathBuf};

/// The files and folders that make up the pure core.
const PURE: &[&str] = &["src/engine", "src/packet", "src/event.rs", "src/trust"];

/// What pure code must not name: I/O, the clock, processes, threads, printing, edges, wiring.
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::io",
    "std::net::Tcp",
    "std::net::Udp",
    "std::os::",
    "std::process",
    "std::env",
    "std::thread",
    "SystemTime",
    "Instant",
    "println!",
    "eprintln!",
    "print!",
    "eprint!",
    "dbg!",
    "tokio",
    "pcap::",
    "crate::sys",
    "crate::daemon",
    "crate::firewall",
    "autoblock_firewall",
    "crate::cli",
    "crate::replay",
];

/// `(file:line, token)` for every forbidden token in code (comments are skipped).
fn violations(file: &str, text: &str) -> Vec<(String, &'static str)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for token in FORBIDDEN {
            if code.contains(token) {
                found.push((format!("{file}:{}", i + 1), *token));
            }
        }
    }
    found
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() || p.extension().is_some_and(|x| x == "rs") {
            rust_files(&p, out);
        }
    }
}

#[test]
fn the_scanner_sees_io_and_the_clock() {
    let text = "use std::fs::File;\n// std::process in a comment is fine\nlet t = Instant::now();";
    let v = violations("x.rs", text);
    assert_eq!(
        v,
        vec![
            ("x.rs:1".to_string(), "std::fs"),
            ("x.rs:3".to_string(), "Instant")
        ]
    );
}

#[test]
fn the_pure_core_does_no_io_and_reads_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for p in PURE {
        rust_files(&root.join(p), &mut files);
    }
    assert!(files.len() >= 10, "pure core files not found: {files:?}");
    let mut all = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let name = f.strip_prefix(root).unwrap_or(f).display().to_string();
        all.extend(violations(&name, &text));
    }
    assert!(
        all.is_empty(),
        "the pure core names I/O or the clock: {all:#?}"
    );
}
