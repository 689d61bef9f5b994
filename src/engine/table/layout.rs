//! A table's record layout, compiled once from its rules (pure): which windows a record holds,
//! where each lives, which bucket clock moves it, and which windows a packet class touches.
//!
//! Invariants: windows are ordered by kind (packet rates, byte rates, distinct counts), so a
//! class's window mask splits into three loops without a `match` per window; rules that count
//! the same packets over the same window share one window (and compare it with each
//! threshold); every rate window of one bucket width shares one clock; a table holds at most
//! [`MAX_RULES`] rules, so masks fit in a `u32` and per-record flags in a byte or two.
//!
//! What `count` reads for every packet is also kept compact, per window or clock in a
//! [`BitIndexed`] array (offset, scale, cap, lowest report level), so the hot path neither
//! walks the large [`Window`] structs nor checks bounds; those copies are made once, here.

use std::ops::{Index, IndexMut};
use std::time::Duration;

use ipnet::IpNet;

use super::ports::PortSet;
use crate::config::{Metric, Protocol, Rule, TcpFlagsFilter};
use crate::engine::nets::NetSet;
use crate::packet::{PacketMeta, Proto, tcp_flag};

/// Sub-buckets per window: the window's resolution is `window / BUCKETS`.
pub const BUCKETS: u32 = 8;
/// Most rules (and so windows) one table holds; a group with more is split into several tables.
pub const MAX_RULES: usize = 16;

/// [`Layout::single`] of a window with several rules (or none).
pub const SEVERAL: u8 = u8::MAX;

/// Values indexed by a bit number of a `u32` mask (a window, or a clock): a fixed array of
/// 32, so an index taken from a mask's bits needs no bounds check (indices wrap at 32, which
/// no mask bit reaches).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BitIndexed<T>(pub [T; 32]);

impl<T: Copy + Default> Default for BitIndexed<T> {
    fn default() -> Self {
        BitIndexed([T::default(); 32])
    }
}

impl<T> Index<usize> for BitIndexed<T> {
    type Output = T;
    #[inline(always)]
    fn index(&self, i: usize) -> &T {
        &self.0[i % 32]
    }
}

impl<T> IndexMut<usize> for BitIndexed<T> {
    #[inline(always)]
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.0[i % 32]
    }
}

/// Per-window geometry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Window length in µs.
    pub window_us: u64,
    /// Sub-bucket width in µs (`window_us / BUCKETS`, at least 1).
    pub bucket_us: u64,
}

impl Span {
    pub fn new(window: Duration) -> Span {
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX).max(1);
        Span {
            window_us,
            bucket_us: (window_us / u64::from(BUCKETS)).max(1),
        }
    }
}

/// What a window counts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Packets,
    Bytes,
    /// Distinct destination ports (`addrs: false`) or addresses, stored up to `cap`.
    Distinct {
        addrs: bool,
        cap: u32,
    },
}

/// Packet class bits: everything a rule's filter asks of a packet except a port list.
pub mod class {
    /// Low two bits: 0 other, 1 TCP, 2 UDP, 3 ICMP/ICMPv6.
    pub const PROTO: u8 = 0b11;
    pub const TCP: u8 = 1;
    pub const UDP: u8 = 2;
    pub const ICMP: u8 = 3;
    /// SYN without ACK.
    pub const SYN: u8 = 4;
    /// From a service port (< 1024) to an ephemeral one (>= 1024).
    pub const REPLY: u8 = 8;
    /// The packet has a destination port.
    pub const HAS_PORT: u8 = 16;
    pub const COUNT: usize = 32;
}

/// The class byte of a packet (branch-free on the common paths).
#[inline]
pub fn classify(p: &PacketMeta) -> u8 {
    let proto = match p.proto {
        Proto::Tcp => class::TCP,
        Proto::Udp => class::UDP,
        Proto::Icmp | Proto::Icmpv6 => class::ICMP,
        Proto::Other(_) => 0,
    };
    let syn = u8::from(p.tcp_flags & (tcp_flag::SYN | tcp_flag::ACK) == tcp_flag::SYN);
    // A reply may come from a service port (< 1024) to an ephemeral one (>= 1024) and, for
    // TCP, carries ACK or RST: every reply of a TCP peer acknowledges (RFC 9293 §3.10.7), except
    // a reset. A TCP segment with neither opens or probes: without that check `nmap -sS -g 53`
    // (a SYN scan from source port 53, finding 6 of issue 11) was never counted as a scan, nor
    // were FIN, NULL and Xmas scans.
    let answer = p.proto != Proto::Tcp || p.tcp_flags & (tcp_flag::ACK | tcp_flag::RST) != 0;
    let (reply, has_port) = match (p.src_port, p.dst_port) {
        (Some(s), Some(d)) => (u8::from(s < 1024 && d >= 1024 && answer), 1),
        (None, Some(_)) => (0, 1),
        _ => (0, 0),
    };
    proto | syn << 2 | reply << 3 | has_port << 4
}

