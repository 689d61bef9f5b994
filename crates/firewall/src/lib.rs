//! Blocking rules in the kernel, from Rust: open (or adopt) a chain and its jumps, add, change
//! and remove expiring bans and typed rules in atomic batches, read them back, expire them,
//! repair outside damage, and remove everything again. autoblock's daemon and library users
//! (an application that sees failed logins, a WAF, an abuse feed) share this one engine.
//!
//! # Quick start
//!
//! ```no_run
//! use autoblock_firewall::{Backend, Batch, Firewall, FirewallOptions, Protocol, Rule};
//! use std::{net::Ipv4Addr, time::{Duration, SystemTime}};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fw = Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP"))?;
//! let mut batch = Batch::new();
//! batch.block(Ipv4Addr::new(203, 0, 113, 7), Duration::from_secs(600), "login-abuse");
//! batch.block(
//!     Rule::new().dst(Ipv4Addr::new(10, 10, 10, 10)).protocol(Protocol::Udp).sport(4500),
//!     Duration::from_secs(300),
//!     "ike-flood",
//! );
//! let committed = fw.commit(batch)?;
//! for refused in &committed.refused {
//!     eprintln!("{refused}"); // e.g. "refused 0.0.0.0/0: ... shorter than the minimum prefix /8"
//! }
//! assert!(fw.is_blocked(Ipv4Addr::new(203, 0, 113, 7)));
//! for ban in fw.list()? {
//!     println!("{} until {} ({})", ban.net, ban.until, ban.reason);
//! }
//! fw.expire_due(SystemTime::now())?;
//! println!("{}", fw.flush()?); // what was removed
//! # Ok(()) }
//! ```
//!
//! # The model
//!
//! - **Chain.** Everything lives in one iptables chain of your naming
//!   ([`FirewallOptions::new`]), created in IPv4 (`iptables`) and IPv6 (`ip6tables`) alike
//!   (with [`Backend::Iptables`], plus the private ban chains it jumps to, below).
//!   Rules in the chain that are not ours are kept, through rebuilds (each reads the chain
//!   again first, so a rule added by hand a moment ago survives) and [`Firewall::flush`].
//! - **Hooks.** Packets enter the chain through a jump at position 1 of each hook
//!   ([`FirewallOptions::hooks`]): `INPUT` by default, or e.g. `FORWARD` for a router, or
//!   `raw:PREROUTING` to drop before connection tracking.
//! - **Entries.** A *ban* drops everything from a source net ([`IpNet`]: an address or a
//!   prefix). A *typed rule* ([`Rule`]) matches source and/or destination, protocol, ports and
//!   TCP flags, and drops, rejects or logs and drops. Both carry an expiry and a reason, and go
//!   through the same [`Batch::block`] / [`Batch::unblock`].
//! - **Backends** ([`Backend`]). [`Backend::Iptables`]: one rule per entry, its expiry in a
//!   comment (`autoblock until=UNIXSECS rule=REASON`: a typed rule's own, a ban's on the first
//!   rule of its run of bans with the same end and reason); visible in `iptables -S`, but
//!   every packet walks the list, so keep it to a few thousand bans. Bans sit in private
//!   chains of ours, one per 32 s of end times (`MYAPP.<hex>`, reached from our chain through
//!   `MYAPP.bans`): bans ending together are removed by deleting their chain, and no ban
//!   change reads or rewrites our chain itself (so chain names are at most
//!   [`IPTABLES_MAX_CHAIN_LEN`] characters with this backend). [`Backend::Ipset`]: bans
//!   in two `hash:net` sets (`<chain>4`, `<chain>6`, lowercase) with kernel timeouts, matched by
//!   one rule per family; lookup cost does not grow with the list, and bans end on time even
//!   when your process is gone. Typed rules are iptables rules in the chain with either
//!   backend. Ipset timeouts are capped at 2,147,483 s (~24 days).
//!   [`Backend::Nftables`]: a table of our own, `inet <chain lowercase>`, with one timeout set
//!   per family and prefix length (`v4_32`, `v4_24`, `v6_64`, ...), one base chain per hook
//!   (`INPUT` -> `input` at priority -10, see [`FirewallOptions::priority`]) and one counted
//!   drop rule per set; every commit is one `nft -f -` transaction, the kernel expires bans,
//!   and nothing in it is shared with iptables (`iptables -F` leaves it alone). Typed rules
//!   are rules of the table's regular chain `rules` (jumped to from every base chain), with
//!   `until=UNIXSECS REASON` in their comment (nft keeps 128 bytes of comment: with typed
//!   rules a reason may be up to 111 bytes); ban timeouts capped at 99,999,999 s (~3 years).
//!   [`Backend::probe`] tells whether a backend is usable here.
//! - **Batches.** Changes are queued on a [`Batch`] and applied by [`Firewall::commit`] with
//!   one process call per family (`iptables-restore` / `ip6tables-restore`) or one
//!   `ipset restore`: 10,000 bans commit in about 0.1 s (see `BENCHMARKS.md`). Within a batch
//!   the last change per target wins. Blocking what is already blocked keeps the longer expiry
//!   ([`Batch::exact`] sets it exactly).
//! - **Guard rails.** [`Firewall::commit`] refuses, entry by entry, what would lock you out or
//!   cover too much: prefixes shorter than [`FirewallOptions::min_prefix`] (default /8 and
//!   /16, never /0), loopback, unspecified, multicast and link-local addresses (each can be
//!   allowed, [`FirewallOptions::allow`]), nets overlapping a protected net
//!   ([`FirewallOptions::protect`], [`Firewall::set_protected`]), prefixes with host bits set,
//!   reasons that cannot be stored verbatim, malformed rules. The rest of the batch is applied;
//!   each refusal is reported in [`Committed::refused`] with its cause.
//! - **Addresses** are canonical: an IPv4-mapped IPv6 address (`::ffff:203.0.113.7`, as a
//!   dual-stack socket reports IPv4 peers) is the IPv4 address, in blocks, unblocks, lookups.
//! - **One handle per chain.** [`Firewall::open`] takes a lock per network namespace and
//!   chain (under [`DEFAULT_LOCK_DIR`]); a second open fails with
//!   [`FirewallError::ChainInUse`]. Share one handle between threads (`Arc<Firewall>`).
//! - **Expiry.** An entry ends at its `until`. With ipset the kernel removes bans; otherwise
//!   the rule stays until you call [`Firewall::expire_due`], ideally at
//!   [`Firewall::next_expiry`]. Either way `expire_due` keeps memory in step and tells you what
//!   ended.
//! - **Reconcile at open.** [`Firewall::open`] reads what the kernel holds and adopts it: a
//!   restarted program keeps its entries with their remaining time, duplicates collapse to the
//!   latest expiry, expired leftovers are removed, a missing or misplaced jump is fixed.
//! - **Repair.** Someone may flush the chain, destroy a set or delete a jump.
//!   [`Firewall::check_and_repair`] notices (by counts) and restores from memory; call it
//!   every few seconds, and at once when [`Firewall::watch`] reports a deletion (it follows
//!   the kernel's nf_tables notifications).
//! - **No guessing.** Every read of a table must show it whole: an iptables-nft table holding
//!   rules `iptables-save` cannot translate (`# Table `filter' is incompatible`), or output cut
//!   short, is [`FirewallError::UnreadableTable`], and nothing in it is changed (a rebuild would
//!   drop rules we cannot see; a jump we cannot see would be added again).
//! - **Flush** ([`Firewall::flush`], or [`Firewall::remove`] without opening) removes what is
//!   there, reads the kernel again, and reports it ([`Flushed`]); anything of ours left is
//!   [`FirewallError::FlushIncomplete`].
//! - **Namespaces.** [`FirewallOptions::netns`] runs every command as `ip netns exec NAME ...`.
//! - **Errors.** Commands are argument vectors with restore text on stdin, never a shell. A
//!   failing command becomes a [`FirewallError`] that keeps its command line, exit status,
//!   stderr and the input line it failed on, in one line.
//! - **Dry run is yours.** A batch is inert until committed.
//!
//! Invariants: memory holds exactly one entry per net (bans) or per set of matches (typed
//! rules), and after every successful call it matches what the kernel holds for our chain (or
//! sets). All calls need `CAP_NET_ADMIN` (root) in the target namespace.
//!
//! Complete programs: `examples/authlog_block` (bans after N failed sshd logins in a window,
//! following the auth log) and `examples/blocklist_load` (loads and syncs an abuse feed in one
//! commit).

