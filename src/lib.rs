//! autoblock: a server under heavy load defends itself in real time.
//!
//! A tour of the modules, in pipeline order:
//! - [`packet`]: frame bytes -> [`packet::PacketMeta`] (pure; the only etherparse user).
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
