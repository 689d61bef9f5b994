//! IPv6 extension headers (hop-by-hop, routing, fragment, destination options, AH), walked to
//! find the transport header. Hand-written with checked reads and cross-checked against
//! etherparse's lax walker in `proptests.rs`: etherparse 0.21's `Ipv6ExtensionsSlice` iterator
//! reads out of bounds (unchecked) when the lax walk stopped at a cut header, which the fuzz
//! target found, so the fragment offset cannot safely come from it.

// Untrusted bytes: every read is a checked split or `get`, no arithmetic can overflow.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTH: u8 = 51;
const DEST_OPTIONS: u8 = 60;

/// Where the extension-header chain led.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Walked<'a> {
    /// The protocol of what follows the chain (for a non-first fragment: the fragment
    /// header's next header; if a header is cut by the snaplen or misplaced: that header).
    pub proto: u8,
    /// The bytes after the chain: the transport header, if `proto` is one. Empty when the
    /// chain could not be followed to its end.
    pub rest: &'a [u8],
    /// A fragment header with a non-zero offset was found: no transport header follows.
    pub non_first_fragment: bool,
}

#[inline]
pub(super) fn is_ext_header(next: u8) -> bool {
    matches!(next, HOP_BY_HOP | ROUTING | FRAGMENT | AUTH | DEST_OPTIONS)
}

/// Walks the extension headers starting with `first` at the start of `payload`. Each step
/// consumes at least 8 bytes, so the walk ends.
pub(super) fn walk(first: u8, payload: &[u8]) -> Walked<'_> {
    let stop = |proto| Walked {
        proto,
        rest: &[],
        non_first_fragment: false,
    };
    let mut next = first;
    let mut rest = payload;
    let mut at_start = true;
    loop {
        let Some(&[following, len_field]) = rest.first_chunk::<2>() else {
            return if is_ext_header(next) {
                stop(next)
            } else {
                Walked {
                    proto: next,
                    rest,
                    non_first_fragment: false,
                }
            };
        };
        let len = match next {
            // Hop-by-hop is only valid right after the fixed header (RFC 8200 4.1).
            HOP_BY_HOP if !at_start => return stop(next),
            HOP_BY_HOP | ROUTING | DEST_OPTIONS => {
                usize::from(len_field).saturating_add(1).saturating_mul(8)
            }
            // Length in 4-byte units, minus 2 (RFC 4302 2.2); 0 is malformed.
            AUTH if len_field == 0 => return stop(next),
            AUTH => usize::from(len_field).saturating_add(2).saturating_mul(4),
            FRAGMENT => {
                let Some(frag) = rest.first_chunk::<8>() else {
                    return stop(next);
                };
                if u16::from_be_bytes([frag[2], frag[3]]) >> 3 != 0 {
                    return Walked {
                        proto: following,
                        rest: &[],
                        non_first_fragment: true,
                    };
                }
                8
            }
            _ => {
                return Walked {
                    proto: next,
                    rest,
                    non_first_fragment: false,
                };
            }
        };
        let Some(after) = rest.get(len..) else {
            return stop(next);
        };
        rest = after;
        next = following;
        at_start = false;
    }
}
