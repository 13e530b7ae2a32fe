//! Timelines from the history: when a recording server was monitored and
//! when it was out, and the same for an installation (every counted server
//! it had unavailable at once). The rules are in the
//! [module documentation](super).

use std::time::Duration;

use super::interval::Interval;
use crate::ids::RecordingServerId;
use crate::store::{HistoryEvent, HistoryKind};
use crate::time::Timestamp;

/// How an outage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutageEnd {
    /// The server reported again (for an installation: one of its servers
    /// did, or a server was first seen or brought back).
    Recovered,
    /// The server was decommissioned while unavailable (for an
    /// installation: its last monitored server was).
    Retired,
    /// It was still going on at the end of the timeline.
    Ongoing,
}

/// One stretch of unavailability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// When it began, and when it ended (for an ongoing one: the end of the
    /// timeline).
    pub span: Interval,
    /// How it ended.
    pub end: OutageEnd,
}

/// A subject's monitored time and outages up to a given instant (the
/// period's end). Outages lie within the monitored time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    until: Timestamp,
    /// Sorted, disjoint, clipped to `until`; the last may be empty, at
    /// `until` (see [`Timeline::monitored`]).
    monitored: Vec<Interval>,
    /// Whether the last monitored span goes on after `until`.
    monitored_at_end: bool,
    /// Sorted, disjoint, clipped to `until`.
    outages: Vec<Outage>,
}

/// An availability or retirement change in a server's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// `BecameUnavailable`.
    Down,
    /// `Recovered`, after this long.
    Up { unavailable_for: Duration },
    /// `Decommissioned`.
    Retire,
    /// `Recommissioned`, after this long.
    Return { retired_for: Duration },
}

impl Change {
    /// The change a history entry records, if any.
    pub(crate) fn of(kind: &HistoryKind) -> Option<Change> {
        match kind {
            HistoryKind::BecameUnavailable { .. } => Some(Change::Down),
            HistoryKind::Recovered {
                unavailable_for, ..
            } => Some(Change::Up {
                unavailable_for: *unavailable_for,
            }),
            HistoryKind::Decommissioned => Some(Change::Retire),
            HistoryKind::Recommissioned { decommissioned_for } => Some(Change::Return {
                retired_for: *decommissioned_for,
            }),
            _ => None,
        }
    }

    /// The order of changes at one instant: the order of a server's life
    /// (unavailable, back, retired, brought back).
    fn rank(self) -> u8 {
        match self {
            Change::Down => 0,
            Change::Up { .. } => 1,
            Change::Retire => 2,
            Change::Return { .. } => 3,
        }
    }
}

/// A time nothing reaches: the end of what is still going on, before
/// clipping.
const NEVER: Timestamp = Timestamp::from_millis(i64::MAX);

