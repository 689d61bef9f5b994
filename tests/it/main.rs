//! One integration-test binary: themed modules (see each module's `//!`) and `harness/` (skip
//! rules, network namespaces, a running daemon) apart from them.

mod check;
mod control;
mod control_limits;
mod control_ops;
mod daemon;
mod daemon_auto;
mod daemon_instances;
mod daemon_nft;
mod daemon_output;
mod daemon_persist;
mod daemon_repair;
mod daemon_signals;
mod enforcer;
mod examples;
mod firewall;
mod firewall_guard;
mod firewall_nft;
mod firewall_rules;
mod firewall_standalone;
mod firewall_unreadable;
mod fleet;
mod fleet_daemon;
mod flood_pcaps;
mod harness;
mod layout;
mod live;
mod never_panics;
mod ops;
mod packaging;
mod packet_pcaps;
mod peers;
mod replay;
mod safety;
mod systemd;
mod watch;
