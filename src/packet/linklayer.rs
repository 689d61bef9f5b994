//! Link layer: strips the libpcap link-type header (Ethernet with any number of VLAN tags,
//! Linux SLL/SLL2, raw IP, BSD null/loop) and says which IP version follows. Hand-written:
//! it runs on every packet and etherparse has no SLL2.

// Untrusted bytes: every read is a checked split or `get`, no arithmetic can overflow.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::{ParseError, link};

/// The network-layer bytes of a frame, by IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Net<'a> {
    V4(&'a [u8]),
    V6(&'a [u8]),
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q C-tag, 802.1ad S-tag, and the pre-standard QinQ tag: each is followed by a 2-byte
/// TCI and the next ethertype.
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

/// Address families in null/loop headers. AF_INET6 differs per OS: Linux 10, NetBSD/OpenBSD
/// 24, FreeBSD 28, macOS 30.
const AF_INET: u32 = 2;
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// Strips the link-layer header of a `linktype` frame.
#[inline]
pub(super) fn strip(linktype: i32, frame: &[u8]) -> Result<Net<'_>, ParseError> {
    match linktype {
        link::ETHERNET => {
            let (hdr, rest) = frame
                .split_first_chunk::<14>()
                .ok_or(ParseError::Truncated("ethernet"))?;
            ethertype(u16::from_be_bytes([hdr[12], hdr[13]]), rest)
        }
        link::LINUX_SLL => {
            let (hdr, rest) = frame
                .split_first_chunk::<16>()
                .ok_or(ParseError::Truncated("linux sll"))?;
            ethertype(u16::from_be_bytes([hdr[14], hdr[15]]), rest)
        }
        link::LINUX_SLL2 => {
            let (hdr, rest) = frame
                .split_first_chunk::<20>()
                .ok_or(ParseError::Truncated("linux sll2"))?;
            ethertype(u16::from_be_bytes([hdr[0], hdr[1]]), rest)
        }
        link::RAW | link::RAW_OPENBSD => match frame.first().map(|b| b >> 4) {
            Some(4) => Ok(Net::V4(frame)),
            Some(6) => Ok(Net::V6(frame)),
            Some(_) => Err(ParseError::Malformed("raw ip version")),
            None => Err(ParseError::Truncated("raw ip")),
        },
        link::IPV4 => Ok(Net::V4(frame)),
        link::IPV6 => Ok(Net::V6(frame)),
        link::NULL => {
            let (fam, rest) = frame
                .split_first_chunk::<4>()
                .ok_or(ParseError::Truncated("null"))?;
            // Host byte order of the capturing machine, unknown here: families are small
            // numbers, so whichever order gives one below 256 is the right one.
            let le = u32::from_le_bytes(*fam);
            let family = if le < 256 {
                le
            } else {
                u32::from_be_bytes(*fam)
            };
            family_net(family, rest)
        }
        link::LOOP => {
            let (fam, rest) = frame
                .split_first_chunk::<4>()
                .ok_or(ParseError::Truncated("loop"))?;
            family_net(u32::from_be_bytes(*fam), rest)
        }
        other => Err(ParseError::UnsupportedLinkType(other)),
    }
}

/// Follows `ty` through any stack of VLAN tags at the start of `rest` to IPv4 or IPv6.
#[inline]
fn ethertype(mut ty: u16, mut rest: &[u8]) -> Result<Net<'_>, ParseError> {
    loop {
        match ty {
            ETHERTYPE_IPV4 => return Ok(Net::V4(rest)),
            ETHERTYPE_IPV6 => return Ok(Net::V6(rest)),
            t if ETHERTYPE_VLAN.contains(&t) => {
                let (tag, inner) = rest
                    .split_first_chunk::<4>()
                    .ok_or(ParseError::Truncated("vlan tag"))?;
                ty = u16::from_be_bytes([tag[2], tag[3]]);
                rest = inner;
            }
            other => return Err(ParseError::NotIp(other.into())),
        }
    }
}

fn family_net(family: u32, rest: &[u8]) -> Result<Net<'_>, ParseError> {
    if family == AF_INET {
        Ok(Net::V4(rest))
    } else if AF_INET6.contains(&family) {
        Ok(Net::V6(rest))
    } else {
        Err(ParseError::NotIp(family))
    }
}
