//! A fleet as the availability evaluator's columns.

use carewatch_core::availability::NEVER;
use carewatch_core::time::Timestamp;

use crate::rng::SplitMix64;

/// When generated fleets are evaluated: 2026-01-01T00:00:00Z (any fixed
/// instant would do; a fixed one keeps runs comparable).
pub const EVALUATED_AT: Timestamp = Timestamp::from_millis(1_767_225_600_000);

/// The default policy's jitter tolerance: a heartbeat counts as missed this
/// long after it was due.
const JITTER_MS: i64 = 2_000;

/// A fleet laid out as [`carewatch_core::availability::evaluate_batch`] reads
/// it: element `i` of each column describes recording server `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetColumns {
    /// When each server was last heard from (ms since the epoch), or
    /// [`NEVER`].
    pub last_seen_ms: Vec<i64>,
    /// Each server's heartbeat interval in ms.
    pub interval_ms: Vec<i64>,
}

impl FleetColumns {
    /// `servers` recording servers, generated from `seed`, as they stand at
    /// `heard_until`: about 94.5 % on time, 5 % late or unavailable (1 to 8
    /// heartbeats missed) and 0.5 % never heard from. Nine in ten keep the
    /// default 60 s interval, the rest 30 s or 5 min.
    pub fn generate(servers: usize, seed: u64, heard_until: Timestamp) -> Self {
        let mut rng = SplitMix64::new(seed);
        let until = heard_until.as_millis();
        let mut last_seen_ms = Vec::with_capacity(servers);
        let mut interval_ms = Vec::with_capacity(servers);
        for _ in 0..servers {
            let interval = match rng.below(10) {
                0 => 30_000,
                1 => 300_000,
                _ => 60_000,
            };
            let per_mille = rng.below(1000);
            let last_seen = if per_mille < 5 {
                NEVER
            } else if per_mille < 55 {
                // Exactly `missed` heartbeats are past due and past the tolerance.
                let missed = 1 + rng.below(8);
                until - missed * interval - JITTER_MS - rng.below(interval)
            } else {
                until - rng.below(interval)
            };
            last_seen_ms.push(last_seen);
            interval_ms.push(interval);
        }
        Self {
            last_seen_ms,
            interval_ms,
        }
    }
}

/// The memory floor the evaluator is compared with: a plain sum that reads
/// both columns and does nothing else.
pub fn sum_columns(last_seen_ms: &[i64], interval_ms: &[i64]) -> i64 {
    last_seen_ms
        .iter()
        .zip(interval_ms)
        .fold(0, |sum, (&last, &interval)| {
            sum.wrapping_add(last).wrapping_add(interval)
        })
}
