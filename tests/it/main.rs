//! One integration-test binary with themed modules (see each module's `//!`).

mod check;
mod control;
mod daemon;
mod daemon_nft;
mod daemon_util;
mod enforcer;
mod examples;
mod firewall;
mod firewall_nft;
mod live;
mod netns;
mod packaging;
mod packet_pcaps;
mod replay;
mod util;
mod watch;
