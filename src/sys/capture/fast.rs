//! Classic pcap files read with `pcap-parser` from a buffer: one record header and a slice per
//! frame. Only what it reads exactly as libpcap does is read here; [`Next::Handover`] tells the
//! caller to let libpcap take over at the current frame.

use std::fs::File;
use std::path::Path;

use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError};

use super::Frame;
use crate::time::Timestamp;

/// Read buffer: large enough for any record libpcap accepts (262144 bytes) several times over.
const BUFFER: usize = 1 << 20;
/// libpcap's largest snapshot length for the link types we parse (`max_snaplen_for_dlt`).
const MAX_SNAPLEN: u32 = 262_144;
/// A classic pcap record header.
const RECORD_HEADER: usize = 16;

pub(super) enum Next {
    /// A frame is ready: see [`FastPcap::current`].
    Frame,
    /// The clean end of the file.
    End,
    /// Something libpcap should handle from the current frame on.
    Handover,
}

pub(super) struct FastPcap {
    reader: LegacyPcapReader<File>,
    linktype: i32,
    nanos: bool,
    /// libpcap's snapshot length for the file (records longer than it are cut by libpcap).
    snapshot: u32,
    /// Bytes of the current record, consumed before the next read.
    pending: usize,
    ts: Timestamp,
    caplen: usize,
    wire_len: u32,
}

impl FastPcap {
    /// The reader for `path` if it is a classic pcap file this reader handles; `None`
    /// otherwise (libpcap opens it, and reports any error).
    pub(super) fn open(path: &Path) -> Option<FastPcap> {
        let file = File::open(path).ok()?;
        let mut reader = LegacyPcapReader::new(BUFFER, file).ok()?;
        let (size, header) = match reader.next() {
            Ok((size, PcapBlockOwned::LegacyHeader(h))) => (size, h),
            _ => return None,
        };
        if header.is_modified_format() || header.version_major != 2 || header.version_minor != 4 {
            return None;
        }
        reader.consume(size);
        let snapshot = match header.snaplen {
            0 => MAX_SNAPLEN,
            s => s.min(MAX_SNAPLEN),
        };
        Some(FastPcap {
            linktype: header.network.0,
            nanos: header.is_nanosecond_precision(),
            snapshot,
            reader,
            pending: 0,
            ts: Timestamp(0),
            caplen: 0,
            wire_len: 0,
        })
    }

    pub(super) fn linktype(&self) -> i32 {
        self.linktype
    }

    /// Moves to the next record.
    #[inline]
    pub(super) fn advance(&mut self) -> Next {
        if self.pending > 0 {
            // No shift here: the buffer moves its few leftover bytes only when it refills.
            self.reader.consume_noshift(self.pending);
            self.pending = 0;
        }
        loop {
            match self.reader.next() {
                Ok((size, PcapBlockOwned::Legacy(b))) => {
                    if b.caplen > self.snapshot || b.data.len() != b.caplen as usize {
                        return Next::Handover;
                    }
                    self.ts = Timestamp::from_parts(
                        i64::from(b.ts_sec),
                        i64::from(b.ts_usec),
                        self.nanos,
                    );
                    self.caplen = b.caplen as usize;
                    self.wire_len = b.origlen;
                    self.pending = size;
                    return Next::Frame;
                }
                Ok(_) => return Next::Handover,
                Err(PcapError::Eof) => return Next::End,
                Err(PcapError::Incomplete(_)) => {
                    if self.reader.refill().is_err() {
                        return Next::Handover;
                    }
                }
                Err(_) => return Next::Handover,
            }
        }
    }

    /// The frame [`FastPcap::advance`] moved to.
    pub(super) fn current(&self) -> Frame<'_> {
        let data = self.reader.data();
        let end = (RECORD_HEADER + self.caplen).min(data.len());
        Frame {
            ts: self.ts,
            data: data.get(RECORD_HEADER..end).unwrap_or(&[]),
            wire_len: self.wire_len,
        }
    }
}
