//! Availability: the heartbeat rule applied by the sweep, recovery,
//! conditional writes, Offline sites and the service's own downtime.

use std::sync::Arc;
use std::time::Duration;

use super::{
    beat, conditions_of, count_history, detail, event, history_of, keep_alive, overview_all,
    report, secs, server, sorted_events, t,
};
use crate::availability::{Availability, DowntimeWindow};
use crate::catalogue::ConditionCode;
use crate::condition::ConditionRecord;
use crate::health::{Health, HealthSummary};
use crate::liveness::{LivenessMark, MarkReason};
use crate::seal::MasterKey;
use crate::service::SweepReport;
use crate::store::{AvailabilityChange, AvailabilityOutcome, DowntimeEpoch, HistoryKind};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, INTERVAL, JITTER, START};
use crate::time::{Clock, ManualClock, Timestamp};

/// Runs a sweep and checks what it reports.
async fn sweep(fx: &Fixture, evaluated: usize, installations_changed: usize, when: &str) {
    let report = fx
        .carewatch
        .sweep()
        .await
        .unwrap_or_else(|e| panic!("sweep {when}: {e}"));
    assert_eq!(
        report,
        SweepReport {
            evaluated,
            installations_changed
        },
        "sweep {when}: servers evaluated / installations changed"
    );
}

/// Checks an installation's active conditions are exactly one
/// `SERVER_UNAVAILABLE` per listed server, opened at the given instant.
#[track_caller]
fn assert_unavailable_conditions(
    conditions: &[ConditionRecord],
    expected: &[(&str, Timestamp)],
    what: &str,
) {
    let got: Vec<_> = conditions
        .iter()
        .map(|c| {
            (
                c.server.as_str().to_owned(),
                c.code.clone(),
                c.subject.clone(),
                c.opened_at,
                c.resolved_at,
            )
        })
        .collect();
    let mut want: Vec<_> = expected
        .iter()
        .map(|(server, since)| {
            (
                (*server).to_owned(),
                ConditionCode::ServerUnavailable,
                (*server).to_owned(),
                *since,
                None,
            )
        })
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    want.sort();
    assert_eq!(
        got_sorted, want,
        "{what}: one active SERVER_UNAVAILABLE per unavailable server, about that server, \
         opened when it became unavailable"
    );
}

/// One heartbeat, then silence: Available until last + I + jitter, Late
/// (1, then 2) after that, Unavailable since last + 3·I once last + 3·I +
/// jitter has passed, with a derived condition and a history entry.
pub(crate) async fn missed_heartbeats_make_server_late_then_unavailable(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    beat(&fx, &site, "rs-1", 1).await;
    let healthy = detail(&fx, &site).await;

    fx.advance(secs(61));
    sweep(&fx, 0, 0, "61 s after the heartbeat").await;
    assert_eq!(
        detail(&fx, &site).await,
        healthy,
        "nothing is missed 61 s after a heartbeat"
    );

    fx.advance(secs(1));
    sweep(&fx, 1, 1, "62 s after the heartbeat").await;
    let d = detail(&fx, &site).await;
    let s = server(&d, "rs-1");
    assert_eq!(
        (s.availability, s.next_check_at, s.last_seen_at),
        (Availability::Late { missed: 1 }, Some(t(122)), START),
        "at last + I + jitter one heartbeat is missed; next check at last + 2·I + jitter"
    );
    assert_eq!(
        d.summary,
        HealthSummary {
            health: Health::Attention,
            worst: None,
            servers: 1,
            unavailable: 0,
            late: 1,
            active_conditions: 0,
        },
        "a late server needs attention"
    );
    let rows = overview_all(&fx, &site.reseller, false).await.rows;
    assert_eq!(
        rows.iter()
            .map(|r| (r.slc.clone(), r.summary.health, r.last_seen_at))
            .collect::<Vec<_>>(),
        vec![(site.slc.clone(), Health::Attention, Some(START))],
        "the overview lists the installation as Attention"
    );
    assert_eq!(d.history, healthy.history, "being late is not history");

    fx.advance(secs(119));
    sweep(&fx, 1, 0, "181 s after the heartbeat").await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        (
            server(&d, "rs-1").availability,
            server(&d, "rs-1").next_check_at
        ),
        (Availability::Late { missed: 2 }, Some(t(182))),
        "two heartbeats missed, the third not yet (jitter tolerance)"
    );
    assert_eq!(d.summary.health, Health::Attention);

    fx.advance(secs(1));
    sweep(&fx, 1, 1, "182 s after the heartbeat").await;
    let d = detail(&fx, &site).await;
    let s = server(&d, "rs-1");
    assert_eq!(
        (s.availability, s.next_check_at, s.last_seen_at),
        (
            Availability::Unavailable {
                since: t(180),
                missed: 3
            },
            None,
            START
        ),
        "three heartbeats missed: Unavailable since last + 3·I, no further check"
    );
    assert_eq!(
        d.summary,
        HealthSummary {
            health: Health::Offline,
            worst: Some(ConditionCode::ServerUnavailable),
            servers: 1,
            unavailable: 1,
            late: 0,
            active_conditions: 1,
        },
        "the only server unavailable: Offline, SERVER_UNAVAILABLE worst"
    );
    assert_unavailable_conditions(&d.active_conditions, &[("rs-1", t(180))], "after 182 s");
    assert_eq!(
        history_of(&d),
        sorted_events(vec![
            event(START, "rs-1", HistoryKind::FirstSeen),
            event(t(180), "rs-1", HistoryKind::BecameUnavailable { missed: 3 }),
        ]),
        "becoming unavailable is history, dated when it became unavailable"
    );

    fx.advance(secs(600));
    sweep(&fx, 0, 0, "long after it became unavailable").await;
    assert_eq!(
        detail(&fx, &site).await,
        d,
        "an unavailable server is not evaluated again until it reports"
    );
}

