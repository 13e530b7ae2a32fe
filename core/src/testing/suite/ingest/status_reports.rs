//! Status reports: snapshots open, update and resolve conditions per
//! server, and codes this version does not know are kept as sent.

use crate::catalogue::ConditionCode;
use crate::health::{Health, HealthSummary};
use crate::store::HistoryKind;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{
    condition, conditions_of, count_history, detail, event, history_of, overview_all, report, secs,
    server, sorted_events, t,
};

/// A snapshot opens what is new and resolves what disappeared, per server;
/// the dashboard keeps when each condition opened and closed.
pub(crate) async fn status_snapshot_opens_and_resolves_conditions(
    backend: &(impl TestBackend + ?Sized),
) {
    use ConditionCode::{
        CameraUnreachable as Camera, LicenseOveruse as License, StorageFull as Storage,
    };
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;

    report(
        &fx,
        &site,
        "rs-1",
        1,
        &[
            (Camera, "Camera 7", "timeout"),
            (License, "", "12 cameras, 10 licenses"),
        ],
    )
    .await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        conditions_of(&d),
        vec![
            condition("rs-1", Camera, "Camera 7", "timeout", START),
            condition("rs-1", License, "", "12 cameras, 10 licenses", START),
        ],
        "the first snapshot opens both conditions"
    );
    assert_eq!(
        d.summary,
        HealthSummary {
            health: Health::Attention,
            worst: Some(Camera),
            servers: 1,
            unavailable: 0,
            late: 0,
            active_conditions: 2,
        },
        "two warnings: Attention, CAMERA_UNREACHABLE worst"
    );

    fx.advance(secs(30));
    report(
        &fx,
        &site,
        "rs-1",
        2,
        &[(Camera, "Camera 7", "timeout"), (Storage, "D:", "100%")],
    )
    .await;
    report(&fx, &site, "rs-2", 1, &[(Camera, "Camera 7", "no route")]).await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        conditions_of(&d),
        vec![
            condition("rs-1", Camera, "Camera 7", "timeout", START),
            condition("rs-1", Storage, "D:", "100%", t(30)),
            condition("rs-2", Camera, "Camera 7", "no route", t(30)),
        ],
        "LICENSE_OVERUSE resolved, STORAGE_FULL opened, rs-2's own CAMERA_UNREACHABLE opened"
    );
    assert_eq!(
        (
            d.summary.health,
            d.summary.worst.clone(),
            d.summary.active_conditions,
            d.summary.servers
        ),
        (Health::Critical, Some(Storage), 3, 2),
        "STORAGE_FULL is critical"
    );

    fx.advance(secs(60));
    report(&fx, &site, "rs-1", 3, &[]).await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        conditions_of(&d),
        vec![condition("rs-2", Camera, "Camera 7", "no route", t(30))],
        "rs-1's all-clear resolves rs-1's conditions only, not rs-2's with the same code and subject"
    );
    assert_eq!(
        (
            d.summary.health,
            d.summary.worst.clone(),
            d.summary.active_conditions
        ),
        (Health::Attention, Some(Camera), 1)
    );

    fx.advance(secs(10));
    report(&fx, &site, "rs-2", 2, &[]).await;
    let d = detail(&fx, &site).await;
    assert!(
        d.active_conditions.is_empty(),
        "everything is resolved: {d:?}"
    );
    assert_eq!(
        d.summary,
        HealthSummary {
            health: Health::Healthy,
            worst: None,
            servers: 2,
            unavailable: 0,
            late: 0,
            active_conditions: 0,
        }
    );
    let resolved =
        |code: ConditionCode, subject: &str, open_for: u64| HistoryKind::ConditionResolved {
            code,
            subject: subject.into(),
            open_for: secs(open_for),
        };
    let opened = |code: ConditionCode, subject: &str| HistoryKind::ConditionOpened {
        code,
        subject: subject.into(),
    };
    assert_eq!(
        history_of(&d),
        sorted_events(vec![
            event(START, "rs-1", HistoryKind::FirstSeen),
            event(START, "rs-1", opened(Camera, "Camera 7")),
            event(START, "rs-1", opened(License, "")),
            event(t(30), "rs-1", resolved(License, "", 30)),
            event(t(30), "rs-1", opened(Storage, "D:")),
            event(t(30), "rs-2", HistoryKind::FirstSeen),
            event(t(30), "rs-2", opened(Camera, "Camera 7")),
            event(t(90), "rs-1", resolved(Camera, "Camera 7", 90)),
            event(t(90), "rs-1", resolved(Storage, "D:", 60)),
            event(t(100), "rs-2", resolved(Camera, "Camera 7", 70)),
        ]),
        "the history must record each opening and resolution with its time and duration"
    );
    assert!(
        overview_all(&fx, &site.reseller, false)
            .await
            .rows
            .is_empty(),
        "a Healthy installation is not listed by default"
    );
}

