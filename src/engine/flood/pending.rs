//! Packets counted toward a busy target but not yet added to its fingerprint counts (pure):
//! a [`Log`] keeps up to seven, 16 bytes each, in two cache lines; `Cells` adds them to their
//! sub-buckets' cells in arrival order — the same counts, summaries and sketch as one by one —
//! when the log is full, when a packet is not for it (an IPv6 source, a sub-bucket before the
//! log's first or 256 after), and before anything reads the counts.
//! A packet then writes a line of the log instead of the five or six lines of its cell's
//! summaries, which are cold when many destinations are busy (replay without `--local`:
//! measured with cachegrind, BENCHMARKS.md).

use super::detector::flag_class;
use crate::packet::PacketMeta;

/// Packets a log holds.
pub const LOG: usize = 7;

/// What a cell counts of one packet, but its source: its fields as they come (the TCP flag
/// class is worked out when counted, as before logging).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rec {
    /// The IPv4 source (only IPv4 sources are logged).
    pub v4: u32,
    pub len: u32,
    pub sport: u16,
    pub dport: u16,
    tcp_flags: u8,
    /// Protocol class (2 bits), fragment, has a source port, has a destination port,
    /// allowlisted.
    bits: u8,
    /// The sub-bucket after the log's first.
    after: u8,
}

const FRAGMENT: u8 = 1 << 2;
const HAS_SPORT: u8 = 1 << 3;
const HAS_DPORT: u8 = 1 << 4;
const ALLOWED: u8 = 1 << 5;
/// The sub-bucket's offset from the log's first: below this.
pub const SPAN: u64 = 1 << 8;

impl Rec {
    /// `p` of protocol class `class` (its source apart, `v4` when IPv4), `after` sub-buckets
    /// after the log's first (below [`SPAN`]).
    #[inline]
    pub fn new(p: &PacketMeta, class: usize, v4: u32, allowed: bool, after: u64) -> Rec {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        Rec {
            v4,
            len: p.len,
            sport: p.src_port.unwrap_or(0),
            dport: p.dst_port.unwrap_or(0),
            tcp_flags: p.tcp_flags,
            bits: (class as u8 & 3)
                | bit(p.fragment, FRAGMENT)
                | bit(p.src_port.is_some(), HAS_SPORT)
                | bit(p.dst_port.is_some(), HAS_DPORT)
                | bit(allowed, ALLOWED),
            after: after as u8,
        }
    }

    #[inline]
    pub fn class(&self) -> usize {
        usize::from(self.bits & 3)
    }

    /// The flag class (`detector::flag_class`) of its TCP flags.
    #[inline]
    pub fn flag_class(&self) -> usize {
        flag_class(self.tcp_flags)
    }

    #[inline]
    pub fn fragment(&self) -> bool {
        self.bits & FRAGMENT != 0
    }

    #[inline]
    pub fn sport(&self) -> Option<u16> {
        (self.bits & HAS_SPORT != 0).then_some(self.sport)
    }

    #[inline]
    pub fn dport(&self) -> Option<u16> {
        (self.bits & HAS_DPORT != 0).then_some(self.dport)
    }

    #[inline]
    pub fn allowed(&self) -> bool {
        self.bits & ALLOWED != 0
    }

    /// Its sub-bucket after the log's first.
    #[inline]
    pub fn after(&self) -> u64 {
        u64::from(self.after)
    }
}

/// The packets of one sub-bucket waiting to be counted: 128 bytes, aligned on a cache line.
#[repr(C, align(64))]
#[derive(Clone, Debug, Default)]
pub struct Log {
    /// Absolute sub-bucket index of the first packet logged.
    pub b: u64,
    pub n: u32,
    pub recs: [Rec; LOG],
}

#[cfg(test)]
mod tests {
    use super::super::detector::TCP;
    use super::*;
    use crate::packet::{Proto, tcp_flag};

    #[test]
    fn a_record_keeps_what_a_cell_counts() {
        let mut p = PacketMeta {
            src: "192.0.2.1".parse().unwrap(),
            dst: "10.10.10.10".parse().unwrap(),
            proto: Proto::Tcp,
            tcp_flags: tcp_flag::SYN | tcp_flag::ACK,
            src_port: Some(443),
            dst_port: None,
            len: 70_000,
            fragment: false,
        };
        let r = Rec::new(&p, TCP, 7, true, 255);
        assert_eq!((r.class(), r.flag_class(), r.fragment()), (TCP, 1, false));
        assert_eq!(
            (r.sport(), r.dport(), r.len, r.v4),
            (Some(443), None, 70_000, 7)
        );
        assert!(r.allowed());
        assert_eq!(r.after(), 255);
        p.fragment = true;
        p.src_port = None;
        let r = Rec::new(&p, 3, 0, false, 0);
        assert_eq!((r.class(), r.fragment()), (3, true));
        assert_eq!((r.sport(), r.allowed(), r.after()), (None, false, 0));
        assert_eq!(std::mem::size_of::<Log>(), 128);
    }
}