/// The next message after an unavailability recovers at once: Available,
/// `SERVER_UNAVAILABLE` resolved, `Recovered` with how long and how many
/// heartbeats were missed, for a heartbeat and for a status report alike.
pub(crate) async fn recovery_resolves_unavailability_and_records_it(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    beat(&fx, &site, "rs-1", 1).await;
    beat(&fx, &site, "rs-2", 1).await;
    fx.advance(secs(182));
    sweep(&fx, 2, 1, "182 s after both heartbeats").await;
    let down = detail(&fx, &site).await;
    assert_eq!(down.summary.health, Health::Offline);
    assert_unavailable_conditions(
        &down.active_conditions,
        &[("rs-1", t(180)), ("rs-2", t(180))],
        "both servers down",
    );

    // rs-1 recovers with a heartbeat at last + 300 s.
    fx.advance(secs(118));
    let ack = beat(&fx, &site, "rs-1", 2).await;
    assert_eq!(ack.received_at, t(300));
    let d = detail(&fx, &site).await;
    let s = server(&d, "rs-1");
    assert_eq!(
        (s.availability, s.last_seen_at, s.next_check_at),
        (Availability::Available, t(300), Some(t(362))),
        "a heartbeat makes an unavailable server Available at once and schedules its next check"
    );
    assert_unavailable_conditions(&d.active_conditions, &[("rs-2", t(180))], "rs-1 recovered");
    assert_eq!(
        (
            d.summary.health,
            d.summary.unavailable,
            d.summary.worst.clone()
        ),
        (Health::Critical, 1, Some(ConditionCode::ServerUnavailable)),
        "one of two servers still down: Critical"
    );
    assert!(
        d.history.contains(&event(
            t(300),
            "rs-1",
            HistoryKind::Recovered {
                unavailable_for: secs(120),
                missed: 4
            }
        )),
        "rs-1's recovery must record 120 s unavailable (since 180 s) and 4 missed heartbeats \
         (due at 60, 120, 180, 240 s): {:#?}",
        d.history
    );

    // rs-2 recovers with a status report at last + 330 s.
    fx.advance(secs(30));
    report(
        &fx,
        &site,
        "rs-2",
        2,
        &[(ConditionCode::CameraUnreachable, "Camera 3", "timeout")],
    )
    .await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        server(&d, "rs-2").availability,
        Availability::Available,
        "a status report recovers a server too"
    );
    assert_eq!(
        conditions_of(&d)
            .iter()
            .map(|c| (c.server.as_str(), c.code.clone()))
            .collect::<Vec<_>>(),
        vec![("rs-2", ConditionCode::CameraUnreachable)],
        "SERVER_UNAVAILABLE must be resolved; the report's condition opened"
    );
    assert_eq!(
        d.summary,
        HealthSummary {
            health: Health::Attention,
            worst: Some(ConditionCode::CameraUnreachable),
            servers: 2,
            unavailable: 0,
            late: 0,
            active_conditions: 1,
        }
    );
    let recoveries: Vec<_> = d
        .history
        .iter()
        .filter(|e| matches!(e.kind, HistoryKind::Recovered { .. }))
        .cloned()
        .collect();
    assert_eq!(
        sorted_events(recoveries),
        sorted_events(vec![
            event(
                t(300),
                "rs-1",
                HistoryKind::Recovered {
                    unavailable_for: secs(120),
                    missed: 4
                }
            ),
            event(
                t(330),
                "rs-2",
                HistoryKind::Recovered {
                    unavailable_for: secs(150),
                    missed: 5
                }
            ),
        ]),
        "each recovery recorded once, with its own duration and missed heartbeats"
    );
    assert_eq!(
        count_history(&d, |k| matches!(k, HistoryKind::BecameUnavailable { .. })),
        2,
        "each server became unavailable once"
    );

    sweep(&fx, 0, 0, "right after both recovered").await;

    // Back in the schedule: silence makes rs-1 unavailable again.
    fx.advance(secs(152));
    sweep(&fx, 2, 1, "182 s after rs-1's recovery").await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        server(&d, "rs-1").availability,
        Availability::Unavailable {
            since: t(480),
            missed: 3
        },
        "a recovered server must be watched again"
    );
    assert_eq!(
        server(&d, "rs-2").availability,
        Availability::Late { missed: 2 },
        "rs-2 (last seen at 330 s) has missed two heartbeats at 482 s"
    );
}

