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
//! - **backends**: [`firewall::Backend::Nftables`] (a table of its own with timeout sets;
//!   constant cost, one `nft -f` transaction per commit), [`firewall::Backend::Ipset`] (hash
//!   sets with kernel timeouts; constant cost per packet) or [`firewall::Backend::Iptables`]
//!   (one rule per ban, expiry `until=` in the comment of the first rule of each run of bans
//!   that share it; fine for a few thousand bans, no ipset needed); the daemon's `backend =
//!   "auto"` takes the first of them that works here ([`firewall::Backend::probe`]);
//! - **batches**: changes are queued and committed at once, one process call per family;
//! - **guard rails**: a commit refuses, entry by entry, `/0` and too-short prefixes, loopback
//!   and other special ranges, protected nets, host bits, and reports each refusal;
//! - **typed rules**: source/destination, protocol, ports, TCP flags; drop, reject or log;
//! - **expiry**: bans carry an end time; the kernel (ipset) or [`firewall::Firewall::expire_due`]
//!   (iptables) ends them;
//! - **reconcile and repair**: opening adopts what the kernel already holds (a restart keeps its
//!   bans), and [`firewall::Firewall::check_and_repair`] restores outside damage;
//! - **errors** keep the failing command, its exit status and stderr; **dry run** is the
//!   caller's business (do not commit).
//!
//! ```no_run
//! use std::net::Ipv4Addr;
//! use std::time::Duration;
//! use autoblock::firewall::{Backend, Batch, Firewall, FirewallOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fw = Firewall::open(FirewallOptions::new(Backend::Ipset, "MYAPP"))?;
//! let mut batch = Batch::new();
//! batch.block(Ipv4Addr::new(203, 0, 113, 7), Duration::from_secs(600), "failed-logins");
//! batch.unblock(Ipv4Addr::new(198, 51, 100, 9));
//! for refused in fw.commit(batch)?.refused {
//!     eprintln!("{refused}");
//! }
//! # Ok(()) }
//! ```
//!
//! Runnable programs: `crates/firewall/examples/authlog_block` and
//! `crates/firewall/examples/blocklist_load`.
//!
//! # The code, in pipeline order
//!
//! ```text
//!  libpcap frames ─► packet ─► engine (sources × windows × rules ─► decisions) ─► event
//!   sys::live          pure      pure core: never does I/O, never reads the clock     │
//!   sys::capture                                                                     ├─► sys::events (stdout, file)
//!                                                                                    └─► sys::enforcer ─► firewall
//!  wiring: daemon (live: threads, channels, signals)   replay (offline, capture time)
//!  cli: one file per subcommand; sys::control is the socket between the CLI and the daemon
//! ```
//!
//! - [`packet`] (pure): frame bytes -> [`packet::PacketMeta`]; hand-written, never panics.
//! - [`config`] (pure but for reading the file): `rules.toml` -> validated [`config::Config`].
//! - `engine` (the pure core): per-source sliding windows, rules, bans, escalation and guards
//!   -> decisions. Time is an argument ([`time`]), never read.
//! - `event` (pure): one enum for every event kind the daemon and replay write -> the JSON
//!   lines watchers read; the event schema in one file.
//! - [`sys`] (the I/O edges, each small): capture (files, live), the wall clock, the event
//!   outputs (a bounded queue and a writer thread each), the state file, host facts, the
//!   control socket, metrics and their HTTP endpoint (prometheus-client, hyper), the enforcer
//!   that drives [`firewall`].
//! - [`trust`] (pure): who is never banned (verified peers: established TCP, SSH sessions,
//!   gateways, resolvers, the allowlist, each with why) and which sources are never counted
//!   (martians); `sys::peers` gathers the facts.
//! - [`firewall`]: the `autoblock-firewall` crate, re-exported: bans in the kernel in atomic
//!   batches; the daemon's enforcer and library users share it.
//! - `daemon` and `replay`: wiring only (threads, channels, shutdown), the one place the core
//!   meets the edges.
//! - [`docs`]: the manual pages, generated from the CLI, the config keys and the event kinds.
//! - [`cli`]: parses arguments and runs a subcommand, which returns a [`cli::CliError`] (exit
//!   code and causes); `main` sets up logging, prints that one error and exits.
//!
//! Pure modules (`packet`, `engine`, `event`, [`trust`], [`time`]) never do I/O and never read the clock;
//! a test (`tests/it/layout.rs`) keeps it so.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod cluster;
pub mod config;
pub(crate) mod daemon;
pub mod docs;
pub(crate) mod engine;
pub(crate) mod event;
pub mod packet;
pub(crate) mod replay;
pub(crate) mod replay_attacks;
pub(crate) mod replay_report;
pub(crate) mod replay_spoof;
pub mod sys;
#[cfg(test)]
mod test_rng;
pub mod trust;

pub use autoblock_firewall as firewall;
pub use engine::time;
