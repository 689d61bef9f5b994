//! One integration-test binary with themed modules (see each module's `//!`).

mod firewall;
mod netns;
mod util;