/// A time-driven change computed before a message arrived must not
/// overwrite that message: `apply_availability` applies only if
/// `last_seen_at` still equals `expected_last_seen`.
pub(crate) async fn availability_change_loses_to_a_concurrent_message(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    beat(&fx, &site, "rs-1", 1).await;
    fx.advance(secs(1));
    beat(&fx, &site, "rs-2", 1).await;

    assert!(
        fx.store
            .due_servers(t(61), 10)
            .await
            .expect("due_servers")
            .is_empty(),
        "nobody is due before last + I + jitter"
    );
    let due = fx.store.due_servers(t(62), 10).await.expect("due_servers");
    assert_eq!(
        due.iter().map(|s| s.server.as_str()).collect::<Vec<_>>(),
        vec!["rs-1"],
        "a server is due at exactly its next check"
    );
    fx.advance(secs(182));
    let now = fx.carewatch.now();
    let due = fx.store.due_servers(now, 10).await.expect("due_servers");
    assert_eq!(
        due.iter()
            .map(|s| (s.server.as_str(), s.next_check_at))
            .collect::<Vec<_>>(),
        vec![("rs-1", Some(t(62))), ("rs-2", Some(t(63)))],
        "due servers, earliest check first"
    );
    let limited = fx.store.due_servers(now, 1).await.expect("due_servers");
    assert_eq!(
        limited
            .iter()
            .map(|s| s.server.as_str())
            .collect::<Vec<_>>(),
        vec!["rs-1"],
        "due_servers must honour its limit, earliest first"
    );

    let changes: Vec<AvailabilityChange> = due
        .iter()
        .map(|s| AvailabilityChange {
            slc: s.slc.clone(),
            server: s.server.clone(),
            expected_last_seen: s.last_seen_at,
            availability: Availability::Unavailable {
                since: s.last_seen_at.saturating_add(INTERVAL * 3),
                missed: 3,
            },
            next_check_at: None,
            evaluated_at: now,
        })
        .collect();

    // rs-1 reports between the evaluation and its write.
    let ack = beat(&fx, &site, "rs-1", 2).await;
    let epoch = epoch(&fx).await;
    let AvailabilityOutcome::Applied(summary_changes) = fx
        .store
        .apply_availability(&changes, epoch)
        .await
        .expect("apply_availability")
    else {
        panic!("no window was recorded: the changes must apply");
    };
    assert_eq!(
        summary_changes.len(),
        1,
        "only rs-2's change applies, changing the installation once: {summary_changes:?}"
    );
    let change = &summary_changes[0];
    assert_eq!(
        (&change.slc, &change.reseller, change.previous, change.at),
        (&site.slc, &site.reseller, Health::Healthy, now),
        "the summary change, dated when the change was evaluated"
    );
    let d = detail(&fx, &site).await;
    assert_eq!(
        change.summary, d.summary,
        "the returned summary must be the stored one"
    );
    let s1 = server(&d, "rs-1");
    assert_eq!(
        (s1.availability, s1.last_seen_at, s1.next_check_at),
        (
            Availability::Available,
            ack.received_at,
            Some(ack.received_at.saturating_add(INTERVAL + JITTER))
        ),
        "a stale availability change overwrote a newer message"
    );
    assert_eq!(
        (
            server(&d, "rs-2").availability,
            server(&d, "rs-2").next_check_at
        ),
        (
            Availability::Unavailable {
                since: t(181),
                missed: 3
            },
            None
        ),
        "the change whose expectation held must apply"
    );
    assert_eq!(
        d.summary,
        HealthSummary {
            health: Health::Critical,
            worst: Some(ConditionCode::ServerUnavailable),
            servers: 2,
            unavailable: 1,
            late: 0,
            active_conditions: 1,
        }
    );
    assert_unavailable_conditions(&d.active_conditions, &[("rs-2", t(181))], "after the race");
    assert_eq!(
        count_history(&d, |k| matches!(k, HistoryKind::BecameUnavailable { .. })),
        1,
        "only rs-2 became unavailable"
    );

    assert_eq!(
        fx.store
            .apply_availability(&changes[..1], epoch)
            .await
            .expect("apply_availability again"),
        AvailabilityOutcome::Applied(vec![]),
        "a stale change must report no summary change"
    );
    assert_eq!(
        detail(&fx, &site).await,
        d,
        "a stale change changed something"
    );
    sweep(&fx, 0, 0, "after the race").await;
}

