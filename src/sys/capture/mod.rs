//! Frames from capture files (pcap or pcapng, sniffed from the bytes, never the name; `-` is
//! standard input, which libpcap reads), and the check of a `bpf_filter` (compiled by libpcap,
//! no capture).
//!
//! Classic pcap files (what `tcpdump -w` writes) are read by `pcap-parser` from a 1 MiB buffer
//! (`fast.rs`: a record header and a slice per frame, no system call per record); everything
//! else, and anything the fast reader meets that it does not handle exactly as libpcap would
//! (pcapng, the modified pcap format, a record longer than the snapshot length, a truncated
//! record, a read error), goes to libpcap, which takes over at the same frame: its frames and
//! its error messages are what a libpcap-only reader would have produced.
//!
//! A file that cannot be read to the end yields an error that says how far it got; it is never
//! reported as a clean end. libpcap's own wording is kept but cleaned (`libpcap error: ` is
//! not repeated; "unknown file format" says what a capture file is). An optional BPF filter (tcpdump syntax, libpcap's compiler and
//! offline filter) drops frames before they are returned; without one, nothing is checked.

mod fast;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use pcap::{BpfProgram, Capture, Linktype, Offline, Precision};

use crate::time::Timestamp;
use fast::{FastPcap, Next};

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
    #[error("{path}: bad filter `{filter}` for link type {linktype}: {msg}")]
    Filter {
        path: PathBuf,
        filter: String,
        /// The file's link type by name (`EN10MB`, `RAW`, ...): a filter is compiled for it.
        linktype: String,
        msg: String,
    },
}

/// One captured frame, borrowed from the reader's buffer until the next read.
pub struct Frame<'a> {
    pub ts: Timestamp,
    pub data: &'a [u8],
    /// Length on the wire (may exceed `data.len()` when the snaplen cut the frame).
    pub wire_len: u32,
}

enum Reader {
    Fast(Box<FastPcap>),
    Libpcap(Capture<Offline>),
}

/// An open capture file.
pub struct CaptureFile {
    reader: Reader,
    path: PathBuf,
    linktype: i32,
    /// Frames read so far (before any filter).
    packets: u64,
    filter: Option<(String, BpfProgram)>,
}

fn open_libpcap(path: &Path) -> Result<Capture<Offline>, CaptureError> {
    // libpcap reports a missing file as a generic error; say it plainly. `-` is standard
    // input, which libpcap reads itself.
    if path != Path::new("-") {
        let meta = std::fs::metadata(path).map_err(|e| CaptureError::Open {
            path: path.to_path_buf(),
            msg: io_message(&e),
        })?;
        if meta.is_dir() {
            return Err(CaptureError::Open {
                path: path.to_path_buf(),
                msg: "it is a directory, not a capture file".into(),
            });
        }
    }
    // Nanosecond timestamps (libpcap scales µs files up).
    Capture::from_file_with_precision(path, Precision::Nano).map_err(|e| CaptureError::Open {
        path: path.to_path_buf(),
        msg: open_message(&e),
    })
}

impl CaptureFile {
    pub fn open(path: &Path) -> Result<CaptureFile, CaptureError> {
        let fast = if path == Path::new("-") {
            None
        } else {
            FastPcap::open(path)
        };
        let (reader, linktype) = match fast {
            Some(f) => {
                let lt = f.linktype();
                (Reader::Fast(Box::new(f)), lt)
            }
            None => {
                let cap = open_libpcap(path)?;
                let lt = cap.get_datalink().0;
                (Reader::Libpcap(cap), lt)
            }
        };
        Ok(CaptureFile {
            reader,
            path: path.to_path_buf(),
            linktype,
            packets: 0,
            filter: None,
        })
    }

    /// Keeps only frames matching `expr` (tcpdump syntax) from now on. Costs nothing per
    /// frame when no filter is set. (For `[capture] bpf_filter` in replay, issue 14.)
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn set_filter(&mut self, expr: &str) -> Result<(), CaptureError> {
        let dlt = match &self.reader {
            Reader::Libpcap(_) => self.linktype,
            Reader::Fast(_) => dlt_of(self.linktype),
        };
        let bad = |msg: String| CaptureError::Filter {
            path: self.path.clone(),
            filter: expr.to_string(),
            linktype: link_name(dlt),
            msg,
        };
        match &mut self.reader {
            Reader::Libpcap(cap) => cap.filter(expr, true).map_err(|e| bad(pcap_message(&e)))?,
            Reader::Fast(_) => {
                let dead = Capture::dead(Linktype(dlt)).map_err(|e| bad(pcap_message(&e)))?;
                let program = dead
                    .compile(expr, true)
                    .map_err(|e| bad(pcap_message(&e)))?;
                self.filter = Some((expr.to_string(), program));
            }
        }
        Ok(())
    }

