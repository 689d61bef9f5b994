//! Rate-window cells packed into words (pure): a packet window is 8 × u8 cells in one `u64`,
//! a byte window 8 × u16 cells in two, summed with SWAR arithmetic and cleared by mask. A cell
//! that would overflow moves the record's rate windows to a [`HeavyPool`] entry of u64 cells.
//!
//! Invariants: cell `i` holds bucket `i mod 8`; a packed cell never wraps (the add that would
//! overflow escalates instead), so every sum is exact; a heavy entry belongs to one record.

use super::layout::BUCKETS;

/// Largest packet count a packed cell holds.
pub const PACKET_CELL_MAX: u64 = 0xff;
/// Largest byte count a packed cell holds.
pub const BYTES_CELL_MAX: u64 = 0xffff;
/// A heavy cell's most: with all [`super::layout::BUCKETS`] cells at it, a window's total
/// still fits a `u64`, so totals are plain sums (~2.3e18 packets or bytes in one bucket: far
/// above any threshold a rule can usefully have).
pub const HEAVY_CELL_MAX: u64 = u64::MAX / super::layout::BUCKETS as u64;

/// Sum of the 8 byte cells of `x`.
#[inline]
pub fn sum_u8x8(x: u64) -> u64 {
    let pairs = (x & 0x00ff_00ff_00ff_00ff) + ((x >> 8) & 0x00ff_00ff_00ff_00ff);
    pairs.wrapping_mul(0x0001_0001_0001_0001) >> 48
}

/// Sum of the 4 u16 cells of `x`.
#[inline]
pub fn sum_u16x4(x: u64) -> u64 {
    let pairs = (x & 0x0000_ffff_0000_ffff) + ((x >> 16) & 0x0000_ffff_0000_ffff);
    pairs.wrapping_mul(0x0000_0001_0000_0001) >> 32
}

/// Cell `i` of a packet word.
#[inline]
pub fn get_u8(x: u64, i: u32) -> u64 {
    (x >> (8 * i)) & 0xff
}

/// Cell `i` (0..8) of a byte window held in words `(a, b)`.
#[inline]
pub fn get_u16(a: u64, b: u64, i: u32) -> u64 {
    let w = if i < 4 { a } else { b };
    (w >> (16 * (i & 3))) & 0xffff
}

/// The cells of buckets `head+1 ..= head+steps` (mod 8) of a packet word, as a mask; `steps`
/// is 1 to 8 (8: every cell).
#[inline]
pub fn clear_u8(head: u32, steps: u32) -> u64 {
    debug_assert!((1..=BUCKETS).contains(&steps), "steps {steps}");
    let run = u64::MAX >> (64 - 8 * steps);
    run.rotate_left(8 * (head.wrapping_add(1) % BUCKETS))
}

/// The cells of buckets `head+1 ..= head+steps` (mod 8) of a byte window, as a mask over its
/// two words (low word in the low 64 bits); `steps` is 1 to 8 (8: every cell).
#[inline]
pub fn clear_u16(head: u32, steps: u32) -> u128 {
    debug_assert!((1..=BUCKETS).contains(&steps), "steps {steps}");
    let run = u128::MAX >> (128 - 16 * steps);
    run.rotate_left(16 * (head.wrapping_add(1) % BUCKETS))
}

/// Wide cells for records whose packed cells overflowed: per rate window, 8 × u64.
#[derive(Debug, Default)]
pub struct HeavyPool {
    /// Words per entry (8 per rate window).
    stride: usize,
    cells: Vec<u64>,
    free: Vec<u32>,
    /// Entries handed out and not freed.
    pub live: usize,
}

impl HeavyPool {
    pub fn new(rate_windows: usize) -> HeavyPool {
        HeavyPool {
            stride: rate_windows * BUCKETS as usize,
            // Entry 0 is never used: 0 means "no entry" in a record.
            cells: vec![0; rate_windows * BUCKETS as usize],
            free: Vec::new(),
            live: 0,
        }
    }

