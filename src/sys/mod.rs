//! The I/O edges: everything that touches files, devices, the kernel or the clock lives here,
//! small and behind plain types, so the pure core stays testable without root.

pub mod capture;
pub mod events;
pub mod host;
pub mod live;
pub mod metrics_http;
pub mod proc;
pub mod state;
