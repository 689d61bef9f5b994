//! Frames from libpcap: capture files (pcap or pcapng, sniffed from the bytes, never the name;
//! `-` is standard input), and the check of a `bpf_filter` (compiled by libpcap, no capture).
//!
//! A file libpcap cannot read to the end (a pcapng with mixed link types, a truncated record)
//! yields an error that says how far it got; it is never reported as a clean end. libpcap's
//! own wording is kept but cleaned (`libpcap error: ` is not repeated; "unknown file format"
//! says what a capture file is).

use std::path::{Path, PathBuf};

use pcap::{Capture, Offline, Precision};

use crate::time::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open {path}: {msg}")]
    Open { path: PathBuf, msg: String },
    /// `[capture] bpf_filter` does not compile for this file's link type: a usage error.
    #[error("libpcap cannot compile `{filter}` for {path} (link type {linktype}): {msg}")]
    Filter {
        path: PathBuf,
        filter: String,
        linktype: String,
        msg: String,
    },
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
            msg: open_message(&e),
        };
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

    /// Reads only the frames `filter` (tcpdump syntax) matches, as a live capture with
    /// `[capture] bpf_filter` would: libpcap compiles it for this file's link type.
    pub fn set_filter(&mut self, filter: &str) -> Result<(), CaptureError> {
        self.cap
            .filter(filter, true)
            .map_err(|e| CaptureError::Filter {
                path: self.path.clone(),
                filter: filter.to_owned(),
                linktype: pcap::Linktype(self.linktype)
                    .get_name()
                    .unwrap_or_else(|_| self.linktype.to_string()),
                msg: pcap_message(&e),
            })
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
                msg: pcap_message(&e),
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_compiled_by_libpcap() {
        assert_eq!(compile_filter("tcp and port 80"), Ok(()));
        assert_eq!(compile_filter("vlan and tcp"), Ok(()));
        let e = compile_filter("tcp and and port 80").expect_err("bad filter");
        assert!(e.contains("syntax error"), "{e}");
        assert!(!e.contains("libpcap error"), "{e}");
    }

    #[test]
    fn open_errors_say_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello, this is not a capture\n").expect("write");
        let e = CaptureFile::open(&text)
            .err()
            .expect("not a capture")
            .to_string();
        assert!(e.contains("not a capture file libpcap can read"), "{e}");
        assert!(!e.contains("libpcap error"), "{e}");
        let e = CaptureFile::open(&dir.path().join("gone.pcap"))
            .err()
            .expect("missing");
        assert!(e.to_string().ends_with(": no such file"), "{e}");
        let e = CaptureFile::open(dir.path()).err().expect("a directory");
        assert!(e.to_string().contains("a directory"), "{e}");
    }
}