/// Every server of a site down together is one Offline installation; one of
/// several down is Critical.
pub(crate) async fn all_servers_down_together_is_one_offline_problem(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let dark = fx.site("alpha", "M01-C01-0001").await;
    let partial = fx.site("alpha", "M01-C01-0002").await;
    let servers = ["rs-1", "rs-2", "rs-3"];
    for id in servers {
        beat(&fx, &dark, id, 1).await;
        beat(&fx, &partial, id, 1).await;
    }
    fx.advance(secs(182));
    beat(&fx, &partial, "rs-1", 2).await;
    beat(&fx, &partial, "rs-2", 2).await;
    // Due: the dark site's three servers and the partial site's silent one.
    sweep(&fx, 4, 2, "182 s later").await;

    let d = detail(&fx, &dark).await;
    assert_eq!(
        d.summary,
        HealthSummary {
            health: Health::Offline,
            worst: Some(ConditionCode::ServerUnavailable),
            servers: 3,
            unavailable: 3,
            late: 0,
            active_conditions: 3,
        },
        "all three servers down together: Offline"
    );
    assert_unavailable_conditions(
        &d.active_conditions,
        &[("rs-1", t(180)), ("rs-2", t(180)), ("rs-3", t(180))],
        "the dark site",
    );
    let p = detail(&fx, &partial).await;
    assert_eq!(
        p.summary,
        HealthSummary {
            health: Health::Critical,
            worst: Some(ConditionCode::ServerUnavailable),
            servers: 3,
            unavailable: 1,
            late: 0,
            active_conditions: 1,
        },
        "one of three servers down: Critical"
    );

    let page = overview_all(&fx, &dark.reseller, false).await;
    assert_eq!(
        page.rows
            .iter()
            .map(|r| (r.slc.clone(), r.summary.health))
            .collect::<Vec<_>>(),
        vec![
            (dark.slc.clone(), Health::Offline),
            (partial.slc.clone(), Health::Critical)
        ],
        "one row per installation: the dark site is one Offline problem, listed first"
    );
    assert_eq!(
        (
            page.totals.get(Health::Offline),
            page.totals.get(Health::Critical)
        ),
        (1, 1)
    );

    // One server of the dark site comes back: reachable again, still Critical.
    let ack = beat(&fx, &dark, "rs-2", 2).await;
    let d = detail(&fx, &dark).await;
    assert_eq!(
        (d.summary.health, d.summary.unavailable),
        (Health::Critical, 2),
        "a site with one server reporting is not Offline"
    );
    let rows = overview_all(&fx, &dark.reseller, false).await.rows;
    assert_eq!(rows[0].last_seen_at, Some(ack.received_at));
}

