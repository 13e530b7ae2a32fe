//! The outbox: deliveries claimed by one node at a time, outcomes recorded once, listing.

use std::collections::BTreeSet;

use super::{
    LEASE, channel, claim, create_channel, enqueue, entry, finish, keys, outbox_entry, outbox_of,
    stored_channel,
};
use crate::notification::{
    ChannelRecord, DeliveryOutcome, DeliveryStatus, FAILING_AFTER, OutboxEntry, OutboxFilter,
};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{reseller_id, secs, t};
use crate::time::Timestamp;

/// Several nodes claiming at once take different entries, oldest first;
/// nothing is claimed twice while a claim lasts; an expired claim (a node
/// that died mid-send) is claimable again.
pub(crate) async fn deliveries_are_claimed_by_one_node_at_a_time(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let second = db.open().await;
    let alpha = fx.reseller("alpha").await;
    let ch = channel(1, &alpha, START);
    create_channel(store, &ch).await;
    let all: Vec<String> = (0..12).map(|i| format!("e{i:02}")).collect();
    for (i, key) in all.iter().enumerate() {
        enqueue(store, &[entry(&ch, key, None, t(i as u64))]).await;
    }
    let now = t(100);
    assert!(
        claim(
            store,
            "node-0",
            Timestamp::from_millis(t(0).as_millis() - 1000),
            10
        )
        .await
        .is_empty(),
        "nothing is due before it was decided"
    );

    let first = claim(store, "node-1", now, 2).await;
    assert_eq!(keys(&first), ["e00", "e01"], "oldest first");
    let (a, b, c, d) = tokio::join!(
        claim(store, "node-1", now, 3),
        claim(&second, "node-2", now, 3),
        claim(store, "node-3", now, 3),
        claim(&second, "node-4", now, 3),
    );
    let mut claimed: Vec<&str> = Vec::new();
    for batch in [&first, &a, &b, &c, &d] {
        claimed.extend(keys(batch));
    }
    let distinct: BTreeSet<&str> = claimed.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "an entry claimed by two nodes at once: {claimed:?}"
    );
    assert_eq!(
        distinct,
        all.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "with room for all, every entry is claimed"
    );
    assert!(
        claim(&second, "node-5", now.saturating_add(LEASE - secs(1)), 100)
            .await
            .is_empty(),
        "nothing while the claims last"
    );
    assert!(
        outbox_of(store, &alpha, OutboxFilter::Pending).await.len() == 12,
        "claimed entries are still pending"
    );
    let retaken = claim(&second, "node-5", now.saturating_add(LEASE + secs(1)), 100).await;
    assert_eq!(
        keys(&retaken),
        all.iter().map(String::as_str).collect::<Vec<_>>(),
        "expired claims are claimable again, oldest first"
    );
}

