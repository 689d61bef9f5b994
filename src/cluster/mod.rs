//! Fleet sharing (issue 16): the bans of one node reach every other node of its fleet through
//! NATS JetStream, and the bans of the others come back here to be applied.
//!
//! Pure parts: [`message`] (the versioned wire format and its only decoder).

pub mod message;

#[cfg(test)]
mod message_tests;
