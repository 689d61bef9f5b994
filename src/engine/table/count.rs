//! One packet counted into one record (pure): advance the record's clocks, add to every
//! matching rate window (packed cells, or heavy cells once one overflowed), admit the distinct
//! values, and report each rule whose threshold the new value exceeds.
//!
//! A rate window adds into the packet's own bucket (a packet up to 7 buckets older than the
//! newest one seen from its source still counts where it belongs); a clock that moves forward
//! clears the buckets it passes for every window it drives; one that would move back by a
//! whole window or more restarts them (a clock reset).

use super::cells::{
    BYTES_CELL_MAX, HEAVY_CELL_MAX, HeavyPool, PACKET_CELL_MAX, clear_u8, clear_u16, get_u8,
    get_u16, sum_u8x8, sum_u16x4,
};
use super::distinct::{self, SetPool};
use super::layout::{BUCKETS, BitIndexed, Kind, Layout, MAX_RULES, SEVERAL, flag, word};
use super::{Slot, SourceTable, set_time, time};
use crate::packet::PacketMeta;

/// Iterates the set bits of a mask, lowest first.
#[inline]
pub(super) fn bits(mut m: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if m == 0 {
            return None;
        }
        let i = m.trailing_zeros() as usize;
        m &= m - 1;
        Some(i)
    })
}

impl SourceTable {
    /// Counts packet `p` (of class `c`, captured at `ts_us`) into `slot`'s record; appends
    /// `(rule, value)` for every rule of the table whose `report` level (its threshold unless
    /// lowered) the value now exceeds, in window order (the caller orders them by rule).
    ///
    /// The record and the side pools are borrowed once for the whole packet (the helpers below
    /// take them apart), so the record's place is computed and bounds-checked once; what the
    /// helpers need per window comes from the layout's compact [`super::layout::BitIndexed`]
    /// copies.
    pub fn count(
        &mut self,
        slot: Slot,
        p: &PacketMeta,
        c: u8,
        ts_us: u64,
        fired: &mut Vec<(usize, u64)>,
    ) {
        let m = self.layout.mask(c, p);
        if m == 0 {
            return;
        }
        let SourceTable {
            layout,
            chunks,
            heavy,
            sets,
            scales,
            untracked_distinct,
            ..
        } = self;
        let layout = &*layout;
        let r = super::record_in(chunks, layout.stride, slot.0);
        let rate = m & (layout.packet_mask | layout.bytes_mask);
        if rate != 0 {
            count_rates(layout, r, heavy, scales, rate, p.len, ts_us, fired);
        }
        let distinct = m & layout.distinct_mask;
        if distinct != 0 {
            let short = count_distinct(layout, r, sets, scales, distinct, p, ts_us, fired);
            *untracked_distinct += u64::from(short);
        }
    }

    /// Rule window `w`'s value for `slot` as of `now_us` (no change).
    pub fn value(&self, slot: Slot, w: usize, now_us: u64) -> u64 {
        let win = &self.layout.windows[w];
        let r = self.record(slot.0);
        let b = (now_us / win.span.bucket_us) as u32;
        match win.kind {
            Kind::Distinct { .. } => {
                let bit = self.layout.overflow[w];
                if r[word::META] & bit != 0 {
                    self.sets.count(r[win.offset] as u32, b)
                } else {
                    u64::from(distinct::live(r[win.offset], b))
                }
            }
            kind => {
                let head = time(r, win.clock + 1);
                let ahead = b.wrapping_sub(head) as i32;
                if ahead >= BUCKETS as i32 || ahead <= -(BUCKETS as i32) {
                    return 0;
                }
                // Buckets within both the record's window and the one ending at `b`.
                let last = BUCKETS - 1;
                let (lo, hi) = if ahead >= 0 {
                    (head.wrapping_sub(last - ahead as u32), head)
                } else {
                    (
                        head.wrapping_sub(last),
                        head.wrapping_sub(ahead.unsigned_abs()),
                    )
                };
                let e = heavy_entry(r);
                (0..=hi.wrapping_sub(lo))
                    .map(|j| {
                        let i = lo.wrapping_add(j) % BUCKETS;
                        if e != 0 {
                            self.heavy.window_ref(e, w)[i as usize]
                        } else {
                            packed_cell(r, win.offset, kind, i)
                        }
                    })
                    .fold(0u64, |a, c| a.saturating_add(c))
            }
        }
    }
}