/// The service's own downtime does not count as missed heartbeats: after a
/// restart everybody has three full intervals to report. A server already
/// unavailable before the outage stays so, with its original `since`.
pub(crate) async fn own_downtime_does_not_count_as_missed_heartbeats(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let clock = Arc::new(ManualClock::new(START));
    let master_key = MasterKey::generate();
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    beat(&fx, &site, "rs-1", 1).await;
    beat(&fx, &site, "rs-2", 1).await;

    // The service runs for 200 s; rs-1 reports every minute, rs-2 is silent.
    for (sequence, run) in [(2, 60), (3, 60), (4, 60), (5, 20)] {
        keep_alive(&fx, secs(run)).await;
        beat(&fx, &site, "rs-1", sequence).await;
    }
    assert_eq!(fx.carewatch.now(), t(200));
    let d = detail(&fx, &site).await;
    assert_eq!(
        server(&d, "rs-2").availability,
        Availability::Unavailable {
            since: t(180),
            missed: 3
        },
        "while the service runs, rs-2's silence makes it unavailable"
    );
    assert_eq!(server(&d, "rs-1").availability, Availability::Available);
    assert_eq!(
        windows(&fx.store).await,
        vec![],
        "a service ticking every 5 s has no downtime"
    );

    // The service stops for ten intervals.
    drop(fx);
    clock.advance(INTERVAL * 10);
    let restart = t(800);
    assert_eq!(clock.now(), restart);
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;
    assert_eq!(
        windows(&fx.store).await,
        vec![DowntimeWindow::new(t(200), restart).expect("a window")],
        "the restart must record the gap since the last liveness mark as own downtime"
    );

    sweep(&fx, 1, 0, "right after the restart").await;
    let d = detail(&fx, &site).await;
    let s1 = server(&d, "rs-1");
    assert_eq!(
        (s1.availability, s1.next_check_at),
        (
            Availability::Available,
            Some(restart.saturating_add(INTERVAL + JITTER))
        ),
        "rs-1 must not be blamed for the service's downtime: Available, counted from the restart"
    );
    assert_eq!(
        server(&d, "rs-2").availability,
        Availability::Unavailable {
            since: t(180),
            missed: 3
        },
        "rs-2 was unavailable before the outage and stays so, since its original time"
    );
    assert_eq!(
        d.summary.health,
        Health::Critical,
        "only rs-2 is down: Critical, not Offline"
    );

    let after = |s: u64| restart.saturating_add(secs(s));
    fx.advance(secs(61));
    sweep(&fx, 0, 0, "61 s after the restart").await;
    fx.advance(secs(1));
    sweep(&fx, 1, 1, "62 s after the restart").await;
    assert_eq!(
        server(&detail(&fx, &site).await, "rs-1").availability,
        Availability::Late { missed: 1 },
        "the first heartbeat counted is the one due I after the restart"
    );
    fx.advance(secs(119));
    sweep(&fx, 1, 0, "181 s after the restart").await;
    assert_eq!(
        server(&detail(&fx, &site).await, "rs-1").availability,
        Availability::Late { missed: 2 },
        "not unavailable before restart + 3·I + jitter"
    );
    fx.advance(secs(1));
    sweep(&fx, 1, 1, "182 s after the restart").await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        server(&d, "rs-1").availability,
        Availability::Unavailable {
            since: after(180),
            missed: 3
        },
        "unavailable since restart + 3·I; only heartbeats due while receiving count as missed"
    );
    assert_eq!(d.summary.health, Health::Offline);
    assert!(
        d.history.contains(&event(
            after(180),
            "rs-1",
            HistoryKind::BecameUnavailable { missed: 3 }
        )),
        "rs-1's unavailability must be recorded at restart + 3·I with 3 missed: {:#?}",
        d.history
    );
    assert_eq!(
        count_history(&d, |k| matches!(k, HistoryKind::BecameUnavailable { .. })),
        2,
        "each server became unavailable exactly once"
    );
}

