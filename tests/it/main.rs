//! One integration-test binary with themed modules (see each module's `//!`).

mod check;
mod control;
mod daemon;
mod daemon_util;
mod enforcer;
mod examples;
mod firewall;
mod fleet;
mod fleet_util;
mod live;
mod netns;
mod packaging;
mod packet_pcaps;
mod replay;
mod util;
