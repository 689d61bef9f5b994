//! Stage one's driver: TOML text -> [`RawConfig`] through serde, or what stops it: a syntax
//! error (pointed at the array or inline table left open when that is the cause), every
//! unknown key at once, or the first wrong type, each as span, dotted key and a message in
//! TOML's terms.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::keys::unknown_keys;
use super::raw::RawConfig;

/// One stage-one problem: span (when known), dotted key, message.
pub(super) type RawProblem = (Option<Range<usize>>, String, String);

/// Serde stage: the raw structs, or every problem found.
pub(super) fn deserialize(text: &str) -> Result<RawConfig, Vec<RawProblem>> {
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => return Err(vec![syntax_problem(text, &e)]),
    };
    let label = |section: &str, i: usize| array_label(doc.get_ref(), section, i);
    let mut problems: Vec<RawProblem> = unknown_keys(doc.get_ref(), &label)
        .into_iter()
        .map(|u| (Some(u.span), u.key, u.message))
        .collect();
    let de = toml::Deserializer::parse(text).map_err(|e| vec![syntax_problem(text, &e)])?;
    match serde_path_to_error::deserialize::<_, RawConfig>(de) {
        Ok(raw) if problems.is_empty() => return Ok(raw),
        Ok(_) => {}
        Err(e) => {
            let key = dotted(e.path(), &label);
            let inner = e.into_inner();
            problems.push((inner.span(), key, humanize(inner.message())));
        }
    }
    Err(problems)
}

/// `rule[2] (syn-flood)`, `flood[1] (udp-flood-dst)`: the tables of an array section
/// (`[[rule]]`, `[[flood]]`) are counted from 1 in messages, and named when they have a name.
pub(super) fn array_label(doc: &DeTable<'_>, section: &str, i: usize) -> String {
    let name = field(doc, section)
        .and_then(|rules| match rules {
            DeValue::Array(items) => items.get(i),
            _ => None,
        })
        .and_then(|rule| match rule.get_ref() {
            DeValue::Table(t) => field(t, "name"),
            _ => None,
        })
        .and_then(|name| match name {
            DeValue::String(s) => Some(s.to_string()),
            _ => None,
        });
    label(section, i, name.as_deref())
}

/// The value of `key` in `table`.
fn field<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a DeValue<'i>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v.get_ref())
}

/// `section[N]` (1-based) followed by ` (name)` when the table has a usable name.
pub(super) fn label(section: &str, i: usize, name: Option<&str>) -> String {
    match name.filter(|n| !n.is_empty() && n.len() <= 40) {
        Some(name) => format!("{section}[{}] ({name})", i + 1),
        None => format!("{section}[{}]", i + 1),
    }
}

/// A syntax error. When the error lies inside an array or inline table opened on an earlier
/// line (a missing `]` makes the parser read the next table header as an element), it is
/// reported where that bracket was opened, with the parser's own message and line.
fn syntax_problem(text: &str, e: &toml::de::Error) -> RawProblem {
    let message = humanize(e.message());
    let Some(span) = e.span() else {
        return (None, String::new(), message);
    };
    if let Some(open) = unclosed_bracket(text, span.start) {
        let opened = super::error::line_col(text, open).0;
        let found = super::error::line_col(text, span.start).0;
        if opened < found {
            let what = if text[open..].starts_with('{') {
                "inline table"
            } else {
                "array"
            };
            let msg = format!(
                "this {what} is never closed (at line {found}: {message}); a `{}` is missing",
                if what == "array" { ']' } else { '}' }
            );
            return (Some(open..open + 1), key_near(text, open), msg);
        }
    }
    (Some(span.clone()), key_near(text, span.start), message)
}