impl Timeline {
    /// A recording server's timeline up to `until`, from its installation's
    /// history in any order (entries of other servers, and entries other
    /// than `BecameUnavailable`, `Recovered`, `Decommissioned` and
    /// `Recommissioned`, are ignored).
    pub fn of_server<'a>(
        server: &RecordingServerId,
        first_seen_at: Timestamp,
        history: impl IntoIterator<Item = &'a HistoryEvent>,
        until: Timestamp,
    ) -> Self {
        let mut changes: Vec<(Timestamp, Change)> = history
            .into_iter()
            .filter(|e| &e.server == server)
            .filter_map(|e| Change::of(&e.kind).map(|c| (e.at, c)))
            .collect();
        Self::from_changes(&mut changes, first_seen_at, until)
    }

    /// A server's timeline from its changes (in any order; sorted here).
    pub(crate) fn from_changes(
        changes: &mut [(Timestamp, Change)],
        first_seen_at: Timestamp,
        until: Timestamp,
    ) -> Self {
        changes.sort_unstable_by_key(|(at, change)| (*at, change.rank()));
        let mut monitored = Vec::new();
        let mut outages = Vec::new();
        // Monitored since, if monitored (not retired).
        let mut watching = Some(first_seen_at);
        // No outage or retirement begins before this: first seen, or the
        // latest recovery, retirement or return.
        let mut floor = first_seen_at;
        let mut open: Option<Timestamp> = None;
        for &(at, change) in changes.iter() {
            match (change, watching) {
                (Change::Down, Some(_)) => {
                    open.get_or_insert(at.max(floor));
                }
                (Change::Up { unavailable_for }, Some(_)) => {
                    let start = open
                        .take()
                        .unwrap_or_else(|| at.saturating_sub(unavailable_for))
                        .max(floor);
                    push(&mut outages, start, at, OutageEnd::Recovered);
                    floor = floor.max(at);
                }
                (Change::Retire, Some(since)) => {
                    if let Some(start) = open.take() {
                        push(&mut outages, start, at, OutageEnd::Retired);
                    }
                    if since < at {
                        monitored.push(Interval::new(since, at));
                    }
                    watching = None;
                    floor = floor.max(at);
                }
                (Change::Return { retired_for }, Some(since)) => {
                    // Its retirement is older than the history given.
                    let retired = at.saturating_sub(retired_for).max(floor);
                    if let Some(start) = open.take() {
                        push(&mut outages, start, retired, OutageEnd::Retired);
                    }
                    if since < retired {
                        monitored.push(Interval::new(since, retired));
                    }
                    watching = Some(at.max(first_seen_at));
                    floor = floor.max(at);
                }
                (Change::Return { .. }, None) => {
                    watching = Some(at.max(first_seen_at));
                    floor = floor.max(at);
                }
                // Nothing changes while retired, and nothing retires twice.
                (Change::Down | Change::Up { .. } | Change::Retire, None) => {}
            }
        }
        if let Some(start) = open {
            push(&mut outages, start, NEVER, OutageEnd::Ongoing);
        }
        if let Some(since) = watching {
            monitored.push(Interval::new(since, NEVER));
        }
        Self::clipped(monitored, outages, until)
    }

    /// An installation's timeline: monitored while any of `servers` is;
    /// out while every one of them that is monitored is out. The servers'
    /// timelines must end at the same `until`. One sweep over their sorted
    /// ends: `n log n` in their number.
    pub fn of_installation(servers: &[Timeline], until: Timestamp) -> Self {
        // (when, change in servers monitored, change in servers out)
        let mut steps: Vec<(Timestamp, i32, i32)> = Vec::new();
        for server in servers {
            let last = server.monitored.len().saturating_sub(1);
            for (i, span) in server.monitored.iter().enumerate() {
                let goes_on = i == last && server.monitored_at_end;
                steps.push((span.start, 1, 0));
                steps.push((if goes_on { NEVER } else { span.end }, -1, 0));
            }
            for outage in &server.outages {
                let goes_on = outage.end == OutageEnd::Ongoing;
                steps.push((outage.span.start, 0, 1));
                steps.push((if goes_on { NEVER } else { outage.span.end }, 0, -1));
            }
        }
        steps.sort_unstable_by_key(|(at, _, _)| *at);
        let (mut monitored, mut outages) = (Vec::new(), Vec::new());
        let (mut watched, mut out) = (0i32, 0i32);
        let (mut watching, mut open): (Option<Timestamp>, Option<Timestamp>) = (None, None);
        let mut i = 0;
        while i < steps.len() {
            let at = steps[i].0;
            // Every change at one instant before judging it.
            while i < steps.len() && steps[i].0 == at {
                watched += steps[i].1;
                out += steps[i].2;
                i += 1;
            }
            match (watching, watched > 0) {
                (None, true) => watching = Some(at),
                (Some(since), false) => {
                    monitored.push(Interval::new(since, at));
                    watching = None;
                }
                _ => {}
            }
            match (open, watched > 0 && out >= watched) {
                (None, true) => open = Some(at),
                (Some(start), false) => {
                    let end = if watched > 0 {
                        OutageEnd::Recovered
                    } else {
                        OutageEnd::Retired
                    };
                    push(&mut outages, start, at, end);
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(start) = open {
            push(&mut outages, start, NEVER, OutageEnd::Ongoing);
        }
        if let Some(since) = watching {
            monitored.push(Interval::new(since, NEVER));
        }
        Self::clipped(monitored, outages, until)
    }

    /// Clips to `until`: what begins at or after it is dropped; an outage
    /// lasting beyond it is ongoing.
    fn clipped(mut monitored: Vec<Interval>, mut outages: Vec<Outage>, until: Timestamp) -> Self {
        // A span that begins exactly at `until` stays, empty, so that an
        // installation knows its server came (back) then.
        monitored.retain(|m| m.start <= until);
        let monitored_at_end = monitored.last().is_some_and(|m| m.end > until);
        if let Some(last) = monitored.last_mut() {
            last.end = last.end.min(until);
        }
        outages.retain(|o| o.span.start < until);
        if let Some(last) = outages.last_mut()
            && last.span.end > until
        {
            last.span.end = until;
            last.end = OutageEnd::Ongoing;
        }
        Self {
            until,
            monitored,
            monitored_at_end,
            outages,
        }
    }

    /// The instant it ends at.
    pub fn until(&self) -> Timestamp {
        self.until
    }

    /// When it was monitored (a server: from first seen on, except while
    /// retired): sorted, disjoint, ending by [`Timeline::until`].
    pub fn monitored(&self) -> &[Interval] {
        match self.monitored.split_last() {
            Some((last, before)) if last.is_empty() => before,
            _ => &self.monitored,
        }
    }

    /// Its outages: sorted, disjoint, within the monitored time.
    pub fn outages(&self) -> &[Outage] {
        &self.outages
    }
}

fn push(outages: &mut Vec<Outage>, start: Timestamp, end: Timestamp, how: OutageEnd) {
    if start < end {
        outages.push(Outage {
            span: Interval::new(start, end),
            end: how,
        });
    }
}

/// A recording server's outages before `until` ([`Timeline::of_server`]'s).
pub fn server_outages<'a>(
    server: &RecordingServerId,
    first_seen_at: Timestamp,
    history: impl IntoIterator<Item = &'a HistoryEvent>,
    until: Timestamp,
) -> Vec<Outage> {
    Timeline::of_server(server, first_seen_at, history, until).outages
}

#[cfg(test)]
mod tests;