/// A rule's packet filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub protocol: Protocol,
    pub syn_only: bool,
    pub skip_replies: bool,
    /// Destination ports, as ranges; `None` matches all.
    pub ports: Option<PortSet>,
    /// Sources the rule does not count (its `exempt` nets, truncated, in file order).
    pub exempt: Vec<IpNet>,
}

impl Filter {
    fn of(r: &Rule) -> Filter {
        let ports = r.dst_ports.as_deref().map(PortSet::new);
        Filter {
            protocol: r.protocol,
            syn_only: r.tcp_flags == Some(TcpFlagsFilter::Syn),
            skip_replies: r.skip_replies,
            ports,
            exempt: r.exempt.iter().map(IpNet::trunc).collect(),
        }
    }

    /// Whether packets of class `c` can match (the port list aside).
    fn admits(&self, c: u8, kind: Kind) -> bool {
        let proto = c & class::PROTO;
        let proto_ok = match self.protocol {
            Protocol::Any => true,
            Protocol::Tcp => proto == class::TCP,
            Protocol::Udp => proto == class::UDP,
            Protocol::Icmp => proto == class::ICMP,
        };
        let needs_port =
            self.ports.is_some() || matches!(kind, Kind::Distinct { addrs: false, .. });
        proto_ok
            && (!self.syn_only || c & class::SYN != 0)
            && (!self.skip_replies || c & class::REPLY == 0)
            && (!needs_port || c & class::HAS_PORT != 0)
    }
}

/// One window of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub kind: Kind,
    pub span: Span,
    pub filter: Filter,
    /// Its clock (rate windows only).
    pub clock: usize,
    /// Word offset within the record.
    pub offset: usize,
    /// The table's rules that compare this window with their threshold, in rule order.
    pub rules: Vec<usize>,
}

/// One rule of the table: its window and threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSlot {
    pub window: usize,
    pub threshold: u64,
    /// Values above this are reported by `count` (the threshold unless the engine lowers it
    /// to see values its leaders of `autoblock top` want).
    pub report: u64,
}

/// Word offsets of a record's fixed part.
pub mod word {
    /// Key: address bits (high, low).
    pub const KEY_HI: usize = 0;
    pub const KEY_LO: usize = 1;
    /// Flags (byte 0), TTL (byte 1, unused yet), overflowed distinct windows (bytes 2-3), heavy
    /// entry (high 32 bits; 0 = none).
    pub const META: usize = 2;
    /// Last seen (low 32 bits, in units of 1024 µs), then the clocks, two per word.
    pub const TIMES: usize = 3;
}

/// Flag bits in the META word.
pub mod flag {
    /// The key is IPv6.
    pub const V6: u64 = 1;
    /// The ban cache may have an entry for this record.
    #[allow(dead_code)]
    pub const BANNED: u64 = 2;
    /// Reserved for handshake verification (issue 11); byte 1 of META is kept for a TTL.
    #[allow(dead_code)]
    pub const VERIFIED: u64 = 4;
    /// The record is in use (not on the free list).
    pub const LIVE: u64 = 8;
    /// Shift of the overflowed-distinct mask.
    pub const OVERFLOW_SHIFT: u32 = 16;
    /// Shift of the heavy entry number.
    pub const HEAVY_SHIFT: u32 = 32;
}