/// Only the node that claims an entry records how its attempt ended, and
/// only once: a node that lost its claim changes nothing; delivered and
/// failed entries are never claimed again; a retry counts the attempt and
/// waits for its time; the channel's delivery status follows (failures in
/// a row, reset by a delivery, flagged after [`FAILING_AFTER`]).
pub(crate) async fn delivery_outcomes_are_recorded_once_by_the_claiming_node(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let ch = channel(1, &alpha, START);
    create_channel(store, &ch).await;
    for i in 0..4 {
        enqueue(store, &[entry(&ch, &format!("e{i}"), None, t(i))]).await;
    }
    assert_eq!(claim(store, "node-1", t(10), 10).await.len(), 4);
    // node-1 stalls past its claims; node-2 takes over.
    let entries = claim(store, "node-2", t(10).saturating_add(LEASE + secs(1)), 10).await;
    assert_eq!(keys(&entries), ["e0", "e1", "e2", "e3"]);
    let at = t(10).saturating_add(LEASE + secs(2));
    let before = outbox_of(store, &alpha, OutboxFilter::All).await;
    finish(store, &entries[0], "node-1", DeliveryOutcome::Delivered, at).await;
    finish(
        store,
        &entries[1],
        "node-1",
        DeliveryOutcome::Failed {
            error: "HTTP 410".into(),
        },
        at,
    )
    .await;
    assert_eq!(
        outbox_of(store, &alpha, OutboxFilter::All).await,
        before,
        "a node that lost its claim changes nothing"
    );
    assert_eq!(
        stored_channel(store, &ch.id).await.status,
        DeliveryStatus::default()
    );

    finish(store, &entries[0], "node-2", DeliveryOutcome::Delivered, at).await;
    let e0 = outbox_entry(store, &alpha, "e0").await;
    assert_eq!(
        (e0.attempts, e0.delivered_at, e0.failed_at, &e0.last_error),
        (1, Some(at), None, &None)
    );
    assert_eq!(
        stored_channel(store, &ch.id).await.status,
        DeliveryStatus {
            last_attempt_at: Some(at),
            last_error: None,
            failures_in_a_row: 0,
        }
    );
    let retry_at = at.saturating_add(secs(60));
    let refusal = "HTTP 503 from hooks.example.net";
    finish(
        store,
        &entries[1],
        "node-2",
        DeliveryOutcome::Retry {
            at: retry_at,
            error: refusal.into(),
        },
        at.saturating_add(secs(1)),
    )
    .await;
    let e1 = outbox_entry(store, &alpha, "e1").await;
    assert_eq!(
        (
            e1.attempts,
            e1.next_attempt_at,
            e1.delivered_at,
            e1.failed_at,
            e1.last_error.as_deref()
        ),
        (1, retry_at, None, None, Some(refusal)),
        "a retry counts the attempt and moves the next one"
    );
    assert_eq!(
        stored_channel(store, &ch.id).await.status,
        DeliveryStatus {
            last_attempt_at: Some(at.saturating_add(secs(1))),
            last_error: Some(refusal.into()),
            failures_in_a_row: 1,
        }
    );
    finish(
        store,
        &entries[2],
        "node-2",
        DeliveryOutcome::Failed {
            error: "HTTP 410".into(),
        },
        at.saturating_add(secs(2)),
    )
    .await;
    let e2 = outbox_entry(store, &alpha, "e2").await;
    assert_eq!(
        (
            e2.attempts,
            e2.delivered_at,
            e2.failed_at,
            e2.last_error.as_deref()
        ),
        (1, None, Some(at.saturating_add(secs(2))), Some("HTTP 410")),
        "given up, kept with its error"
    );
    let status = stored_channel(store, &ch.id).await.status;
    assert_eq!(
        (status.failures_in_a_row, status.last_error.as_deref()),
        (2, Some("HTTP 410"))
    );

    // Once: a finished entry takes no second outcome.
    finish(
        store,
        &entries[0],
        "node-2",
        DeliveryOutcome::Failed {
            error: "late".into(),
        },
        at.saturating_add(secs(3)),
    )
    .await;
    finish(
        store,
        &entries[2],
        "node-2",
        DeliveryOutcome::Delivered,
        at.saturating_add(secs(3)),
    )
    .await;
    assert_eq!(outbox_entry(store, &alpha, "e0").await, e0);
    assert_eq!(outbox_entry(store, &alpha, "e2").await, e2);
    assert_eq!(stored_channel(store, &ch.id).await.status, status);

    // e3 is still node-2's; e1 waits for its time; e0 and e2 are done.
    assert!(
        claim(store, "node-3", at.saturating_add(secs(10)), 10)
            .await
            .is_empty()
    );
    let later = at.saturating_add(LEASE + secs(60));
    let again = claim(store, "node-3", later, 10).await;
    assert_eq!(
        keys(&again),
        ["e3", "e1"],
        "only e3 (its claim expired) and e1 (due again), by when they were due"
    );
    assert_eq!(again[1].attempts, 1);
    finish(
        store,
        &again[1],
        "node-3",
        DeliveryOutcome::Delivered,
        later,
    )
    .await;
    let e1 = outbox_entry(store, &alpha, "e1").await;
    assert_eq!(
        (e1.attempts, e1.delivered_at, e1.last_error.as_deref()),
        (2, Some(later), None)
    );
    assert_eq!(
        stored_channel(store, &ch.id).await.status,
        DeliveryStatus {
            last_attempt_at: Some(later),
            last_error: None,
            failures_in_a_row: 0,
        },
        "a delivery resets the failures in a row"
    );

    // A channel that keeps failing is flagged (e3's claim by node-3 has
    // expired: it never finished it).
    let mut now = later.saturating_add(LEASE + secs(1));
    for n in 0..FAILING_AFTER {
        let claimed = claim(store, "node-3", now, 10).await;
        assert_eq!(keys(&claimed), ["e3"]);
        assert_eq!(claimed[0].attempts, n);
        finish(
            store,
            &claimed[0],
            "node-3",
            DeliveryOutcome::Retry {
                at: now,
                error: format!("attempt {n} timed out"),
            },
            now,
        )
        .await;
        now = now.saturating_add(secs(1));
    }
    let status = stored_channel(store, &ch.id).await.status;
    assert_eq!(status.failures_in_a_row, FAILING_AFTER);
    assert!(status.failing());
    assert_eq!(
        outbox_entry(store, &alpha, "e3").await.attempts,
        FAILING_AFTER
    );
}