/// Liveness marks and downtime windows. `mark_alive` records, in the same
/// transaction, the window [`crate::liveness::gap_before`] finds given every
/// node's stored liveness; `mark_stopped` keeps a clean stop's exact time,
/// which a late-arriving older mark does not undo; every recorded window
/// changes the epoch; `downtime(after)` lists the windows ending after
/// `after`, by start; everything survives reopening.
pub(crate) async fn downtime_windows_are_stored(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let store = db.open().await;
    let at = |s: u64| START.saturating_add(secs(s));
    let window = |from: u64, to: u64| DowntimeWindow::new(at(from), at(to)).expect("a window");
    let mark = |node: &str, s: u64, reason: MarkReason| LivenessMark {
        node: node.into(),
        at: at(s),
        reason,
        tolerance: secs(3),
    };
    let recovered_since = |s: u64| MarkReason::StorageRecovered { since: at(s) };
    let empty = store.downtime(Timestamp::EPOCH).await.expect("downtime");
    assert_eq!(empty.windows, vec![]);

    for (m, expected, what) in [
        (
            mark("node-a", 0, MarkReason::Starting),
            None,
            "the first mark ever",
        ),
        (
            mark("node-a", 1, MarkReason::Running),
            None,
            "a running mark within the tolerance",
        ),
        (
            mark("node-b", 2, MarkReason::Starting),
            None,
            "node-b starts while node-a receives",
        ),
        (
            mark("node-b", 4, MarkReason::Running),
            None,
            "node-b's next mark",
        ),
    ] {
        assert_eq!(
            store.mark_alive(&m).await.expect("mark_alive"),
            expected,
            "{what}: {m:?}"
        );
    }
    store
        .mark_stopped("node-a", at(5))
        .await
        .expect("mark_stopped");
    assert_eq!(
        store
            .mark_alive(&mark("node-b", 6, MarkReason::Running))
            .await
            .expect("mark_alive"),
        None,
        "node-b keeps receiving after node-a's clean stop"
    );
    // node-b crashes after its mark at 6; node-a comes back at 20.
    assert_eq!(
        store
            .mark_alive(&mark("node-a", 20, MarkReason::Starting))
            .await
            .expect("mark_alive"),
        Some(window(6, 20)),
        "the fleet stopped receiving with node-b's last mark"
    );
    let log = store.downtime(Timestamp::EPOCH).await.expect("downtime");
    assert_eq!(log.windows, vec![window(6, 20)], "recorded with the mark");
    assert_ne!(
        log.epoch, empty.epoch,
        "a recorded window changes the epoch"
    );

    // A clean stop at 30, then a mark taken at 29 that lands late.
    store
        .mark_stopped("node-a", at(30))
        .await
        .expect("mark_stopped");
    assert_eq!(
        store
            .mark_alive(&mark("node-a", 29, MarkReason::Running))
            .await
            .expect("mark_alive"),
        None
    );
    assert_eq!(
        store
            .mark_alive(&mark("node-a", 31, MarkReason::Starting))
            .await
            .expect("mark_alive"),
        Some(window(30, 31)),
        "a restart 1 s after a clean stop: the exact stop, kept despite the older mark"
    );
    assert_eq!(
        store
            .mark_alive(&mark("node-a", 40, recovered_since(35)))
            .await
            .expect("mark_alive"),
        Some(window(35, 40)),
        "a storage outage counts from the first refused write"
    );
    let before_manual = store.downtime(Timestamp::EPOCH).await.expect("downtime");
    assert_eq!(
        before_manual.windows,
        vec![window(6, 20), window(30, 31), window(35, 40)]
    );

    store
        .record_downtime(window(100, 200))
        .await
        .expect("record_downtime");
    let after_manual = store.downtime(Timestamp::EPOCH).await.expect("downtime");
    assert_ne!(after_manual.epoch, before_manual.epoch);
    let all = vec![
        window(6, 20),
        window(30, 31),
        window(35, 40),
        window(100, 200),
    ];
    for (after, expected) in [
        (Timestamp::EPOCH, all.clone()),
        (at(19), all.clone()),
        (at(20), all[1..].to_vec()),
        (at(150), all[3..].to_vec()),
        (at(200), vec![]),
    ] {
        let log = store.downtime(after).await.expect("downtime");
        assert_eq!(
            log.windows, expected,
            "downtime({after}) must list the windows ending strictly after it, by start"
        );
        assert_eq!(log.epoch, after_manual.epoch, "the epoch ignores `after`");
    }

    drop(store);
    let store = db.open().await;
    assert_eq!(
        store
            .downtime(Timestamp::EPOCH)
            .await
            .expect("downtime after reopening"),
        after_manual,
        "downtime windows and their epoch must survive reopening"
    );
    assert_eq!(
        store
            .mark_alive(&mark("node-a", 300, MarkReason::Starting))
            .await
            .expect("mark_alive"),
        Some(window(40, 300)),
        "liveness marks must survive reopening"
    );
}

