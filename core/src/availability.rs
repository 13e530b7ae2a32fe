//! The heartbeat rule: from the last sign of life to Pending / Available /
//! Late / Unavailable.
//!
//! A heartbeat is due every interval `I` after the last accepted message. The
//! one due at `last + k·I` counts as missed once `now ≥ last + k·I + jitter`.
//! After `threshold` (default 3) missed in a row the server is Unavailable,
//! since `last + threshold·I`.
//!
//! Carewatch's own downtime is not the customer's fault: when the service was
//! not receiving (a [`DowntimeWindow`]), the count starts again at the end of
//! the window, so after a restart everybody gets `threshold` full intervals to
//! report. A server that was already Unavailable when the outage began stays
//! Unavailable with its original `since`.

use std::time::Duration;

mod batch;

pub use batch::{NEVER, PENDING_CODE, evaluate_batch};

use crate::error::{Error, Result};
use crate::time::{Timestamp, duration_millis};

/// The heartbeat interval recording servers keep unless configured otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest heartbeat interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest heartbeat interval accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// When a recording server counts as late or unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvailabilityPolicy {
    unavailable_after: u32,
    jitter_tolerance: Duration,
}

impl Default for AvailabilityPolicy {
    /// Three missed heartbeats, two seconds of tolerance for network delay.
    fn default() -> Self {
        Self {
            unavailable_after: 3,
            jitter_tolerance: Duration::from_secs(2),
        }
    }
}

impl AvailabilityPolicy {
    /// A policy: unavailable after `unavailable_after` (1..=100) missed
    /// heartbeats; a heartbeat is not yet missed until `jitter_tolerance` after
    /// it was due.
    pub fn new(unavailable_after: u32, jitter_tolerance: Duration) -> Result<Self> {
        if !(1..=100).contains(&unavailable_after) {
            return Err(Error::InvalidInput {
                field: "unavailable_after",
                reason: format!("{unavailable_after} missed heartbeats; use 1 to 100"),
            });
        }
        if jitter_tolerance > MAX_INTERVAL {
            return Err(Error::InvalidInput {
                field: "jitter_tolerance",
                reason: format!("{jitter_tolerance:?} is longer than a day"),
            });
        }
        Ok(Self {
            unavailable_after,
            jitter_tolerance,
        })
    }

    /// Missed heartbeats that make a server Unavailable.
    pub fn unavailable_after(&self) -> u32 {
        self.unavailable_after
    }

    /// Tolerance after a heartbeat's due time.
    pub fn jitter_tolerance(&self) -> Duration {
        self.jitter_tolerance
    }

    fn jitter_ms(&self) -> i64 {
        duration_millis(self.jitter_tolerance)
    }
}

/// Checks a heartbeat interval is within [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
pub fn check_interval(interval: Duration) -> Result<Duration> {
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        return Err(Error::InvalidInput {
            field: "heartbeat interval",
            reason: format!("{interval:?} is outside {MIN_INTERVAL:?} to {MAX_INTERVAL:?}"),
        });
    }
    Ok(interval)
}

/// A recording server's availability at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Availability {
    /// Never heard from.
    Pending,
    /// Heard from within the last interval (plus tolerance).
    Available,
    /// 1 to `threshold − 1` heartbeats missed.
    Late {
        /// How many heartbeats are missed.
        missed: u32,
    },
    /// `threshold` or more heartbeats missed in a row.
    Unavailable {
        /// When the threshold-th heartbeat was due.
        since: Timestamp,
        /// Heartbeats missed while Carewatch was receiving.
        missed: u32,
    },
}

impl Availability {
    /// A stable lower-case name: `pending`, `available`, `late`, `unavailable`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Available => "available",
            Self::Late { .. } => "late",
            Self::Unavailable { .. } => "unavailable",
        }
    }
}

/// An interval during which Carewatch itself was not receiving messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DowntimeWindow {
    start: Timestamp,
    end: Timestamp,
}

impl DowntimeWindow {
    /// The window `[start, end)`; `start` must be before `end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self> {
        if start >= end {
            return Err(Error::InvalidInput {
                field: "downtime window",
                reason: format!("starts at {start}, not before its end {end}"),
            });
        }
        Ok(Self { start, end })
    }

    /// When the service stopped receiving.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// When it received again.
    pub fn end(&self) -> Timestamp {
        self.end
    }
}

/// The service's own downtime: windows sorted by start, overlaps merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Downtime {
    windows: Vec<DowntimeWindow>,
}

