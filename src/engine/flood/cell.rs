//! What one detector saw toward one target, per sub-bucket of its window (pure): [`Cells`]
//! keeps one [`Cell`] per sub-bucket (the same 8 as the window's counters), and
//! [`Cells::window`] adds up the live ones into the [`Window`] a fingerprint is read from —
//! so a fingerprint describes exactly the window that crossed (from the moment the cells were
//! attached, see `table.rs`), in fixed memory.

use std::net::{IpAddr, Ipv6Addr};

use super::detector::{CLASSES, TCP};
use super::hll::{Hll, hash128};
use super::pending::{LOG, Log, Rec, SPAN};
use super::topk::{Tally, TopK, merge};
use crate::engine::window::{BUCKETS, Span};
use crate::packet::PacketMeta;

/// Values kept per sub-bucket and field.
const K: usize = 4;
/// A cell that holds nothing.
const EMPTY: u64 = u64::MAX;

/// One sub-bucket's counts.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Absolute sub-bucket index (`time / bucket width`) it counts; [`EMPTY`] when unused.
    stamp: u64,
    packets: u32,
    frags: u32,
    /// Packets from allowlisted sources.
    allowed: u32,
    len_min: u32,
    len_max: u32,
    bytes: u64,
    protos: [u32; CLASSES],
    flags: [u32; 6],
    sport: TopK<u16, K>,
    dport: TopK<u16, K>,
    srcs: TopK<u128, K>,
    hll: Hll,
}

impl Default for Cell {
    fn default() -> Self {
        Cell {
            stamp: EMPTY,
            packets: 0,
            frags: 0,
            allowed: 0,
            len_min: u32::MAX,
            len_max: 0,
            bytes: 0,
            protos: [0; CLASSES],
            flags: [0; 6],
            sport: TopK::default(),
            dport: TopK::default(),
            srcs: TopK::default(),
            hll: Hll::default(),
        }
    }
}

impl Cell {
    /// Out of line: [`cell_at`] stays small where it is inlined (once per sub-bucket).
    #[inline(never)]
    fn reset(&mut self, stamp: u64) {
        *self = Cell {
            stamp,
            ..Cell::default()
        };
    }

    #[inline]
    fn add(&mut self, r: &Rec, src: u128) {
        self.packets = self.packets.saturating_add(1);
        self.bytes = self.bytes.saturating_add(u64::from(r.len));
        self.len_min = self.len_min.min(r.len);
        self.len_max = self.len_max.max(r.len);
        let class = r.class();
        self.protos[class] = self.protos[class].saturating_add(1);
        if r.fragment() {
            self.frags = self.frags.saturating_add(1);
        } else if class == TCP {
            let f = &mut self.flags[r.flag_class()];
            *f = f.saturating_add(1);
        }
        if let Some(port) = r.sport() {
            self.sport.add(port);
        }
        if let Some(port) = r.dport() {
            self.dport.add(port);
        }
        // The sketch gets every source the summary lets go; the ones it keeps join at merge
        // time, so each source is in one of the two without hashing every packet.
        if let Some(gone) = self.srcs.add(src) {
            self.hll.add(hash128(gone));
        }
        self.allowed = self.allowed.saturating_add(u32::from(r.allowed()));
    }

    /// Only the packet and its bytes (while an attack is on, see [`Cells::add_light`]).
    #[inline(always)]
    fn add_light(&mut self, len: u32) {
        self.packets = self.packets.saturating_add(1);
        self.bytes = self.bytes.saturating_add(u64::from(len));
    }

    /// Counts something from within the window ending at sub-bucket `b`.
    fn live(&self, b: u64) -> bool {
        self.stamp != EMPTY && self.stamp <= b && b - self.stamp < BUCKETS as u64
    }
}

/// A window's cells, and the packets not yet added to them (`pending.rs`), first: the log is
/// what every packet touches.
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct Cells {
    log: Log,
    cells: [Cell; BUCKETS],
}

/// Everything the live cells of a window add up to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub packets: u64,
    pub bytes: u64,
    pub frags: u64,
    pub allowed: u64,
    /// Smallest and largest packet (0, 0 when empty).
    pub len: (u32, u32),
    pub protos: [u64; CLASSES],
    pub flags: [u64; 6],
    pub sport: Vec<Tally<u16>>,
    pub dport: Vec<Tally<u16>>,
    pub srcs: Vec<Tally<u128>>,
    /// Distinct sources: exact when `sources_exact`, else a HyperLogLog estimate.
    pub sources: u64,
    pub sources_exact: bool,
}

impl Window {
    /// Every source kept, with the packets it certainly sent, heaviest first.
    pub fn srcs_addrs(&self) -> Vec<(IpAddr, u64)> {
        self.srcs
            .iter()
            .map(|t| (key_addr(t.key), t.lower))
            .collect()
    }
}

