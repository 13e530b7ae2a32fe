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
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn t(hours: f64) -> Timestamp {
        // Whole minutes, so the float is exact enough.
        Timestamp::from_millis((hours * 60.0).round() as i64 * 60_000)
    }

    fn hours(h: f64) -> Duration {
        Duration::from_millis((h * H as f64) as u64)
    }

    fn rs(id: &str) -> RecordingServerId {
        RecordingServerId::new(id).expect("id")
    }

    fn event(server: &str, at: f64, kind: HistoryKind) -> HistoryEvent {
        HistoryEvent {
            at: t(at),
            server: rs(server),
            kind,
        }
    }

    fn down(server: &str, at: f64) -> HistoryEvent {
        event(server, at, HistoryKind::BecameUnavailable { missed: 3 })
    }

    fn up(server: &str, at: f64, after: f64) -> HistoryEvent {
        event(
            server,
            at,
            HistoryKind::Recovered {
                unavailable_for: hours(after),
                missed: 3,
            },
        )
    }

    fn retire(server: &str, at: f64) -> HistoryEvent {
        event(server, at, HistoryKind::Decommissioned)
    }

    fn back(server: &str, at: f64, after: f64) -> HistoryEvent {
        event(
            server,
            at,
            HistoryKind::Recommissioned {
                decommissioned_for: hours(after),
            },
        )
    }

    fn outage(start: f64, end: f64, how: OutageEnd) -> Outage {
        Outage {
            span: Interval::new(t(start), t(end)),
            end: how,
        }
    }

    fn span(start: f64, end: f64) -> Interval {
        Interval::new(t(start), t(end))
    }

    use OutageEnd::{Ongoing, Recovered, Retired};

    #[test]
    fn a_server_is_down_from_the_verdict_to_the_recovery_in_any_order() {
        let history = vec![
            event("a", 0.0, HistoryKind::FirstSeen),
            down("a", 2.0),
            down("b", 2.5),
            up("a", 3.0, 1.0),
            down("a", 10.0),
            up("a", 11.0, 1.0),
        ];
        let expected = vec![outage(2.0, 3.0, Recovered), outage(10.0, 11.0, Recovered)];
        assert_eq!(
            server_outages(&rs("a"), t(0.0), &history, t(24.0)),
            expected
        );
        let newest_first: Vec<_> = history.iter().rev().cloned().collect();
        let a = Timeline::of_server(&rs("a"), t(0.0), &newest_first, t(24.0));
        assert_eq!(a.outages(), expected);
        assert_eq!(a.monitored(), [span(0.0, 24.0)]);
        assert_eq!(a.until(), t(24.0));
        assert_eq!(
            server_outages(&rs("b"), t(0.0), &history, t(24.0)),
            vec![outage(2.5, 24.0, Ongoing)],
            "still open: ends at `until`, ongoing"
        );
    }

    #[test]
    fn the_end_clips_and_later_events_are_ignored() {
        let history = [down("a", 20.0), up("a", 26.0, 6.0), down("a", 30.0)];
        assert_eq!(
            server_outages(&rs("a"), t(0.0), &history, t(24.0)),
            vec![outage(20.0, 24.0, Ongoing)],
            "recovered only after the end"
        );
        assert_eq!(
            server_outages(&rs("a"), t(0.0), &history, t(48.0)),
            vec![outage(20.0, 26.0, Recovered), outage(30.0, 48.0, Ongoing)]
        );
        assert_eq!(
            server_outages(&rs("a"), t(0.0), &history, t(20.0)),
            vec![],
            "begins at the end: outside"
        );
        assert_eq!(
            Timeline::of_server(&rs("a"), t(30.0), &history, t(24.0)).monitored(),
            [],
            "first seen after the end"
        );
    }

    #[test]
    fn a_recovery_without_its_start_reaches_back_by_its_length() {
        // History given from 12:00 only; the outage began at 09:00.
        let history = [up("a", 13.0, 4.0), down("a", 15.0), up("a", 16.0, 1.0)];
        assert_eq!(
            server_outages(&rs("a"), t(0.0), &history, t(24.0)),
            vec![outage(9.0, 13.0, Recovered), outage(15.0, 16.0, Recovered)]
        );
        // A recovery reported after the end, of an outage begun before it.
        assert_eq!(
            server_outages(&rs("a"), t(0.0), &[up("a", 30.0, 8.0)], t(24.0)),
            vec![outage(22.0, 24.0, Ongoing)]
        );
        // Never back before the previous recovery or the first sighting.
        assert_eq!(
            server_outages(
                &rs("a"),
                t(1.0),
                &[up("a", 2.0, 5.0), up("a", 4.0, 9.0)],
                t(24.0)
            ),
            vec![outage(1.0, 2.0, Recovered), outage(2.0, 4.0, Recovered)]
        );
        assert_eq!(
            server_outages(&rs("a"), t(0.0), &[up("a", 2.0, 0.0)], t(24.0)),
            vec![]
        );
    }

    #[test]
    fn nothing_before_first_seen_and_repeated_verdicts_change_nothing() {
        let history = [down("a", 1.0), down("a", 2.0), up("a", 5.0, 4.0)];
        assert_eq!(
            server_outages(&rs("a"), t(3.0), &history, t(24.0)),
            vec![outage(3.0, 5.0, Recovered)]
        );
        assert_eq!(
            server_outages(&rs("a"), t(0.0), &history, t(24.0)),
            vec![outage(1.0, 5.0, Recovered)]
        );
        // Down and back at one instant, listed the other way round.
        let history = [up("a", 4.0, 0.0), down("a", 4.0)];
        assert_eq!(server_outages(&rs("a"), t(0.0), &history, t(24.0)), vec![]);
    }

    #[test]
    fn a_retired_server_is_not_monitored_and_its_outage_ends_retired() {
        let history = [
            down("a", 5.0),
            retire("a", 8.0),
            down("a", 9.0), // not while retired
            back("a", 12.0, 4.0),
            down("a", 20.0),
            retire("a", 22.0),
        ];
        let a = Timeline::of_server(&rs("a"), t(0.0), &history, t(24.0));
        assert_eq!(a.monitored(), [span(0.0, 8.0), span(12.0, 20.0 + 2.0)]);
        assert_eq!(
            a.outages(),
            [outage(5.0, 8.0, Retired), outage(20.0, 22.0, Retired)]
        );
        // Its retirement older than the history: the return reaches back.
        let history = [down("a", 2.0), back("a", 12.0, 4.0)];
        let a = Timeline::of_server(&rs("a"), t(0.0), &history, t(24.0));
        assert_eq!(a.monitored(), [span(0.0, 8.0), span(12.0, 24.0)]);
        assert_eq!(a.outages(), [outage(2.0, 8.0, Retired)]);
        // Retired before the period's end and still retired.
        let history = [retire("a", 12.0)];
        let a = Timeline::of_server(&rs("a"), t(0.0), &history, t(24.0));
        assert_eq!(a.monitored(), [span(0.0, 12.0)]);
    }

    fn server(monitored: &[(f64, f64)], outages: Vec<Outage>, until: f64) -> Timeline {
        let monitored: Vec<Interval> = monitored.iter().map(|&(s, e)| span(s, e)).collect();
        let mut changes = Vec::new();
        let mut retired_at = None;
        for m in &monitored {
            if let Some(r) = retired_at {
                changes.push((
                    m.start,
                    Change::Return {
                        retired_for: m.start.since(r),
                    },
                ));
            }
            if m.end < t(until) {
                changes.push((m.end, Change::Retire));
                retired_at = Some(m.end);
            }
        }
        for o in &outages {
            changes.push((o.span.start, Change::Down));
            match o.end {
                Recovered => changes.push((
                    o.span.end,
                    Change::Up {
                        unavailable_for: o.span.length(),
                    },
                )),
                Retired | Ongoing => {}
            }
        }
        let first = monitored.first().map_or(t(until), |m| m.start);
        let timeline = Timeline::from_changes(&mut changes, first, t(until));
        assert_eq!(timeline.outages(), outages, "as meant");
        assert_eq!(timeline.monitored(), monitored, "as meant");
        timeline
    }

    #[test]
    fn an_installation_is_down_while_all_its_servers_are() {
        let servers = [
            server(
                &[(0.0, 24.0)],
                vec![
                    outage(2.0, 3.0, Recovered),
                    outage(10.0, 11.0, Recovered),
                    outage(15.0, 24.0, Ongoing),
                ],
                24.0,
            ),
            server(
                &[(0.0, 24.0)],
                vec![
                    outage(9.0, 10.5, Recovered),
                    outage(10.75, 12.0, Recovered),
                    outage(20.0, 24.0, Ongoing),
                ],
                24.0,
            ),
        ];
        let site = Timeline::of_installation(&servers, t(24.0));
        assert_eq!(
            site.outages(),
            [
                outage(10.0, 10.5, Recovered),
                outage(10.75, 11.0, Recovered),
                outage(20.0, 24.0, Ongoing),
            ]
        );
        assert_eq!(site.monitored(), [span(0.0, 24.0)]);
        let nobody = Timeline::of_installation(&[], t(24.0));
        assert_eq!((nobody.outages(), nobody.monitored()), (&[][..], &[][..]));
        assert_eq!(
            Timeline::of_installation(&servers[..1], t(24.0)).outages(),
            servers[0].outages(),
            "one server: its outages"
        );
    }

    #[test]
    fn a_handover_at_one_instant_is_no_installation_outage() {
        let servers = [
            server(
                &[(0.0, 24.0)],
                vec![outage(2.0, 4.0, Recovered), outage(6.0, 8.0, Recovered)],
                24.0,
            ),
            server(&[(0.0, 24.0)], vec![outage(4.0, 6.0, Recovered)], 24.0),
        ];
        assert_eq!(Timeline::of_installation(&servers, t(24.0)).outages(), []);
        let servers = [
            server(&[(0.0, 24.0)], vec![outage(2.0, 4.0, Recovered)], 24.0),
            server(
                &[(0.0, 24.0)],
                vec![outage(3.0, 4.0, Recovered), outage(4.0, 5.0, Recovered)],
                24.0,
            ),
        ];
        assert_eq!(
            Timeline::of_installation(&servers, t(24.0)).outages(),
            [outage(3.0, 4.0, Recovered)]
        );
    }

    #[test]
    fn a_server_counts_for_the_installation_while_monitored() {
        // B first seen at 12:00: before, A alone decides; B's arrival ends
        // the installation's outage. B retired at 20:00 while A is out:
        // the installation is out from then.
        let servers = [
            server(
                &[(0.0, 24.0)],
                vec![outage(5.0, 6.0, Recovered), outage(10.0, 24.0, Ongoing)],
                24.0,
            ),
            server(&[(12.0, 20.0)], vec![outage(18.0, 19.0, Recovered)], 24.0),
        ];
        let site = Timeline::of_installation(&servers, t(24.0));
        assert_eq!(
            site.outages(),
            [
                outage(5.0, 6.0, Recovered),
                outage(10.0, 12.0, Recovered),
                outage(18.0, 19.0, Recovered),
                outage(20.0, 24.0, Ongoing),
            ]
        );
        // A server first seen exactly at the end ends the outage there.
        let servers = [
            server(&[(0.0, 24.0)], vec![outage(20.0, 24.0, Ongoing)], 24.0),
            server(&[], vec![], 24.0), // first seen at 24:00
        ];
        let site = Timeline::of_installation(&servers, t(24.0));
        assert_eq!(site.outages(), [outage(20.0, 24.0, Recovered)]);
        assert_eq!(site.monitored(), [span(0.0, 24.0)]);
        let site = Timeline::of_installation(&servers[..1], t(24.0));
        assert_eq!(site.outages(), [outage(20.0, 24.0, Ongoing)]);
        // Nobody seen yet: not monitored, no outage.
        let late = [server(&[(12.0, 24.0)], vec![], 24.0)];
        let site = Timeline::of_installation(&late, t(24.0));
        assert_eq!(
            (site.outages(), site.monitored()),
            (&[][..], &[span(12.0, 24.0)][..])
        );
        // Its only server retired while out: the installation's outage ends
        // retired, and it is not monitored until the server is back.
        let retired = [server(
            &[(0.0, 8.0), (12.0, 24.0)],
            vec![outage(5.0, 8.0, Retired)],
            24.0,
        )];
        let site = Timeline::of_installation(&retired, t(24.0));
        assert_eq!(site.outages(), [outage(5.0, 8.0, Retired)]);
        assert_eq!(site.monitored(), [span(0.0, 8.0), span(12.0, 24.0)]);
    }
}
