//! One integration-test binary with themed modules (see each module's `//!`).

mod check;
mod replay;
mod util;