impl Downtime {
    /// Sorts and merges the windows.
    pub fn new(mut windows: Vec<DowntimeWindow>) -> Self {
        windows.sort_by_key(|w| w.start);
        let mut merged: Vec<DowntimeWindow> = Vec::with_capacity(windows.len());
        for w in windows {
            match merged.last_mut() {
                Some(last) if w.start <= last.end => last.end = last.end.max(w.end),
                _ => merged.push(w),
            }
        }
        Self { windows: merged }
    }

    /// The windows, sorted and disjoint.
    pub fn windows(&self) -> &[DowntimeWindow] {
        &self.windows
    }

    /// The end of the latest window; signs of life after it need no window logic.
    pub fn latest_end(&self) -> Option<Timestamp> {
        self.windows.last().map(|w| w.end)
    }
}

/// The result of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    /// The availability now.
    pub availability: Availability,
    /// The next instant at which, without a new message, it changes.
    pub next_change_at: Option<Timestamp>,
}

/// Heartbeats missed after `elapsed` ms, saturating at `cap`.
fn missed_after(elapsed: i64, interval: i64, jitter: i64, cap: u32) -> u32 {
    if elapsed < interval.saturating_add(jitter) {
        return 0;
    }
    let missed = (elapsed - jitter) / interval;
    u32::try_from(missed).unwrap_or(u32::MAX).min(cap)
}

/// Evaluates one recording server.
///
/// `last` is when its last accepted message was received (service clock),
/// `None` if never. `interval` is the heartbeat interval it was told to keep.
pub fn evaluate(
    last: Option<Timestamp>,
    interval: Duration,
    policy: &AvailabilityPolicy,
    downtime: &Downtime,
    now: Timestamp,
) -> Evaluation {
    let Some(last) = last else {
        return Evaluation {
            availability: Availability::Pending,
            next_change_at: None,
        };
    };
    let i = duration_millis(interval).max(1);
    let j = policy.jitter_ms();
    let threshold = i64::from(policy.unavailable_after);
    let unavailable_at = |anchor: i64| anchor.saturating_add(threshold.saturating_mul(i));

    let mut anchor = last.as_millis();
    for w in &downtime.windows {
        if w.end.as_millis() <= anchor || w.start >= now {
            continue;
        }
        let outage_began = w.start.as_millis().max(anchor);
        if outage_began.saturating_sub(anchor) >= unavailable_at(0).saturating_add(j) {
            // Already unavailable before the service went down: stays so.
            let missed = missed_while_receiving(anchor, now.as_millis(), i, j, downtime);
            let since = Timestamp::from_millis(unavailable_at(anchor));
            return Evaluation {
                availability: Availability::Unavailable { since, missed },
                next_change_at: None,
            };
        }
        anchor = w.end.as_millis();
    }

    let elapsed = now.as_millis().saturating_sub(anchor);
    let missed = missed_after(elapsed, i, j, u32::MAX);
    let next_due = |k: u32| {
        Some(Timestamp::from_millis(
            anchor
                .saturating_add(i64::from(k).saturating_mul(i))
                .saturating_add(j),
        ))
    };
    if missed == 0 {
        Evaluation {
            availability: Availability::Available,
            next_change_at: next_due(1),
        }
    } else if missed < policy.unavailable_after {
        Evaluation {
            availability: Availability::Late { missed },
            next_change_at: next_due(missed + 1),
        }
    } else {
        let since = Timestamp::from_millis(unavailable_at(anchor));
        let missed = missed_while_receiving(last.as_millis(), now.as_millis(), i, j, downtime);
        Evaluation {
            availability: Availability::Unavailable { since, missed },
            next_change_at: None,
        }
    }
}

/// Heartbeats that were due while the service was receiving, between `from` and `to`.
fn missed_while_receiving(
    from: i64,
    to: i64,
    interval: i64,
    jitter: i64,
    downtime: &Downtime,
) -> u32 {
    let outage: i64 = downtime
        .windows
        .iter()
        .map(|w| {
            let overlap = w.end.as_millis().min(to);
            overlap.saturating_sub(w.start.as_millis().max(from)).max(0)
        })
        .fold(0, i64::saturating_add);
    let receiving = to.saturating_sub(from).saturating_sub(outage);
    missed_after(receiving, interval, jitter, u32::MAX)
}

/// How many heartbeats a server missed before a message received at `received`
/// (used to record a recovery).
pub fn missed_before(
    last: Timestamp,
    received: Timestamp,
    interval: Duration,
    policy: &AvailabilityPolicy,
    downtime: &Downtime,
) -> u32 {
    let i = duration_millis(interval).max(1);
    missed_while_receiving(
        last.as_millis(),
        received.as_millis(),
        i,
        policy.jitter_ms(),
        downtime,
    )
}

#[cfg(test)]
mod tests;
