//! nftables script text (pure) for [`Backend::Nftables`](super::Backend::Nftables): our table,
//! its base chains (one per hook), one timeout set per family and prefix length with its drop
//! rule, and element additions and removals. Every value that reaches the text is typed (nets,
//! numbers) or already validated (table, chain and set names, sanitized reasons), and the text
//! goes to `nft -f -` on stdin: the kernel applies it as one transaction.
//!
//! Why a set per prefix length and not one `flags interval` set per family: interval sets
//! refuse overlapping elements (`10.0.0.0/24` and `10.0.0.5` cannot both be in one), which the
//! engine needs (a /24 ban and a /32 ban inside it, each with its own expiry), and `nft` 1.0.6
//! reads every element of every interval set before each `add element` (1.1 s per commit with
//! 100k elements, measured in BENCHMARKS.md). A hash set per prefix length, matched with
//! `ip saddr & MASK @set`, is what ipset's `hash:net` does inside: one hash lookup per prefix
//! length in use, whatever the number of bans, and a prefix matches its whole range.

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::ban::{Ban, Family};
use super::options::Hook;

/// Default base-chain priority offset: just before the table's standard chains.
pub(crate) const DEFAULT_PRIORITY: i32 = -10;

/// The longest element timeout `nft` 1.0.6 accepts, in seconds (~3.2 years; measured: it
/// refuses 100,000,000 s as "value too large").
pub(crate) const NFT_MAX_TIMEOUT: u64 = 99_999_999;

/// Timeout given to an element just before deleting it, so the delete never fails on an
/// element the kernel has already expired (`add` of an existing element is not an error).
const PLACEHOLDER_TIMEOUT: &str = "1s";

/// Elements per `add element` / `delete element` statement (keeps single lines bounded).
const ELEMENTS_PER_STATEMENT: usize = 4096;

/// One of our sets: bans of one family and one prefix length (`v4_32`, `v4_24`, `v6_64`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SetKey {
    pub(crate) family: Family,
    pub(crate) len: u8,
}

impl SetKey {
    /// The set a ban on `net` lives in.
    pub(crate) fn of(net: &IpNet) -> SetKey {
        SetKey {
            family: Family::of(net),
            len: net.prefix_len(),
        }
    }

    /// The host set of a family (`v4_32`, `v6_128`): always present.
    pub(crate) fn host(family: Family) -> SetKey {
        SetKey {
            family,
            len: Self::max_len(family),
        }
    }

    fn max_len(family: Family) -> u8 {
        match family {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    pub(crate) fn name(self) -> String {
        let f = match self.family {
            Family::V4 => 4,
            Family::V6 => 6,
        };
        format!("v{f}_{}", self.len)
    }

    /// The key named `name`, if it is one of ours.
    pub(crate) fn parse(name: &str) -> Option<SetKey> {
        let (f, len) = name.strip_prefix('v')?.split_once('_')?;
        let family = match f {
            "4" => Family::V4,
            "6" => Family::V6,
            _ => return None,
        };
        let len: u8 = len.parse().ok()?;
        let key = SetKey { family, len };
        (len <= Self::max_len(family) && key.name() == name).then_some(key)
    }

    /// `ipv4_addr` / `ipv6_addr`.
    pub(crate) fn type_name(self) -> &'static str {
        match self.family {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }

    /// The rule's match, as `nft` reads it: `ip saddr @v4_32`, `ip saddr & 255.255.255.0 @v4_24`.
    pub(crate) fn rule_body(self) -> String {
        let (proto, host) = match self.family {
            Family::V4 => ("ip", 32),
            Family::V6 => ("ip6", 128),
        };
        let name = self.name();
        if self.len == host {
            return format!("{proto} saddr @{name} counter drop");
        }
        let mask = match self.family {
            Family::V4 => {
                Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0))
                    .to_string()
            }
            Family::V6 => Ipv6Addr::from(
                u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0),
            )
            .to_string(),
        };
        format!("{proto} saddr & {mask} @{name} counter drop")
    }
}

/// One of our base chains: where packets enter, and at which absolute priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseChain {
    pub(crate) name: String,
    pub(crate) hook: &'static str,
    pub(crate) priority: i32,
}

/// (iptables table, its standard nftables priority, hooks it has).
const TABLE_HOOKS: [(&str, i32, &[&str]); 3] = [
    ("filter", 0, &["INPUT", "FORWARD", "OUTPUT"]),
    ("raw", -300, &["PREROUTING", "OUTPUT"]),
    (
        "mangle",
        -150,
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    ),
];

fn nft_hook(chain: &str) -> Option<&'static str> {
    Some(match chain {
        "PREROUTING" => "prerouting",
        "INPUT" => "input",
        "FORWARD" => "forward",
        "OUTPUT" => "output",
        "POSTROUTING" => "postrouting",
        _ => return None,
    })
}

