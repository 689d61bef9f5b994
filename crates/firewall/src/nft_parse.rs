//! Reading our nftables table (pure): `nft list table inet T` text (with or without `-t`, which
//! leaves out the elements) into its sets, their elements with the time they have left, and
//! its chains with their hook, priority and the sets their drop rules match. Anything we do not
//! recognise is counted, never guessed at.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::nft_render::SetKey;

/// Our table as `nft list table` prints it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct NftTable {
    /// Sets by name.
    pub(crate) sets: BTreeMap<String, NftSet>,
    /// Chains by name.
    pub(crate) chains: BTreeMap<String, NftChain>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct NftSet {
    /// `ipv4_addr`, `ipv6_addr`, ...
    pub(crate) type_name: String,
    /// `flags` words (`timeout`, `interval`, ...).
    pub(crate) flags: Vec<String>,
    /// Elements with a timeout (others are not ours and are left out).
    pub(crate) elements: Vec<Element>,
}

impl NftSet {
    /// True when the set can hold our bans for `key`.
    pub(crate) fn fits(&self, key: SetKey) -> bool {
        self.type_name == key.type_name()
            && self.flags.iter().any(|f| f == "timeout")
            && !self.flags.iter().any(|f| f == "interval")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) addr: IpAddr,
    /// Milliseconds until the kernel removes it.
    pub(crate) expires_ms: u64,
    /// Its comment, as written.
    pub(crate) comment: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct NftChain {
    /// `filter`, `nat`, ... (`None` for a regular chain).
    pub(crate) kind: Option<String>,
    pub(crate) hook: Option<String>,
    /// Absolute priority.
    pub(crate) priority: Option<i32>,
    /// Rules, normalised (`==`, counter values and `handle N` removed), in order.
    pub(crate) rules: Vec<String>,
    /// The same rules as listed (we never list with `-a`: a `#` may be part of a comment).
    pub(crate) listed: Vec<String>,
}

impl NftChain {
    /// How many times the rule `body` (as rendered) is in the chain.
    pub(crate) fn count(&self, body: &str) -> usize {
        self.rules.iter().filter(|r| *r == body).count()
    }
}

enum At {
    Top,
    Set(String),
    Elements(String, String),
    Chain(String),
}

/// Parses table `inet NAME` from `nft list table` or `nft list ruleset` output (other tables
/// are skipped); `None` when the text does not hold it.
pub(crate) fn parse_table(text: &str, name: &str) -> Option<NftTable> {
    let header = format!("table inet {name} {{");
    let mut table: Option<NftTable> = None;
    let mut inside = false;
    let mut at = At::Top;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with("table ") && line.ends_with('{') {
            inside = line == header;
            if inside {
                table = Some(NftTable::default());
                at = At::Top;
            }
            continue;
        }
        let Some(t) = table.as_mut().filter(|_| inside) else {
            continue;
        };
        at = match at {
            At::Top if line == "}" => {
                inside = false;
                At::Top
            }
            At::Top => top_line(t, line),
            At::Set(name) => set_line(t, name, line),
            At::Elements(name, mut buf) => {
                buf.push(' ');
                buf.push_str(line);
                elements_or_more(t, name, buf)
            }
            At::Chain(name) => chain_line(t, name, line),
        };
    }
    table
}

fn top_line(t: &mut NftTable, line: &str) -> At {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["set", name, "{"] => {
            t.sets.insert((*name).to_string(), NftSet::default());
            At::Set((*name).to_string())
        }
        ["chain", name, "{"] => {
            t.chains.insert((*name).to_string(), NftChain::default());
            At::Chain((*name).to_string())
        }
        _ => At::Top,
    }
}

fn set_line(t: &mut NftTable, name: String, line: &str) -> At {
    if line == "}" {
        return At::Top;
    }
    if let Some(rest) = line.strip_prefix("elements = ") {
        return elements_or_more(t, name, rest.to_string());
    }
    let Some(set) = t.sets.get_mut(&name) else {
        return At::Top;
    };
    if let Some(ty) = line.strip_prefix("type ") {
        set.type_name = ty.trim().to_string();
    } else if let Some(flags) = line.strip_prefix("flags ") {
        set.flags = flags.split(',').map(|f| f.trim().to_string()).collect();
    }
    At::Set(name)
}

