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
    /// Carewatch began refusing the installation's messages (Care Plus
    /// ended, consent withdrawn) while it was out. If it is still out when
    /// they are accepted again, another outage begins then.
    Refused,
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
    /// `Parked`.
    Park,
    /// `Resumed`, after this long.
    Resume { parked_for: Duration },
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
            HistoryKind::Parked => Some(Change::Park),
            HistoryKind::Resumed { parked_for } => Some(Change::Resume {
                parked_for: *parked_for,
            }),
            _ => None,
        }
    }

    /// The order of changes at one instant: the order of a server's life
    /// (unavailable, back, retired, brought back), then refused and
    /// accepted again.
    fn rank(self) -> u8 {
        match self {
            Change::Down => 0,
            Change::Up { .. } => 1,
            Change::Retire => 2,
            Change::Return { .. } => 3,
            Change::Park => 4,
            Change::Resume { .. } => 5,
        }
    }
}

/// A time nothing reaches: the end of what is still going on, before
/// clipping.
const NEVER: Timestamp = Timestamp::from_millis(i64::MAX);

impl Timeline {
    /// A recording server's timeline up to `until`, from its installation's
    /// history in any order (entries of other servers, and entries other
    /// than `BecameUnavailable`, `Recovered`, `Decommissioned`,
    /// `Recommissioned`, `Parked` and `Resumed`, are ignored).
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
        let mut life = ServerLife::new(first_seen_at);
        for &(at, change) in changes.iter() {
            life.apply(at, change);
        }
        let ServerLife {
            mut monitored,
            mut outages,
            since,
            open,
            ..
        } = life;
        if let Some(start) = open {
            push(&mut outages, start, NEVER, OutageEnd::Ongoing);
        }
        if let Some(since) = since {
            monitored.push(Interval::new(since, NEVER));
        }
        Self::clipped(monitored, outages, until)
    }

    /// An installation's timeline: monitored while any of `servers` is;
    /// out while every one of them that is monitored is out. The servers'
    /// timelines must end at the same `until`. One sweep over their sorted
    /// ends: `n log n` in their number.
    pub fn of_installation(servers: &[Timeline], until: Timestamp) -> Self {
        // (when, change in servers monitored, change in servers out,
        // whether a server's outage ended because it was refused)
        let mut steps: Vec<(Timestamp, i32, i32, bool)> = Vec::new();
        for server in servers {
            let last = server.monitored.len().saturating_sub(1);
            for (i, span) in server.monitored.iter().enumerate() {
                let goes_on = i == last && server.monitored_at_end;
                steps.push((span.start, 1, 0, false));
                steps.push((if goes_on { NEVER } else { span.end }, -1, 0, false));
            }
            for outage in &server.outages {
                let goes_on = outage.end == OutageEnd::Ongoing;
                let refused = outage.end == OutageEnd::Refused;
                steps.push((outage.span.start, 0, 1, false));
                steps.push((
                    if goes_on { NEVER } else { outage.span.end },
                    0,
                    -1,
                    refused,
                ));
            }
        }
        steps.sort_unstable_by_key(|(at, ..)| *at);
        let (mut monitored, mut outages) = (Vec::new(), Vec::new());
        let (mut watched, mut out) = (0i32, 0i32);
        let (mut watching, mut open): (Option<Timestamp>, Option<Timestamp>) = (None, None);
        let mut i = 0;
        while i < steps.len() {
            let at = steps[i].0;
            let mut refused = false;
            // Every change at one instant before judging it.
            while i < steps.len() && steps[i].0 == at {
                watched += steps[i].1;
                out += steps[i].2;
                refused |= steps[i].3;
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
                    } else if refused {
                        OutageEnd::Refused
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

/// A server's state while [`Timeline::from_changes`] walks its changes.
struct ServerLife {
    first_seen_at: Timestamp,
    /// Finished monitored spans and outages.
    monitored: Vec<Interval>,
    outages: Vec<Outage>,
    /// Monitored since, if monitored (neither retired nor refused).
    since: Option<Timestamp>,
    retired: bool,
    parked: bool,
    /// Whether the history says it is unavailable (kept while refused).
    out: bool,
    /// The start of the outage going on, if monitored and out.
    open: Option<Timestamp>,
    /// No outage, retirement or refusal begins before this: first seen,
    /// or the latest recovery, retirement, return, refusal or resumption.
    floor: Timestamp,
}

impl ServerLife {
    fn new(first_seen_at: Timestamp) -> Self {
        Self {
            first_seen_at,
            monitored: Vec::new(),
            outages: Vec::new(),
            since: Some(first_seen_at),
            retired: false,
            parked: false,
            out: false,
            open: None,
            floor: first_seen_at,
        }
    }

    /// Stops monitoring at `at`: the outage going on ends there as `how`.
    fn stop(&mut self, at: Timestamp, how: OutageEnd) {
        if let Some(start) = self.open.take() {
            push(&mut self.outages, start, at, how);
        }
        if let Some(since) = self.since.take()
            && since < at
        {
            self.monitored.push(Interval::new(since, at));
        }
    }

    /// For a return or resumption at `at` whose retirement or refusal is
    /// older than the history given: stops monitoring where it began,
    /// `lasted` before (not before the floor).
    fn stop_before(&mut self, at: Timestamp, lasted: Duration, how: OutageEnd) {
        self.stop(at.saturating_sub(lasted).max(self.floor), how);
    }

    /// Monitors again from `at` if neither retired nor refused; an outage
    /// goes on from there if it is still out.
    fn restart(&mut self, at: Timestamp) {
        if self.retired || self.parked {
            return;
        }
        let at = at.max(self.first_seen_at);
        self.since = Some(at);
        if self.out {
            self.open = Some(at);
        }
    }

    fn apply(&mut self, at: Timestamp, change: Change) {
        match change {
            // Nothing changes while retired, and nothing retires twice.
            Change::Down | Change::Up { .. } | Change::Retire if self.retired => {}
            Change::Down => {
                self.out = true;
                if self.since.is_some() {
                    self.open.get_or_insert(at.max(self.floor));
                }
            }
            Change::Up { unavailable_for } => {
                if self.since.is_some() {
                    let start = self
                        .open
                        .take()
                        .unwrap_or_else(|| at.saturating_sub(unavailable_for))
                        .max(self.floor);
                    push(&mut self.outages, start, at, OutageEnd::Recovered);
                }
                self.out = false;
                self.floor = self.floor.max(at);
            }
            Change::Retire => {
                self.stop(at, OutageEnd::Retired);
                self.retired = true;
                self.out = false;
                self.floor = self.floor.max(at);
            }
            Change::Return { retired_for } => {
                if !self.retired {
                    self.stop_before(at, retired_for, OutageEnd::Retired);
                }
                self.retired = false;
                self.out = false;
                self.floor = self.floor.max(at);
                self.restart(at);
            }
            Change::Park if self.parked => {}
            Change::Park => {
                self.stop(at, OutageEnd::Refused);
                self.parked = true;
                self.floor = self.floor.max(at);
            }
            Change::Resume { parked_for } => {
                if !self.parked {
                    self.stop_before(at, parked_for, OutageEnd::Refused);
                }
                self.parked = false;
                self.floor = self.floor.max(at);
                self.restart(at);
            }
        }
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