/// Adds a packet of `len` bytes to the rate windows in `rate` (not empty) of record `r`:
/// moves their clocks first, then adds to each window in the packet's bucket.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn count_rates(
    layout: &Layout,
    r: &mut [u64],
    heavy: &mut HeavyPool,
    scales: &mut BitIndexed<(u64, u64, u64)>,
    rate: u32,
    len: u32,
    ts_us: u64,
    fired: &mut Vec<(usize, u64)>,
) {
    let mut buckets = [0u32; MAX_RULES];
    for k in 0..layout.clocks.len() {
        if rate & layout.clock_windows[k] != 0 {
            let b = super::bucket_in(&mut scales[k], ts_us);
            buckets[k % MAX_RULES] = b;
            advance(layout, r, heavy, k, b);
        }
    }
    // Read after the clocks moved: a move may have settled the record's heavy entry.
    let mut e = heavy_entry(r);
    for w in bits(rate & layout.packet_mask) {
        let i = buckets[usize::from(layout.scale[w]) % MAX_RULES] % BUCKETS;
        let v = add_rate(layout, r, heavy, &mut e, w, i, 1, PACKET_CELL_MAX);
        check(layout, w, v, fired);
    }
    for w in bits(rate & layout.bytes_mask) {
        let i = buckets[usize::from(layout.scale[w]) % MAX_RULES] % BUCKETS;
        let v = add_rate(
            layout,
            r,
            heavy,
            &mut e,
            w,
            i,
            u64::from(len),
            BYTES_CELL_MAX,
        );
        check(layout, w, v, fired);
    }
}

/// Admits packet `p`'s destination port or address to the distinct windows in `mask` (not
/// empty) of record `r`; returns whether a value had to be left out (the pool was full).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn count_distinct(
    layout: &Layout,
    r: &mut [u64],
    sets: &mut SetPool,
    scales: &mut BitIndexed<(u64, u64, u64)>,
    mask: u32,
    p: &PacketMeta,
    ts_us: u64,
    fired: &mut Vec<(usize, u64)>,
) -> bool {
    let port = Layout::distinct_value(false, p);
    let addr = if mask & layout.addrs_mask != 0 {
        Layout::distinct_value(true, p)
    } else {
        0
    };
    let mut short = false;
    for w in bits(mask) {
        let value = if layout.addrs_mask >> w & 1 != 0 {
            addr
        } else {
            port
        };
        let b = super::bucket_in(&mut scales[usize::from(layout.scale[w])], ts_us);
        let bit = layout.overflow[w];
        let off = usize::from(layout.offset[w]);
        let cap = u64::from(layout.cap[w]);
        let v = add_distinct(r, sets, &mut short, off, bit, value, b, cap);
        check(layout, w, v, fired);
    }
    short
}

/// The heavy entry of record `r` (0: none, its rate cells are packed).
#[inline(always)]
fn heavy_entry(r: &[u64]) -> u32 {
    (r[word::META] >> flag::HEAVY_SHIFT) as u32
}

/// Appends the rules of window `w` whose report level `v` exceeds. A window's only rule
/// goes straight in (its report level is the window's lowest): under a flood most packets
/// report, and the walk of the window's rules cost ~50 instructions each time.
#[inline(always)]
fn check(layout: &Layout, w: usize, v: u64, fired: &mut Vec<(usize, u64)>) {
    if v > layout.min_report[w] {
        match layout.single[w] {
            SEVERAL => report(layout, w, v, fired),
            r => fired.push((usize::from(r), v)),
        }
    }
}

/// [`check`] once `v` exceeds the lowest report level of window `w`'s rules.
#[inline(never)]
fn report(layout: &Layout, w: usize, v: u64, fired: &mut Vec<(usize, u64)>) {
    for &r in &layout.windows[w].rules {
        if v > layout.rules[r].report {
            fired.push((r, v));
        }
    }
}

/// Moves clock `k` of record `r` to bucket `b`, clearing what it passes.
#[inline]
fn advance(layout: &Layout, r: &mut [u64], heavy: &mut HeavyPool, k: usize, b: u32) {
    let head = time(r, k + 1);
    let d = b.wrapping_sub(head) as i32;
    if d > 0 || d <= -(BUCKETS as i32) {
        let steps = if d > 0 {
            (d as u32).min(BUCKETS)
        } else {
            BUCKETS
        };
        set_time(r, k + 1, b);
        let windows = layout.clock_windows[k];
        let e = heavy_entry(r);
        if e != 0 {
            for w in bits(windows) {
                let cells = heavy.window(e, w);
                for j in 1..=steps {
                    cells[(head.wrapping_add(j) % BUCKETS) as usize] = 0;
                }
            }
            settle(layout, r, heavy, e);
            return;
        }
        for w in bits(windows & layout.packet_mask) {
            r[usize::from(layout.offset[w])] &= !clear_u8(head, steps);
        }
        for w in bits(windows & layout.bytes_mask) {
            let off = usize::from(layout.offset[w]);
            let mask = clear_u16(head, steps);
            r[off] &= !(mask as u64);
            r[off + 1] &= !((mask >> 64) as u64);
        }
    }
}

