//! Ingest: signs of life, status snapshots, retries and refusals.

use super::{
    WATCH_QUIET, accept, assert_silent, beat, condition, conditions_of, count_history, cursor_of,
    detail, event, heartbeat_msg, history_of, observable, overview_all, refused, report,
    report_msg, rs, sealed_msg, secs, server, sign, slc, sorted_events, t,
};
use crate::availability::Availability;
use futures::StreamExt;

use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::feed::Change;
use crate::health::{Health, HealthSummary};
use crate::seal::payload::encode_status;
use crate::seal::{Binding, HEADER_LEN, InstallationKey, KeyId, MessageKind, SealError, TAG_LEN};
use crate::service::SweepReport;
use crate::store::{AdmissionQuery, HistoryKind, ServerRecord, StatusWrite, WriteOutcome};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, INTERVAL, JITTER, START, snapshot};

/// Admissions looked up together (as ingest batches them) answer each query
/// exactly as a lookup of its own would, in order: a known server, one never
/// heard from, a key id that is not active, an SLC that is not registered,
/// and the same query twice.
pub async fn admissions_answer_each_query_in_order(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let other = fx.site("beta", "M01-C01-0002").await;
    accept(&fx, heartbeat_msg(&site, "rs-1", 1), "a heartbeat").await;
    let query = |slc: &crate::ids::Slc, server: &str, key: KeyId| AdmissionQuery {
        slc: slc.clone(),
        server: rs(server),
        key,
    };
    let queries = [
        query(&site.slc, "rs-1", site.key.id()),
        query(&site.slc, "rs-new", site.key.id()),
        query(&other.slc, "rs-1", KeyId::new(99)),
        query(&slc("M09-C09-0009"), "rs-1", site.key.id()),
        query(&site.slc, "rs-1", site.key.id()),
    ];
    let together = fx.store.admissions(&queries).await.expect("admissions");
    assert_eq!(together.len(), queries.len(), "one result per query");
    let mut found = Vec::new();
    for (query, result) in queries.iter().zip(together) {
        let together = result.expect("each admission");
        let alone = fx
            .store
            .admission(&query.slc, &query.server, query.key)
            .await
            .expect("admission");
        assert_eq!(
            together, alone,
            "batched and single lookups differ for {query:?}"
        );
        found.push(together.map(|a| (a.installation.slc, a.key.is_some(), a.server.is_some())));
    }
    assert_eq!(
        found,
        vec![
            Some((site.slc.clone(), true, true)),
            Some((site.slc.clone(), true, false)),
            Some((other.slc.clone(), false, false)),
            None,
            Some((site.slc.clone(), true, true)),
        ],
        "known server / new server / inactive key / unknown SLC / repeated query"
    );
}

