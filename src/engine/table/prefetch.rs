//! A cache-line prefetch hint, the crate's one `unsafe` block (a measured reason: see below).
//!
//! The source table's look-ahead passes (`Engine::observe_chunk`) start a chunk's cache
//! misses (index lines, records, distinct sets) before counting it. They used to do so with
//! plain loads of a word of each line; a load that misses holds its place in the CPU's
//! reorder window until its line arrives, so a pass stalled after a dozen misses. A prefetch
//! instruction retires at once and the pass goes on issuing the rest: replay of issue 10's
//! mixed file with the shipped rules, engine thread 0.46-0.58 s → 0.26-0.34 s (BENCHMARKS.md,
//! "Prefetch instructions in the look-ahead passes").

/// Hints the CPU to load the cache line holding `x` into every cache level. Changes no value
/// any load returns: only when the line arrives.
#[inline(always)]
pub fn line<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it never faults, never writes, and is defined for any
    // address; `x` is a valid reference in any case. SSE (which has it) is part of x86_64.
    #[allow(unsafe_code)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (x as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Hints the CPU to load the lines holding the first and last of `items`: the whole of a block
/// of up to two lines (a set that does not start a line, or is longer than one, spans two;
/// the middle lines of a longer set are left to its scan, which often stops before them).
#[inline(always)]
pub fn ends<T>(items: &[T]) {
    if let (Some(first), Some(last)) = (items.first(), items.last()) {
        line(first);
        line(last);
    }
}

/// Hints the CPU to load every line holding part of `items`. A record of 65-128 bytes that
/// starts late in a line spans three (with the shipped rules, 88-byte records: 2 in 8 do, and
/// their key and flags sit in the middle line, which [`ends`] left to a demand miss at the
/// look-up: replay engine thread -5 to -9%, BENCHMARKS.md).
#[inline(always)]
pub fn all<T>(items: &[T]) {
    let step = (64 / std::mem::size_of::<T>().max(1)).max(1);
    for x in items.iter().step_by(step) {
        line(x);
    }
    if let Some(last) = items.last() {
        line(last);
    }
}