#![warn(missing_docs)]

mod ban;
mod ban_chains;
mod batch;
mod commit;
mod counters;
mod engine;
mod error;
mod exec;
mod firewall;
mod flush;
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod lock;
mod mirror;
mod monitor;
mod nft;
mod nft_parse;
mod nft_render;
mod nft_rule_text;
mod nft_rules;
mod options;
mod parse;
mod probe;
mod reconcile;
mod render;
mod repair;
mod rule;
mod rule_text;
#[cfg(test)]
pub(crate) mod tests_support;

pub use ban::{Ban, Expired, Family, RuleEntry};
pub use ban_chains::MAX_CHAIN_LEN as IPTABLES_MAX_CHAIN_LEN;
pub use batch::{Batch, Committed};
pub use counters::RuleCounter;
pub use error::FirewallError;
pub use firewall::Firewall;
pub use flush::Flushed;
pub use guard::{Refusal, Refused, Special};
/// Address and prefix types (from the `ipnet` crate), re-exported so you need not depend on it.
pub use ipnet::{IpNet, Ipv4Net, Ipv6Net};
pub use monitor::Watch;
pub use options::{Backend, DEFAULT_LOCK_DIR, FirewallOptions, UnknownBackend};
pub use repair::Repair;
pub use rule::{Action, Net, Ports, Protocol, Rule, TcpFlags};

#[cfg(test)]
#[path = "engine_tests.rs"]
mod engine_tests;

#[cfg(test)]
#[path = "flush_tests.rs"]
mod flush_tests;

/// The README's examples compile as written (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