/// The first heartbeat makes a server known and Available, and its
/// installation Healthy; later heartbeats move `last_seen_at` and the next
/// check, nothing else.
pub async fn heartbeat_marks_server_available(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;

    let pending = detail(&fx, &site).await;
    assert_eq!(
        pending.summary,
        HealthSummary::pending(),
        "a new installation is Pending"
    );
    assert!(pending.servers.is_empty() && pending.history.is_empty());

    let first = heartbeat_msg(&site, "rs-1", 1);
    let ack = accept(&fx, first.clone(), "the first heartbeat").await;
    assert_eq!(ack.received_at, START);
    let d = detail(&fx, &site).await;
    let expected = ServerRecord {
        slc: site.slc.clone(),
        server: rs("rs-1"),
        first_seen_at: START,
        last_seen_at: START,
        interval: INTERVAL,
        cursor: cursor_of(&first),
        availability: Availability::Available,
        next_check_at: Some(START.saturating_add(INTERVAL + JITTER)),
    };
    assert_eq!(
        d.servers,
        vec![expected.clone()],
        "after its first heartbeat the server must be stored exactly so"
    );
    assert_eq!(
        d.summary,
        HealthSummary {
            health: Health::Healthy,
            worst: None,
            servers: 1,
            unavailable: 0,
            late: 0,
            active_conditions: 0,
        },
        "one available server and no conditions is Healthy"
    );
    assert_eq!(
        d.history,
        vec![event(START, "rs-1", HistoryKind::FirstSeen)],
        "the first message of a server is recorded as FirstSeen"
    );
    let admission = fx
        .store
        .admission(&site.slc, &rs("rs-1"), site.key.id())
        .await
        .expect("admission")
        .expect("the installation is registered");
    assert_eq!(
        admission.server,
        Some(expected.clone()),
        "admission must return the same server record as the detail"
    );

    let page = overview_all(&fx, &site.reseller, false).await;
    assert!(
        page.rows.is_empty(),
        "a Healthy installation is not listed by default: {page:?}"
    );
    assert_eq!(page.totals.get(Health::Healthy), 1);
    assert_eq!(page.totals.total(), 1);
    let all = overview_all(&fx, &site.reseller, true).await;
    assert_eq!(all.rows.len(), 1);
    assert_eq!(all.rows[0].last_seen_at, Some(START));
    assert_eq!(all.rows[0].summary, d.summary);

    fx.advance(secs(30));
    let second = heartbeat_msg(&site, "rs-1", 2);
    accept(&fx, second.clone(), "the second heartbeat").await;
    let d2 = detail(&fx, &site).await;
    assert_eq!(
        d2.servers,
        vec![ServerRecord {
            last_seen_at: t(30),
            cursor: cursor_of(&second),
            next_check_at: Some(t(30).saturating_add(INTERVAL + JITTER)),
            ..expected
        }],
        "a heartbeat moves last_seen_at, cursor and next check, and nothing else"
    );
    assert_eq!(
        d2.summary, d.summary,
        "a heartbeat of an available server changes no summary"
    );
    assert_eq!(d2.history, d.history, "a routine heartbeat adds no history");
    assert_eq!(
        overview_all(&fx, &site.reseller, true).await.rows[0].last_seen_at,
        Some(t(30)),
        "the overview's last_seen_at must follow the latest message"
    );

    fx.advance(secs(61));
    assert_eq!(
        fx.carewatch.sweep().await.expect("sweep"),
        SweepReport {
            evaluated: 0,
            installations_changed: 0
        },
        "a server heard from 61 s ago is not due (next check at last + 62 s)"
    );
}

/// `last_seen_at` never moves backwards, even when a newer sequence number
/// arrives with an older receipt time (two nodes, clocks a little apart).
pub async fn heartbeats_never_move_last_seen_backwards(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    beat(&fx, &site, "rs-1", 1).await;
    fx.advance(secs(30));
    beat(&fx, &site, "rs-1", 2).await;
    assert_eq!(
        server(&detail(&fx, &site).await, "rs-1").last_seen_at,
        t(30)
    );

    let older = sign(&site.slc, "rs-1", 3, "three", t(10));
    let outcomes = fx
        .store
        .record_signs_of_life(std::slice::from_ref(&older))
        .await
        .expect("record_signs_of_life");
    assert!(
        matches!(outcomes.as_slice(), [WriteOutcome::Applied(_)]),
        "a newer sequence number is applied even if received earlier, got {outcomes:?}"
    );
    let d = detail(&fx, &site).await;
    let s = server(&d, "rs-1");
    assert_eq!(
        s.last_seen_at,
        t(30),
        "last_seen_at moved backwards to an older receipt time"
    );
    assert_eq!(
        s.cursor, older.cursor,
        "the newer sequence number must become the cursor"
    );
    assert_eq!(s.first_seen_at, START, "first_seen_at must never change");
    assert_eq!(s.availability, Availability::Available);

    let report = StatusWrite {
        sign: sign(&site.slc, "rs-1", 4, "four", t(5)),
        snapshot: snapshot(&[(ConditionCode::CameraUnreachable, "Camera 1", "timeout")]),
    };
    let outcome = fx
        .store
        .apply_status_report(&report)
        .await
        .expect("apply_status_report");
    assert!(
        matches!(outcome, WriteOutcome::Applied(_)),
        "a newer status report received earlier is applied, got {outcome:?}"
    );
    let d = detail(&fx, &site).await;
    assert_eq!(
        server(&d, "rs-1").last_seen_at,
        t(30),
        "a status report moved last_seen_at backwards"
    );
    assert_eq!(server(&d, "rs-1").cursor, report.sign.cursor);
    assert_eq!(
        d.active_conditions.len(),
        1,
        "the report's condition must be open"
    );

    let newer = sign(&site.slc, "rs-1", 5, "five", t(40));
    fx.store
        .record_signs_of_life(std::slice::from_ref(&newer))
        .await
        .expect("record_signs_of_life");
    let d = detail(&fx, &site).await;
    assert_eq!(
        server(&d, "rs-1").last_seen_at,
        t(40),
        "a later receipt time must move last_seen_at forward"
    );
    assert_eq!(
        overview_all(&fx, &site.reseller, true).await.rows[0].last_seen_at,
        Some(t(40)),
        "the overview's last_seen_at must be the latest receipt time"
    );
}

