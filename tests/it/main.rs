//! One integration-test binary with themed modules (see each module's `//!`).

mod check;
mod control;
mod control_limits;
mod daemon;
mod daemon_util;
mod enforcer;
mod examples;
mod firewall;
mod firewall_guard;
mod firewall_rules;
mod firewall_standalone;
mod firewall_unreadable;
mod layout;
mod live;
mod netns;
mod nspawn;
mod nspawn_root;
mod packaging;
mod packet_pcaps;
mod peers;
mod replay;
mod safety;
mod systemd;
mod systemd_pending;
mod systemd_util;
mod util;
