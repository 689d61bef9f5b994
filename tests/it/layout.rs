//! The layout keeps its promise: the pure core (`src/engine`, `src/packet`, `src/event/`,
//! `src/trust`, the pure files of `src/cluster`) never does I/O, never reads the clock and never
//! reaches into an edge or the wiring; and no function in `src/` (tests aside) runs over
//! [`MAX_FN_LINES`] lines.

use std::path::{Path, PathBuf};

/// The files and folders that make up the pure core.
const PURE: &[&str] = &[
    "src/engine",
    "src/packet",
    "src/event",
    "src/trust",
    "src/cluster/message.rs",
    "src/cluster/message_tests.rs",
    "src/cluster/share.rs",
    "src/cluster/inbox.rs",
    "src/cluster/outbox.rs",
];

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

/// The longest a function in `src/` may be, from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 80;

/// `(name, first line, length)` of every function in `text` longer than `max` lines, outside
/// inline `#[cfg(test)]` modules. Relies on rustfmt's layout: a function's closing brace is
/// the first line after its signature that is exactly its indentation followed by `}`.
fn long_functions(text: &str, max: usize) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = &line[..line.len() - line.trim_start().len()];
        if line.trim_start() == "#[cfg(test)]"
            && lines
                .get(i + 1)
                .is_some_and(|l| l.trim_start().starts_with("mod ") && l.ends_with('{'))
        {
            i = closing(&lines, i + 1, indent).unwrap_or(lines.len());
            continue;
        }
        if let Some(name) = fn_name(line) {
            let body = (i..lines.len()).find(|&j| {
                let l = lines[j].trim_end();
                l.ends_with('{') || l.ends_with(';')
            });
            if let Some(open) = body
                && lines[open].trim_end().ends_with('{')
                && let Some(end) = closing(&lines, open, indent)
            {
                let len = end - i + 1;
                if len > max {
                    found.push((name, i + 1, len));
                }
            }
        }
        i += 1;
    }
    found
}

/// The line after `from` that closes a block opened at `indent`.
fn closing(lines: &[&str], from: usize, indent: &str) -> Option<usize> {
    let end = format!("{indent}}}");
    (from + 1..lines.len()).find(|&j| lines[j] == end)
}

/// The function a line declares, if it does (`pub(crate) async fn name(`, `const fn name<`).
fn fn_name(line: &str) -> Option<String> {
    let mut words = line.split_whitespace().peekable();
    while let Some(w) = words.peek() {
        let qualifier = *w == "pub"
            || w.starts_with("pub(")
            || ["const", "async", "unsafe", "extern", "default"].contains(w);
        if !qualifier {
            break;
        }
        words.next();
    }
    if words.next()? != "fn" {
        return None;
    }
    let rest = words.next()?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Files that a parent includes only under `#[cfg(test)]` (`#[cfg(test)] mod tests;`).
fn test_only_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let dir = if f
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
        {
            f.parent().map(Path::to_path_buf)
        } else {
            f.parent()
                .map(|p| p.join(f.file_stem().unwrap_or_default()))
        };
        for w in lines.windows(2) {
            if w[0].trim() == "#[cfg(test)]"
                && let Some(name) = w[1]
                    .trim()
                    .strip_prefix("mod ")
                    .and_then(|m| m.strip_suffix(';'))
                && let Some(dir) = &dir
            {
                out.push(dir.join(format!("{name}.rs")));
                out.push(dir.join(name).join("mod.rs"));
            }
        }
    }
    out
}

#[test]
fn the_length_check_sees_a_long_function_and_skips_test_modules() {
    let body = "    x += 1;\n".repeat(5);
    let text = format!(
        "pub(crate) fn short() {{\n{body}}}\n\nimpl A {{\n    pub async fn long(\n        a: u8,\n    ) -> u8 {{\n{body}{body}    }}\n\n    fn decl(&self);\n}}\n\n#[cfg(test)]\nmod tests {{\n    fn long_test() {{\n{body}{body}{body}    }}\n}}\n"
    );
    assert_eq!(long_functions(&text, 8), vec![("long".to_string(), 10, 14)]);
    assert_eq!(
        fn_name("    pub(super) const fn f<T>(x: T) {"),
        Some("f".into())
    );
    assert_eq!(fn_name("    let f = fn_like();"), None);
}

#[test]
fn no_function_in_src_is_over_80_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() >= 40, "source files not found: {files:?}");
    let test_only = test_only_files(&files);
    let mut long = Vec::new();
    for f in files.iter().filter(|f| !test_only.contains(f)) {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let name = f.strip_prefix(root).unwrap_or(f).display().to_string();
        for (func, line, len) in long_functions(&text, MAX_FN_LINES) {
            long.push(format!("{name}:{line}: fn {func} is {len} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them): {long:#?}"
    );
}
