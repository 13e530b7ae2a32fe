//! The heartbeat rule over a whole fleet laid out as columns.
//!
//! Almost every server in a fleet was heard after Carewatch's latest downtime
//! and keeps a sane interval; for those, the number of missed heartbeats is a
//! handful of comparisons, which this module does branch-free over chunks so
//! the compiler can vectorise them (with AVX-512 or AVX2 where the CPU has
//! it, chosen at run time). The few other servers are marked and settled one
//! by one with the exact [`evaluate`].

use std::time::Duration;

use multiversion::multiversion;

use super::{Availability, AvailabilityPolicy, Downtime, MAX_INTERVAL, evaluate};
use crate::time::Timestamp;

/// `last_seen_ms` value meaning "never heard from" in the batch form.
pub const NEVER: i64 = i64::MIN;
/// Batch result code for a server never heard from.
pub const PENDING_CODE: u8 = u8::MAX;

/// Marks a server the branch-free pass leaves to the exact evaluator. No
/// result can take this value: thresholds stop at 100.
const EXACT: u8 = PENDING_CODE - 1;
const EXACT_WIDE: i64 = EXACT as i64;
const PENDING_WIDE: i64 = PENDING_CODE as i64;
/// Servers per chunk: both columns of a chunk (16 KiB) stay in L1 while the
/// marked ones are settled, and the per-chunk work (the check for marked
/// servers, the loop's head and tail) is spread over enough servers.
const CHUNK: usize = 1024;
/// Thresholds up to this count missed heartbeats with one comparison each;
/// higher ones are settled when on time or unavailable, and the few servers
/// in between go to the exact path.
const MAX_UNROLLED_THRESHOLD: u8 = 4;
/// Bounds that keep the branch-free arithmetic free of overflow: `now` within
/// ±2⁶¹ ms and a last sign of life within 2⁶¹ ms of it. Real clocks are
/// nowhere near; anything else takes the exact path. (`NEVER` is outside.)
const SANE_NOW_MS: i64 = 1 << 61;
const FARTHEST_FAST_MS: i64 = 1 << 61;
/// [`MAX_INTERVAL`] in ms: a day.
const MAX_INTERVAL_MS: i64 = MAX_INTERVAL.as_millis() as i64;

/// Evaluates a whole fleet laid out as columns (one element per server).
///
/// For each server writes the number of missed heartbeats, saturated at the
/// policy's threshold (so `0` = Available, `1..threshold` = Late,
/// `threshold` = Unavailable), or [`PENDING_CODE`] if never heard from
/// (`last_seen_ms == NEVER`). The result is the same as [`evaluate`]'s for
/// every server; servers last heard before the latest downtime window take
/// its exact per-server path, everyone else a branch-free one.
///
/// # Panics
/// If the three slices differ in length.
pub fn evaluate_batch(
    last_seen_ms: &[i64],
    interval_ms: &[i64],
    policy: &AvailabilityPolicy,
    downtime: &Downtime,
    now: Timestamp,
    out: &mut [u8],
) {
    assert!(
        last_seen_ms.len() == interval_ms.len() && interval_ms.len() == out.len(),
        "evaluate_batch: columns of different lengths"
    );
    let exact = |last: i64, interval: i64| exact_code(last, interval, policy, downtime, now);
    let Some(rule) = BatchRule::new(policy, downtime, now) else {
        for ((&last, &interval), code) in last_seen_ms.iter().zip(interval_ms).zip(out.iter_mut()) {
            *code = exact(last, interval);
        }
        return;
    };
    for ((last, interval), out) in last_seen_ms
        .chunks(CHUNK)
        .zip(interval_ms.chunks(CHUNK))
        .zip(out.chunks_mut(CHUNK))
    {
        if mark_chunk(last, interval, &rule, out) {
            for ((&last, &interval), code) in last.iter().zip(interval).zip(out.iter_mut()) {
                if *code == EXACT {
                    *code = exact(last, interval);
                }
            }
        }
    }
}

/// What the branch-free pass needs to know, worked out once per batch.
#[derive(Clone, Copy)]
struct BatchRule {
    /// `now - jitter`: a heartbeat due at `t` is missed once `t ≤ due_by`.
    due_by: i64,
    /// The fast pass settles servers last heard within a range around now
    /// (after the latest downtime, not absurdly far from now), checked on
    /// `due_by - last` as one comparison: shifted down by `since_due_offset`
    /// the range starts at `i64::MIN` and ends at `since_due_last`.
    since_due_offset: i64,
    since_due_last: i64,
    threshold: u8,
}

