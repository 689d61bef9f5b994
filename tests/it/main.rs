//! One integration-test binary: themed modules (see each module's `//!`) and `harness/` (skip
//! rules, network namespaces, a running daemon) apart from them.

mod check;
mod control;
mod daemon;
mod daemon_auto;
mod daemon_nft;
mod daemon_repair;
mod enforcer;
mod examples;
mod firewall;
mod firewall_guard;
mod firewall_nft;
mod firewall_rules;
mod firewall_standalone;
mod fleet;
mod harness;
mod layout;
mod live;
mod packaging;
mod packet_pcaps;
mod replay;
mod systemd;
mod systemd_pending;
mod watch;
