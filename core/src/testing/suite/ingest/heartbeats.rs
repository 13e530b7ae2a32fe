//! Heartbeats: the first one makes a server known, later ones move
//! `last_seen_at` (never backwards), and heartbeats arriving together are
//! each acknowledged and stored once.

use crate::availability::Availability;
use crate::catalogue::ConditionCode;
use crate::health::{Health, HealthSummary};
use crate::service::SweepReport;
use crate::store::{HistoryKind, ServerRecord, StatusWrite, WriteOutcome};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, INTERVAL, JITTER, START, snapshot};
use crate::testing::suite::{
    accept, beat, cursor_of, detail, event, heartbeat_msg, overview_all, rs, secs, server, sign, t,
};

/// The first heartbeat makes a server known and Available, and its
/// installation Healthy; later heartbeats move `last_seen_at` and the next
/// check, nothing else.
pub(crate) async fn heartbeat_marks_server_available(backend: &(impl TestBackend + ?Sized)) {
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
        counted_from: None,
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
pub(crate) async fn heartbeats_never_move_last_seen_backwards(
    backend: &(impl TestBackend + ?Sized),
) {
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

/// Heartbeats arriving together are written together (group commit), yet
/// each is acknowledged only once it is stored, each applied once, and a
/// message sent twice at the same moment is new once and a duplicate once.
pub(crate) async fn concurrent_heartbeats_are_each_acknowledged_and_stored(
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
