//! Frames from libpcap: capture files (pcap or pcapng, sniffed from the bytes, never the name).
//!
//! A file libpcap cannot read to the end (a pcapng with mixed link types, a truncated record)
//! yields an error that says how far it got; it is never reported as a clean end.

use std::path::{Path, PathBuf};

use pcap::{Capture, Offline, Precision};

use crate::time::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open {path}: {msg}")]
    Open { path: PathBuf, msg: String },
    #[error("{path}: libpcap stopped after {packets} packets: {msg}")]
    Read {
        path: PathBuf,
        packets: u64,
        msg: String,
    },
}

/// One captured frame, borrowed from libpcap's buffer until the next read.
pub struct Frame<'a> {
    pub ts: Timestamp,
    pub data: &'a [u8],
    /// Length on the wire (may exceed `data.len()` when the snaplen cut the frame).
    pub wire_len: u32,
}

/// An open capture file.
pub struct CaptureFile {
    cap: Capture<Offline>,
    path: PathBuf,
    linktype: i32,
    packets: u64,
}

impl CaptureFile {
    /// Opens `path` with nanosecond timestamps (libpcap scales µs files up).
    pub fn open(path: &Path) -> Result<CaptureFile, CaptureError> {
        let open_err = |e: pcap::Error| CaptureError::Open {
            path: path.to_path_buf(),
            msg: e.to_string(),
        };
        // libpcap reports a missing file as a generic error; say it plainly.
        std::fs::metadata(path).map_err(|e| CaptureError::Open {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let cap = Capture::from_file_with_precision(path, Precision::Nano).map_err(open_err)?;
        let linktype = cap.get_datalink().0;
        Ok(CaptureFile {
            cap,
            path: path.to_path_buf(),
            linktype,
            packets: 0,
        })
    }

    /// The file's link type (DLT), as [`crate::packet::parse`] takes it.
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// The next frame; `Ok(None)` at a clean end of file.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.packets += 1;
                let secs: i64 = p.header.ts.tv_sec;
                let frac: i64 = p.header.ts.tv_usec;
                Ok(Some(Frame {
                    ts: Timestamp::from_parts(secs, frac, true),
                    data: p.data,
                    wire_len: p.header.len,
                }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(CaptureError::Read {
                path: self.path.clone(),
                packets: self.packets,
                msg: e.to_string(),
            }),
        }
    }
}
