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
//! report, and a heartbeat due while nobody was receiving is never counted as
//! missed. A server that was already Unavailable when the outage began stays
//! Unavailable with its original `since`. Missed counts add up the
//! heartbeats missed in each stretch of receiving on its own schedule.

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
    /// Retired by the reseller or the operator (removed at the site): it
    /// counts for nothing until a message from it brings it back.
    Decommissioned {
        /// When it was retired.
        since: Timestamp,
    },
}

impl Availability {
    /// A stable lower-case name: `pending`, `available`, `late`,
    /// `unavailable`, `decommissioned`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Available => "available",
            Self::Late { .. } => "late",
            Self::Unavailable { .. } => "unavailable",
            Self::Decommissioned { .. } => "decommissioned",
        }
    }

    /// Whether it has been unavailable for at least `after` at `now`, so the
    /// reseller is asked whether it was removed ("probably removed"): never
    /// decided for them, only shown. `None` never flags.
    pub fn probably_removed(&self, now: Timestamp, after: Option<std::time::Duration>) -> bool {
        match (self, after) {
            (Self::Unavailable { since, .. }, Some(after)) => now.since(*since) >= after,
            _ => false,
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

    /// The instant by which Carewatch has been receiving for `span` since
    /// `from`: time inside a window does not count (the windows known now;
    /// none is assumed after the last). A notification's hold is measured
    /// so: a problem that began just before an outage has not held for
    /// the outage's length.
    pub fn after_watching(&self, from: Timestamp, span: Duration) -> Timestamp {
        if span.is_zero() {
            return from;
        }
        let first = self.windows.partition_point(|w| w.end <= from);
        let mut at = from;
        let mut left = span;
        for w in &self.windows[first..] {
            if w.start > at {
                let watched = w.start.since(at);
                if watched >= left {
                    break;
                }
                left -= watched;
            }
            at = at.max(w.end);
        }
        at.saturating_add(left)
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

/// The stretches of time after `last` (up to `now`) during which Carewatch
/// was receiving, as `[start, end)` in ms: the heartbeat schedule starts
/// again at the start of each, so everybody gets full intervals to report
/// after an outage. Heartbeats due while nobody was receiving fall between
/// two stretches and are never missed.
fn receiving_stretches(
    last: i64,
    now: i64,
    downtime: &Downtime,
) -> impl Iterator<Item = (i64, i64)> + '_ {
    let mut anchor = Some(last);
    let mut windows = downtime.windows.iter();
    std::iter::from_fn(move || {
        let start = anchor?;
        for w in windows.by_ref() {
            if w.end.as_millis() <= start || w.start.as_millis() >= now {
                continue;
            }
            anchor = Some(w.end.as_millis());
            return Some((start, w.start.as_millis().max(start)));
        }
        anchor = None;
        Some((start, now.max(start)))
    })
}

/// Evaluates one recording server.
///
/// `last` is when its last accepted message was received (service clock),
/// `None` if never. `interval` is the heartbeat interval it was told to keep.
/// Late counts the heartbeats missed since Carewatch last started receiving
/// again; Unavailable's `missed` counts every heartbeat that fell due while
/// Carewatch was receiving since `last`.
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
    let threshold = policy.unavailable_after;
    let mut total: u32 = 0;
    let mut unavailable_since = None;
    let mut current = (last.as_millis(), 0);
    for (start, end) in receiving_stretches(last.as_millis(), now.as_millis(), downtime) {
        let missed = missed_after(end.saturating_sub(start), i, j, u32::MAX);
        total = total.saturating_add(missed);
        if unavailable_since.is_none() && missed >= threshold {
            // Stays unavailable (with this `since`) through later outages.
            let since = start.saturating_add(i64::from(threshold).saturating_mul(i));
            unavailable_since = Some(Timestamp::from_millis(since));
        }
        current = (start, missed);
    }
    if let Some(since) = unavailable_since {
        return Evaluation {
            availability: Availability::Unavailable {
                since,
                missed: total,
            },
            next_change_at: None,
        };
    }
    let (anchor, missed) = current;
    let next_due = |k: u32| {
        Some(Timestamp::from_millis(
            anchor
                .saturating_add(i64::from(k).saturating_mul(i))
                .saturating_add(j),
        ))
    };
    Evaluation {
        availability: if missed == 0 {
            Availability::Available
        } else {
            Availability::Late { missed }
        },
        next_change_at: next_due(missed + 1),
    }
}

/// Heartbeats that fell due while the service was receiving, between `from`
/// and `to`: each receiving stretch counted on its own schedule.
fn missed_while_receiving(
    from: i64,
    to: i64,
    interval: i64,
    jitter: i64,
    downtime: &Downtime,
) -> u32 {
    receiving_stretches(from, to, downtime)
        .map(|(start, end)| missed_after(end.saturating_sub(start), interval, jitter, u32::MAX))
        .fold(0, u32::saturating_add)
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
