//! IPv6 extension headers (hop-by-hop, routing, fragment, destination options, AH), walked
//! with etherparse's lax slicer to find the transport header. Off the hot path: only packets
//! whose next header is one of those take it.

// Untrusted bytes: every read is a checked split or `get`, no arithmetic can overflow.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use etherparse::{IpNumber, Ipv6ExtensionSlice, Ipv6ExtensionsSlice};

/// Extension headers etherparse walks: hop-by-hop 0, routing 43, fragment 44, AH 51, dest
/// options 60.
const EXT_HEADERS: [u8; 5] = [0, 43, 44, 51, 60];

/// Where the extension-header chain led.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Walked<'a> {
    /// The protocol of what follows the chain (for a non-first fragment: the fragment
    /// header's next header; if the chain is cut by the snaplen: the header that was cut).
    pub proto: u8,
    /// The bytes after the chain: the transport header, if `proto` is one.
    pub rest: &'a [u8],
    /// A fragment header with a non-zero offset was found: `rest` holds no transport header.
    pub non_first_fragment: bool,
}

#[inline]
pub(super) fn is_ext_header(next: u8) -> bool {
    EXT_HEADERS.contains(&next)
}

/// Walks the extension headers starting with `first` at the start of `payload`.
pub(super) fn walk(first: u8, payload: &[u8]) -> Walked<'_> {
    let (exts, next, rest, err) = Ipv6ExtensionsSlice::from_slice_lax(IpNumber(first), payload);
    if exts.is_fragmenting_payload() {
        for ext in exts.clone() {
            if let Ipv6ExtensionSlice::Fragment(frag) = ext
                && frag.fragment_offset().value() != 0
            {
                return Walked {
                    proto: frag.next_header().0,
                    rest: &[],
                    non_first_fragment: true,
                };
            }
        }
    }
    Walked {
        proto: next.0,
        // On an error `rest` starts at the header that could not be read, not at a
        // transport header: report the protocol, no ports.
        rest: if err.is_some() { &[] } else { rest },
        non_first_fragment: false,
    }
}
