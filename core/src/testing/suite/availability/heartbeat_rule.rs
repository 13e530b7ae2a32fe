//! The heartbeat rule in the sweep: Late, Unavailable, recovery, conditional writes, Offline.

use super::{assert_unavailable_conditions, epoch, sweep, unavailable_verdicts};
use crate::availability::Availability;
use crate::catalogue::ConditionCode;
use crate::health::{Health, HealthSummary};
use crate::store::{AvailabilityOutcome, HistoryKind};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, INTERVAL, JITTER, START};
use crate::testing::suite::{
    beat, conditions_of, count_history, detail, event, history_of, overview_all, report, secs,
    server, sorted_events, t,
};

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

    let changes = unavailable_verdicts(&due, now);

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
