//! One integration-test binary with themed modules (see each module's `//!`).

mod packet_pcaps;
mod util;
