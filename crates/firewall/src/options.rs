//! [`FirewallOptions`] and [`Backend`]: what the caller chooses, validated once at
//! [`Firewall::open`](super::Firewall::open) into private typed settings (all problems reported
//! at once, before anything touches the kernel).

use std::path::PathBuf;

use ipnet::IpNet;

use super::FirewallError;
use super::guard::{DEFAULT_MIN_V4, DEFAULT_MIN_V6, Guard, Special, normalize_protected};
use super::rule::Net;

/// How bans are enforced in the kernel. Parses from and prints as `iptables` / `ipset` /
/// `nftables`; with the `serde` feature it (de)serializes as those strings.
///
/// ```
/// use autoblock_firewall::Backend;
/// assert_eq!("ipset".parse::<Backend>(), Ok(Backend::Ipset));
/// assert_eq!(Backend::Iptables.to_string(), "iptables");
/// assert_eq!("nftables".parse::<Backend>(), Ok(Backend::Nftables));
/// assert!("pf".parse::<Backend>().unwrap_err().to_string().contains("expected `iptables`, `ipset` or `nftables`"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Backend {
    /// One `DROP` rule per banned net; a comment records expiry and reason, on the first rule
    /// of each run of bans that share them (the others are bare `-s NET -j DROP`). The rules sit in private chains per 32 s of end times (`CHAIN.<hex>`, reached through
    /// `CHAIN.bans`), so bans that end together go with their chain. Simple and visible in
    /// `iptables -S`, but every packet walks the list: prefer [`Backend::Ipset`] past a few
    /// thousand bans. Chain names are at most [`IPTABLES_MAX_CHAIN_LEN`](crate::IPTABLES_MAX_CHAIN_LEN)
    /// characters.
    Iptables,
    /// Two `hash:net` sets (IPv4, IPv6) with kernel timeouts, matched by one rule per family.
    /// Lookup cost does not grow with the number of bans, and bans end on time even when this
    /// process is gone.
    Ipset,
    /// A table of our own (`inet <chain lowercase>`) with timeout sets per family and prefix
    /// length, matched by one rule per set in a base chain per hook; committed with `nft -f`
    /// in one transaction. Constant lookup cost like [`Backend::Ipset`], nothing shared with
    /// iptables (an `iptables -F` leaves it alone); needs the `nft` binary (nftables >= 1.0).
    /// Typed rules are rules of the table's regular chain `rules`, expired by
    /// [`Firewall::expire_due`](super::Firewall::expire_due) as with iptables.
    Nftables,
}

impl Backend {
    /// The name used in configuration: `iptables`, `ipset` or `nftables`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Iptables => "iptables",
            Backend::Ipset => "ipset",
            Backend::Nftables => "nftables",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend name that is not `iptables`, `ipset` or `nftables`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend `{0}`, expected `iptables`, `ipset` or `nftables`")]
pub struct UnknownBackend(pub String);

impl std::str::FromStr for Backend {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Backend, UnknownBackend> {
        match s {
            "iptables" => Ok(Backend::Iptables),
            "ipset" => Ok(Backend::Ipset),
            "nftables" => Ok(Backend::Nftables),
            other => Err(UnknownBackend(other.to_string())),
        }
    }
}

/// Settings for [`Firewall::open`](super::Firewall::open).
///
/// ```
/// use autoblock_firewall::{Backend, FirewallOptions, Special};
/// use std::net::Ipv4Addr;
/// let opts = FirewallOptions::new(Backend::Ipset, "MYAPP")
///     .hooks(["INPUT", "raw:PREROUTING"])
///     .maxelem(200_000)
///     .min_prefix(16, 48)
///     .allow(Special::LinkLocal)
///     .protect([Ipv4Addr::new(192, 0, 2, 1)])
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
    /// Shortest prefixes a block may name, IPv4 and IPv6.
    pub(crate) min_prefix: (u8, u8),
    /// Special ranges blocks may touch.
    pub(crate) allowed: Vec<Special>,
    /// Nets no block may overlap.
    pub(crate) protected: Vec<IpNet>,
    /// Where the per-chain lock files live.
    pub(crate) lock_dir: PathBuf,
    /// nftables: base-chain priority relative to the hook's table (`filter` 0, `raw` -300,
    /// `mangle` -150).
    pub(crate) priority: i32,
}

/// Where [`FirewallOptions::lock_dir`] points by default.
pub const DEFAULT_LOCK_DIR: &str = "/run/autoblock-firewall";

impl FirewallOptions {
    /// Options with the defaults: hook `INPUT`, `maxelem` 100000, current network namespace,
    /// minimum prefixes /8 (IPv4) and /16 (IPv6), no special range allowed, nothing protected.
    ///
    /// `chain` must be 1-28 characters of `[A-Za-z0-9_-]`, not starting with `-` and not a
    /// built-in chain or target name such as `INPUT` or `DROP` (checked when opening).
    pub fn new(backend: Backend, chain: impl Into<String>) -> Self {
        FirewallOptions {
            backend,
            chain: chain.into(),
            hooks: vec!["INPUT".to_string()],
            maxelem: 100_000,
            netns: None,
            min_prefix: (DEFAULT_MIN_V4, DEFAULT_MIN_V6),
            allowed: Vec::new(),
            protected: Vec::new(),
            lock_dir: PathBuf::from(DEFAULT_LOCK_DIR),
            priority: super::nft_render::DEFAULT_PRIORITY,
        }
    }