/// The outermost array or inline-table bracket still open at `offset`, if any. Strings,
/// comments and table headers are skipped; this is a scan, not a parser, so it only guides
/// where a syntax error is reported.
fn unclosed_bracket(text: &str, offset: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut open: Vec<usize> = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    while i < offset.min(bytes.len()) {
        let b = bytes[i];
        match b {
            b'\n' => line_start = true,
            b' ' | b'\t' | b'\r' => {}
            b'#' => {
                i = skip_to(bytes, i, b'\n');
                continue;
            }
            b'"' | b'\'' => {
                i = skip_string(bytes, i);
                line_start = false;
                continue;
            }
            b'[' if line_start && open.is_empty() => {
                // A table header: `[name]` or `[[name]]`, to the end of its line.
                i = skip_to(bytes, i, b'\n');
                continue;
            }
            b'[' | b'{' => {
                open.push(i);
                line_start = false;
            }
            b']' | b'}' => {
                open.pop();
                line_start = false;
            }
            _ => line_start = false,
        }
        i += 1;
    }
    open.first().copied()
}

fn skip_to(bytes: &[u8], from: usize, stop: u8) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == stop)
        .map_or(bytes.len(), |p| from + p)
}

/// The index just past the string starting at `from` (basic or literal, one- or multi-line).
fn skip_string(bytes: &[u8], from: usize) -> usize {
    let quote = bytes[from];
    let triple = bytes.get(from..from + 3) == Some(&[quote; 3][..]);
    let mut i = from + if triple { 3 } else { 1 };
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' && quote == b'"' {
            i += 2;
            continue;
        }
        if !triple && b == b'\n' {
            return i;
        }
        if b == quote && (!triple || bytes.get(i..i + 3) == Some(&[quote; 3][..])) {
            return i + if triple { 3 } else { 1 };
        }
        i += 1;
    }
    bytes.len()
}

/// The path as written in TOML, without the segments `toml::Spanned` adds internally; rules
/// and floods are labelled as [`array_label`] does.
fn dotted(path: &serde_path_to_error::Path, label: &dyn Fn(&str, usize) -> String) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } if out == "rule" || out == "flood" => {
                out = label(&out, *index);
            }
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
/// `[[rule]]` and `[[flood]]` counted from 1) and the key on that line, if any.
pub(super) fn key_near(text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let mut table = String::new();
    let (mut rules, mut floods) = (0usize, 0usize);
    for l in text[..line_start].lines().chain([line]) {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim();
            table = match name {
                "rule" => {
                    rules += 1;
                    label(name, rules - 1, None)
                }
                "flood" => {
                    floods += 1;
                    label(name, floods - 1, None)
                }
                _ => name.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unclosed_array_is_found_where_it_opened() {
        let text = "[enforce]\nhooks = [\"INPUT\", # comment ]\n\n[allow]\nnets = []\n";
        let at = text.find("[allow]").expect("fixture");
        assert_eq!(unclosed_bracket(text, at), text.find("[\"INPUT"));
        let closed = "[enforce]\nhooks = [\"IN]PUT\"]\nx = '['\n[allow]\n";
        assert_eq!(unclosed_bracket(closed, closed.len()), None);
        let multi = "a = \"\"\"\n[\n\"\"\"\nb = [1,\n";
        assert_eq!(unclosed_bracket(multi, multi.len()), multi.find("[1"));
    }

    #[test]
    fn rules_are_labelled_from_one_with_their_name() {
        let doc = DeTable::parse("[[rule]]\nname = \"a\"\n[[rule]]\nmetric = \"x\"\n")
            .expect("valid toml");
        assert_eq!(array_label(doc.get_ref(), "rule", 0), "rule[1] (a)");
        assert_eq!(array_label(doc.get_ref(), "rule", 1), "rule[2]");
        assert_eq!(key_near("[[rule]]\n[[rule]]\nx = 1", 20), "rule[2].x");
        let text = "[[rule]]\n[[flood]]\n[[flood]]\nx = 1";
        assert_eq!(key_near(text, text.len()), "flood[2].x");
    }
}
