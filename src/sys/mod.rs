//! The I/O edges: everything that touches files, devices, the kernel or the clock lives here,
//! small and behind plain types, so the pure core stays testable without root.

pub mod capture;
pub mod host;
pub mod live;
pub mod proc;