/// The compiled layout of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub windows: Vec<Window>,
    pub n_packets: usize,
    pub n_bytes: usize,
    /// Bucket width (µs) of each clock.
    pub clocks: Vec<u64>,
    /// Per clock: the rate windows it moves.
    pub clock_windows: BitIndexed<u32>,
    /// The bucket widths (µs) a table keeps bucket numbers for: the clocks' first (scale `k`
    /// is clock `k`), then those that only distinct windows use.
    pub scales: Vec<u64>,
    /// Per window: its word offset (a copy of [`Window::offset`]).
    pub offset: BitIndexed<u8>,
    /// Per window: its entry in `scales` (a rate window's is its clock).
    pub scale: BitIndexed<u8>,
    /// Per window: the lowest `report` of its rules; at or below it nothing is reported.
    pub min_report: BitIndexed<u64>,
    /// Per distinct window: its cap.
    pub cap: BitIndexed<u32>,
    /// Per distinct window: its META flag ([`Layout::overflow_bit`]).
    pub overflow: BitIndexed<u64>,
    /// Per window: its rule when it has exactly one (then a value above `min_report` is that
    /// rule's to report, with no walk of the window's rules), else [`SEVERAL`].
    pub single: BitIndexed<u8>,
    /// Distinct windows that count destination addresses (the others count ports).
    pub addrs_mask: u32,
    pub rules: Vec<RuleSlot>,
    /// Per class: the windows a packet of that class counts in (port lists aside).
    pub class_masks: Vec<u32>,
    /// Windows whose rules list destination ports.
    pub port_mask: u32,
    pub packet_mask: u32,
    pub bytes_mask: u32,
    pub distinct_mask: u32,
    /// Per distinct `exempt` list of the rules: its nets and the windows that skip them.
    pub exempt: Vec<(NetSet, u32)>,
    /// Classes (bit `c`) any window counts: a packet of another class counts nowhere here.
    pub counted: u32,
    /// Classes whose windows all list ports: whether a packet of one counts anywhere takes
    /// the port lists.
    pub filtered: u32,
    /// Words per record.
    pub stride: usize,
    /// The longest window: a record idle this long is evicted.
    pub idle_us: u64,
}

fn kind_of(r: &Rule) -> Kind {
    match r.metric {
        Metric::Packets => Kind::Packets,
        Metric::Bytes => Kind::Bytes,
        Metric::DstPorts | Metric::DstAddrs => {
            // Replay's peaks read a value at this cap as "at least" (`peaks::distinct_cap`).
            let cap = crate::engine::peaks::distinct_cap(r.threshold);
            Kind::Distinct {
                addrs: r.metric == Metric::DstAddrs,
                cap: u32::try_from(cap).unwrap_or(u32::MAX),
            }
        }
    }
}

fn rank(k: Kind) -> u8 {
    match k {
        Kind::Packets => 0,
        Kind::Bytes => 1,
        Kind::Distinct { .. } => 2,
    }
}

impl Layout {
    /// The layout for `rules` (at most [`MAX_RULES`], all of one aggregation).
    pub fn compile(rules: &[&Rule]) -> Layout {
        let (mut windows, rules) = shared_windows(rules);
        let clocks = assign_clocks(&mut windows);
        let mut offset = word::TIMES + (1 + clocks.len()).div_ceil(2);
        let (mut n_packets, mut n_bytes) = (0, 0);
        let (mut packet_mask, mut bytes_mask, mut distinct_mask, mut port_mask) = (0, 0, 0, 0);
        for (i, w) in windows.iter_mut().enumerate() {
            w.offset = offset;
            match w.kind {
                Kind::Packets => {
                    n_packets += 1;
                    packet_mask |= 1 << i;
                    offset += 1;
                }
                Kind::Bytes => {
                    n_bytes += 1;
                    bytes_mask |= 1 << i;
                    offset += 2;
                }
                Kind::Distinct { .. } => {
                    distinct_mask |= 1 << i;
                    offset += 1;
                }
            }
            if w.filter.ports.is_some() {
                port_mask |= 1 << i;
            }
        }
        let mask_of = |keep: &dyn Fn(&Window) -> bool| {
            windows
                .iter()
                .enumerate()
                .filter(|(_, w)| keep(w))
                .fold(0u32, |m, (i, _)| m | 1 << i)
        };
        let class_masks = (0..class::COUNT as u8)
            .map(|c| mask_of(&|w| w.filter.admits(c, w.kind)))
            .collect();
        let mut clock_windows = BitIndexed::default();
        for c in 0..clocks.len() {
            clock_windows[c] = mask_of(&|w| rank(w.kind) < 2 && w.clock == c);
        }
        let mut layout = Layout {
            clock_windows,
            scales: Vec::new(),
            offset: BitIndexed::default(),
            scale: BitIndexed::default(),
            min_report: BitIndexed([u64::MAX; 32]),
            cap: BitIndexed::default(),
            overflow: BitIndexed::default(),
            single: BitIndexed([SEVERAL; 32]),
            addrs_mask: 0,
            idle_us: windows.iter().map(|w| w.span.window_us).max().unwrap_or(1),
            exempt: exempt_sets(&windows),
            windows,
            n_packets,
            n_bytes,
            clocks,
            rules,
            class_masks,
            port_mask,
            packet_mask,
            bytes_mask,
            distinct_mask,
            counted: 0,
            filtered: 0,
            stride: offset,
        };
        layout.compact();
        layout
    }

