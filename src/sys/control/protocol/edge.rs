//! What the protocol canonicalises or refuses as it reads a request (pure): IPv4-mapped IPv6
//! addresses and prefixes become IPv4 (so `::ffff:127.0.0.1` meets the 127/8 allowlist), and a
//! manual ban's reason is bounded and free of control characters (it is echoed by `list`, kept in
//! the state file and in the kernel's comment).

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use serde::Deserialize;

/// Longest reason accepted, in bytes: what the kernel's rule comment keeps (the firewall
/// library's bound), so `list` and the kernel show the same text.
pub const MAX_REASON_BYTES: usize = 128;

/// `::ffff:a.b.c.d/p` (p ≥ 96) as `a.b.c.d/(p-96)`; anything else unchanged.
pub(super) fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// Bidirectional-text controls: invisible, and they reorder what a terminal shows.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A manual ban's reason as the daemon accepts it: at most [`MAX_REASON_BYTES`] bytes, no
/// control characters (newlines, ESC sequences, NUL, bidi overrides).
pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.len() > MAX_REASON_BYTES {
        return Err(format!(
            "reason is {} bytes, at most {MAX_REASON_BYTES}",
            reason.len()
        ));
    }
    match reason
        .chars()
        .find(|c| c.is_control() || is_bidi_control(*c))
    {
        Some(c) => Err(format!(
            "reason holds the control character {:?}; use printable text",
            c
        )),
        None => Ok(()),
    }
}

/// Serde: an optional reason, checked by [`check_reason`].
pub(super) fn reason<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let reason = Option::<String>::deserialize(d)?;
    if let Some(text) = &reason {
        check_reason(text).map_err(serde::de::Error::custom)?;
    }
    Ok(reason)
}

/// Serde: an address, IPv4-mapped ones as IPv4.
pub(super) fn addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    Ok(IpAddr::deserialize(d)?.to_canonical())
}
