//! Which keys `rules.toml` knows, read from the raw serde structs themselves (so the list can
//! never drift from what is parsed), and the walk that reports *every* unknown key of a file
//! at once, each with its place and the nearest known key.

use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::de::{DeTable, DeValue};

use super::raw::{
    RawAllow, RawCapture, RawCluster, RawConfig, RawControl, RawEnforce, RawEvents, RawFlood,
    RawLimits, RawMetrics, RawRule, RawState,
};

/// One section of the file: `[name]` (a table) or `[[name]]` (an array of tables).
pub struct Section {
    /// The table's name.
    pub name: &'static str,
    /// `[[name]]`: an array of tables.
    pub array: bool,
    /// Its keys, in declaration order.
    pub keys: &'static [&'static str],
}

/// Every section and its keys, in the order of the raw structs.
pub fn sections() -> Vec<Section> {
    let table = |name, keys| Section {
        name,
        array: false,
        keys,
    };
    vec![
        table("capture", fields_of::<RawCapture>()),
        table("enforce", fields_of::<RawEnforce>()),
        table("allow", fields_of::<RawAllow>()),
        table("limits", fields_of::<RawLimits>()),
        table("events", fields_of::<RawEvents>()),
        table("control", fields_of::<RawControl>()),
        table("state", fields_of::<RawState>()),
        table("metrics", fields_of::<RawMetrics>()),
        table("cluster", fields_of::<RawCluster>()),
        Section {
            name: "rule",
            array: true,
            keys: fields_of::<RawRule>(),
        },
        Section {
            name: "flood",
            array: true,
            keys: fields_of::<RawFlood>(),
        },
    ]
}

/// The top-level keys (the section names).
pub fn top_level() -> &'static [&'static str] {
    fields_of::<RawConfig>()
}

/// The field names serde's derive passes to `deserialize_struct`: a deserializer that records
/// them and stops.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(FieldsProbe) {
        Err(Fields(fields)) => fields,
        Ok(_) => &[],
    }
}

struct FieldsProbe;

#[derive(Debug)]
struct Fields(&'static [&'static str]);

impl std::fmt::Display for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fields probe")
    }
}

impl std::error::Error for Fields {}

impl de::Error for Fields {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Fields(&[])
    }
}

impl<'de> Deserializer<'de> for FieldsProbe {
    type Error = Fields;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
        Err(Fields(&[]))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Fields> {
        Err(Fields(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// An unknown key: where, its dotted path, and what to say.
pub struct Unknown {
    /// Byte span of the key.
    pub span: Range<usize>,
    /// `enforce.bann`, `rule[2].treshold`, ...
    pub key: String,
    /// `unknown key ..., expected one of ...` with a suggestion when one is close.
    pub message: String,
}

/// Every key of `doc` that no raw struct knows. `label(section, i)` names the i-th table
/// (0-based) of an array section (`rule`, `flood`) as problems do.
pub fn unknown_keys(doc: &DeTable<'_>, label: &dyn Fn(&str, usize) -> String) -> Vec<Unknown> {
    let mut out = Vec::new();
    let sections = sections();
    for (key, value) in doc.iter() {
        let name = key.get_ref().as_ref();
        let Some(section) = sections.iter().find(|s| s.name == name) else {
            out.push(unknown(key.span(), name.to_owned(), name, top_level()));
            continue;
        };
        match (value.get_ref(), section.array) {
            (DeValue::Table(t), false) => table_keys(t, name, section.keys, &mut out),
            (DeValue::Array(items), true) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        table_keys(t, &label(name, i), section.keys, &mut out);
                    }
                }
            }
            // A wrong type (`capture = 1`) is serde's to report, with what was expected.
            _ => {}
        }
    }
    out
}

fn table_keys(table: &DeTable<'_>, prefix: &str, known: &[&str], out: &mut Vec<Unknown>) {
    for (key, _) in table.iter() {
        let name = key.get_ref().as_ref();
        if !known.contains(&name) {
            out.push(unknown(key.span(), format!("{prefix}.{name}"), name, known));
        }
    }
}

fn unknown(span: Range<usize>, key: String, name: &str, known: &[&str]) -> Unknown {
    let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    let mut message = format!("unknown key `{name}`");
    if let Some(near) = nearest(name, known) {
        message.push_str(&format!(" (did you mean `{near}`?)"));
    }
    message.push_str(&format!(", expected one of {}", list.join(", ")));
    Unknown { span, key, message }
}

/// The known key closest to `name`, when it is a plausible typo (a third of the length apart at
/// most).
fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), *k))
        .filter(|(d, k)| *d > 0 && *d <= (k.len().max(3) / 3).max(1))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_structs_name_their_keys() {
        let s = sections();
        let enforce = s.iter().find(|s| s.name == "enforce").expect("enforce");
        assert!(
            enforce.keys.contains(&"repeat_multiplier"),
            "{:?}",
            enforce.keys
        );
        let rule = s.iter().find(|s| s.name == "rule").expect("rule");
        assert!(rule.array && rule.keys.contains(&"skip_replies"));
        let names: Vec<&str> = s.iter().map(|s| s.name).collect();
        assert_eq!(names, top_level());
    }

    #[test]
    fn typos_get_a_suggestion() {
        let known = ["threshold", "window", "ban"];
        assert_eq!(nearest("treshold", &known), Some("threshold"));
        assert_eq!(nearest("windw", &known), Some("window"));
        assert_eq!(nearest("bann", &known), Some("ban"));
        assert_eq!(nearest("colour", &known), None);
    }
}
