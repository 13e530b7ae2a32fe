//! Durability: everything survives reopening, and several nodes on one
//! database agree.

use std::sync::Arc;

use super::{
    accept, beat, count_history, detail, heartbeat_msg, keep_alive, open_node, overview_all,
    refused, report, report_msg, reseller_id, secs, server, t,
};
use crate::availability::{Availability, DowntimeWindow};
use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::health::Health;
use crate::installation::Product;
use crate::seal::{KeyId, MasterKey, SealError};
use crate::service::SweepReport;
use crate::store::HistoryKind;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START, Site};
use crate::time::ManualClock;

/// Everything written (resellers, tokens, installations, keys, servers,
/// conditions, history, downtime) is there after dropping every handle and
/// opening the database again; the old keys and cursors still work.
pub(crate) async fn data_survives_reopen(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let clock = Arc::new(ManualClock::new(START));
    let master_key = MasterKey::generate();
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;

    let root = reseller_id("root");
    let alpha = reseller_id("alpha");
    let operator = fx
        .carewatch
        .issue_operator_token(&root)
        .await
        .expect("operator token");
    let alpha_token = fx
        .carewatch
        .create_reseller(&alpha, "Alpha Integration")
        .await
        .expect("creating alpha");
    let a = fx.site("alpha", "M01-C01-0001").await;
    let b = fx.site("beta", "M02-C01-0001").await;
    fx.carewatch
        .set_product(
            &a.slc,
            Product::new("Husky M50", "2.1").expect("valid product"),
        )
        .await
        .expect("set_product");
    let key2 = fx
        .carewatch
        .issue_installation_key(&a.slc)
        .await
        .expect("a second key");
    fx.carewatch
        .retire_installation_key(&a.slc, KeyId::new(1))
        .await
        .expect("retiring key #1");
    let a = Site { key: key2, ..a };
    let past = DowntimeWindow::new(
        START.saturating_sub(secs(3600)),
        START.saturating_sub(secs(1800)),
    )
    .expect("a window");
    fx.store
        .record_downtime(past)
        .await
        .expect("record_downtime");

    let fan = ConditionCode::parse("FAN_FAILURE").expect("a well-formed code");
    report(
        &fx,
        &a,
        "rs-1",
        1,
        &[
            (ConditionCode::StorageFull, "D:", "100%"),
            (fan.clone(), "PSU 2", "fan stopped"),
        ],
    )
    .await;
    beat(&fx, &a, "rs-2", 1).await;
    beat(&fx, &b, "rs-1", 1).await;
    // The service runs (ticking, as its maintenance loop does) for 185 s:
    // a's servers report every minute, b's server is silent.
    let mut last_a = None;
    for sequence in 2..=4 {
        keep_alive(&fx, secs(60)).await;
        let message = heartbeat_msg(&a, "rs-1", sequence);
        accept(&fx, message.clone(), "a's rs-1 heartbeat").await;
        beat(&fx, &a, "rs-2", sequence).await;
        last_a = Some(message);
    }
    let last_a = last_a.expect("a's last heartbeat");
    keep_alive(&fx, secs(5)).await;
    assert_eq!(fx.carewatch.now(), t(185));

    let resellers = fx.carewatch.resellers().await.expect("resellers");
    let overview_alpha = overview_all(&fx, &a.reseller, true).await;
    let overview_beta = overview_all(&fx, &b.reseller, true).await;
    let detail_a = detail(&fx, &a).await;
    let detail_b = detail(&fx, &b).await;
    assert_eq!(detail_b.summary.health, Health::Offline);
    assert_eq!(detail_a.summary.health, Health::Critical);
    let keys_a = fx.store.installation_keys(&a.slc).await.expect("keys");
    let keys_b = fx.store.installation_keys(&b.slc).await.expect("keys");
    assert_eq!(keys_a.len(), 2);
    let installation_a = fx.store.installation(&a.slc).await.expect("installation");
    let downtime = fx
        .store
        .downtime(crate::time::Timestamp::EPOCH)
        .await
        .expect("downtime");
    assert_eq!(downtime.windows, vec![past]);
    let operator_hash = fx
        .store
        .operator_token(&root)
        .await
        .expect("operator token");
    let alpha_hash = fx
        .store
        .reseller_token(&alpha)
        .await
        .expect("reseller token");

    // Drop every handle: the service, and the store it shares. Reopening
    // at once (no clock movement) records no downtime.
    drop(fx);
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;

    assert_eq!(
        fx.carewatch.resellers().await.expect("resellers"),
        resellers,
        "resellers"
    );
    assert_eq!(
        overview_all(&fx, &a.reseller, true).await,
        overview_alpha,
        "alpha's overview"
    );
    assert_eq!(
        overview_all(&fx, &b.reseller, true).await,
        overview_beta,
        "beta's overview"
    );
    assert_eq!(
        detail(&fx, &a).await,
        detail_a,
        "a's detail (servers, conditions, history)"
    );
    assert_eq!(
        detail(&fx, &b).await,
        detail_b,
        "b's detail (unavailability, history)"
    );
    assert_eq!(
        fx.store.installation_keys(&a.slc).await.expect("keys"),
        keys_a,
        "a's keys"
    );
    assert_eq!(
        fx.store.installation_keys(&b.slc).await.expect("keys"),
        keys_b,
        "b's keys"
    );
    assert_eq!(
        fx.store.installation(&a.slc).await.expect("installation"),
        installation_a
    );
    assert_eq!(
        fx.store
            .downtime(crate::time::Timestamp::EPOCH)
            .await
            .expect("downtime"),
        downtime,
        "downtime windows (reopening at once adds none)"
    );
    assert_eq!(
        fx.store
            .operator_token(&root)
            .await
            .expect("operator token"),
        operator_hash
    );
    assert_eq!(
        fx.store
            .reseller_token(&alpha)
            .await
            .expect("reseller token"),
        alpha_hash
    );
    assert_eq!(
        fx.carewatch
            .authenticate_operator(&operator.token, None)
            .await
            .expect("the operator token must still work"),
        root
    );
    assert_eq!(
        fx.carewatch
            .authenticate_reseller(&alpha_token.token, None)
            .await
            .expect("alpha's token must still work"),
        alpha
    );

    // Cursors survive: a retry is still a duplicate, an old sequence still stale.
    let retry = fx
        .carewatch
        .ingest(last_a)
        .await
        .expect("a retry of the last message before the reopen");
    assert!(
        retry.duplicate,
        "the stored cursor (sequence and digest) must survive reopening"
    );
    let err = refused(
        fx.carewatch.ingest(heartbeat_msg(&a, "rs-1", 1)).await,
        "an old sequence number after reopening",
    );
    assert!(
        matches!(
            err,
            Error::Replayed {
                sequence: 1,
                last_accepted: 4,
                ..
            }
        ),
        "expected Replayed(1, last accepted 4), got {err:?}"
    );
    // Keys survive: the active key opens, the retired one does not.
    beat(&fx, &a, "rs-1", 5).await;
    let retired = Site {
        key: fx
            .master_key
            .unwrap_key(&a.slc, &keys_a[0].wrapped)
            .expect("the stored key #1 unwraps under the same master key"),
        ..a.clone()
    };
    let err = refused(
        fx.carewatch
            .ingest(heartbeat_msg(&retired, "rs-1", 6))
            .await,
        "a message under the key retired before the reopen",
    );
    assert!(
        matches!(err, Error::CannotDecrypt { reason: SealError::UnknownKey(id), .. } if id == KeyId::new(1)),
        "key #1 must stay retired, got {err:?}"
    );
    // b's unavailability survives: its next message is a recovery.
    beat(&fx, &b, "rs-1", 2).await;
    let d = detail(&fx, &b).await;
    assert_eq!(server(&d, "rs-1").availability, Availability::Available);
    assert_eq!(
        count_history(&d, |k| matches!(
            k,
            HistoryKind::Recovered { missed: 3, .. }
        )),
        1,
        "b's recovery after the reopen must be recorded: {:#?}",
        d.history
    );
    // The check schedule survives: one interval later, everybody is late.
    fx.advance(secs(62));
    assert_eq!(
        fx.carewatch.sweep().await.expect("sweep"),
        SweepReport {
            evaluated: 3,
            installations_changed: 2
        },
        "a's two servers and b's server are due 62 s after their last messages; \
         a (Critical) and b (Healthy) both change"
    );
}