    /// [`Backend::Nftables`] only: where our base chains sit relative to the standard priority
    /// of each hook's table (`filter` 0, `raw` -300, `mangle` -150). The default, -10, runs
    /// them just before iptables' (and most firewalls') own chains of that table, so a ban
    /// drops a packet before anything else accepts it. Between -1000 and 1000.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// The shortest prefixes a block may name (default /8 and /16): a ban on `0.0.0.0/0` or a
    /// typo'd `/1` would cut off everyone. At least 1; at most 32 and 128.
    pub fn min_prefix(mut self, v4: u8, v6: u8) -> Self {
        self.min_prefix = (v4, v6);
        self
    }

    /// Lets blocks touch one [`Special`] range (call once per range). Each is refused by
    /// default: blocking loopback, unspecified, multicast or link-local addresses breaks the host
    /// itself or its neighbours far more often than it stops an attack.
    pub fn allow(mut self, special: Special) -> Self {
        if !self.allowed.contains(&special) {
            self.allowed.push(special);
        }
        self
    }

    /// Nets no block may overlap (inside or around): your management networks, your own
    /// addresses, peers you must reach. Replaced later with
    /// [`Firewall::set_protected`](super::Firewall::set_protected).
    pub fn protect<I>(mut self, nets: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Net>,
    {
        self.protected = nets.into_iter().map(|n| n.into().0).collect();
        self
    }

    /// Where the lock files that keep one handle per chain live (default
    /// [`DEFAULT_LOCK_DIR`]); all programs sharing chains must use the same directory.
    pub fn lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = dir.into();
        self
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

    /// Maximum number of entries in each set ([`Backend::Ipset`], and each prefix length's set
    /// with [`Backend::Nftables`]); size it at about twice the number of bans you expect to
    /// hold at once. Ignored by [`Backend::Iptables`].
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
    /// A built-in chain; otherwise a user chain (e.g. `DOCKER-USER`) that must exist at open.
    pub(crate) builtin: bool,
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
    /// The guard as opened (the protected nets change later in the firewall's state).
    pub(crate) guard: Guard,
    pub(crate) lock_dir: PathBuf,
    pub(crate) priority: i32,
}

/// The tables we hook into and their built-in chains.
const TABLES: [(&str, &[&str]); 3] = [
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ("raw", &["PREROUTING", "OUTPUT"]),
    (
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    ),
];

/// Names our chain must not take: built-in chains and standard targets.
const RESERVED: [&str; 11] = [
    "INPUT",
    "OUTPUT",
    "FORWARD",
    "PREROUTING",
    "POSTROUTING",
    "ACCEPT",
    "DROP",
    "QUEUE",
    "RETURN",
    "REJECT",
    "LOG",
];

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
        if !is_name(&self.chain, 28) || self.chain.starts_with('-') {
            problems.push(format!(
                "chain {:?} must be 1-28 characters of [A-Za-z0-9_-], not starting with `-`",
                self.chain
            ));
        } else if RESERVED.contains(&self.chain.as_str()) {
            problems.push(format!(
                "chain {:?} is a built-in chain or target; name a chain of your own (e.g. \"MYAPP\") and hook it from {:?} with FirewallOptions::hooks",
                self.chain, self.chain
            ));
        } else if self.backend == Backend::Iptables
            && self.chain.len() > super::ban_chains::MAX_CHAIN_LEN
        {
            problems.push(format!(
                "chain {:?} is {} characters: with the iptables backend at most {} (its ban chains are named {}.<7 hex digits>, and iptables takes 28)",
                self.chain,
                self.chain.len(),
                super::ban_chains::MAX_CHAIN_LEN,
                self.chain
            ));
        }
        if self.hooks.is_empty() {
            problems.push("at least one hook is required".to_string());
        }
        let hooks = self.validate_hooks(&mut problems);
        if self.backend == Backend::Nftables {
            problems.extend(super::nft_render::hook_problems(&hooks, self.priority));
        }
        if self.maxelem == 0 {
            problems.push("maxelem must be at least 1".to_string());
        }
        let (v4, v6) = self.min_prefix;
        if !(1..=32).contains(&v4) || !(1..=128).contains(&v6) {
            problems.push(format!(
                "min_prefix ({v4}, {v6}): IPv4 must be 1-32 and IPv6 1-128 (a /0 is never allowed)"
            ));
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
            guard: Guard {
                min_v4: v4,
                min_v6: v6,
                allowed: self.allowed.clone(),
                protected: normalize_protected(self.protected.iter().copied()),
            },
            lock_dir: self.lock_dir.clone(),
            priority: self.priority,
        })
    }

    /// Checks every option as [`Firewall::open`](super::Firewall::open) does before it reads
    /// the kernel, without touching anything: a configuration check can refuse what `open`
    /// would. (Whether a hook that is not a built-in chain exists is only known at open.)
    ///
    /// ```
    /// use autoblock_firewall::{Backend, FirewallOptions};
    /// let docker = FirewallOptions::new(Backend::Iptables, "MYAPP").hooks(["INPUT", "DOCKER-USER"]);
    /// assert!(docker.check().is_ok());
    /// let itself = FirewallOptions::new(Backend::Iptables, "MYAPP").hooks(["filter:MYAPP"]);
    /// assert!(itself.check().unwrap_err().to_string().contains("our own chain"));
    /// ```
    pub fn check(&self) -> Result<(), FirewallError> {
        self.validate().map(|_| ())
    }

    /// The hooks as (table, chain), without duplicates; problems are added to `problems`.
    fn validate_hooks(&self, problems: &mut Vec<String>) -> Vec<Hook> {
        let mut hooks: Vec<Hook> = Vec::new();
        for raw in &self.hooks {
            let (table, chain) = raw.split_once(':').unwrap_or(("filter", raw.as_str()));
            let Some((_, builtins)) = TABLES.iter().find(|(t, _)| *t == table) else {
                let names: Vec<&str> = TABLES.iter().map(|(t, _)| *t).collect();
                problems.push(format!("hook {raw:?}: table must be one of {names:?}"));
                continue;
            };
            // A built-in chain of another table in this one is a mistake, not a user chain.
            let misplaced =
                !builtins.contains(&chain) && TABLES.iter().any(|(_, b)| b.contains(&chain));
            if chain == self.chain {
                problems.push(format!(
                    "hook {raw:?} names our own chain {chain:?}: it would jump to itself; hook it from a built-in chain such as INPUT, or a chain of yours such as DOCKER-USER"
                ));
            } else if !is_name(chain, 28) || chain.starts_with('-') || misplaced {
                problems.push(format!(
                    "hook {raw:?}: the {table} table has no built-in chain {chain:?} (one of {}, or a chain of yours that exists, such as DOCKER-USER)",
                    builtins.join(", ")
                ));
            } else {
                let hook = Hook {
                    table: table.to_string(),
                    chain: chain.to_string(),
                    builtin: builtins.contains(&chain),
                };
                if !hooks.contains(&hook) {
                    hooks.push(hook);
                }
            }
        }
        hooks
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
                chain: "INPUT".into(),
                builtin: true,
            }]
        );
        assert_eq!(s.tables, vec!["filter".to_string()]);
        assert_eq!(s.set_name(false), "autoblock4");
        assert_eq!(s.set_name(true), "autoblock6");
        assert_eq!(s.maxelem, 100_000);
        assert_eq!(s.guard, Guard::default());
    }

    #[test]
    fn backend_names() {
        for b in [Backend::Iptables, Backend::Ipset, Backend::Nftables] {
            assert_eq!(b.to_string().parse::<Backend>(), Ok(b));
        }
        assert_eq!(
            "nft".parse::<Backend>().unwrap_err().to_string(),
            "unknown backend `nft`, expected `iptables`, `ipset` or `nftables`"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn backends_serialize_as_their_names() {
        assert_eq!(serde_json::to_string(&Backend::Ipset).unwrap(), "\"ipset\"");
        let b: Backend = serde_json::from_str("\"iptables\"").unwrap();
        assert_eq!(b, Backend::Iptables);
        let e = serde_json::from_str::<Backend>("\"pf\"").unwrap_err();
        assert!(
            e.to_string()
                .contains("expected one of `iptables`, `ipset`, `nftables`"),
            "{e}"
        );
    }

    #[test]
    fn guard_options_are_kept() {
        let s = FirewallOptions::new(Backend::Ipset, "AB")
            .min_prefix(24, 64)
            .allow(Special::Multicast)
            .allow(Special::Multicast)
            .protect(["10.1.2.3".parse::<std::net::IpAddr>().unwrap()])
            .validate()
            .unwrap();
        assert_eq!((s.guard.min_v4, s.guard.min_v6), (24, 64));
        assert_eq!(s.guard.allowed, [Special::Multicast]);
        assert_eq!(s.guard.protected, ["10.1.2.3/32".parse::<IpNet>().unwrap()]);
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
            .hooks(["nat:PREROUTING", "INPUT -j X", "raw:INPUT"])
            .maxelem(0)
            .min_prefix(0, 129)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("chain"), "{e}");
        assert!(e.contains("nat:PREROUTING"), "{e}");
        assert!(e.contains("INPUT -j X"), "{e}");
        assert!(
            e.contains("raw table has no built-in chain \"INPUT\""),
            "{e}"
        );
        assert!(e.contains("maxelem"), "{e}");
        assert!(e.contains("min_prefix (0, 129)"), "{e}");
        for name in ["INPUT", "DROP", "-X"] {
            let e = FirewallOptions::new(Backend::Iptables, name)
                .validate()
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("chain {name:?}")), "{e}");
        }
        let e = FirewallOptions::new(Backend::Iptables, "INPUT")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("built-in chain or target"), "{e}");
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