impl BatchRule {
    /// `None` when no server can take the fast pass without overflow (a
    /// `now` far from any real clock, downtime ending far in the future):
    /// then every server takes the exact path.
    fn new(policy: &AvailabilityPolicy, downtime: &Downtime, now: Timestamp) -> Option<Self> {
        let now_ms = now.as_millis();
        if !(-SANE_NOW_MS..=SANE_NOW_MS).contains(&now_ms) {
            return None;
        }
        let after_downtime = downtime.latest_end().map_or(i64::MIN, Timestamp::as_millis);
        let fast_from = after_downtime.max(now_ms - FARTHEST_FAST_MS);
        let fast_until = now_ms + FARTHEST_FAST_MS;
        if fast_from > fast_until {
            return None;
        }
        let due_by = now_ms - policy.jitter_ms();
        // `last ∈ [fast_from, fast_until]` ⇔ `due_by - last ∈ [first, last]`,
        // even computed wrapping: both bounds are within ±2⁶² and a wrapped
        // difference is 2⁶⁴ away from the true one, so it cannot land inside.
        let (first, last) = (due_by - fast_until, due_by - fast_from);
        Some(Self {
            due_by,
            since_due_offset: first.wrapping_sub(i64::MIN),
            since_due_last: (last - first).wrapping_add(i64::MIN),
            // Policies stop at 100 missed heartbeats, below `EXACT`.
            threshold: u8::try_from(policy.unavailable_after).unwrap_or(EXACT - 1),
        })
    }

    /// Whether the branch-free pass may settle this server. Intervals are
    /// bounded so products up to 100 intervals stay far from overflow; a
    /// non-positive one needs the exact path's clamp. Each range is checked
    /// with one signed comparison after a shift (the unsigned-range trick).
    #[inline(always)]
    fn is_fast(&self, since_due: i64, interval: i64) -> bool {
        let heard_in_range = since_due.wrapping_sub(self.since_due_offset) <= self.since_due_last;
        // `1..=MAX_INTERVAL_MS` shifted to start at `i64::MIN`.
        let shift = i64::MAX;
        let interval_in_range = interval.wrapping_add(shift) <= MAX_INTERVAL_MS.wrapping_add(shift);
        heard_in_range & interval_in_range
    }

    /// The code of a server whose missed heartbeats the fast pass counted,
    /// unless it is not the fast pass's to settle. Codes stay in 64-bit
    /// lanes, the columns' width, so the compiler narrows once per server
    /// rather than once per comparison.
    #[inline(always)]
    fn code(&self, last: i64, since_due: i64, interval: i64, missed: i64) -> i64 {
        if self.is_fast(since_due, interval) {
            missed
        } else if last == NEVER {
            PENDING_WIDE
        } else {
            EXACT_WIDE
        }
    }
}

/// Writes each server's code, or [`EXACT`] where the exact evaluator must
/// decide; returns whether any was left to it.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+avx512dq+avx2",
    "x86_64+avx2",
    "x86_64+sse4.2"
))]
fn mark_chunk(last: &[i64], interval: &[i64], rule: &BatchRule, out: &mut [u8]) -> bool {
    // With AVX-512, LLVM vectorises the pass best when it only writes codes
    // (the marked ones are counted afterwards, 64 bytes per comparison);
    // with AVX2 that pass runs half as fast unless it counts them itself.
    let count = if multiversion::target::target_cfg_f!(target_feature = "avx512bw") {
        Count::After
    } else {
        Count::InPass
    };
    match rule.threshold {
        1 => mark_unrolled::<1>(last, interval, rule, out, count),
        2 => mark_unrolled::<2>(last, interval, rule, out, count),
        3 => mark_unrolled::<3>(last, interval, rule, out, count),
        4 => mark_unrolled::<4>(last, interval, rule, out, count),
        _ => mark_bracketed(last, interval, rule, out, count),
    }
}

/// When the pass counts the servers it leaves to the exact evaluator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Count {
    InPass,
    After,
}

/// Missed heartbeats = how many of `interval, 2·interval, … threshold·interval`
/// have elapsed past the jitter tolerance: `THRESHOLD` comparisons, no branch.
#[inline(always)]
fn mark_unrolled<const THRESHOLD: u8>(
    last: &[i64],
    interval: &[i64],
    rule: &BatchRule,
    out: &mut [u8],
    count: Count,
) -> bool {
    const { assert!(THRESHOLD <= MAX_UNROLLED_THRESHOLD) };
    mark_with(last, interval, rule, out, count, |since_due, interval| {
        let mut missed = 0;
        let mut due = interval;
        for _ in 0..THRESHOLD {
            missed += i64::from(since_due >= due);
            due = due.wrapping_add(interval);
        }
        missed
    })
}

