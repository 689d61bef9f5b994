//! autoblock: a server under heavy load defends itself in real time.
//!
//! The `autoblock` daemon watches packets, counts sources against rules and bans the abusive
//! ones with expiring `DROP` rules. The same enforcement engine is a library of its own,
//! [`firewall`], for programs that bring their own signal (failed logins, a WAF, an abuse feed)
//! and want to add, change and remove blocking rules in real time.
//!
//! # Using the firewall library
//!
//! The model, in short (details in [`firewall`]):
//! - **chain**: your bans live in one iptables chain you name, in IPv4 and IPv6; rules in it
//!   that are not yours are kept;
//! - **hooks**: built-in chains (`INPUT` by default, `FORWARD`, `raw:PREROUTING`, ...) jump to it
//!   at position 1;
//! - **backends**: [`firewall::Backend::Ipset`] (hash sets with kernel timeouts; constant cost per
//!   packet, the default choice) or [`firewall::Backend::Iptables`] (one rule per ban, expiry in
//!   the rule comment `until=`; fine for a few thousand bans, no ipset needed);
//! - **batches**: changes are queued and committed at once, one process call per family;
//! - **expiry**: bans carry an end time; the kernel (ipset) or [`firewall::Firewall::expire_due`]
//!   (iptables) ends them;
//! - **reconcile and repair**: opening adopts what the kernel already holds (a restart keeps its
//!   bans), and [`firewall::Firewall::check_and_repair`] restores outside damage;
//! - **errors** keep the failing command, its exit status and stderr; **dry run** is the
//!   caller's business (do not commit).
//!
//! ```no_run
//! use std::net::IpAddr;
//! use std::time::Duration;
//! use autoblock::firewall::{Backend, Firewall, FirewallOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fw = Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP"))?;
//! let mut batch = fw.batch();
//! batch.block("203.0.113.7".parse::<IpAddr>()?, Duration::from_secs(600), "failed-logins");
//! batch.unblock("198.51.100.9".parse::<IpAddr>()?);
//! batch.commit()?;
//! # Ok(()) }
//! ```
//!
//! Runnable programs: `examples/authlog_block` and `examples/blocklist_load`.
//!
//! # Modules
//!
//! A tour, in pipeline order:
//! - [`packet`]: frame bytes -> [`packet::PacketMeta`] (pure, hand-written, never panics).
//! - [`config`]: `rules.toml` -> validated [`config::Config`].
//! - [`firewall`]: bans in the kernel (iptables rules or ipset sets), in atomic batches; used by
//!   the daemon's enforcer and by library users with their own signals.
//! - [`metrics`]: lock-free Prometheus counters shared by all threads; renders the text format.
//! - [`control`]: the control socket protocol, its server edge and the CLI's client.
//! - [`time`]: [`time::Timestamp`], the "now" that is always passed in, never read.
//!
//! Pure modules never do I/O and never read the clock; everything that does lives in `sys`.

#![deny(unsafe_code)]

pub mod ban_rate;
pub mod bans;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod daemon_support;
pub mod enforcer;
pub mod event;
pub mod firewall;
pub mod metrics;
pub mod packet;
pub mod policy;
pub mod replay;
pub mod sys;
pub mod time;
pub mod window;
