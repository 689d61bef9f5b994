//! The I/O edges: everything that touches files, devices, the kernel or the clock lives here,
//! small and behind plain types, so the pure core stays testable without root.

pub mod backend;
pub(crate) mod capture;
pub(crate) mod clock;
pub mod control;
pub mod enforcer;
pub(crate) mod events;
pub(crate) mod files;
pub mod host;
pub mod live;
pub(crate) mod metrics;
pub(crate) mod notify;
pub mod peers;
pub(crate) mod proc;
pub(crate) mod state;