/// For thresholds beyond [`MAX_UNROLLED_THRESHOLD`]: on time and unavailable
/// are two comparisons; the few late servers in between go to the exact path.
#[inline(always)]
fn mark_bracketed(
    last: &[i64],
    interval: &[i64],
    rule: &BatchRule,
    out: &mut [u8],
    count: Count,
) -> bool {
    let threshold = i64::from(rule.threshold);
    mark_with(last, interval, rule, out, count, |since_due, interval| {
        if since_due < interval {
            0
        } else if since_due >= interval.wrapping_mul(threshold) {
            threshold
        } else {
            EXACT_WIDE
        }
    })
}

/// The pass itself: `missed(since_due, interval)` counts one server's missed
/// heartbeats from how long ago its first one fell due.
#[inline(always)]
fn mark_with(
    last: &[i64],
    interval: &[i64],
    rule: &BatchRule,
    out: &mut [u8],
    count: Count,
    missed: impl Fn(i64, i64) -> i64,
) -> bool {
    let mut left_exact = 0;
    for ((&last, &interval), out) in last.iter().zip(interval).zip(out.iter_mut()) {
        let since_due = rule.due_by.wrapping_sub(last);
        let code = rule.code(last, since_due, interval, missed(since_due, interval));
        if count == Count::InPass {
            left_exact += usize::from(code == EXACT_WIDE);
        }
        // 0..=255 by construction.
        *out = code as u8;
    }
    match count {
        Count::InPass => left_exact > 0,
        // Byte-wide, so the check stays 64 servers per comparison.
        Count::After => out.iter().fold(false, |any, &code| any | (code == EXACT)),
    }
}

/// One server through the exact evaluator, as a batch code.
fn exact_code(
    last: i64,
    interval: i64,
    policy: &AvailabilityPolicy,
    downtime: &Downtime,
    now: Timestamp,
) -> u8 {
    let last = (last != NEVER).then(|| Timestamp::from_millis(last));
    let interval = Duration::from_millis(u64::try_from(interval).unwrap_or(1));
    let threshold = u8::try_from(policy.unavailable_after).unwrap_or(EXACT - 1);
    match evaluate(last, interval, policy, downtime, now).availability {
        Availability::Pending => PENDING_CODE,
        Availability::Available => 0,
        Availability::Late { missed } => {
            u8::try_from(missed).map_or(threshold, |m| m.min(threshold))
        }
        // `evaluate` never retires a server; a retired one is never due.
        Availability::Unavailable { .. } | Availability::Decommissioned { .. } => threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_000_000_000);
    const MINUTE: i64 = 60_000;

    /// Each CPU runs only one of the two ways of counting what is left to the
    /// exact evaluator; both must find the same servers and write the same codes.
    #[test]
    fn counting_in_the_pass_and_after_it_agree() {
        let now = NOW.as_millis();
        // On time, late, unavailable, never heard, a zero interval (exact
        // path), and one missed heartbeat short of a threshold of 6 (exact
        // path of the bracketed pass).
        let fleets: [(&[i64], &[i64]); 4] = [
            (&[now - 1_000, now - 70_000, now - 400_000], &[MINUTE; 3]),
            (&[now - 1_000, NEVER], &[MINUTE; 2]),
            (&[now - 1_000, now - 1_000], &[MINUTE, 0]),
            (&[now - 1_000, now - 5 * MINUTE - 3_000], &[MINUTE; 2]),
        ];
        let mut seen = Vec::new();
        for threshold in [3, 6] {
            let policy =
                AvailabilityPolicy::new(threshold, Duration::from_secs(2)).expect("a valid policy");
            let rule = BatchRule::new(&policy, &Downtime::default(), NOW).expect("a sane now");
            for (last, interval) in fleets {
                let mark = |count| {
                    let mut out = vec![0; last.len()];
                    let left = match threshold {
                        3 => mark_unrolled::<3>(last, interval, &rule, &mut out, count),
                        _ => mark_bracketed(last, interval, &rule, &mut out, count),
                    };
                    (left, out)
                };
                let in_pass = mark(Count::InPass);
                assert_eq!(in_pass, mark(Count::After));
                let (left, codes) = in_pass;
                assert_eq!(left, codes.contains(&EXACT), "{codes:?}");
                seen.push(left);
            }
        }
        assert!(seen.contains(&true) && seen.contains(&false));
    }
}