/// Parses element text as it comes, line by line: complete elements (up to a comma or the
/// closing brace outside quotes) are parsed at once; an unfinished one is carried to the next
/// line. Linear in the listing's size.
fn elements_or_more(t: &mut NftTable, name: String, text: String) -> At {
    let mut cur = String::new();
    let mut quoted = false;
    let mut done = false;
    let mut found = Vec::new();
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && (c == ',' || c == '}') {
            found.extend(element(&cur));
            cur.clear();
            if c == '}' {
                done = true;
                break;
            }
            continue;
        } else if !quoted && c == '{' && cur.trim().is_empty() {
            continue;
        }
        cur.push(c);
    }
    if let Some(set) = t.sets.get_mut(&name) {
        set.elements.extend(found);
    }
    if done {
        At::Set(name)
    } else {
        At::Elements(name, cur)
    }
}

/// Words of nft output: double quotes group (nft prints comments verbatim, without escapes).
pub(crate) fn tokenize_nft(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut in_word) = (false, false);
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
            in_word = true;
        } else if c.is_whitespace() && !quoted {
            if in_word {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
        } else {
            cur.push(c);
            in_word = true;
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// `ADDR timeout T expires E comment "C"` (other words skipped); `None` without `expires`.
fn element(text: &str) -> Option<Element> {
    let words = tokenize_nft(text);
    let addr: IpAddr = words.first()?.parse().ok()?;
    let (mut expires_ms, mut comment) = (None, None);
    let mut it = words[1..].iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "expires" => expires_ms = it.next().and_then(|e| parse_duration_ms(e)),
            "comment" => comment = it.next().cloned(),
            "timeout" | "counter" | "packets" | "bytes" => {
                it.next();
            }
            _ => {}
        }
    }
    Some(Element {
        addr,
        expires_ms: expires_ms?,
        comment,
    })
}

fn chain_line(t: &mut NftTable, name: String, line: &str) -> At {
    if line == "}" {
        return At::Top;
    }
    let Some(chain) = t.chains.get_mut(&name) else {
        return At::Top;
    };
    if let Some(rest) = line.strip_prefix("type ") {
        let head = rest.split(';').next().unwrap_or_default();
        let words: Vec<&str> = head.split_whitespace().collect();
        chain.kind = words.first().map(|k| (*k).to_string());
        if let Some(i) = words.iter().position(|w| *w == "hook") {
            chain.hook = words.get(i + 1).map(|h| (*h).to_string());
        }
        if let Some(i) = words.iter().position(|w| *w == "priority") {
            chain.priority = parse_priority(&words[i + 1..].join(" "));
        }
    } else if !line.is_empty() {
        chain.rules.push(normalise_rule(line));
        chain.listed.push(line.to_string());
    }
    At::Chain(name)
}

/// A listed rule in the form we render it: without `==`, counter values or `# handle N`.
fn normalise_rule(line: &str) -> String {
    let line = line.split(" # handle ").next().unwrap_or(line);
    let mut out: Vec<&str> = Vec::new();
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        match w {
            "==" => {}
            "packets" | "bytes" => {
                words.next();
            }
            _ => out.push(w),
        }
    }
    out.join(" ")
}

/// `1d2h3m4s5ms` (any subset, in that order) in milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'd' => 86_400_000,
            'h' => 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            's' => 1000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    (any && num.is_empty()).then_some(total)
}

/// A chain priority as `nft` prints it: `-10`, `filter - 10`, `raw`, `mangle + 5`.
pub(crate) fn parse_priority(text: &str) -> Option<i32> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let named = |w: &str| -> Option<i32> {
        Some(match w {
            "raw" => -300,
            "mangle" => -150,
            "dstnat" => -100,
            "filter" => 0,
            "security" => 50,
            "srcnat" => 100,
            _ => return None,
        })
    };
    match words.as_slice() {
        [n] => n.parse().ok().or_else(|| named(n)),
        [name, "-", n] => Some(named(name)? - n.parse::<i32>().ok()?),
        [name, "+", n] => Some(named(name)? + n.parse::<i32>().ok()?),
        _ => None,
    }
}

#[cfg(test)]
#[path = "nft_parse_tests.rs"]
mod tests;
