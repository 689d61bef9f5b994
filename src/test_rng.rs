//! A deterministic pseudo-random walk for unit tests that try many cases (Knuth's MMIX linear
//! congruential generator): the same numbers every run, no dependency.

/// Advances `x` one step and returns the new value.
pub(crate) fn next(x: &mut u64) -> u64 {
    *x = x
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *x
}