    /// The file's link type (DLT), as [`crate::packet::parse`] takes it.
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// The next frame (that passes the filter, if one is set); `Ok(None)` at a clean end.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        match self.advance_fast()? {
            Some(true) => return Ok(self.fast_current()),
            Some(false) => return Ok(None),
            None => {}
        }
        let Reader::Libpcap(cap) = &mut self.reader else {
            return Ok(None);
        };
        match cap.next_packet() {
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
                msg: pcap_message(&e),
            }),
        }
    }

    fn fast_current(&self) -> Option<Frame<'_>> {
        match &self.reader {
            Reader::Fast(f) => Some(f.current()),
            Reader::Libpcap(_) => None,
        }
    }

    /// Moves the fast reader to the next kept frame: `Some(true)` when it holds one,
    /// `Some(false)` at the end, `None` when libpcap reads (from the start, or it took over).
    #[inline]
    fn advance_fast(&mut self) -> Result<Option<bool>, CaptureError> {
        while let Reader::Fast(f) = &mut self.reader {
            match f.advance() {
                Next::End => return Ok(Some(false)),
                Next::Handover => self.hand_over()?,
                Next::Frame => {
                    self.packets += 1;
                    let keep = match &self.filter {
                        Some((_, program)) => program.filter(f.current().data),
                        None => true,
                    };
                    if keep {
                        return Ok(Some(true));
                    }
                }
            }
        }
        Ok(None)
    }

    /// libpcap takes over: it reopens the file and skips the frames already read, so it goes
    /// on (or stops, with its own error) exactly where a libpcap-only read would.
    fn hand_over(&mut self) -> Result<(), CaptureError> {
        let mut cap = open_libpcap(&self.path)?;
        for read in 0..self.packets {
            match cap.next_packet() {
                Ok(_) => {}
                Err(e) => {
                    return Err(CaptureError::Read {
                        path: self.path.clone(),
                        packets: read,
                        msg: pcap_message(&e),
                    });
                }
            }
        }
        if let Some((expr, _)) = self.filter.take() {
            let linktype = link_name(cap.get_datalink().0);
            cap.filter(&expr, true).map_err(|e| CaptureError::Filter {
                path: self.path.clone(),
                filter: expr.clone(),
                linktype,
                msg: pcap_message(&e),
            })?;
        }
        self.reader = Reader::Libpcap(cap);
        Ok(())
    }
}

/// Compiles `filter` with libpcap for Ethernet frames, as a live capture would, without
/// opening anything: `Err` carries libpcap's reason (such as `syntax error`).
pub fn compile_filter(filter: &str) -> Result<(), String> {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(|e| pcap_message(&e))?;
    dead.compile(filter, true)
        .map(drop)
        .map_err(|e| pcap_message(&e))
}

/// libpcap's text without the `libpcap error: ` prefix the pcap crate adds (our messages say
/// libpcap already).
pub fn pcap_message(e: &pcap::Error) -> String {
    let text = e.to_string();
    text.strip_prefix("libpcap error: ")
        .unwrap_or(&text)
        .to_owned()
}

/// Why a file could not be opened as a capture.
fn open_message(e: &pcap::Error) -> String {
    let text = pcap_message(e);
    if text.contains("unknown file format") {
        "not a capture file libpcap can read (expected pcap or pcapng; libpcap says: unknown file format)".to_owned()
    } else if text.contains("truncated dump file") || text.contains("file is empty") {
        format!("not a complete capture file ({text})")
    } else {
        text
    }
}

/// An OS error in plain words.
fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// The libpcap `DLT_` value of a file header's `LINKTYPE_` value: the same from 104 on and for
/// the oldest ones; four differ (on Linux), RAW among them (101 in files, `DLT_RAW` 12 here).
fn dlt_of(linktype: i32) -> i32 {
    match linktype {
        100 => 11, // ATM_RFC1483
        crate::packet::link::RAW => 12,
        102 => 15, // SLIP_BSDOS
        103 => 16, // PPP_BSDOS
        other => other,
    }
}

/// `EN10MB`, `RAW`, ...: libpcap's name of a `DLT_` value, or the number.
fn link_name(dlt: i32) -> String {
    Linktype(dlt).get_name().unwrap_or_else(|_| dlt.to_string())
}
