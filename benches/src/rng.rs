//! A small deterministic pseudo-random generator.

/// SplitMix64: the same seed gives the same fleet on every machine and every
/// run, without pulling in a random-number crate. Not for anything secret.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound`; `bound` must be positive. The modulo bias is
    /// far below anything a benchmark could notice.
    pub(crate) fn below(&mut self, bound: i64) -> i64 {
        // The remainder is below `bound`, so it fits in an i64.
        (self.next_u64() % bound.unsigned_abs()) as i64
    }
}