/// A sequence number at or below the last accepted one (with other bytes)
/// is refused as `Replayed`, by the facade and, in a race, by the store.
pub async fn stale_sequence_is_refused_and_changes_nothing(backend: &(impl TestBackend + ?Sized)) {
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
pub async fn retried_message_is_acknowledged_and_applied_once(
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

/// A batch of signs of life: one outcome per input, in order, each applied
/// only if newer than what is stored (earlier entries of the batch included).
pub async fn batch_of_signs_of_life_applies_each_once(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let one = fx.site("alpha", "M01-C01-0001").await;
    let two = fx.site("beta", "M02-C01-0001").await;

    assert_eq!(
        fx.store
            .record_signs_of_life(&[])
            .await
            .expect("an empty batch"),
        vec![],
        "an empty batch has no outcomes"
    );

    let a1 = sign(&one.slc, "rs-a", 1, "a1", START);
    let b1 = sign(&one.slc, "rs-b", 1, "b1", START);
    let c1 = sign(&two.slc, "rs-1", 1, "c1", START);
    let outcomes = fx
        .store
        .record_signs_of_life(&[a1.clone(), b1.clone(), c1.clone()])
        .await
        .expect("the first batch");
    assert_eq!(
        outcomes.len(),
        3,
        "one outcome per sign of life: {outcomes:?}"
    );
    let healthy = |servers| HealthSummary {
        health: Health::Healthy,
        worst: None,
        servers,
        unavailable: 0,
        late: 0,
        active_conditions: 0,
    };
    match &outcomes[0] {
        WriteOutcome::Applied(Some(c)) => {
            assert_eq!(
                (&c.slc, &c.reseller, c.previous, &c.summary, c.at),
                (&one.slc, &one.reseller, Health::Pending, &healthy(1), START),
                "the first server of an installation turns it from Pending to Healthy"
            );
        }
        other => {
            panic!("the first sign of life of rs-a must be Applied with a change, got {other:?}")
        }
    }
    match &outcomes[1] {
        WriteOutcome::Applied(Some(c)) => assert_eq!(
            (&c.slc, c.previous, &c.summary),
            (&one.slc, Health::Healthy, &healthy(2)),
            "the second server, applied after the first in the same batch, changes the count"
        ),
        other => {
            panic!("the first sign of life of rs-b must be Applied with a change, got {other:?}")
        }
    }
    match &outcomes[2] {
        WriteOutcome::Applied(Some(c)) => assert_eq!(
            (&c.slc, &c.reseller, c.previous, &c.summary),
            (&two.slc, &two.reseller, Health::Pending, &healthy(1)),
            "another installation in the same batch gets its own change"
        ),
        other => panic!(
            "the first sign of life of {} must be Applied with a change, got {other:?}",
            two.slc
        ),
    }

    let a2 = sign(&one.slc, "rs-a", 2, "a2", t(10));
    let a3 = sign(&one.slc, "rs-a", 3, "a3", t(10));
    let b1_other = sign(&one.slc, "rs-b", 1, "b1 other bytes", t(10));
    let b0 = sign(&one.slc, "rs-b", 0, "b0", t(10));
    let outcomes = fx
        .store
        .record_signs_of_life(&[a1.clone(), a2, b1_other, b0, a3.clone(), a3.clone()])
        .await
        .expect("the second batch");
    assert_eq!(
        outcomes,
        vec![
            WriteOutcome::Duplicate,
            WriteOutcome::Applied(None),
            WriteOutcome::Stale { last_accepted: 1 },
            WriteOutcome::Stale { last_accepted: 1 },
            WriteOutcome::Applied(None),
            WriteOutcome::Duplicate,
        ],
        "outcomes must follow the inputs in order: retry, newer, same sequence with other bytes, \
         older, newer, and a repeat of the entry before it"
    );

    let d = detail(&fx, &one).await;
    let a = server(&d, "rs-a");
    assert_eq!(
        (a.cursor, a.last_seen_at),
        (a3.cursor, t(10)),
        "rs-a must end at sequence 3"
    );
    let b = server(&d, "rs-b");
    assert_eq!(
        (b.cursor, b.last_seen_at),
        (b1.cursor, START),
        "rs-b's stale signs must not have changed it"
    );
    assert_eq!(
        history_of(&d),
        sorted_events(vec![
            event(START, "rs-a", HistoryKind::FirstSeen),
            event(START, "rs-b", HistoryKind::FirstSeen),
        ]),
        "only the first sign of life of each server is history"
    );
    assert_eq!(d.summary, healthy(2));
    assert_eq!(detail(&fx, &two).await.summary, healthy(1));
}

/// A snapshot opens what is new and resolves what disappeared, per server;
/// the dashboard keeps when each condition opened and closed.
pub async fn status_snapshot_opens_and_resolves_conditions(backend: &(impl TestBackend + ?Sized)) {
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
pub async fn status_snapshot_updates_detail_without_reopening(
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
pub async fn unknown_condition_codes_are_stored_and_shown(backend: &(impl TestBackend + ?Sized)) {
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

/// Every refusal has its own error, and a refused message changes nothing:
/// not the installation, its servers, conditions, history, nor the overview.
pub async fn every_refusal_has_its_own_error_and_changes_nothing(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let other = fx.site("beta", "M02-C01-0001").await;
    beat(&fx, &site, "rs-1", 1).await;
    report(
        &fx,
        &site,
        "rs-1",
        2,
        &[(ConditionCode::CameraUnreachable, "Camera 7", "timeout")],
    )
    .await;
    // Later than the last message, so a wrongly applied refusal would show.
    fx.advance(secs(5));
    let mut watch = fx
        .carewatch
        .watch(&site.reseller, None, None)
        .await
        .expect("watch");
    let before = observable(&fx, &site).await;
    let hb = |server: &str, sequence| heartbeat_msg(&site, server, sequence);

    // Unknown installation.
    let ghost = slc("M99-C99-9999");
    let err = refused(
        fx.carewatch
            .ingest(sealed_msg(
                &site.key,
                &ghost,
                "rs-1",
                MessageKind::Heartbeat,
                3,
                b"",
            ))
            .await,
        "a message for an unregistered SLC",
    );
    assert!(
        matches!(&err, Error::UnknownInstallation { slc } if *slc == ghost),
        "expected UnknownInstallation({ghost}), got {err:?}"
    );
    assert!(
        err.to_string().contains(ghost.as_str()),
        "the message must name the SLC: {err}"
    );
    assert_eq!(
        fx.store.installation(&ghost).await.expect("reading"),
        None,
        "a message for an unknown SLC created an installation"
    );
    assert_eq!(
        observable(&fx, &site).await,
        before,
        "an unknown-SLC message changed something"
    );

    // Consent missing.
    fx.carewatch
        .set_consent(&site.slc, false)
        .await
        .expect("withdrawing consent");
    let without_consent = observable(&fx, &site).await;
    for message in [
        hb("rs-1", 3),
        report_msg(
            &site,
            "rs-9",
            1,
            &[(ConditionCode::StorageFull, "E:", "100%")],
        ),
    ] {
        let server = message.server.clone();
        let err = refused(
            fx.carewatch.ingest(message).await,
            "a message without consent",
        );
        assert!(
            matches!(&err, Error::ConsentMissing { slc } if *slc == site.slc),
            "a message from {server} without consent must be ConsentMissing, got {err:?}"
        );
        assert_eq!(
            observable(&fx, &site).await,
            without_consent,
            "a message from {server} without consent changed something"
        );
    }
    fx.carewatch
        .set_consent(&site.slc, true)
        .await
        .expect("restoring consent");

    // Subscription not active.
    let original_expiry = before.0.installation.subscription_expires_at;
    let now = fx.carewatch.now();
    for (expiry, what) in [
        (Some(now.saturating_sub(secs(1))), "expired a second ago"),
        (Some(now), "ending exactly now"),
        (None, "no subscription"),
    ] {
        fx.carewatch
            .set_subscription(&site.slc, expiry)
            .await
            .expect("setting the subscription");
        let state = observable(&fx, &site).await;
        let err = refused(fx.carewatch.ingest(hb("rs-1", 3)).await, what);
        match (&err, expiry) {
            (Error::SubscriptionExpired { slc, expired_at }, Some(end)) => assert!(
                *slc == site.slc && *expired_at == Some(end),
                "subscription {what}: wrong details in {err:?}"
            ),
            (Error::SubscriptionExpired { slc, .. }, None) => {
                assert_eq!(*slc, site.slc, "subscription {what}: wrong SLC in {err:?}")
            }
            _ => panic!("subscription {what}: expected SubscriptionExpired, got {err:?}"),
        }
        assert_eq!(
            observable(&fx, &site).await,
            state,
            "a message with the subscription {what} changed something"
        );
    }
    fx.carewatch
        .set_subscription(&site.slc, original_expiry)
        .await
        .expect("restoring the subscription");
    assert_eq!(
        observable(&fx, &site).await,
        before,
        "restoring consent and subscription must give back the same installation"
    );

    // Cannot decrypt.
    let auth_failed = SealError::AuthenticationFailed;
    let mut flipped_tag = hb("rs-1", 3);
    let last = flipped_tag.sealed.len() - 1;
    flipped_tag.sealed[last] ^= 0x01;
    let mut flipped_body = report_msg(&site, "rs-1", 3, &[]);
    flipped_body.sealed[HEADER_LEN] ^= 0x80;
    let wrong_key = InstallationKey::generate(site.key.id());
    let unknown_key = InstallationKey::generate(KeyId::new(site.key.id().get() + 7));
    let moved = |slc: &crate::ids::Slc, server: &str, kind, sequence| {
        let server = rs(server);
        let binding = Binding {
            slc,
            server: &server,
            kind,
            sequence,
        };
        crate::IncomingMessage {
            sealed: crate::seal::seal(&site.key, &binding, b""),
            ..hb("rs-1", 3)
        }
    };
    let mut truncated = hb("rs-1", 3);
    truncated.sealed.truncate(10);
    let mut bad_version = hb("rs-1", 3);
    bad_version.sealed[0] = 9;
    let cases = [
        (
            flipped_tag,
            auth_failed.clone(),
            "a flipped byte in the tag",
        ),
        (
            flipped_body,
            auth_failed.clone(),
            "a flipped byte in the ciphertext",
        ),
        (
            sealed_msg(
                &wrong_key,
                &site.slc,
                "rs-1",
                MessageKind::Heartbeat,
                3,
                b"",
            ),
            auth_failed.clone(),
            "a wrong key with the right id",
        ),
        (
            sealed_msg(
                &unknown_key,
                &site.slc,
                "rs-1",
                MessageKind::Heartbeat,
                3,
                b"",
            ),
            SealError::UnknownKey(unknown_key.id()),
            "a key id the installation does not have",
        ),
        (
            moved(&site.slc, "rs-2", MessageKind::Heartbeat, 3),
            auth_failed.clone(),
            "sealed for another recording server",
        ),
        (
            moved(&other.slc, "rs-1", MessageKind::Heartbeat, 3),
            auth_failed.clone(),
            "sealed for another installation",
        ),
        (
            moved(&site.slc, "rs-1", MessageKind::StatusReport, 3),
            auth_failed.clone(),
            "sealed as a status report, sent as a heartbeat",
        ),
        (
            moved(&site.slc, "rs-1", MessageKind::Heartbeat, 4),
            auth_failed.clone(),
            "sealed for another sequence number",
        ),
        (
            truncated,
            SealError::Truncated { len: 10 },
            "a truncated envelope",
        ),
        (
            bad_version,
            SealError::UnsupportedVersion(9),
            "an unknown envelope version",
        ),
    ];
    for (message, reason, what) in cases {
        let err = refused(fx.carewatch.ingest(message).await, what);
        assert!(
            matches!(&err, Error::CannotDecrypt { slc, reason: r } if *slc == site.slc && *r == reason),
            "{what}: expected CannotDecrypt({reason:?}), got {err:?}"
        );
        assert_eq!(
            observable(&fx, &site).await,
            before,
            "{what} changed something"
        );
    }

    // Replayed.
    for (sequence, what) in [
        (2, "the last sequence number, other bytes"),
        (1, "an older sequence number"),
    ] {
        let err = refused(fx.carewatch.ingest(hb("rs-1", sequence)).await, what);
        assert!(
            matches!(&err, Error::Replayed { slc, sequence: s, last_accepted: 2, .. }
                if *slc == site.slc && *s == sequence),
            "{what}: expected Replayed({sequence}, last accepted 2), got {err:?}"
        );
        assert_eq!(
            observable(&fx, &site).await,
            before,
            "{what} changed something"
        );
    }

    // Malformed: opens, but the content is wrong.
    let unavailable_reported = {
        let mut p = vec![1u8, 0, 1, 18];
        p.extend_from_slice(b"SERVER_UNAVAILABLE");
        p.extend_from_slice(&[0, 4]);
        p.extend_from_slice(b"rs-1");
        p.extend_from_slice(&[0, 0]);
        p
    };
    let trailing = {
        let mut p = encode_status(&snapshot(&[]));
        p.push(0);
        p
    };
    let malformed = [
        (
            MessageKind::Heartbeat,
            b"not empty".to_vec(),
            "a heartbeat with a payload",
        ),
        (
            MessageKind::StatusReport,
            b"garbage".to_vec(),
            "a status report of garbage",
        ),
        (MessageKind::StatusReport, vec![], "an empty status report"),
        (
            MessageKind::StatusReport,
            vec![1, 0, 5],
            "a status report announcing 5 conditions and holding none",
        ),
        (
            MessageKind::StatusReport,
            trailing,
            "a status report with trailing bytes",
        ),
        (
            MessageKind::StatusReport,
            unavailable_reported,
            "a status report claiming SERVER_UNAVAILABLE",
        ),
    ];
    for (kind, plaintext, what) in malformed {
        let err = refused(
            fx.carewatch
                .ingest(sealed_msg(
                    &site.key, &site.slc, "rs-1", kind, 3, &plaintext,
                ))
                .await,
            what,
        );
        assert!(
            matches!(err, Error::Malformed { .. }),
            "{what}: expected Malformed, got {err:?}"
        );
        assert_eq!(
            observable(&fx, &site).await,
            before,
            "{what} changed something"
        );
    }

    // Too large: the limit itself is allowed (then judged on content).
    let limit = fx.carewatch.config().max_message_bytes();
    assert_eq!(
        limit,
        crate::seal::MAX_SEALED_MESSAGE_BYTES,
        "the default limit is the largest valid sealed report"
    );
    let fill = limit - HEADER_LEN - TAG_LEN;
    let at_limit = sealed_msg(
        &site.key,
        &site.slc,
        "rs-1",
        MessageKind::Heartbeat,
        3,
        &vec![0; fill],
    );
    assert_eq!(at_limit.sealed.len(), limit);
    let err = refused(
        fx.carewatch.ingest(at_limit).await,
        "a message of exactly the limit",
    );
    assert!(
        matches!(err, Error::Malformed { .. }),
        "a message of exactly {limit} bytes is not too large (a non-empty heartbeat is Malformed), got {err:?}"
    );
    let over = sealed_msg(
        &site.key,
        &site.slc,
        "rs-1",
        MessageKind::StatusReport,
        3,
        &vec![0; fill + 1],
    );
    let err = refused(
        fx.carewatch.ingest(over).await,
        "a message one byte over the limit",
    );
    assert!(
        matches!(err, Error::TooLarge { size, limit: l } if size == limit + 1 && l == limit),
        "expected TooLarge({} > {limit}), got {err:?}",
        limit + 1
    );
    assert_eq!(
        observable(&fx, &site).await,
        before,
        "a too-large message changed something"
    );

    // The operator's own changes are in the feed; the refused messages are not.
    let mut operator_changes = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(WATCH_QUIET, watch.next()).await {
        let event = event.expect("watch");
        assert!(
            matches!(
                event.change,
                Change::Consent { .. } | Change::Subscription { .. }
            ),
            "refused messages: expected nothing but the operator's changes, got {event:?}"
        );
        operator_changes.push(event.change.name());
    }
    assert_eq!(
        operator_changes,
        [
            "consent",
            "consent",
            "subscription",
            "subscription",
            "subscription",
            "subscription"
        ],
        "the consent and subscription changes, in order"
    );

    // No refusal consumed sequence number 3.
    let ack = accept(
        &fx,
        hb("rs-1", 3),
        "a valid heartbeat with the sequence every refusal used",
    )
    .await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        (
            server(&d, "rs-1").cursor.sequence,
            server(&d, "rs-1").last_seen_at
        ),
        (3, ack.received_at)
    );
    assert_eq!(
        d.servers.len(),
        1,
        "no refused message may create a recording server"
    );
    assert_eq!(
        fx.carewatch
            .sweep()
            .await
            .expect("sweep")
            .installations_changed,
        0,
        "nothing is due"
    );
}

/// Heartbeats arriving together are written together (group commit), yet
/// each is acknowledged only once it is stored, each applied once, and a
/// message sent twice at the same moment is new once and a duplicate once.
pub async fn concurrent_heartbeats_are_each_acknowledged_and_stored(
    backend: &(impl TestBackend + ?Sized),
) {
    const SERVERS: u64 = 24;
    const BEATS: u64 = 8;
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;

    let per_server = (1..=SERVERS).map(|n| {
        let (fx, site) = (&fx, &site);
        async move {
            for sequence in 1..=BEATS {
                let ack = fx
                    .heartbeat(site, &format!("rs-{n}"), sequence)
                    .await
                    .unwrap_or_else(|e| panic!("rs-{n} heartbeat {sequence}: {e}"));
                assert!(!ack.duplicate, "rs-{n} heartbeat {sequence} is new");
            }
        }
    });
    futures::future::join_all(per_server).await;

    let stored = detail(&fx, &site).await;
    assert_eq!(stored.servers.len(), SERVERS as usize, "{stored:?}");
    for record in &stored.servers {
        assert_eq!(
            record.cursor.sequence, BEATS,
            "{} keeps its last acknowledged heartbeat",
            record.server
        );
        assert_eq!(record.availability, Availability::Available);
    }

    // The same message twice at once: one is applied, the other is a retry.
    let message = heartbeat_msg(&site, "rs-1", BEATS + 1);
    let (first, second) = futures::join!(
        fx.carewatch.ingest(message.clone()),
        fx.carewatch.ingest(message.clone())
    );
    let mut duplicates = [first, second].map(|ack| ack.expect("accepted").duplicate);
    duplicates.sort_unstable();
    assert_eq!(
        duplicates,
        [false, true],
        "applied once, acknowledged twice"
    );
    assert_eq!(
        server(&detail(&fx, &site).await, "rs-1").cursor,
        cursor_of(&message)
    );
}