impl Cells {
    /// Counts only a packet of `len` bytes in sub-bucket `b` (for the peak rates): while an
    /// attack is on, its fingerprint was taken at the crossing and nothing else is needed, so
    /// the per-packet cost is lowest exactly when the flood is at its height.
    /// [`Cells::clear`] when it ends: the next fingerprint counts from there.
    #[inline(always)]
    pub fn add_light(&mut self, b: u64, len: u32) {
        if self.log.n != 0 {
            self.fold();
        }
        cell_at(&mut self.cells, b).add_light(len);
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.log.n = 0;
        for c in &mut self.cells {
            c.stamp = EMPTY;
        }
    }

    /// Packets and bytes of the window ending at `ts_us` (cheap: no summaries merged).
    pub fn totals(&mut self, ts_us: u64, span: Span) -> (u64, u64) {
        self.fold();
        let b = ts_us / span.bucket_us;
        self.cells
            .iter()
            .filter(|c| c.live(b))
            .fold((0, 0), |(p, by), c| {
                (p + u64::from(c.packets), by + c.bytes)
            })
    }

    /// Counts `p` (protocol class `class`, source `src` as [`addr_key`]) in sub-bucket `b`
    /// (the absolute index: time / bucket width): logged when its source is IPv4, else
    /// counted now (after the log).
    #[inline]
    pub fn add(&mut self, b: u64, p: &PacketMeta, class: usize, src: u128, allowed: bool) {
        if src >> 32 != 0xffff {
            self.fold();
            cell_at(&mut self.cells, b).add(&Rec::new(p, class, 0, allowed, 0), src);
            return;
        }
        if self.log.n == 0 {
            self.log.b = b;
        }
        let mut after = b.wrapping_sub(self.log.b);
        if after >= SPAN {
            self.fold();
            self.log.b = b;
            after = 0;
        }
        let log = &mut self.log;
        if let Some(slot) = log.recs.get_mut(log.n as usize) {
            *slot = Rec::new(p, class, src as u32, allowed, after);
        }
        log.n += 1;
        if log.n as usize >= LOG {
            self.fold();
        }
    }

    /// Adds the logged packets to their cell, in order.
    #[inline(never)]
    fn fold(&mut self) {
        let n = std::mem::take(&mut self.log.n) as usize;
        if n == 0 {
            return;
        }
        let Cells { log, cells } = self;
        for r in &log.recs[..n.min(LOG)] {
            cell_at(cells, log.b + r.after()).add(r, (0xffff_u128 << 32) | u128::from(r.v4));
        }
    }

    /// The window ending at `ts_us`.
    pub fn window(&mut self, ts_us: u64, span: Span) -> Window {
        self.fold();
        let b = ts_us / span.bucket_us;
        let live: Vec<&Cell> = self.cells.iter().filter(|c| c.live(b)).collect();
        let mut w = Window {
            len: (u32::MAX, 0),
            ..Window::default()
        };
        let mut hll = Hll::default();
        for c in &live {
            w.packets += u64::from(c.packets);
            w.bytes += c.bytes;
            w.frags += u64::from(c.frags);
            w.allowed += u64::from(c.allowed);
            w.len = (w.len.0.min(c.len_min), w.len.1.max(c.len_max));
            for (a, b) in w.protos.iter_mut().zip(c.protos) {
                *a += u64::from(b);
            }
            for (a, b) in w.flags.iter_mut().zip(c.flags) {
                *a += u64::from(b);
            }
            hll.merge(&c.hll);
            for (key, _, _) in c.srcs.entries() {
                hll.add(hash128(key));
            }
        }
        if w.packets == 0 {
            w.len = (0, 0);
        }
        w.sport = merge(live.iter().map(|c| &c.sport));
        w.dport = merge(live.iter().map(|c| &c.dport));
        w.srcs = merge(live.iter().map(|c| &c.srcs));
        w.sources_exact = live.iter().all(|c| !c.srcs.evicted());
        w.sources = if w.sources_exact {
            w.srcs.len() as u64
        } else {
            hll.estimate().max(w.srcs.len() as u64)
        };
        w
    }
}

