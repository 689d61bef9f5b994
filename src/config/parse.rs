//! Stage one's driver: TOML text -> [`RawConfig`] through serde, or the one error that stops it
//! (bad syntax, a wrong type, an unknown key) as span, dotted key and a message in TOML's terms.

use std::ops::Range;

use super::raw::RawConfig;

/// Serde stage: on failure, the span, the dotted key and a message.
pub(super) fn deserialize(text: &str) -> Result<RawConfig, (Option<Range<usize>>, String, String)> {
    let de = toml::Deserializer::parse(text).map_err(|e| {
        let key = e
            .span()
            .map(|s| key_near(text, s.start))
            .unwrap_or_default();
        (e.span(), key, humanize(e.message()))
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = dotted(e.path());
        let inner = e.into_inner();
        (inner.span(), key, humanize(inner.message()))
    })
}

/// The path as written in TOML, without the segments `toml::Spanned` adds internally.
fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } if key.starts_with("$__serde_spanned") => {}
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Serde's wording in TOML's terms ("key", "integer", "table" rather than "field", "i64", ...).
fn humanize(message: &str) -> String {
    let mut m = message
        .replacen("unknown field", "unknown key", 1)
        .replace(" as i128", "")
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("expected a sequence", "expected an array");
    if let Some(at) = m.find("expected struct Raw") {
        m.truncate(at);
        m.push_str("expected a table");
    }
    m
}

/// Best guess at the dotted key for a syntax error at `offset`: the enclosing `[table]` (with
/// `[[rule]]` counted) and the key on that line, if any.
pub(super) fn key_near(text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let mut table = String::new();
    let mut rules = 0usize;
    for l in text[..line_start].lines().chain([line]) {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim();
            rules += usize::from(name == "rule");
            table = if name == "rule" {
                format!("rule[{}]", rules - 1)
            } else {
                name.to_owned()
            };
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_owned();
        }
    }
    let key = if line.starts_with('[') {
        ""
    } else {
        line.split_once('=')
            .map_or("", |(k, _)| k.trim().trim_matches('"'))
    };
    match (table.is_empty(), key.is_empty()) {
        (_, true) => table,
        (true, false) => key.to_owned(),
        (false, false) => format!("{table}.{key}"),
    }
}
