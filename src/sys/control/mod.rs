//! The control socket: how a CLI user talks to the running daemon.
//!
//! - [`protocol`]: the wire format (one JSON request per line, one JSON response per line, each
//!   carrying `"v": 1`); pure, unit-tested.
//! - [`server`]: the daemon's edge (tokio): bind the Unix socket safely, answer each request by
//!   calling a [`server::ControlHandler`] the daemon implements.
//! - [`client`]: one blocking request/response for the CLI, with errors an operator can act on.

pub mod client;
mod error;
pub mod protocol;
pub mod server;

pub use error::ControlError;
pub use protocol::{
    AttackInfo, BanInfo, Covered, Explanation, FloodWindow, InterfaceStats, ProtocolError, Refusal,
    ReloadInfo, Request, Response, RuleStatus, RuleTopInfo, RuleWindow, SourceValue, StatusInfo,
    TopInfo,
};
pub use server::{ControlHandler, serve};