/// Two service nodes on one database (same clock and master key) see the
/// same data: messages for the same servers interleaved across both, a
/// retry through the other node applied once, races decided by the store.
pub(crate) async fn two_nodes_on_one_database_agree(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let clock = Arc::new(ManualClock::new(START));
    let master_key = MasterKey::generate();
    let n1 = open_node(db.as_ref(), clock.clone(), master_key.clone(), "node-1").await;
    let n2 = open_node(db.as_ref(), clock.clone(), master_key.clone(), "node-2").await;
    let site = n1.site("alpha", "M01-C01-0001").await;
    let other = n2.site("alpha", "M01-C01-0002").await;

    beat(&n1, &site, "rs-1", 1).await;
    beat(&n2, &site, "rs-2", 1).await;
    n1.advance(secs(10));
    report(
        &n2,
        &site,
        "rs-1",
        2,
        &[(ConditionCode::CameraUnreachable, "Camera 7", "timeout")],
    )
    .await;
    report(
        &n1,
        &other,
        "rs-1",
        1,
        &[(ConditionCode::LicenseOveruse, "", "12/10")],
    )
    .await;
    n1.advance(secs(10));
    beat(&n1, &site, "rs-2", 2).await;
    beat(&n2, &site, "rs-1", 3).await;
    n1.advance(secs(5));
    let both = [
        (ConditionCode::CameraUnreachable, "Camera 7", "timeout"),
        (ConditionCode::StorageFull, "D:", "100%"),
    ];
    let latest = report_msg(&site, "rs-1", 4, &both);
    let ack = accept(&n1, latest.clone(), "report 4 through node 1").await;
    n1.advance(secs(1));
    let retry = n2
        .carewatch
        .ingest(latest)
        .await
        .expect("the retry through node 2 must be acknowledged");
    assert!(
        retry.duplicate,
        "a retry through the other node is a duplicate"
    );
    let err = refused(
        n2.carewatch.ingest(heartbeat_msg(&site, "rs-1", 3)).await,
        "an old sequence number through node 2",
    );
    assert!(
        matches!(
            err,
            Error::Replayed {
                sequence: 3,
                last_accepted: 4,
                ..
            }
        ),
        "node 2 must see the sequence node 1 accepted, got {err:?}"
    );

    let d1 = detail(&n1, &site).await;
    let d2 = detail(&n2, &site).await;
    assert_eq!(d1, d2, "both nodes must show the same detail");
    assert_eq!(
        (
            server(&d1, "rs-1").last_seen_at,
            server(&d1, "rs-1").cursor.sequence
        ),
        (ack.received_at, 4),
        "rs-1's last seen is its latest message, whichever node took it"
    );
    assert_eq!(server(&d1, "rs-2").last_seen_at, t(20));
    assert_eq!(
        count_history(&d1, |k| matches!(
            k,
            HistoryKind::ConditionOpened {
                code: ConditionCode::StorageFull,
                ..
            }
        )),
        1,
        "the retried report was applied once"
    );
    assert_eq!(
        count_history(&d1, |k| matches!(
            k,
            HistoryKind::ConditionOpened {
                code: ConditionCode::CameraUnreachable,
                ..
            }
        )),
        1,
        "CAMERA_UNREACHABLE, in two reports through two nodes, was opened once"
    );
    assert_eq!(detail(&n1, &other).await, detail(&n2, &other).await);
    let o1 = overview_all(&n1, &site.reseller, true).await;
    assert_eq!(
        o1,
        overview_all(&n2, &site.reseller, true).await,
        "both nodes' overviews"
    );
    assert_eq!(
        o1.rows
            .iter()
            .map(|r| (r.slc.clone(), r.last_seen_at))
            .collect::<Vec<_>>(),
        vec![
            (site.slc.clone(), Some(ack.received_at)),
            (other.slc.clone(), Some(t(10)))
        ]
    );

    // The same report through both nodes at once: one applies it.
    n1.advance(secs(5));
    let resolve = report_msg(&site, "rs-1", 5, &both[1..]);
    let (r1, r2) = tokio::join!(
        n1.carewatch.ingest(resolve.clone()),
        n2.carewatch.ingest(resolve)
    );
    let (r1, r2) = (
        r1.expect("report 5 through node 1"),
        r2.expect("report 5 through node 2"),
    );
    assert!(
        r1.duplicate != r2.duplicate,
        "exactly one node must apply a report sent through both at once: {r1:?} / {r2:?}"
    );
    let d = detail(&n1, &site).await;
    assert_eq!(
        count_history(&d, |k| matches!(
            k,
            HistoryKind::ConditionResolved {
                code: ConditionCode::CameraUnreachable,
                ..
            }
        )),
        1,
        "CAMERA_UNREACHABLE resolved once"
    );

    // Two different messages racing: the newer one always wins.
    n1.advance(secs(5));
    let (r7, r6) = tokio::join!(
        n1.carewatch.ingest(heartbeat_msg(&site, "rs-1", 7)),
        n2.carewatch.ingest(heartbeat_msg(&site, "rs-1", 6))
    );
    let r7 = r7.expect("sequence 7 is the newest and must be accepted");
    assert!(!r7.duplicate);
    if let Err(err) = r6 {
        assert!(
            matches!(
                err,
                Error::Replayed {
                    sequence: 6,
                    last_accepted: 7,
                    ..
                }
            ),
            "sequence 6 may only lose to 7, as Replayed, got {err:?}"
        );
    }
    let d = detail(&n2, &site).await;
    assert_eq!(
        (
            server(&d, "rs-1").cursor.sequence,
            server(&d, "rs-1").last_seen_at
        ),
        (7, r7.received_at),
        "the newest sequence must be stored, whatever the order"
    );

    // One node's sweep serves both.
    n1.advance(secs(182));
    assert_eq!(
        n1.carewatch.sweep().await.expect("node 1's sweep"),
        SweepReport {
            evaluated: 3,
            installations_changed: 2
        },
        "node 1 finds all three servers due and both installations changed"
    );
    assert_eq!(
        n2.carewatch.sweep().await.expect("node 2's sweep"),
        SweepReport {
            evaluated: 0,
            installations_changed: 0
        },
        "node 2 must find the work already done"
    );
    let d1 = detail(&n1, &site).await;
    assert_eq!(
        d1,
        detail(&n2, &site).await,
        "both nodes' detail after the sweep"
    );
    assert_eq!(d1.summary.health, Health::Offline);
    assert_eq!(
        overview_all(&n1, &site.reseller, false).await,
        overview_all(&n2, &site.reseller, false).await,
        "both nodes' overview after the sweep"
    );
}