/// The service records its own downtime exactly: a restart after a crash
/// from the last liveness mark, a restart after a clean stop from the
/// moment it stopped receiving, at any length (here 2 s, shorter than the
/// liveness tolerance); messages after the stop are refused.
pub(crate) async fn restarts_record_own_downtime_exactly(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let clock = Arc::new(ManualClock::new(START));
    let master_key = MasterKey::generate();
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    beat(&fx, &site, "rs-1", 1).await;
    keep_alive(&fx, secs(10)).await;

    // A crash (no stop) 0.5 s after the last mark, back 2 s later.
    clock.advance(Duration::from_millis(500));
    drop(fx);
    clock.advance(secs(2));
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;
    assert_eq!(
        windows(&fx.store).await,
        vec![DowntimeWindow::new(t(10), clock.now()).expect("window")],
        "a crash counts from the last liveness mark"
    );

    // A clean stop 0.7 s after a mark; the process then lingers 5 s.
    keep_alive(&fx, secs(5)).await;
    clock.advance(Duration::from_millis(700));
    let stopped_at = clock.now();
    fx.carewatch.stop_receiving().await.expect("stop");
    let refused = fx.heartbeat(&site, "rs-1", 2).await;
    assert!(
        matches!(refused, Err(crate::Error::ShuttingDown)),
        "a stopped node refuses messages: {refused:?}"
    );
    clock.advance(secs(5));
    drop(fx);
    clock.advance(secs(2));
    let restarted_at = clock.now();
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;
    assert_eq!(
        windows(&fx.store).await.last().copied(),
        Some(DowntimeWindow::new(stopped_at, restarted_at).expect("window")),
        "a clean stop counts from the moment it stopped receiving, not the exit"
    );
    beat(&fx, &site, "rs-1", 2).await;
}

/// A sweep computed with old downtime windows applies nothing: the store
/// answers `DowntimeChanged` (and changes nothing) when a window was recorded
/// since, and applies with the current epoch.
pub(crate) async fn sweeps_apply_only_with_the_latest_downtime(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let ack = beat(&fx, &site, "rs-1", 1).await;
    let old = epoch(&fx).await;
    fx.advance(INTERVAL * 4);
    let now = fx.carewatch.now();
    let change = AvailabilityChange {
        slc: site.slc.clone(),
        server: rs_id("rs-1"),
        expected_last_seen: ack.received_at,
        availability: Availability::Unavailable {
            since: ack.received_at.saturating_add(INTERVAL * 3),
            missed: 3,
        },
        next_check_at: None,
        evaluated_at: now,
    };
    fx.store
        .record_downtime(DowntimeWindow::new(ack.received_at, now).expect("window"))
        .await
        .expect("record_downtime");
    let before = detail(&fx, &site).await;
    assert_eq!(
        fx.store
            .apply_availability(std::slice::from_ref(&change), old)
            .await
            .expect("apply"),
        AvailabilityOutcome::DowntimeChanged,
        "verdicts computed before a window was recorded must not apply"
    );
    assert_eq!(detail(&fx, &site).await, before, "nothing changed");
    let current = epoch(&fx).await;
    assert!(matches!(
        fx.store
            .apply_availability(&[change], current)
            .await
            .expect("apply"),
        AvailabilityOutcome::Applied(changes) if changes.len() == 1
    ));

    // Another node records a window the service has not loaded: its sweep
    // must not judge with the windows it has in memory.
    let ack = beat(&fx, &site, "rs-1", 2).await;
    let outage = DowntimeWindow::new(
        ack.received_at.saturating_add(secs(10)),
        ack.received_at.saturating_add(INTERVAL * 5),
    )
    .expect("window");
    fx.store
        .record_downtime(outage)
        .await
        .expect("record_downtime");
    fx.advance(INTERVAL * 5 + secs(10));
    fx.carewatch.sweep().await.expect("sweep");
    assert_eq!(
        server(&detail(&fx, &site).await, "rs-1").availability,
        Availability::Available,
        "the sweep must use the window another node recorded: 10 s after it, nothing is missed"
    );
}

async fn epoch(fx: &Fixture) -> DowntimeEpoch {
    fx.store
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .epoch
}

async fn windows(store: &Arc<dyn crate::store::Store>) -> Vec<DowntimeWindow> {
    store
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .windows
}

fn rs_id(id: &str) -> crate::ids::RecordingServerId {
    crate::ids::RecordingServerId::new(id).expect("valid id")
}