    /// A zeroed entry's number (never 0).
    pub fn alloc(&mut self) -> u32 {
        self.live += 1;
        if let Some(e) = self.free.pop() {
            return e;
        }
        let e = self.cells.len() / self.stride.max(1);
        self.cells.resize(self.cells.len() + self.stride, 0);
        u32::try_from(e).unwrap_or(u32::MAX)
    }

    pub fn free(&mut self, e: u32) {
        let s = e as usize * self.stride;
        if e != 0 && s + self.stride <= self.cells.len() {
            self.cells[s..s + self.stride].fill(0);
            self.free.push(e);
            self.live -= 1;
        }
    }

    /// The 8 cells of rate window `w` (its index among rate windows) of entry `e`.
    #[inline]
    pub fn window(&mut self, e: u32, w: usize) -> &mut [u64] {
        let s = e as usize * self.stride + w * BUCKETS as usize;
        &mut self.cells[s..s + BUCKETS as usize]
    }

    #[inline]
    pub fn window_ref(&self, e: u32, w: usize) -> &[u64] {
        let s = e as usize * self.stride + w * BUCKETS as usize;
        &self.cells[s..s + BUCKETS as usize]
    }

    pub fn memory_bytes(&self) -> usize {
        self.cells.capacity() * 8 + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swar_sums_match_plain_sums() {
        let cells = [255u64, 0, 1, 7, 128, 255, 3, 200];
        let x = cells
            .iter()
            .enumerate()
            .fold(0u64, |x, (i, &c)| x | c << (8 * i));
        assert_eq!(sum_u8x8(x), cells.iter().sum::<u64>());
        assert_eq!(sum_u8x8(u64::MAX), 8 * 255);
        let wide = [65535u64, 1, 0, 40000];
        let y = wide
            .iter()
            .enumerate()
            .fold(0u64, |x, (i, &c)| x | c << (16 * i));
        assert_eq!(sum_u16x4(y), wide.iter().sum::<u64>());
        assert_eq!(get_u8(x, 7), 200);
        assert_eq!(get_u16(y, 0, 3), 40000);
        assert_eq!(get_u16(0, y, 4), 65535);
    }

    #[test]
    fn clear_masks_wrap_around_the_ring() {
        // head 6, two steps: buckets 7 and 0.
        assert_eq!(clear_u8(6, 2), 0xff00_0000_0000_00ff);
        assert_eq!(clear_u8(0, 1), 0xff00);
        assert_eq!(clear_u8(3, 8), u64::MAX);
        assert_eq!(clear_u8(u32::MAX, 1), 0xff, "head 7 (mod 8): bucket 0");
        assert_eq!(clear_u16(3, 8), u128::MAX);
        // u16 cells: head 7, one step: bucket 0.
        assert_eq!(clear_u16(7, 1), 0xffff);
        assert_eq!(clear_u16(6, 2), 0xffff | (0xffff << 112));
    }

    #[test]
    fn clear_masks_cover_exactly_the_buckets_passed() {
        for head in 0..20u32 {
            for steps in 1..=BUCKETS {
                let passed = |i: u32| (1..=steps).any(|j| (head + j) % BUCKETS == i);
                let (mut want8, mut want16) = (0u64, 0u128);
                for i in (0..BUCKETS).filter(|&i| passed(i)) {
                    want8 |= 0xff << (8 * i);
                    want16 |= 0xffff << (16 * i);
                }
                assert_eq!(clear_u8(head, steps), want8, "head {head} steps {steps}");
                assert_eq!(clear_u16(head, steps), want16, "head {head} steps {steps}");
            }
        }
    }

    #[test]
    fn heavy_entries_are_reused_zeroed() {
        let mut h = HeavyPool::new(2);
        let a = h.alloc();
        assert_ne!(a, 0);
        h.window(a, 1)[3] = 99;
        h.free(a);
        let b = h.alloc();
        assert_eq!(a, b);
        assert_eq!(h.window_ref(b, 1)[3], 0);
        assert_eq!(h.live, 1);
    }
}