/// An address as one number (IPv4 mapped into IPv6), for the sources summary.
#[inline]
pub fn addr_key(a: IpAddr) -> u128 {
    match a {
        // ::ffff:a.b.c.d, built directly (no octet shuffling).
        IpAddr::V4(v4) => (0xffff_u128 << 32) | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of an [`addr_key`].
pub fn key_addr(k: u128) -> IpAddr {
    let v6 = Ipv6Addr::from(k);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The cell of sub-bucket `b`, reset if it counted an older one.
#[inline(always)]
fn cell_at(cells: &mut [Cell; BUCKETS], b: u64) -> &mut Cell {
    let cell = &mut cells[(b % BUCKETS as u64) as usize];
    if cell.stamp != b {
        cell.reset(b);
    }
    cell
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Proto;
    use std::time::Duration;

    const SEC: u64 = 1_000_000;

    fn udp(src: u32, sport: u16, len: u32) -> PacketMeta {
        PacketMeta {
            src: IpAddr::V4(src.into()),
            dst: "10.10.10.10".parse().unwrap(),
            proto: Proto::Udp,
            tcp_flags: 0,
            src_port: Some(sport),
            dst_port: Some(5000),
            len,
            fragment: false,
        }
    }

    fn add(cells: &mut Cells, ts: u64, p: &PacketMeta) {
        let span = Span::new(Duration::from_secs(1));
        cells.add(ts / span.bucket_us, p, 1, addr_key(p.src), false);
    }

    #[test]
    fn the_window_holds_exactly_the_live_sub_buckets() {
        let span = Span::new(Duration::from_secs(1));
        let mut c = Cells::default();
        add(&mut c, 10 * SEC, &udp(1, 53, 100));
        add(&mut c, 10 * SEC + 500_000, &udp(2, 53, 300));
        let w = c.window(10 * SEC + 600_000, span);
        assert_eq!((w.packets, w.bytes, w.len), (2, 400, (100, 300)));
        assert_eq!((w.sources, w.sources_exact), (2, true));
        // 1.1 s later the first sub-bucket has left the window, the second not yet.
        let w = c.window(11 * SEC + 100_000, span);
        assert_eq!((w.packets, w.len), (1, (300, 300)));
        assert_eq!(c.window(13 * SEC, span).packets, 0);
        assert_eq!(c.window(13 * SEC, span).len, (0, 0));
    }

    #[test]
    fn many_sources_are_estimated_in_fixed_memory() {
        let span = Span::new(Duration::from_secs(1));
        let mut c = Cells::default();
        for i in 0..20_000u32 {
            add(
                &mut c,
                5 * SEC + u64::from(i) * 40,
                &udp(0x0a00_0000 + i, 4500, 90),
            );
        }
        let w = c.window(5 * SEC + 800_000, span);
        assert_eq!(w.packets, 20_000);
        assert!(!w.sources_exact);
        assert!((15_000..25_000).contains(&w.sources), "{}", w.sources);
        assert_eq!(w.sport[0].key, 4500);
        assert!(w.sport[0].exact() && w.sport[0].lower == 20_000);
        assert!(std::mem::size_of::<Cells>() < 4096, "it allocates nothing");
    }

    /// Logged packets count exactly as if each were added on arrival: a second set of cells
    /// that folds after every packet (by reading its totals) agrees on every window, through
    /// IPv6 sources, sub-bucket changes forward and back, peak-only counting and clears.
    #[test]
    fn logged_packets_count_as_if_added_at_once() {
        let span = Span::new(Duration::from_millis(800));
        let (mut logged, mut direct) = (Cells::default(), Cells::default());
        let mut t: u64 = 50 * SEC;
        let mut x: u64 = 7;
        for step in 0..30_000u64 {
            crate::test_rng::next(&mut x);
            t = match x >> 59 {
                0 => t.saturating_sub(x % 500_000),
                1 => t + 20 * SEC,
                _ => t + x % 30_000,
            };
            let mut p = udp(
                0x0a00_0000 + (x >> 40) as u32 % 50,
                (x >> 20) as u16 % 9,
                60 + (x % 1400) as u32,
            );
            if x.is_multiple_of(13) {
                p.src = "2001:db8::7".parse().unwrap();
            }
            if x.is_multiple_of(5) {
                p.proto = Proto::Tcp;
                p.tcp_flags = (x >> 8) as u8;
                p.fragment = x.is_multiple_of(3);
                p.dst_port = None;
            }
            let class = super::super::detector::proto_class(p.proto);
            let b = t / span.bucket_us;
            for c in [&mut logged, &mut direct] {
                match x % 97 {
                    0 => c.clear(),
                    1..=4 => c.add_light(b, p.len),
                    _ => c.add(b, &p, class, addr_key(p.src), x.is_multiple_of(7)),
                }
            }
            direct.totals(t, span);
            if step % 11 == 0 {
                let later = t + x % 900_000;
                assert_eq!(
                    logged.window(later, span),
                    direct.window(later, span),
                    "step {step}"
                );
            }
        }
    }

    #[test]
    fn address_keys_round_trip() {
        for a in ["203.0.113.7", "2001:db8::1", "::ffff:0:1"] {
            let ip: IpAddr = a.parse().unwrap();
            let back = key_addr(addr_key(ip));
            assert_eq!(back.to_canonical(), ip.to_canonical(), "{a}");
        }
    }
}