/// Hooks that have no nftables equivalent, and a priority out of range.
pub(crate) fn hook_problems(hooks: &[Hook], priority: i32) -> Vec<String> {
    let mut problems = Vec::new();
    for h in hooks {
        let known = TABLE_HOOKS
            .iter()
            .any(|(t, _, chains)| *t == h.table && chains.contains(&h.chain.as_str()));
        if !known {
            problems.push(format!(
                "hook \"{}:{}\": nftables needs a built-in hook (filter: INPUT FORWARD OUTPUT; raw: PREROUTING OUTPUT; mangle: PREROUTING INPUT FORWARD OUTPUT POSTROUTING)",
                h.table, h.chain
            ));
        }
    }
    if !(-1000..=1000).contains(&priority) {
        problems.push(format!(
            "priority {priority} must be between -1000 and 1000"
        ));
    }
    problems
}

/// Our base chains for validated `hooks`: `INPUT` -> chain `input` (hook input, priority
/// `offset`), `raw:PREROUTING` -> `raw_prerouting` (hook prerouting, -300 + `offset`).
pub(crate) fn base_chains(hooks: &[Hook], offset: i32) -> Vec<BaseChain> {
    hooks
        .iter()
        .filter_map(|h| {
            let (_, base, _) = TABLE_HOOKS.iter().find(|(t, _, _)| *t == h.table)?;
            let hook = nft_hook(&h.chain)?;
            let name = if h.table == "filter" {
                hook.to_string()
            } else {
                format!("{}_{hook}", h.table)
            };
            Some(BaseChain {
                name,
                hook,
                priority: base + offset,
            })
        })
        .collect()
}

/// Our table's name: the chain name in lowercase.
pub(crate) fn table_name(chain: &str) -> String {
    chain.to_ascii_lowercase()
}

/// Script text for one table.
pub(crate) struct Script<'a> {
    table: &'a str,
    out: String,
}

impl<'a> Script<'a> {
    pub(crate) fn new(table: &'a str) -> Self {
        Script {
            table,
            out: String::new(),
        }
    }

    pub(crate) fn text(self) -> String {
        self.out
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// `add table inet T` (no error when it exists).
    pub(crate) fn add_table(&mut self) -> &mut Self {
        let _ = writeln!(self.out, "add table inet {}", self.table);
        self
    }

    /// `delete table inet T` (an error when it does not exist).
    pub(crate) fn delete_table(&mut self) -> &mut Self {
        let _ = writeln!(self.out, "delete table inet {}", self.table);
        self
    }

    pub(crate) fn add_chain(&mut self, c: &BaseChain) -> &mut Self {
        let _ = writeln!(
            self.out,
            "add chain inet {} {} {{ type filter hook {} priority {}; policy accept; }}",
            self.table, c.name, c.hook, c.priority
        );
        self
    }

    pub(crate) fn add_set(&mut self, key: SetKey, size: u32) -> &mut Self {
        let _ = writeln!(
            self.out,
            "add set inet {} {} {{ type {}; flags timeout; size {size}; }}",
            self.table,
            key.name(),
            key.type_name()
        );
        self
    }

    pub(crate) fn add_rule(&mut self, chain: &str, key: SetKey) -> &mut Self {
        self.rule("add", chain, &key.rule_body())
    }

    /// A set's drop rule at the top of `chain`: before the jump to the typed rules.
    pub(crate) fn insert_rule(&mut self, chain: &str, key: SetKey) -> &mut Self {
        self.rule("insert", chain, &key.rule_body())
    }

    /// `add rule inet T CHAIN BODY` (BODY already rendered from typed values).
    pub(crate) fn rule(&mut self, verb: &str, chain: &str, body: &str) -> &mut Self {
        let _ = writeln!(self.out, "{verb} rule inet {} {chain} {body}", self.table);
        self
    }

    /// A regular chain (no hook): where the typed rules live.
    pub(crate) fn add_regular_chain(&mut self, name: &str) -> &mut Self {
        let _ = writeln!(self.out, "add chain inet {} {name}", self.table);
        self
    }

    /// Empties `name` (its rules go; the chain and the jumps to it stay).
    pub(crate) fn flush_chain(&mut self, name: &str) -> &mut Self {
        let _ = writeln!(self.out, "flush chain inet {} {name}", self.table);
        self
    }

    /// `add element` lines for `bans` (all in set `key`), timeouts counted from `now`.
    pub(crate) fn add_elements<'b>(
        &mut self,
        key: SetKey,
        bans: impl IntoIterator<Item = &'b Ban>,
        now: u64,
    ) -> &mut Self {
        let items: Vec<String> = bans
            .into_iter()
            .map(|b| {
                let timeout = b.until.saturating_sub(now).clamp(1, NFT_MAX_TIMEOUT);
                format!(
                    "{} timeout {timeout}s comment \"{}\"",
                    b.net.network(),
                    b.reason
                )
            })
            .collect();
        self.elements("add", key, &items)
    }

