//! [`FirewallOptions`] and [`Backend`]: what the caller chooses, validated once at
//! [`Firewall::open`](super::Firewall::open) into private typed settings.

use super::FirewallError;

/// How bans are enforced in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// One `DROP` rule per banned net in our chain; each rule's comment records its expiry and
    /// reason. Simple and visible in `iptables -S`, but every packet walks the list: prefer
    /// [`Backend::Ipset`] past a few thousand bans.
    Iptables,
    /// Two `hash:net` sets (IPv4, IPv6) with kernel timeouts, matched by one rule per family.
    /// Lookup cost does not grow with the number of bans, and bans end on time even when this
    /// process is gone.
    Ipset,
}

/// Settings for [`Firewall::open`](super::Firewall::open).
///
/// ```
/// use autoblock_firewall::{Backend, FirewallOptions};
/// let opts = FirewallOptions::new(Backend::Ipset, "MYAPP")
///     .hooks(["INPUT", "raw:PREROUTING"])
///     .maxelem(200_000)
///     .netns("web1");
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct FirewallOptions {
    /// Which kernel mechanism holds the bans.
    pub(crate) backend: Backend,
    /// Our chain; also names the sets (lowercase + `4`/`6`).
    pub(crate) chain: String,
    /// Where packets enter our chain: `CHAIN` (filter table) or `table:CHAIN`.
    pub(crate) hooks: Vec<String>,
    /// Capacity of each set (ipset backend).
    pub(crate) maxelem: u32,
    /// Run every command inside this network namespace.
    pub(crate) netns: Option<String>,
}

impl FirewallOptions {
    /// Options with the defaults: hook `INPUT`, `maxelem` 100000, current network namespace.
    ///
    /// `chain` must be 1-28 characters of `[A-Za-z0-9_-]` (checked when opening).
    pub fn new(backend: Backend, chain: impl Into<String>) -> Self {
        FirewallOptions {
            backend,
            chain: chain.into(),
            hooks: vec!["INPUT".to_string()],
            maxelem: 100_000,
            netns: None,
        }
    }

    /// Built-in chains that jump to our chain, at position 1: `INPUT`, `FORWARD`, ... in the
    /// filter table, or `table:CHAIN` (e.g. `raw:PREROUTING`, `mangle:PREROUTING`), in which case
    /// our chain is also created in that table. At least one hook is required.
    pub fn hooks<I, S>(mut self, hooks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hooks = hooks.into_iter().map(Into::into).collect();
        self
    }

    /// Maximum number of entries in each set ([`Backend::Ipset`]); size it at about twice the
    /// number of bans you expect to hold at once. Ignored by [`Backend::Iptables`].
    pub fn maxelem(mut self, maxelem: u32) -> Self {
        self.maxelem = maxelem;
        self
    }

    /// Run every command as `ip netns exec NAME ...`, to manage a container's or a test
    /// namespace's firewall instead of this host's.
    pub fn netns(mut self, name: impl Into<String>) -> Self {
        self.netns = Some(name.into());
        self
    }
}

/// A jump from a built-in chain to ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hook {
    pub(crate) table: String,
    pub(crate) chain: String,
}

/// Options after validation.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) backend: Backend,
    pub(crate) chain: String,
    pub(crate) hooks: Vec<Hook>,
    /// Tables holding our chain, in first-hook order, without duplicates.
    pub(crate) tables: Vec<String>,
    pub(crate) maxelem: u32,
    pub(crate) netns: Option<String>,
}

const TABLES: [&str; 3] = ["filter", "raw", "mangle"];

fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl FirewallOptions {
    /// Checks every option; reports all problems at once.
    pub(crate) fn validate(&self) -> Result<Settings, FirewallError> {
        let mut problems = Vec::new();
        if !is_name(&self.chain, 28) {
            problems.push(format!(
                "chain {:?} must be 1-28 characters of [A-Za-z0-9_-]",
                self.chain
            ));
        }
        if self.hooks.is_empty() {
            problems.push("at least one hook is required".to_string());
        }
        let mut hooks: Vec<Hook> = Vec::new();
        for raw in &self.hooks {
            let (table, chain) = raw.split_once(':').unwrap_or(("filter", raw.as_str()));
            if !TABLES.contains(&table) {
                problems.push(format!("hook {raw:?}: table must be one of {TABLES:?}"));
            } else if !is_name(chain, 28) || chain == self.chain {
                problems.push(format!("hook {raw:?}: not a valid built-in chain name"));
            } else {
                let hook = Hook {
                    table: table.to_string(),
                    chain: chain.to_string(),
                };
                if !hooks.contains(&hook) {
                    hooks.push(hook);
                }
            }
        }
        if self.maxelem == 0 {
            problems.push("maxelem must be at least 1".to_string());
        }
        if let Some(ns) = &self.netns
            && (ns.starts_with('.')
                || ns.len() > 64
                || !ns
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)))
        {
            problems.push(format!("netns {ns:?} is not a valid namespace name"));
        }
        if !problems.is_empty() {
            return Err(FirewallError::InvalidOption(problems.join("; ")));
        }
        let mut tables: Vec<String> = Vec::new();
        for hook in &hooks {
            if !tables.contains(&hook.table) {
                tables.push(hook.table.clone());
            }
        }
        Ok(Settings {
            backend: self.backend,
            chain: self.chain.clone(),
            hooks,
            tables,
            maxelem: self.maxelem,
            netns: self.netns.clone(),
        })
    }
}

impl Settings {
    /// The set name for a family: lowercase chain + `4` or `6`.
    pub(crate) fn set_name(&self, v6: bool) -> String {
        format!(
            "{}{}",
            self.chain.to_ascii_lowercase(),
            if v6 { 6 } else { 4 }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let s = FirewallOptions::new(Backend::Ipset, "AUTOBLOCK")
            .validate()
            .unwrap();
        assert_eq!(
            s.hooks,
            vec![Hook {
                table: "filter".into(),
                chain: "INPUT".into()
            }]
        );
        assert_eq!(s.tables, vec!["filter".to_string()]);
        assert_eq!(s.set_name(false), "autoblock4");
        assert_eq!(s.set_name(true), "autoblock6");
        assert_eq!(s.maxelem, 100_000);
    }

    #[test]
    fn hooks_in_other_tables_add_tables() {
        let s = FirewallOptions::new(Backend::Iptables, "AB")
            .hooks(["INPUT", "FORWARD", "raw:PREROUTING", "INPUT"])
            .validate()
            .unwrap();
        assert_eq!(s.hooks.len(), 3);
        assert_eq!(s.tables, vec!["filter".to_string(), "raw".to_string()]);
    }

    #[test]
    fn bad_options_are_all_reported() {
        let e = FirewallOptions::new(Backend::Iptables, "A B;rm")
            .hooks(["nat:PREROUTING", "INPUT -j X"])
            .maxelem(0)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("chain"), "{e}");
        assert!(e.contains("nat:PREROUTING"), "{e}");
        assert!(e.contains("INPUT -j X"), "{e}");
        assert!(e.contains("maxelem"), "{e}");
        let long = "A".repeat(29);
        assert!(
            FirewallOptions::new(Backend::Iptables, long)
                .validate()
                .is_err()
        );
        assert!(
            FirewallOptions::new(Backend::Iptables, "")
                .validate()
                .is_err()
        );
        assert!(
            FirewallOptions::new(Backend::Iptables, "X")
                .netns("../x")
                .validate()
                .is_err()
        );
    }
}