    /// Fills the compact per-window copies `count` reads (and the scales).
    fn compact(&mut self) {
        let mut scales = self.clocks.clone();
        for w in &self.windows {
            if !scales.contains(&w.span.bucket_us) {
                scales.push(w.span.bucket_us);
            }
        }
        for (i, w) in self.windows.iter().enumerate() {
            let scale = scales.iter().position(|&x| x == w.span.bucket_us);
            self.scale[i] = u8::try_from(scale.unwrap_or(0)).expect("at most 16 scales");
            self.offset[i] = u8::try_from(w.offset).expect("a record fits in 256 words");
            if let [r] = w.rules[..] {
                self.single[i] = u8::try_from(r).expect("at most MAX_RULES rules");
            }
            if let Kind::Distinct { addrs, cap } = w.kind {
                self.cap[i] = cap;
                self.overflow[i] = self.overflow_bit(i);
                self.addrs_mask |= u32::from(addrs) << i;
            }
        }
        self.scales = scales;
        for w in 0..self.windows.len() {
            self.refresh_min_report(w);
        }
        for (c, &m) in self.class_masks.iter().enumerate().take(32) {
            if m != 0 {
                self.counted |= 1 << c;
                if m & !self.port_mask == 0 {
                    self.filtered |= 1 << c;
                }
            }
        }
    }

    /// Recomputes `min_report` of window `w` from its rules' report levels.
    fn refresh_min_report(&mut self, w: usize) {
        let rules = &self.rules;
        self.min_report[w] = self.windows[w]
            .rules
            .iter()
            .map(|&r| rules[r].report)
            .min()
            .unwrap_or(u64::MAX);
    }

    /// The windows packet `p` of class `c` counts in.
    #[inline(always)]
    pub fn mask(&self, c: u8, p: &PacketMeta) -> u32 {
        let mut m = self.ported_mask(c, p);
        for (nets, windows) in &self.exempt {
            if m & windows != 0 && nets.contains(p.src) {
                m &= !windows;
            }
        }
        m
    }

    /// [`Layout::mask`] before the `exempt` nets: the windows whose class and port list
    /// admit packet `p` of class `c`.
    #[inline(always)]
    fn ported_mask(&self, c: u8, p: &PacketMeta) -> u32 {
        let mut m = self.class_masks[usize::from(c)];
        let mut ported = m & self.port_mask;
        while ported != 0 {
            let w = ported.trailing_zeros() as usize;
            ported &= ported - 1;
            let ok = match (&self.windows[w].filter.ports, p.dst_port) {
                (Some(ports), Some(d)) => ports.contains(d),
                _ => false,
            };
            if !ok {
                m &= !(1 << w);
            }
        }
        m
    }

    /// Whether some window's class and port list admit packet `p` of class `c` (a bit test
    /// for every class whose windows do not all list ports). The `exempt` nets are left to
    /// [`Layout::mask`]: an exempt source may get a record that nothing counts in, but the
    /// nets are not searched twice per packet.
    #[inline(always)]
    pub fn counts(&self, c: u8, p: &PacketMeta) -> bool {
        let bit = 1u32 << (c & 31);
        self.counted & bit != 0 && (self.filtered & bit == 0 || self.listed_ports(c, p) != 0)
    }

