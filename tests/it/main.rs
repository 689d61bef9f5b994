//! One integration-test binary with themed modules (see each module's `//!`).

mod replay;
mod util;