/// Outcomes recorded as a batch (one write) leave the outbox and the
/// channels exactly as the same outcomes recorded one by one: a duplicate
/// and an entry the node no longer claims change nothing, failures in a row
/// reset by a delivery and carry on from what the channel had.
pub(crate) async fn a_batch_of_outcomes_is_recorded_as_one_by_one(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    // Channels 1 and 2 take the batch; 3 and 4 the same outcomes one by one.
    let channels: Vec<ChannelRecord> = (1..=4).map(|n| channel(n, &alpha, START)).collect();
    for ch in &channels {
        create_channel(store, ch).await;
    }
    let at = t(100);
    let retry = |error: &str| DeliveryOutcome::Retry {
        at: at.saturating_add(secs(60)),
        error: error.into(),
    };
    let failed = |error: &str| DeliveryOutcome::Failed {
        error: error.into(),
    };
    // Both worlds: a failure already counted on the second channel, and an
    // entry claimed by another node.
    for (world, first) in [("batch", 0), ("single", 2)] {
        let (a, b) = (&channels[first], &channels[first + 1]);
        enqueue(store, &[entry(b, &format!("{world}-pre"), None, t(1))]).await;
        let pre = claim(store, "node-1", t(2), 1).await;
        finish(store, &pre[0], "node-1", failed("earlier"), t(3)).await;
        enqueue(store, &[entry(a, &format!("{world}-lost"), None, t(4))]).await;
        assert_eq!(claim(store, "node-2", t(5), 1).await.len(), 1);
        let shapes = [
            (a, "e0"),
            (b, "e1"),
            (a, "e2"),
            (b, "e3"),
            (a, "e4"),
            (a, "e5"),
        ];
        for (n, (ch, key)) in shapes.iter().enumerate() {
            let at = t(10 + n as u64);
            enqueue(store, &[entry(ch, &format!("{world}-{key}"), None, at)]).await;
        }
    }
    let claimed = claim(store, "node-1", t(20), 20).await;
    assert_eq!(claimed.len(), 12, "{:?}", keys(&claimed));
    let id = |key: &str| {
        claimed
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.id)
            .unwrap_or_else(|| panic!("{key} claimed"))
    };
    let lost_ids = [
        outbox_entry(store, &alpha, "batch-lost").await.id,
        outbox_entry(store, &alpha, "single-lost").await.id,
    ];
    let sequence = |world: &str, lost_id: u64| {
        let key = |k: &str| id(&format!("{world}-{k}"));
        vec![
            (key("e0"), retry("503 once")),
            (key("e1"), failed("410 Gone")),
            (lost_id, DeliveryOutcome::Delivered),
            (key("e2"), failed("400 Bad Request")),
            (key("e0"), DeliveryOutcome::Delivered),
            (key("e4"), DeliveryOutcome::Delivered),
            (key("e5"), retry("timed out")),
            (key("e3"), retry("connection refused")),
        ]
    };
    store
        .finish_deliveries("node-1", at, &sequence("batch", lost_ids[0]))
        .await
        .unwrap_or_else(|e| panic!("recording a batch of outcomes: {e}"));
    for (id, outcome) in sequence("single", lost_ids[1]) {
        store
            .finish_delivery(id, "node-1", &outcome, at)
            .await
            .unwrap_or_else(|e| panic!("recording outcome of {id}: {e}"));
    }

    let recorded = |e: OutboxEntry| {
        (
            e.attempts,
            e.next_attempt_at,
            e.delivered_at,
            e.failed_at,
            e.last_error,
        )
    };
    for key in ["pre", "lost", "e0", "e1", "e2", "e3", "e4", "e5"] {
        let batch = recorded(outbox_entry(store, &alpha, &format!("batch-{key}")).await);
        let single = recorded(outbox_entry(store, &alpha, &format!("single-{key}")).await);
        assert_eq!(batch, single, "entry {key}");
    }
    let e0 = outbox_entry(store, &alpha, "batch-e0").await;
    assert_eq!(
        (e0.attempts, e0.delivered_at, e0.last_error.as_deref()),
        (1, None, Some("503 once")),
        "the duplicate outcome changed nothing"
    );
    assert_eq!(
        outbox_entry(store, &alpha, "batch-lost").await.attempts,
        0,
        "another node's claim"
    );
    for (batch, single) in [(0, 2), (1, 3)] {
        assert_eq!(
            stored_channel(store, &channels[batch].id).await.status,
            stored_channel(store, &channels[single].id).await.status,
            "channel {}",
            batch + 1
        );
    }
    assert_eq!(
        stored_channel(store, &channels[0].id).await.status,
        DeliveryStatus {
            last_attempt_at: Some(at),
            last_error: Some("timed out".into()),
            failures_in_a_row: 1,
        },
        "counted again from the delivery"
    );
    assert_eq!(
        stored_channel(store, &channels[1].id).await.status,
        DeliveryStatus {
            last_attempt_at: Some(at),
            last_error: Some("connection refused".into()),
            failures_in_a_row: 3,
        },
        "carried on from the earlier failure"
    );
    // Nothing to record is nothing written.
    store
        .finish_deliveries("node-1", at, &[])
        .await
        .unwrap_or_else(|e| panic!("recording no outcome: {e}"));
}