    /// [`Layout::ported_mask`] out of line, for [`Layout::counts`]'s seldom path.
    #[inline(never)]
    fn listed_ports(&self, c: u8, p: &PacketMeta) -> u32 {
        self.ported_mask(c, p)
    }

    /// Rule `r` reports values above `above` (at most its threshold).
    pub fn set_report(&mut self, r: usize, above: u64) {
        let Some(rule) = self.rules.get_mut(r) else {
            return;
        };
        rule.report = above.min(rule.threshold);
        let w = rule.window;
        self.refresh_min_report(w);
    }

    /// The META flag of distinct window `w`: set once its values moved from the record to a
    /// set in the pool.
    #[inline]
    fn overflow_bit(&self, w: usize) -> u64 {
        1u64 << (flag::OVERFLOW_SHIFT as usize + w - self.first_distinct())
    }

    /// Index of the first distinct window (distinct window `w` has overflow bit `w - this`).
    #[inline]
    pub fn first_distinct(&self) -> usize {
        self.n_packets + self.n_bytes
    }

    /// The window value of a distinct window for packet `p`.
    #[inline]
    pub fn distinct_value(addrs: bool, p: &PacketMeta) -> u32 {
        if addrs {
            super::super::rules::fold(p.dst)
        } else {
            u32::from(p.dst_port.unwrap_or(0))
        }
    }

    /// Whether `other` lays records out the same way (windows, offsets, clocks), so a table
    /// built for one keeps its meaning under the other (thresholds may differ).
    pub fn same_shape(&self, other: &Layout) -> bool {
        self.stride == other.stride
            && self.clocks == other.clocks
            && self.windows.len() == other.windows.len()
            && self.windows.iter().zip(&other.windows).all(|(a, b)| {
                a.kind == b.kind && a.span == b.span && a.filter == b.filter && a.offset == b.offset
            })
    }
}

/// One window per distinct (kind, span, filter) among `rules`, ordered by kind, and each
/// rule's slot (its window and threshold).
fn shared_windows(rules: &[&Rule]) -> (Vec<Window>, Vec<RuleSlot>) {
    let mut windows: Vec<Window> = Vec::new();
    let mut slots = Vec::new();
    for (ri, r) in rules.iter().enumerate() {
        let (kind, filter, span) = (kind_of(r), Filter::of(r), Span::new(r.window));
        let w = match windows
            .iter()
            .position(|w| w.kind == kind && w.span == span && w.filter == filter)
        {
            Some(w) => w,
            None => {
                windows.push(Window {
                    kind,
                    span,
                    filter,
                    clock: 0,
                    offset: 0,
                    rules: Vec::new(),
                });
                windows.len() - 1
            }
        };
        windows[w].rules.push(ri);
        slots.push((w, r.threshold));
    }
    // Order windows by kind; remap the rules' window numbers.
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.sort_by_key(|&w| rank(windows[w].kind));
    let mut new_index = vec![0; windows.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let windows = order.iter().map(|&w| windows[w].clone()).collect();
    let rules = slots
        .iter()
        .map(|&(w, threshold)| RuleSlot {
            window: new_index[w],
            threshold,
            report: threshold,
        })
        .collect();
    (windows, rules)
}

/// Gives every rate window the clock of its bucket width; returns the clocks' widths.
fn assign_clocks(windows: &mut [Window]) -> Vec<u64> {
    let mut clocks: Vec<u64> = Vec::new();
    for w in windows.iter_mut().filter(|w| rank(w.kind) < 2) {
        w.clock = match clocks.iter().position(|&b| b == w.span.bucket_us) {
            Some(c) => c,
            None => {
                clocks.push(w.span.bucket_us);
                clocks.len() - 1
            }
        };
    }
    clocks
}

/// Per distinct `exempt` list of the windows: its nets and the windows that skip them.
fn exempt_sets(windows: &[Window]) -> Vec<(NetSet, u32)> {
    let mut exempt: Vec<(&[IpNet], u32)> = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        if w.filter.exempt.is_empty() {
            continue;
        }
        match exempt
            .iter_mut()
            .find(|e| e.0 == w.filter.exempt.as_slice())
        {
            Some(e) => e.1 |= 1 << i,
            None => exempt.push((&w.filter.exempt, 1 << i)),
        }
    }
    exempt
        .into_iter()
        .map(|(nets, m)| (NetSet::new(nets), m))
        .collect()
}
