//! gencap's frame builders and pcap writer: Ethernet (optionally VLAN-tagged) carrying IPv4 or
//! IPv6 with TCP, UDP, ICMP echo, fragments or another protocol, or an ARP request. Length
//! fields say what a real packet of that size would; the writer keeps only the first `snaplen`
//! bytes of each frame, as a capture with that snaplen would.

use std::io::{self, Write};

/// A packet's source and destination addresses (one family).
#[derive(Copy, Clone, Debug)]
pub enum Ips {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

/// What follows the IP header.
#[derive(Copy, Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// The first fragment of a UDP datagram (more fragments follow).
    UdpFirstFragment {
        sport: u16,
        dport: u16,
        id: u16,
    },
    /// A non-first fragment of a UDP datagram: no transport header.
    Fragment {
        id: u16,
    },
    /// ICMP (IPv4) or ICMPv6 echo request, by the address family.
    Echo {
        id: u16,
    },
    /// Another IP protocol number (GRE 47, ESP 50): payload only.
    Other(u8),
}

/// One IP packet to build.
#[derive(Copy, Clone, Debug)]
pub struct Pkt {
    pub ips: Ips,
    pub l4: L4,
    /// Bytes after the transport header.
    pub payload: u16,
    /// An 802.1Q tag (its VLAN id) before the ethertype.
    pub vlan: Option<u16>,
}

impl Pkt {
    pub fn new(ips: Ips, l4: L4, payload: u16) -> Pkt {
        Pkt {
            ips,
            l4,
            payload,
            vlan: None,
        }
    }
}

const MACS: [u8; 12] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
/// Ethernet's minimum frame without the FCS.
const MIN_FRAME: usize = 60;

fn ethernet(buf: &mut Vec<u8>, vlan: Option<u16>, ethertype: u16) {
    buf.clear();
    buf.extend_from_slice(&MACS);
    if let Some(id) = vlan {
        buf.extend_from_slice(&[0x81, 0x00]);
        buf.extend_from_slice(&(id & 0x0fff).to_be_bytes());
    }
    buf.extend_from_slice(&ethertype.to_be_bytes());
}

/// The transport header's protocol number and bytes (payload not included).
fn transport(l4: L4, v6: bool, payload: u16) -> (u8, Vec<u8>) {
    match l4 {
        L4::Tcp {
            sport,
            dport,
            flags,
        } => {
            let mut h = Vec::with_capacity(20);
            h.extend_from_slice(&sport.to_be_bytes());
            h.extend_from_slice(&dport.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
            (6, h)
        }
        L4::Udp { sport, dport } | L4::UdpFirstFragment { sport, dport, .. } => {
            let mut h = Vec::with_capacity(8);
            h.extend_from_slice(&sport.to_be_bytes());
            h.extend_from_slice(&dport.to_be_bytes());
            h.extend_from_slice(&(8 + payload).to_be_bytes());
            h.extend_from_slice(&[0, 0]);
            (17, h)
        }
        L4::Fragment { .. } => (17, Vec::new()),
        L4::Echo { id } => {
            let (proto, kind) = if v6 { (58, 128) } else { (1, 8) };
            let mut h = vec![kind, 0, 0, 0];
            h.extend_from_slice(&id.to_be_bytes());
            h.extend_from_slice(&[0, 1]);
            (proto, h)
        }
        L4::Other(proto) => (proto, Vec::new()),
    }
}

/// Builds `p` into `buf` (cleared first), padded to the Ethernet minimum; returns the frame's
/// length on the wire (what `buf` holds).
pub fn build(buf: &mut Vec<u8>, p: &Pkt) -> u32 {
    let v6 = matches!(p.ips, Ips::V6 { .. });
    let (proto, l4) = transport(p.l4, v6, p.payload);
    let body = l4.len() + usize::from(p.payload);
    match p.ips {
        Ips::V4 { src, dst } => {
            ethernet(buf, p.vlan, 0x0800);
            let total = (20 + body) as u16;
            // DF for whole packets (as the old gencap wrote them), MF or an offset for fragments.
            let (id, frag) = match p.l4 {
                L4::UdpFirstFragment { id, .. } => (id, 0x2000u16),
                L4::Fragment { id } => (id, 185),
                _ => (0, 0x4000),
            };
            buf.extend_from_slice(&[0x45, 0]);
            buf.extend_from_slice(&total.to_be_bytes());
            buf.extend_from_slice(&id.to_be_bytes());
            buf.extend_from_slice(&frag.to_be_bytes());
            buf.extend_from_slice(&[64, proto, 0, 0]);
            buf.extend_from_slice(&src);
            buf.extend_from_slice(&dst);
        }
        Ips::V6 { src, dst } => {
            ethernet(buf, p.vlan, 0x86dd);
            let frag = match p.l4 {
                L4::UdpFirstFragment { id, .. } => Some((id, 1u16)),
                L4::Fragment { id } => Some((id, 185 << 3)),
                _ => None,
            };
            let ext = if frag.is_some() { 8 } else { 0 };
            buf.extend_from_slice(&[0x60, 0, 0, 0]);
            buf.extend_from_slice(&((body + ext) as u16).to_be_bytes());
            buf.push(if frag.is_some() { 44 } else { proto });
            buf.push(64);
            buf.extend_from_slice(&src);
            buf.extend_from_slice(&dst);
            if let Some((id, off_m)) = frag {
                buf.extend_from_slice(&[proto, 0]);
                buf.extend_from_slice(&off_m.to_be_bytes());
                buf.extend_from_slice(&u32::from(id).to_be_bytes());
            }
        }
    }
    buf.extend_from_slice(&l4);
    buf.resize(buf.len() + usize::from(p.payload), 0);
    if buf.len() < MIN_FRAME {
        buf.resize(MIN_FRAME, 0);
    }
    buf.len() as u32
}

/// An ARP request ("who has `target`, tell `sender`"): a frame the engine does not parse.
pub fn arp(buf: &mut Vec<u8>, sender: [u8; 4], target: [u8; 4]) -> u32 {
    ethernet(buf, None, 0x0806);
    buf.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    buf.extend_from_slice(&MACS[6..]);
    buf.extend_from_slice(&sender);
    buf.extend_from_slice(&[0; 6]);
    buf.extend_from_slice(&target);
    buf.resize(MIN_FRAME, 0);
    buf.len() as u32
}

/// Classic pcap (microsecond stamps, Ethernet) with a given snaplen.
pub struct PcapWriter<W: Write> {
    w: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut w: W, snaplen: u32) -> io::Result<PcapWriter<W>> {
        w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        w.write_all(&2u16.to_le_bytes())?;
        w.write_all(&4u16.to_le_bytes())?;
        w.write_all(&[0u8; 8])?;
        w.write_all(&snaplen.to_le_bytes())?;
        w.write_all(&1u32.to_le_bytes())?;
        Ok(PcapWriter { w, snaplen })
    }

    /// One record: `frame` cut to the snaplen, `frame.len()` as the length on the wire.
    pub fn record(&mut self, ts_us: u64, frame: &[u8]) -> io::Result<()> {
        let cap = frame.len().min(self.snaplen as usize);
        self.w
            .write_all(&((ts_us / 1_000_000) as u32).to_le_bytes())?;
        self.w
            .write_all(&((ts_us % 1_000_000) as u32).to_le_bytes())?;
        self.w.write_all(&(cap as u32).to_le_bytes())?;
        self.w.write_all(&(frame.len() as u32).to_le_bytes())?;
        self.w.write_all(&frame[..cap])
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.w.flush()
    }
}