    /// Removes `nets` (all in set `key`) without failing on one the kernel no longer holds:
    /// each is first (re)added with a short timeout, then deleted, in the same transaction.
    pub(crate) fn delete_elements<'b>(
        &mut self,
        key: SetKey,
        nets: impl IntoIterator<Item = &'b IpNet>,
    ) -> &mut Self {
        let addrs: Vec<String> = nets.into_iter().map(|n| n.network().to_string()).collect();
        let placeholders: Vec<String> = addrs
            .iter()
            .map(|a| format!("{a} timeout {PLACEHOLDER_TIMEOUT}"))
            .collect();
        self.elements("add", key, &placeholders);
        self.elements("delete", key, &addrs)
    }

    fn elements(&mut self, verb: &str, key: SetKey, items: &[String]) -> &mut Self {
        for chunk in items.chunks(ELEMENTS_PER_STATEMENT) {
            let _ = writeln!(
                self.out,
                "{verb} element inet {} {} {{ {} }}",
                self.table,
                key.name(),
                chunk.join(", ")
            );
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::ban;

    fn hook(table: &str, chain: &str) -> Hook {
        Hook {
            table: table.into(),
            chain: chain.into(),
            builtin: true,
        }
    }

    #[test]
    fn set_keys_and_rules() {
        let k = SetKey::of(&"10.1.2.0/24".parse().unwrap());
        assert_eq!(k.name(), "v4_24");
        assert_eq!(SetKey::parse("v4_24"), Some(k));
        assert_eq!(
            k.rule_body(),
            "ip saddr & 255.255.255.0 @v4_24 counter drop"
        );
        assert_eq!(
            SetKey::host(Family::V4).rule_body(),
            "ip saddr @v4_32 counter drop"
        );
        assert_eq!(
            SetKey::of(&"2001:db8:bad::/48".parse().unwrap()).rule_body(),
            "ip6 saddr & ffff:ffff:ffff:: @v6_48 counter drop"
        );
        assert_eq!(SetKey::host(Family::V6).name(), "v6_128");
        for bad in ["v4_33", "v6_129", "v4_024", "v5_1", "x4_1", "v4_", "v4_-1"] {
            assert_eq!(SetKey::parse(bad), None, "{bad}");
        }
        assert_eq!(
            SetKey::of(&"0.0.0.0/0".parse().unwrap()).rule_body(),
            "ip saddr & 0.0.0.0 @v4_0 counter drop"
        );
    }

    #[test]
    fn hooks_map_to_base_chains_with_relative_priority() {
        let hooks = [
            hook("filter", "INPUT"),
            hook("filter", "FORWARD"),
            hook("raw", "PREROUTING"),
        ];
        assert!(hook_problems(&hooks, -10).is_empty());
        let chains = base_chains(&hooks, -10);
        let got: Vec<(&str, &str, i32)> = chains
            .iter()
            .map(|c| (c.name.as_str(), c.hook, c.priority))
            .collect();
        assert_eq!(
            got,
            [
                ("input", "input", -10),
                ("forward", "forward", -10),
                ("raw_prerouting", "prerouting", -310)
            ]
        );
        let p = hook_problems(&[hook("filter", "OUTPUTT"), hook("raw", "INPUT")], 5000);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("filter:OUTPUTT"), "{p:?}");
    }

    #[test]
    fn script_text() {
        let mut s = Script::new("ab");
        let chain = BaseChain {
            name: "input".into(),
            hook: "input",
            priority: -10,
        };
        let k = SetKey::host(Family::V4);
        s.add_table()
            .add_chain(&chain)
            .add_set(k, 1000)
            .add_rule("input", k)
            .add_elements(
                k,
                &[
                    ban("203.0.113.7/32", 1600, "login-abuse"),
                    ban("203.0.113.8/32", 5, "past"),
                ],
                1000,
            )
            .delete_elements(k, &["192.0.2.1/32".parse().unwrap()]);
        assert_eq!(
            s.text(),
            "add table inet ab\n\
             add chain inet ab input { type filter hook input priority -10; policy accept; }\n\
             add set inet ab v4_32 { type ipv4_addr; flags timeout; size 1000; }\n\
             add rule inet ab input ip saddr @v4_32 counter drop\n\
             add element inet ab v4_32 { 203.0.113.7 timeout 600s comment \"login-abuse\", 203.0.113.8 timeout 1s comment \"past\" }\n\
             add element inet ab v4_32 { 192.0.2.1 timeout 1s }\n\
             delete element inet ab v4_32 { 192.0.2.1 }\n"
        );
    }

    #[test]
    fn long_lists_are_split_and_timeouts_capped() {
        let bans: Vec<Ban> = (0..5000u32)
            .map(|i| Ban {
                net: IpNet::from(std::net::IpAddr::from(Ipv4Addr::from(i))),
                until: u64::MAX,
                reason: "x".into(),
            })
            .collect();
        let mut s = Script::new("ab");
        s.add_elements(SetKey::host(Family::V4), &bans, 0);
        let text = s.text();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains(" timeout 99999999s "));
        assert_eq!(table_name("AutoBlock"), "autoblock");
    }
}
