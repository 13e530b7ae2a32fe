//! Timelines built from hand-made histories and server timelines: a
//! server's outages and monitored time, then an installation's from its
//! servers'.

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

fn park(server: &str, at: f64) -> HistoryEvent {
    event(server, at, HistoryKind::Parked)
}

fn resume(server: &str, at: f64, after: f64) -> HistoryEvent {
    event(
        server,
        at,
        HistoryKind::Resumed {
            parked_for: hours(after),
        },
    )
}

use OutageEnd::{Ongoing, Recovered, Refused, Retired};

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

#[test]
fn a_refused_server_is_not_monitored_and_an_outage_goes_on_after_it() {
    // Up when refused: nothing is down while refused, nor after it.
    let history = [park("a", 4.0), resume("a", 10.0, 6.0)];
    let a = Timeline::of_server(&rs("a"), t(0.0), &history, t(24.0));
    assert_eq!(a.monitored(), [span(0.0, 4.0), span(10.0, 24.0)]);
    assert_eq!(a.outages(), []);

    // Unavailable when refused, and still when accepted again: the refused
    // time is no outage, and the outage goes on from the resumption until
    // the server reports.
    let history = [
        down("a", 2.0),
        park("a", 4.0),
        resume("a", 10.0, 6.0),
        up("a", 12.0, 10.0),
    ];
    let a = Timeline::of_server(&rs("a"), t(0.0), &history, t(24.0));
    assert_eq!(a.monitored(), [span(0.0, 4.0), span(10.0, 24.0)]);
    assert_eq!(
        a.outages(),
        [outage(2.0, 4.0, Refused), outage(10.0, 12.0, Recovered)]
    );

    // Still refused at the end; a message admitted just before the
    // refusal was written ends the outage while refused.
    let history = [down("a", 2.0), park("a", 4.0), up("a", 5.0, 3.0)];
    let a = Timeline::of_server(&rs("a"), t(0.0), &history, t(24.0));
    assert_eq!(a.monitored(), [span(0.0, 4.0)]);
    assert_eq!(a.outages(), [outage(2.0, 4.0, Refused)]);
    let history = [
        down("a", 2.0),
        park("a", 4.0),
        up("a", 5.0, 3.0),
        resume("a", 10.0, 6.0),
    ];
    let a = Timeline::of_server(&rs("a"), t(0.0), &history, t(24.0));
    assert_eq!(a.outages(), [outage(2.0, 4.0, Refused)], "not out again");

    // Retired while refused: not monitored after the resumption either,
    // until it is brought back.
    let history = [
        park("a", 4.0),
        retire("a", 6.0),
        resume("a", 10.0, 6.0),
        back("a", 14.0, 8.0),
    ];
    let a = Timeline::of_server(&rs("a"), t(0.0), &history, t(24.0));
    assert_eq!(a.monitored(), [span(0.0, 4.0), span(14.0, 24.0)]);

    // The refusal older than the history given: the resumption reaches
    // back, and the outage open before it ends there.
    let history = [down("a", 1.0), resume("a", 10.0, 6.0)];
    let a = Timeline::of_server(&rs("a"), t(0.0), &history, t(24.0));
    assert_eq!(a.monitored(), [span(0.0, 4.0), span(10.0, 24.0)]);
    assert_eq!(
        a.outages(),
        [outage(1.0, 4.0, Refused), outage(10.0, 24.0, Ongoing)]
    );
}

#[test]
fn an_installation_whose_servers_are_refused_while_out_ends_its_outage_refused() {
    let history = [
        down("a", 2.0),
        down("b", 3.0),
        park("a", 4.0),
        park("b", 4.0),
        resume("a", 10.0, 6.0),
        resume("b", 10.0, 6.0),
        up("b", 11.0, 8.0),
    ];
    let servers: Vec<Timeline> = ["a", "b"]
        .iter()
        .map(|id| Timeline::of_server(&rs(id), t(0.0), &history, t(24.0)))
        .collect();
    let site = Timeline::of_installation(&servers, t(24.0));
    assert_eq!(site.monitored(), [span(0.0, 4.0), span(10.0, 24.0)]);
    assert_eq!(
        site.outages(),
        [outage(3.0, 4.0, Refused), outage(10.0, 11.0, Recovered)]
    );
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
            Retired | Refused | Ongoing => {}
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