/// A condition that stays in the snapshots stays open: a new detail text
/// updates it without reopening, resending it changes nothing.
pub(crate) async fn status_snapshot_updates_detail_without_reopening(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let camera = ConditionCode::CameraUnreachable;
    report(
        &fx,
        &site,
        "rs-1",
        1,
        &[(camera.clone(), "Camera 7", "timeout")],
    )
    .await;
    let first = detail(&fx, &site).await;

    fx.advance(secs(10));
    report(
        &fx,
        &site,
        "rs-1",
        2,
        &[(camera.clone(), "Camera 7", "connection refused")],
    )
    .await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        d.active_conditions,
        vec![condition(
            "rs-1",
            camera.clone(),
            "Camera 7",
            "connection refused",
            START
        )],
        "a new detail text must update the open condition, keeping when it opened"
    );
    assert_eq!(
        d.summary, first.summary,
        "a detail change changes no summary"
    );
    assert_eq!(
        d.history, first.history,
        "a detail change is neither a resolution nor an opening"
    );

    fx.advance(secs(10));
    report(
        &fx,
        &site,
        "rs-1",
        3,
        &[(camera.clone(), "Camera 7", "connection refused")],
    )
    .await;
    let again = detail(&fx, &site).await;
    assert_eq!(
        again.active_conditions, d.active_conditions,
        "resending the snapshot changed the conditions"
    );
    assert_eq!(
        again.history, d.history,
        "resending the snapshot added history"
    );
    assert_eq!(
        server(&again, "rs-1").last_seen_at,
        t(20),
        "but it is a sign of life"
    );
    assert_eq!(
        count_history(&again, |k| matches!(k, HistoryKind::ConditionOpened { .. })),
        1,
        "the condition was opened once"
    );
    assert_eq!(
        count_history(&again, |k| matches!(
            k,
            HistoryKind::ConditionResolved { .. }
        )),
        0,
        "the condition was never resolved"
    );
}

/// A code this version does not know is stored and shown as sent, counts as
/// a warning, and ranks below known codes.
pub(crate) async fn unknown_condition_codes_are_stored_and_shown(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let fan = ConditionCode::parse("FAN_FAILURE").expect("a well-formed code");
    assert_eq!(fan, ConditionCode::Unknown("FAN_FAILURE".into()));

    report(
        &fx,
        &site,
        "rs-1",
        1,
        &[(fan.clone(), "PSU 2", "fan stopped")],
    )
    .await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        d.active_conditions,
        vec![condition(
            "rs-1",
            fan.clone(),
            "PSU 2",
            "fan stopped",
            START
        )],
        "an unknown code must be stored and read back as sent"
    );
    assert_eq!(d.active_conditions[0].code.as_str(), "FAN_FAILURE");
    assert_eq!(
        (d.summary.health, d.summary.worst.clone()),
        (Health::Attention, Some(fan.clone())),
        "an unknown code counts as a warning and is shown as the worst condition"
    );
    assert_eq!(
        history_of(&d),
        sorted_events(vec![
            event(START, "rs-1", HistoryKind::FirstSeen),
            event(
                START,
                "rs-1",
                HistoryKind::ConditionOpened {
                    code: fan.clone(),
                    subject: "PSU 2".into(),
                },
            ),
        ]),
        "the history must hold FirstSeen and the opening of FAN_FAILURE"
    );
    let rows = overview_all(&fx, &site.reseller, false).await.rows;
    assert_eq!(
        rows.iter()
            .map(|r| r.summary.worst.clone())
            .collect::<Vec<_>>(),
        vec![Some(fan.clone())],
        "the overview must show the unknown code"
    );

    fx.advance(secs(10));
    report(
        &fx,
        &site,
        "rs-1",
        2,
        &[
            (fan.clone(), "PSU 2", "fan stopped"),
            (ConditionCode::CameraUnreachable, "Camera 1", "timeout"),
        ],
    )
    .await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        (
            d.summary.health,
            d.summary.worst.clone(),
            d.summary.active_conditions
        ),
        (Health::Attention, Some(ConditionCode::CameraUnreachable), 2),
        "a known warning outranks an unknown code"
    );

    fx.advance(secs(10));
    report(
        &fx,
        &site,
        "rs-1",
        3,
        &[
            (fan.clone(), "PSU 2", "fan stopped"),
            (ConditionCode::StorageFull, "D:", "100%"),
        ],
    )
    .await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        (d.summary.health, d.summary.worst.clone()),
        (Health::Critical, Some(ConditionCode::StorageFull))
    );
    assert!(
        d.active_conditions
            .iter()
            .any(|c| c.code == fan && c.opened_at == START),
        "FAN_FAILURE must stay open since its first report: {:?}",
        d.active_conditions
    );

    // Read back by a fresh store on the same database.
    let reopened = Fixture::open_with(db.as_ref(), fx.clock.clone(), fx.master_key.clone()).await;
    assert_eq!(
        detail(&reopened, &site).await,
        d,
        "another store on the database reads the unknown code differently"
    );
}
