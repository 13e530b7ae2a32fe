//! The store's batched calls on the ingest path: admissions looked up
//! together and signs of life written together answer each item in order.

use crate::catalogue::ConditionCode;
use crate::feed::Change;
use crate::health::{Health, HealthSummary};
use crate::ids::Slc;
use crate::seal::KeyId;
use crate::store::{AdmissionQuery, HistoryKind, WriteOutcome};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{
    accept, detail, event, heartbeat_msg, history_of, report, rs, server, sign, slc, sorted_events,
    t,
};

/// Admissions looked up together (as ingest batches them) answer each query
/// exactly as a lookup of its own would, in order: a known server, one never
/// heard from, a key id that is not active, an SLC that is not registered,
/// and the same query twice.
pub(crate) async fn admissions_answer_each_query_in_order(backend: &(impl TestBackend + ?Sized)) {
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

/// A batch of signs of life: one outcome per input, in order, each applied
/// only if newer than what is stored (earlier entries of the batch included).
pub(crate) async fn batch_of_signs_of_life_applies_each_once(
    backend: &(impl TestBackend + ?Sized),
) {
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

    // Each server once, all available (the form a backend may apply in one
    // statement): a newer one applied, an older one and a retry not, in order.
    let a4 = sign(&one.slc, "rs-a", 4, "a4", t(20));
    let outcomes = fx
        .store
        .record_signs_of_life(&[
            sign(&one.slc, "rs-b", 0, "b0", t(20)),
            a4.clone(),
            c1.clone(),
        ])
        .await
        .expect("the third batch");
    assert_eq!(
        outcomes,
        vec![
            WriteOutcome::Stale { last_accepted: 1 },
            WriteOutcome::Applied(None),
            WriteOutcome::Duplicate,
        ],
        "each server once: older, newer, retry"
    );
    let d = detail(&fx, &one).await;
    assert_eq!(server(&d, "rs-a").cursor, a4.cursor);
    assert_eq!(server(&d, "rs-b").cursor, b1.cursor);
    assert_eq!(
        server(&detail(&fx, &two).await, "rs-1").cursor,
        c1.cursor,
        "a retry changes nothing"
    );
}

/// New servers of several installations in one batch (a fleet appearing at
/// once): each sign's outcome, the history and the change feed are those of
/// writing the signs one after another, the summary counting each new
/// server with the servers and open conditions the installation already had.
pub(crate) async fn new_servers_in_a_batch_are_recorded_as_one_by_one(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let one = fx.site("alpha", "M01-C01-0001").await;
    let two = fx.site("beta", "M02-C01-0001").await;
    // `two` has a server with an open (warning) condition already.
    report(
        &fx,
        &two,
        "rs-old",
        1,
        &[(ConditionCode::CameraUnreachable, "camera 7", "no video")],
    )
    .await;
    let before = detail(&fx, &two).await.summary;
    assert_eq!(
        (before.health, before.servers, before.active_conditions),
        (Health::Attention, 1, 1),
        "the set-up: one server and a warning"
    );
    let head = fx.store.latest_change().await.expect("head");

    let a1 = sign(&one.slc, "rs-a", 1, "a1", t(10));
    let n1 = sign(&two.slc, "rs-new", 1, "n1", t(10));
    let b1 = sign(&one.slc, "rs-b", 1, "b1", t(11));
    let a2 = sign(&one.slc, "rs-a", 2, "a2", t(12));
    let outcomes = fx
        .store
        .record_signs_of_life(&[a1, n1, b1, a2.clone()])
        .await
        .expect("the batch");
    let changes: Vec<Option<(Slc, Health, HealthSummary)>> = outcomes
        .iter()
        .map(|outcome| match outcome {
            WriteOutcome::Applied(change) => change
                .as_ref()
                .map(|c| (c.slc.clone(), c.previous, c.summary.clone())),
            other => panic!("every sign is newer: {other:?}"),
        })
        .collect();
    let two_after = HealthSummary {
        servers: 2,
        ..before.clone()
    };
    assert_eq!(
        changes,
        vec![
            Some((one.slc.clone(), Health::Pending, healthy(1))),
            Some((two.slc.clone(), Health::Attention, two_after.clone())),
            Some((one.slc.clone(), Health::Healthy, healthy(2))),
            None,
        ],
        "each new server moves its installation's line on from the one before; \
         a new server's second heartbeat changes nothing"
    );

    let events: Vec<(Slc, String)> = fx
        .store
        .changes(head, 100)
        .await
        .expect("the feed")
        .into_iter()
        .map(|e| {
            let what = match &e.change {
                Change::Server { server, event } => format!("{server} {event:?}"),
                Change::Health { previous, summary } => {
                    format!("{previous:?} -> {:?} ({})", summary.health, summary.servers)
                }
                other => format!("{other:?}"),
            };
            (e.slc, what)
        })
        .collect();
    let of = |site: &crate::testing::fixture::Site, what: &str| (site.slc.clone(), what.to_owned());
    assert_eq!(
        events,
        vec![
            of(&one, "rs-a FirstSeen"),
            of(&one, "Pending -> Healthy (1)"),
            of(&two, "rs-new FirstSeen"),
            of(&two, "Attention -> Attention (2)"),
            of(&one, "rs-b FirstSeen"),
            of(&one, "Healthy -> Healthy (2)"),
        ],
        "the feed in batch order (these signs are all first sights): each first sight, then the line it moved"
    );

    let d = detail(&fx, &one).await;
    assert_eq!(d.summary, healthy(2));
    assert_eq!(
        server(&d, "rs-a").cursor,
        a2.cursor,
        "judged after its first sight"
    );
    assert_eq!(
        history_of(&d),
        sorted_events(vec![
            event(t(10), "rs-a", HistoryKind::FirstSeen),
            event(t(11), "rs-b", HistoryKind::FirstSeen),
        ])
    );
    assert_eq!(detail(&fx, &two).await.summary, two_after);
}

/// A Healthy line with `servers` servers and nothing else.
fn healthy(servers: u32) -> HealthSummary {
    HealthSummary {
        health: Health::Healthy,
        worst: None,
        servers,
        unavailable: 0,
        late: 0,
        active_conditions: 0,
    }
}
