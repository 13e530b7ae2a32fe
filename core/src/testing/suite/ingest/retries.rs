//! Sequence numbers on ingest: a stale one is refused as `Replayed`, a
//! retried message is acknowledged again and applied once.

use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::health::Health;
use crate::store::{HistoryKind, StatusWrite, WriteOutcome};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, INTERVAL, START, snapshot};
use crate::testing::suite::{
    accept, assert_silent, beat, condition, conditions_of, count_history, detail, heartbeat_msg,
    observable, refused, report, report_msg, secs, server, sign, t,
};

/// A sequence number at or below the last accepted one (with other bytes)
/// is refused as `Replayed`, by the facade and, in a race, by the store.
pub(crate) async fn stale_sequence_is_refused_and_changes_nothing(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    beat(&fx, &site, "rs-1", 10).await;
    report(
        &fx,
        &site,
        "rs-1",
        11,
        &[(ConditionCode::StorageFull, "D:", "100%")],
    )
    .await;
    fx.advance(secs(5));
    let before = observable(&fx, &site).await;

    let stale = [
        (heartbeat_msg(&site, "rs-1", 9), "an older heartbeat"),
        (
            heartbeat_msg(&site, "rs-1", 11),
            "a heartbeat reusing the last sequence number",
        ),
        (
            report_msg(&site, "rs-1", 11, &[]),
            "a re-sealed all-clear with the last sequence number",
        ),
        (
            report_msg(&site, "rs-1", 0, &[]),
            "an all-clear with sequence 0",
        ),
    ];
    for (message, what) in stale {
        let sequence = message.sequence;
        let err = refused(fx.carewatch.ingest(message).await, what);
        assert!(
            matches!(&err, Error::Replayed { slc, server, sequence: s, last_accepted: 11 }
                if *slc == site.slc && server.as_str() == "rs-1" && *s == sequence),
            "{what}: expected Replayed(sequence {sequence}, last accepted 11), got {err:?}"
        );
        assert_eq!(
            observable(&fx, &site).await,
            before,
            "{what} changed something"
        );
    }

    // The race the facade cannot see: its check passed, a newer message was
    // written meanwhile. The store must refuse on its own.
    let now = fx.carewatch.now();
    let outcomes = fx
        .store
        .record_signs_of_life(&[sign(&site.slc, "rs-1", 5, "old", now)])
        .await
        .expect("record_signs_of_life");
    assert_eq!(
        outcomes,
        vec![WriteOutcome::Stale { last_accepted: 11 }],
        "an older sign of life must be Stale"
    );
    for (sequence, tag) in [(11, "other bytes"), (3, "older")] {
        let outcome = fx
            .store
            .apply_status_report(&StatusWrite {
                sign: sign(&site.slc, "rs-1", sequence, tag, now),
                snapshot: snapshot(&[]),
            })
            .await
            .expect("apply_status_report");
        assert_eq!(
            outcome,
            WriteOutcome::Stale { last_accepted: 11 },
            "a status report with sequence {sequence} ({tag}) must be Stale"
        );
    }
    assert_eq!(
        observable(&fx, &site).await,
        before,
        "a stale write changed something (a stale all-clear must not resolve conditions)"
    );

    report(&fx, &site, "rs-1", 12, &[]).await;
    let d = detail(&fx, &site).await;
    assert!(
        d.active_conditions.is_empty(),
        "a newer all-clear must resolve the condition"
    );
    assert_eq!(server(&d, "rs-1").last_seen_at, fx.carewatch.now());
}

