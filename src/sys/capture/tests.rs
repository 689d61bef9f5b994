//! The fast reader against libpcap on hand-made files: the same frames (time, bytes, wire
//! length) for µs and ns files of either byte order, libpcap taking over at the same frame
//! for a record longer than the snapshot and for a truncated file (with libpcap's error), and
//! the BPF filter.

use std::io::Write;
use std::path::Path;

use pcap::{Capture, Precision};

use super::{CaptureFile, Reader, compile_filter, pcap_message};

/// A classic pcap file: magic (µs or ns), byte order, snaplen, records (secs, frac, data,
/// wire length); `tail` is appended as is (e.g. a cut record).
fn write_pcap(
    path: &Path,
    nanos: bool,
    big: bool,
    snaplen: u32,
    records: &[(u32, u32, Vec<u8>, u32)],
    tail: &[u8],
) {
    let u32b = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend_from_slice(&u16b(2));
    out.extend_from_slice(&u16b(4));
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&u32b(snaplen));
    out.extend_from_slice(&u32b(1));
    for (secs, frac, data, wire) in records {
        out.extend_from_slice(&u32b(*secs));
        out.extend_from_slice(&u32b(*frac));
        out.extend_from_slice(&u32b(data.len() as u32));
        out.extend_from_slice(&u32b(*wire));
        out.extend_from_slice(data);
    }
    out.extend_from_slice(tail);
    std::fs::File::create(path)
        .unwrap()
        .write_all(&out)
        .unwrap();
}

/// An Ethernet/IPv4 frame of protocol `proto` (6 TCP, 17 UDP), `len` bytes long.
fn frame(proto: u8, len: usize, fill: u8) -> Vec<u8> {
    let mut f = vec![fill; len.max(34)];
    f[12] = 0x08;
    f[13] = 0x00;
    f[14] = 0x45;
    f[23] = proto;
    f
}

/// (µs timestamp, data, wire length) of every frame, and the error if the read stopped.
type Read = (Vec<(u64, Vec<u8>, u32)>, Option<String>);

fn read_ours(path: &Path, filter: Option<&str>) -> (Read, bool) {
    let mut f = CaptureFile::open(path).unwrap();
    let fast = matches!(f.reader, Reader::Fast(_));
    if let Some(expr) = filter {
        f.set_filter(expr).unwrap();
    }
    let mut frames = Vec::new();
    loop {
        match f.next_frame() {
            Ok(Some(fr)) => frames.push((fr.ts.as_micros(), fr.data.to_vec(), fr.wire_len)),
            Ok(None) => return ((frames, None), fast),
            Err(e) => return ((frames, Some(e.to_string())), fast),
        }
    }
}

fn read_libpcap(path: &Path, filter: Option<&str>) -> Read {
    let mut cap = Capture::from_file_with_precision(path, Precision::Nano).unwrap();
    if let Some(expr) = filter {
        cap.filter(expr, true).unwrap();
    }
    let mut frames = Vec::new();
    loop {
        match cap.next_packet() {
            Ok(p) => frames.push((
                crate::time::Timestamp::from_parts(p.header.ts.tv_sec, p.header.ts.tv_usec, true)
                    .as_micros(),
                p.data.to_vec(),
                p.header.len,
            )),
            Err(pcap::Error::NoMorePackets) => return (frames, None),
            Err(e) => return (frames, Some(pcap_message(&e))),
        }
    }
}

fn records(n: u32) -> Vec<(u32, u32, Vec<u8>, u32)> {
    (0..n)
        .map(|i| {
            let proto = if i % 3 == 0 { 17 } else { 6 };
            let len = 34 + (i as usize * 7) % 90;
            (
                1_700_000_000 + i / 10,
                i * 99_991 % 1_000_000,
                frame(proto, len, i as u8),
                1500,
            )
        })
        .collect()
}

#[test]
fn the_same_frames_as_libpcap_in_every_byte_order_and_resolution() {
    let dir = tempfile::tempdir().unwrap();
    for (nanos, big) in [(false, false), (true, false), (false, true), (true, true)] {
        let path = dir.path().join(format!("f-{nanos}-{big}.pcap"));
        let mut recs = records(5000);
        if nanos {
            for r in &mut recs {
                r.1 = r.1 * 1000 + 999;
            }
        }
        write_pcap(&path, nanos, big, 128, &recs, &[]);
        let (ours, fast) = read_ours(&path, None);
        assert!(fast, "a classic pcap file is read by the fast reader");
        assert_eq!(ours, read_libpcap(&path, None));
        assert_eq!(ours.0.len(), 5000);
    }
}

#[test]
fn libpcap_takes_over_at_the_same_frame() {
    let dir = tempfile::tempdir().unwrap();
    // Record 3 is longer than the snapshot (libpcap cuts it); then a cut record at the end.
    let mut recs = records(10);
    recs[3].2 = frame(6, 200, 3);
    let path = dir.path().join("odd.pcap");
    write_pcap(&path, false, false, 100, &recs, &[1, 2, 3, 4, 5, 6, 7]);
    let (ours, _) = read_ours(&path, None);
    let want = read_libpcap(&path, None);
    assert_eq!(ours.0, want.0);
    assert_eq!(
        ours.0[3].1.len(),
        100,
        "cut to the snapshot, as libpcap does"
    );
    let err = ours.1.expect("a truncated file is an error");
    assert!(err.contains("libpcap stopped after 10 packets"), "{err}");
    assert!(err.contains(&want.1.unwrap()), "{err}");
}

#[test]
fn the_filter_keeps_what_libpcap_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.pcap");
    write_pcap(&path, false, false, 65535, &records(300), &[]);
    let (ours, _) = read_ours(&path, Some("udp"));
    assert_eq!(ours, read_libpcap(&path, Some("udp")));
    assert_eq!(ours.0.len(), 100);
    let mut f = CaptureFile::open(&path).unwrap();
    let err = f.set_filter("udp and and").unwrap_err().to_string();
    assert!(err.contains("bad filter `udp and and`"), "{err}");
}

#[test]
fn pcapng_goes_to_libpcap() {
    // A minimal pcapng: section header, interface (Ethernet), no packets.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.pcapng");
    let mut b = Vec::new();
    b.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(-1i64).to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&20u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&20u32.to_le_bytes());
    std::fs::write(&path, &b).unwrap();
    let (ours, fast) = read_ours(&path, None);
    assert!(!fast);
    assert_eq!(ours, (vec![], None));
}

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