/// A reseller's outbox lists only its own entries, newest first, at most
/// the limit, pending or failed ones on request.
pub(crate) async fn the_outbox_lists_a_resellers_entries_newest_first(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let ca = channel(1, &alpha, START);
    let cb = channel(2, &beta, START);
    create_channel(store, &ca).await;
    create_channel(store, &cb).await;
    for (i, (ch, key)) in [
        (&ca, "a0"),
        (&cb, "b0"),
        (&ca, "a1"),
        (&ca, "a2"),
        (&cb, "b1"),
    ]
    .into_iter()
    .enumerate()
    {
        enqueue(store, &[entry(ch, key, None, t(i as u64))]).await;
    }
    assert_eq!(
        keys(&outbox_of(store, &alpha, OutboxFilter::All).await),
        ["a2", "a1", "a0"]
    );
    assert_eq!(
        keys(&outbox_of(store, &beta, OutboxFilter::All).await),
        ["b1", "b0"]
    );
    assert_eq!(
        keys(
            &store
                .outbox(&alpha, OutboxFilter::All, 2)
                .await
                .expect("outbox")
        ),
        ["a2", "a1"],
        "at most the limit, newest first"
    );
    assert!(
        outbox_of(store, &reseller_id("gamma"), OutboxFilter::All)
            .await
            .is_empty()
    );

    let claimed = claim(store, "node-1", t(10), 10).await;
    assert_eq!(claimed.len(), 5);
    let by_key = |key: &str| {
        claimed
            .iter()
            .find(|e| e.key == key)
            .expect("claimed")
            .clone()
    };
    finish(
        store,
        &by_key("a0"),
        "node-1",
        DeliveryOutcome::Delivered,
        t(11),
    )
    .await;
    finish(
        store,
        &by_key("a1"),
        "node-1",
        DeliveryOutcome::Failed {
            error: "HTTP 404".into(),
        },
        t(11),
    )
    .await;
    assert_eq!(
        keys(&outbox_of(store, &alpha, OutboxFilter::Pending).await),
        ["a2"]
    );
    assert_eq!(
        keys(&outbox_of(store, &alpha, OutboxFilter::Failed).await),
        ["a1"]
    );
    assert_eq!(
        keys(&outbox_of(store, &alpha, OutboxFilter::All).await),
        ["a2", "a1", "a0"]
    );
    assert_eq!(
        keys(&outbox_of(store, &beta, OutboxFilter::Pending).await),
        ["b1", "b0"]
    );
    assert!(
        outbox_of(store, &beta, OutboxFilter::Failed)
            .await
            .is_empty()
    );
}

/// A stopping node releases its claims on what it has not sent: any node
/// claims those at once, as they were (attempts unchanged). Among the ids
/// it names, an entry another node claims is left as it is, and an id that
/// names nothing changes nothing (a delivered one's claim ended when its
/// outcome was recorded).
pub(crate) async fn a_stopping_node_releases_its_unsent_claims(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let ch = channel(1, &alpha, START);
    create_channel(store, &ch).await;
    for (i, key) in ["e0", "e1", "e2", "e3", "e4"].iter().enumerate() {
        enqueue(store, &[entry(&ch, key, None, t(i as u64))]).await;
    }
    let now = t(10);
    let mine = claim(store, "node-1", now, 3).await;
    assert_eq!(keys(&mine), ["e0", "e1", "e2"]);
    finish(store, &mine[0], "node-1", DeliveryOutcome::Delivered, now).await;
    let theirs = claim(store, "node-2", now, 10).await;
    assert_eq!(keys(&theirs), ["e3", "e4"]);

    // node-1 stops, naming what it had, e3 (node-2's) and ids of nothing.
    let ids: Vec<u64> = mine
        .iter()
        .chain(&theirs[..1])
        .map(|e| e.id)
        .chain([u64::MAX, i64::MAX as u64])
        .collect();
    let released = store
        .release_claims("node-1", &ids)
        .await
        .expect("released");
    assert_eq!(released, 2, "e1 and e2: e0 was delivered, e3 is node-2's");
    let retaken = claim(store, "node-3", now, 10).await;
    assert_eq!(
        keys(&retaken),
        ["e1", "e2"],
        "claimable at once, oldest first; e3 and e4 still node-2's"
    );
    assert!(
        retaken.iter().all(|e| e.attempts == 0),
        "attempts unchanged: {retaken:?}"
    );
    assert_eq!(
        store
            .release_claims("node-1", &ids)
            .await
            .expect("released"),
        0,
        "nothing named is node-1's any more"
    );
}