/// The same message twice: acknowledged twice, applied once. The same
/// sequence number with other bytes is `Replayed`.
pub(crate) async fn retried_message_is_acknowledged_and_applied_once(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let conditions = [(ConditionCode::CameraUnreachable, "Camera 7", "timeout")];
    let message = report_msg(&site, "rs-1", 1, &conditions);

    let first = accept(&fx, message.clone(), "the original report").await;
    let before = observable(&fx, &site).await;
    assert_eq!(
        conditions_of(&before.0),
        vec![condition(
            "rs-1",
            ConditionCode::CameraUnreachable,
            "Camera 7",
            "timeout",
            START
        )]
    );
    let mut watch = fx
        .carewatch
        .watch(&site.reseller, None, None)
        .await
        .expect("watch");

    fx.advance(secs(1));
    let retry = fx
        .carewatch
        .ingest(message.clone())
        .await
        .expect("a retried report must be acknowledged");
    assert!(
        retry.duplicate,
        "the retry must be acknowledged as a duplicate"
    );
    assert_eq!(retry.received_at, t(1));
    assert_eq!(retry.heartbeat_interval, INTERVAL);
    assert_eq!(first.received_at, START);
    let after = observable(&fx, &site).await;
    assert_eq!(after, before, "the retry was applied a second time");
    assert_eq!(
        count_history(&after.0, |k| matches!(
            k,
            HistoryKind::ConditionOpened { .. }
        )),
        1,
        "the condition must be opened once"
    );
    assert_silent(&mut watch, "a retry").await;

    let err = refused(
        fx.carewatch
            .ingest(report_msg(&site, "rs-1", 1, &conditions))
            .await,
        "the same report sealed again (other bytes, same sequence)",
    );
    assert!(
        matches!(
            err,
            Error::Replayed {
                sequence: 1,
                last_accepted: 1,
                ..
            }
        ),
        "the same sequence number with other bytes must be Replayed, got {err:?}"
    );

    let beat_msg = heartbeat_msg(&site, "rs-1", 2);
    accept(&fx, beat_msg.clone(), "a heartbeat").await;
    let before = observable(&fx, &site).await;
    fx.advance(secs(1));
    let ack = fx
        .carewatch
        .ingest(beat_msg)
        .await
        .expect("a retried heartbeat must be acknowledged");
    assert!(ack.duplicate, "a retried heartbeat is a duplicate");
    assert_eq!(
        observable(&fx, &site).await,
        before,
        "a retried heartbeat was applied again"
    );

    // The store's own guarantee, for retries that race past the facade.
    let write = StatusWrite {
        sign: sign(&site.slc, "rs-1", 3, "three", fx.carewatch.now()),
        snapshot: snapshot(&[
            (ConditionCode::CameraUnreachable, "Camera 7", "timeout"),
            (ConditionCode::StorageFull, "D:", "100%"),
        ]),
    };
    let outcome = fx
        .store
        .apply_status_report(&write)
        .await
        .expect("apply_status_report");
    let WriteOutcome::Applied(Some(change)) = outcome else {
        panic!(
            "a report opening STORAGE_FULL must be Applied with a summary change, got {outcome:?}"
        );
    };
    assert_eq!(
        (change.previous, change.summary.health, change.at),
        (Health::Attention, Health::Critical, write.sign.received_at),
        "the summary change of a report opening STORAGE_FULL"
    );
    let before = observable(&fx, &site).await;
    assert_eq!(
        change.summary, before.0.summary,
        "the returned summary must be the stored one"
    );
    assert_eq!(
        fx.store
            .apply_status_report(&write)
            .await
            .expect("apply_status_report again"),
        WriteOutcome::Duplicate,
        "the same status write twice must be Duplicate"
    );
    let s4 = sign(&site.slc, "rs-1", 4, "four", fx.carewatch.now());
    assert!(
        matches!(
            fx.store
                .record_signs_of_life(std::slice::from_ref(&s4))
                .await
                .expect("record_signs_of_life")
                .as_slice(),
            [WriteOutcome::Applied(None)]
        ),
        "a heartbeat changing no summary is Applied(None)"
    );
    let before = observable(&fx, &site).await;
    assert_eq!(
        fx.store
            .record_signs_of_life(std::slice::from_ref(&s4))
            .await
            .expect("record_signs_of_life again"),
        vec![WriteOutcome::Duplicate],
        "the same sign of life twice must be Duplicate"
    );
    let after = observable(&fx, &site).await;
    assert_eq!(after, before, "a duplicate write changed something");
    assert_eq!(
        count_history(&after.0, |k| matches!(
            k,
            HistoryKind::ConditionOpened {
                code: ConditionCode::StorageFull,
                ..
            }
        )),
        1,
        "STORAGE_FULL must be opened once"
    );
}
