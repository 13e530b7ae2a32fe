//! An installation's detail: its servers, active conditions and history.

use crate::availability::Availability;
use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::health::{Health, HealthSummary};
use crate::store::{HistoryKind, ServerRecord};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, INTERVAL, JITTER, START};
use crate::testing::suite::{
    accept, condition, cursor_of, detail, event, heartbeat_msg, history_of, refused, report_msg,
    rs, secs, slc, sorted_events, t,
};

/// The detail: servers by id with their state, active conditions oldest
/// first, history newest first and limited to the newest events.
pub(crate) async fn installation_detail_has_servers_conditions_and_history(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;

    let empty = detail(&fx, &site).await;
    assert_eq!(
        (
            empty.summary.clone(),
            empty.servers.len(),
            empty.active_conditions.len(),
            empty.history.len()
        ),
        (HealthSummary::pending(), 0, 0, 0),
        "a new installation has nothing yet"
    );
    assert_eq!(
        Some(empty.installation.clone()),
        fx.store
            .installation(&site.slc)
            .await
            .expect("installation"),
        "the detail's installation must be the stored one"
    );

    let b1 = heartbeat_msg(&site, "rs-b", 1);
    accept(&fx, b1, "rs-b's first heartbeat").await;
    fx.advance(secs(5));
    accept(
        &fx,
        report_msg(
            &site,
            "rs-a",
            1,
            &[
                (ConditionCode::CameraUnreachable, "Camera 7", "timeout"),
                (ConditionCode::StorageFull, "D:", "100%"),
            ],
        ),
        "rs-a's first report",
    )
    .await;
    fx.advance(secs(5));
    let a2 = report_msg(
        &site,
        "rs-a",
        2,
        &[(ConditionCode::StorageFull, "D:", "100%")],
    );
    accept(&fx, a2.clone(), "rs-a's second report").await;
    fx.advance(secs(5));
    let b2 = heartbeat_msg(&site, "rs-b", 2);
    accept(&fx, b2.clone(), "rs-b's second heartbeat").await;

    let d = detail(&fx, &site).await;
    assert_eq!(
        d.servers,
        vec![
            ServerRecord {
                slc: site.slc.clone(),
                server: rs("rs-a"),
                first_seen_at: t(5),
                last_seen_at: t(10),
                interval: INTERVAL,
                cursor: cursor_of(&a2),
                availability: Availability::Available,
                next_check_at: Some(t(10).saturating_add(INTERVAL + JITTER)),
                counted_from: None,
            },
            ServerRecord {
                slc: site.slc.clone(),
                server: rs("rs-b"),
                first_seen_at: START,
                last_seen_at: t(15),
                interval: INTERVAL,
                cursor: cursor_of(&b2),
                availability: Availability::Available,
                next_check_at: Some(t(15).saturating_add(INTERVAL + JITTER)),
                counted_from: None,
            },
        ],
        "servers by id (rs-a before rs-b though heard from later), each exactly as stored"
    );
    assert_eq!(
        d.active_conditions,
        vec![condition(
            "rs-a",
            ConditionCode::StorageFull,
            "D:",
            "100%",
            t(5)
        )],
        "only STORAGE_FULL is still active"
    );
    assert_eq!(
        d.summary,
        HealthSummary {
            health: Health::Critical,
            worst: Some(ConditionCode::StorageFull),
            servers: 2,
            unavailable: 0,
            late: 0,
            active_conditions: 1,
        }
    );
    let newest = event(
        t(10),
        "rs-a",
        HistoryKind::ConditionResolved {
            code: ConditionCode::CameraUnreachable,
            subject: "Camera 7".into(),
            open_for: secs(5),
        },
    );
    assert_eq!(
        history_of(&d),
        sorted_events(vec![
            event(START, "rs-b", HistoryKind::FirstSeen),
            event(t(5), "rs-a", HistoryKind::FirstSeen),
            event(
                t(5),
                "rs-a",
                HistoryKind::ConditionOpened {
                    code: ConditionCode::CameraUnreachable,
                    subject: "Camera 7".into()
                }
            ),
            event(
                t(5),
                "rs-a",
                HistoryKind::ConditionOpened {
                    code: ConditionCode::StorageFull,
                    subject: "D:".into()
                }
            ),
            newest.clone(),
        ]),
        "the whole history"
    );
    assert_eq!(
        d.history.first(),
        Some(&newest),
        "the history is newest first"
    );
    assert_eq!(
        d.history.last(),
        Some(&event(START, "rs-b", HistoryKind::FirstSeen)),
        "the oldest event comes last"
    );

    for limit in [1u32, 2, 4] {
        let limited = fx
            .store
            .installation_detail(&site.reseller, &site.slc, limit)
            .await
            .expect("installation_detail")
            .expect("the reseller's own installation");
        assert_eq!(
            limited.history.len(),
            limit as usize,
            "history_limit {limit}: the newest {limit} events"
        );
        assert_eq!(
            limited.history[0], newest,
            "history_limit {limit}: newest first"
        );
        assert!(
            limited.history.iter().all(|e| d.history.contains(e))
                && limited
                    .history
                    .iter()
                    .all(|e| e.at >= d.history[limit as usize - 1].at),
            "history_limit {limit}: must be the newest events: {:#?}",
            limited.history
        );
        assert_eq!(
            (
                &limited.installation,
                &limited.summary,
                &limited.servers,
                &limited.active_conditions
            ),
            (
                &d.installation,
                &d.summary,
                &d.servers,
                &d.active_conditions
            ),
            "history_limit {limit} must limit only the history"
        );
    }

    let err = refused(
        fx.carewatch
            .installation(&site.reseller, &slc("M99-C99-9999"))
            .await,
        "the detail of an SLC that does not exist",
    );
    assert!(
        matches!(err, Error::NotFound { .. }),
        "expected NotFound, got {err:?}"
    );
}
