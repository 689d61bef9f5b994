//! Who must never be banned, and which sources must never be counted (pure).
//!
//! - [`peers`]: the typed set of protected nets, each with why it is protected
//!   ([`peers::PeerKind`]: an established TCP peer, an SSH session, a default gateway, a
//!   resolver, the allowlist), bounded and cheap to look up (an address, or whether a ban on a
//!   prefix would cover any of them). `sys::peers` gathers the facts from the kernel and the
//!   resolver files and builds it every few seconds; the engine asks it before it bans.
//! - [`proc_net`]: parsers of the kernel's text (`/proc/net/tcp`, `tcp6`, `nf_conntrack`,
//!   `route`, `ipv6_route`) and of `resolv.conf`, on fixtures; never panic on any input.
//! - [`martian`]: what a source address on the wire can be (RFC 6890): ordinary, martian
//!   (never counted), or link-local (counted, never banned).

pub mod martian;
pub mod peers;
pub mod proc_net;

#[cfg(test)]
mod tests;