/// Adds `amount` to cell `i` of rate window `w` of record `r` (heavy entry `e`, updated if
/// the add escalates); returns the window's total.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn add_rate(
    layout: &Layout,
    r: &mut [u64],
    heavy: &mut HeavyPool,
    e: &mut u32,
    w: usize,
    i: u32,
    amount: u64,
    cell_max: u64,
) -> u64 {
    let off = usize::from(layout.offset[w]);
    if *e == 0 {
        if cell_max == PACKET_CELL_MAX {
            if get_u8(r[off], i) + amount <= cell_max {
                r[off] += amount << (8 * i);
                return sum_u8x8(r[off]);
            }
        } else if get_u16(r[off], r[off + 1], i) + amount <= cell_max {
            r[off + usize::from(i >= 4)] += amount << (16 * (i & 3));
            return sum_u16x4(r[off]) + sum_u16x4(r[off + 1]);
        }
        *e = escalate(layout, r, heavy);
    }
    let cells = heavy.window(*e, w);
    cells[i as usize] = cells[i as usize].saturating_add(amount).min(HEAVY_CELL_MAX);
    // No cell is above HEAVY_CELL_MAX: the plain sum cannot overflow (and vectorizes; the
    // saturating one cost ~16 instructions per window on every packet of a flooder).
    cells.iter().sum()
}

/// Admits `value` (seen at bucket `b`) to the distinct window at `off` of record `r` (its
/// overflow flag `bit`); returns its live count. Sets `short` when the value had to be stored
/// and the set pool had no room for it.
#[allow(clippy::too_many_arguments)]
#[inline]
fn add_distinct(
    r: &mut [u64],
    sets: &mut SetPool,
    short: &mut bool,
    off: usize,
    bit: u64,
    value: u32,
    b: u32,
    cap: u64,
) -> u64 {
    if r[word::META] & bit == 0 {
        let e = r[off];
        if !distinct::live(e, b) || distinct::value_of(e) == value {
            r[off] = distinct::pack(value, b);
            return 1;
        }
        if cap < 2 {
            return 1;
        }
        return match sets.pair(e, distinct::pack(value, b)) {
            Some(h) => {
                r[off] = u64::from(h);
                r[word::META] |= bit;
                2
            }
            None => {
                *short = true;
                1
            }
        };
    }
    add_to_set(sets, r, off, bit, value, b, cap, short)
}

/// Packed cell `i` of the rate window at `off`.
fn packed_cell(r: &[u64], off: usize, kind: Kind, i: u32) -> u64 {
    if kind == Kind::Packets {
        get_u8(r[off], i)
    } else {
        get_u16(r[off], r[off + 1], i)
    }
}

#[allow(clippy::too_many_arguments)]
fn add_to_set(
    sets: &mut SetPool,
    r: &mut [u64],
    off: usize,
    bit: u64,
    value: u32,
    b: u32,
    cap: u64,
    short: &mut bool,
) -> u64 {
    let (added, handle) = sets.add(r[off] as u32, value, b, cap);
    match handle {
        Some(h) => r[off] = u64::from(h),
        None => {
            r[off] = distinct::pack(value, b);
            r[word::META] &= !bit;
        }
    }
    *short |= added.short;
    added.count
}

/// Moves record `r`'s rate windows to a new heavy entry; returns its number.
fn escalate(layout: &Layout, r: &mut [u64], heavy: &mut HeavyPool) -> u32 {
    let e = heavy.alloc();
    for w in 0..layout.n_packets + layout.n_bytes {
        let win = &layout.windows[w];
        let cells = heavy.window(e, w);
        for i in 0..BUCKETS {
            cells[i as usize] = packed_cell(r, win.offset, win.kind, i);
        }
        r[win.offset] = 0;
        if win.kind == Kind::Bytes {
            r[win.offset + 1] = 0;
        }
    }
    r[word::META] |= u64::from(e) << flag::HEAVY_SHIFT;
    e
}

/// Moves record `r`'s rate windows back to packed cells when every cell fits again.
fn settle(layout: &Layout, r: &mut [u64], heavy: &mut HeavyPool, e: u32) {
    let fits = (0..layout.n_packets + layout.n_bytes).all(|w| {
        let max = if layout.windows[w].kind == Kind::Packets {
            PACKET_CELL_MAX
        } else {
            BYTES_CELL_MAX
        };
        heavy.window_ref(e, w).iter().all(|&c| c <= max)
    });
    if !fits {
        return;
    }
    for w in 0..layout.n_packets + layout.n_bytes {
        let win = &layout.windows[w];
        let cells = heavy.window_ref(e, w);
        if win.kind == Kind::Packets {
            r[win.offset] = (0..8).fold(0u64, |x, i| x | cells[i] << (8 * i));
        } else {
            r[win.offset] = (0..4).fold(0u64, |x, i| x | cells[i] << (16 * i));
            r[win.offset + 1] = (0..4).fold(0u64, |x, i| x | cells[4 + i] << (16 * i));
        }
    }
    r[word::META] &= !(u64::from(u32::MAX) << flag::HEAVY_SHIFT);
    heavy.free(e);
}
