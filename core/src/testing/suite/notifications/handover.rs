//! A notifier step that claims what it queues: its node sends the entries
//! at once, nobody else while the claim lasts, anybody after; and a node
//! starting again releases its previous run's claims.

use super::{
    channel, claim, create_channel, enqueue, entry, finish, keys, leased, mark, outbox_entry,
    outbox_of,
};
use crate::feed::EventId;
use crate::notification::{Committed, DeliveryOutcome, NotifierCommit, OutboxEntry, OutboxFilter};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::t;

/// A commit with `claim_until` inserts its entries claimed by its node
/// until then and returns them exactly as the outbox holds them: not an
/// entry whose key was already there (nor is that one claimed), nor one
/// it did not write (a deleted channel's). Another node claims none of
/// them before the claim ends; the committing node records their
/// outcomes as if it had claimed them; after the claim, an unsent one is
/// claimed by others. A refused commit claims nothing, and a commit
/// without `claim_until` leaves its entries to anybody.
pub(crate) async fn a_notifier_commit_can_claim_what_it_queues(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let ch = channel(1, &alpha, t(0));
    create_channel(store, &ch).await;
    let never_created = channel(2, &alpha, t(0));
    enqueue(store, &[entry(&ch, "known", Some(&site.slc), t(0))]).await;
    let head = store.latest_change().await.expect("feed head");
    assert_eq!(leased(store, "node-a", t(1)).await, Some(EventId(0)));

    let step = NotifierCommit {
        node: "node-a".into(),
        from: mark(store, EventId(0)).await,
        to: head,
        states: Vec::new(),
        outbox: vec![
            entry(&ch, "first", Some(&site.slc), t(2)),
            entry(&ch, "known", Some(&site.slc), t(2)),
            entry(&never_created, "unwritable", None, t(2)),
            entry(&ch, "second", None, t(2)),
        ],
        claim_until: Some(t(60)),
    };
    let refused = NotifierCommit {
        node: "node-b".into(),
        ..step.clone()
    };
    assert_eq!(
        store.commit_notifications(refused).await.expect("commit"),
        Committed::Refused,
        "node-b does not hold the lease"
    );
    let Committed::Written { claimed } = store
        .commit_notifications(step.clone())
        .await
        .expect("commit")
    else {
        panic!("node-a holds the lease");
    };
    assert_eq!(
        keys(&claimed),
        ["first", "second"],
        "what it wrote, in order"
    );
    let mut stored: Vec<OutboxEntry> = Vec::new();
    for key in ["first", "second"] {
        stored.push(outbox_entry(store, &alpha, key).await);
    }
    assert_eq!(claimed, stored, "as the outbox holds them");
    assert_eq!(
        outbox_entry(store, &alpha, "known").await.body,
        "{\"id\":\"known\"}",
        "the known key kept as it was"
    );
    assert_eq!(
        store
            .commit_notifications(step)
            .await
            .expect("commit again"),
        Committed::Refused,
        "a replayed step is refused, and claims nothing"
    );

    let known = claim(store, "node-b", t(3), 10).await;
    assert_eq!(
        keys(&known),
        ["known"],
        "the claimed ones are not another node's to take"
    );
    finish(store, &known[0], "node-b", DeliveryOutcome::Delivered, t(3)).await;
    finish(
        store,
        &claimed[0],
        "node-a",
        DeliveryOutcome::Delivered,
        t(4),
    )
    .await;
    assert_eq!(
        outbox_entry(store, &alpha, "first").await.delivered_at,
        Some(t(4)),
        "the committing node's outcome is recorded"
    );
    assert!(
        claim(store, "node-b", t(59), 10).await.is_empty(),
        "claimed until t(60)"
    );
    assert_eq!(
        keys(&claim(store, "node-b", t(60), 10).await),
        ["second"],
        "the claim over, the unsent one is anybody's; the delivered one is done"
    );

    // Without a claim, a step's entries are anybody's at once.
    assert_eq!(leased(store, "node-a", t(61)).await, Some(head));
    let unclaimed = NotifierCommit {
        node: "node-a".into(),
        from: mark(store, head).await,
        to: head,
        states: Vec::new(),
        outbox: vec![entry(&ch, "third", None, t(61))],
        claim_until: None,
    };
    assert_eq!(
        store.commit_notifications(unclaimed).await.expect("commit"),
        Committed::Written {
            claimed: Vec::new()
        }
    );
    assert_eq!(keys(&claim(store, "node-b", t(62), 10).await), ["third"]);
}

/// A node starting releases every claim its id still holds on pending
/// entries (its previous run's, killed or stopped mid-commit): claimable by
/// anybody at once, attempts unchanged. Other nodes' claims, and delivered
/// and given-up entries, are left alone.
pub(crate) async fn a_starting_node_releases_its_previous_runs_claims(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let ch = channel(1, &alpha, START);
    create_channel(store, &ch).await;
    for (i, key) in ["e0", "e1", "e2", "e3", "e4", "e5"].iter().enumerate() {
        enqueue(store, &[entry(&ch, key, None, t(i as u64))]).await;
    }
    let now = t(10);
    let mine = claim(store, "node-1", now, 4).await;
    assert_eq!(keys(&mine), ["e0", "e1", "e2", "e3"]);
    finish(store, &mine[0], "node-1", DeliveryOutcome::Delivered, now).await;
    let given_up = DeliveryOutcome::Failed {
        error: "refused for good".into(),
    };
    finish(store, &mine[3], "node-1", given_up, now).await;
    let theirs = claim(store, "node-2", now, 10).await;
    assert_eq!(keys(&theirs), ["e4", "e5"]);

    let released = store.release_every_claim("node-1").await.expect("released");
    assert_eq!(
        released, 2,
        "e1 and e2: e0 was delivered, e3 given up, e4 and e5 are node-2's"
    );
    let retaken = claim(store, "node-1", now, 10).await;
    assert_eq!(
        keys(&retaken),
        ["e1", "e2"],
        "claimable at once, oldest first; e4 and e5 still node-2's"
    );
    assert!(
        retaken.iter().all(|e| e.attempts == 0),
        "attempts unchanged: {retaken:?}"
    );
    assert_eq!(
        store.release_every_claim("node-3").await.expect("released"),
        0,
        "a node that claimed nothing releases nothing"
    );
    let pending = outbox_of(store, &alpha, OutboxFilter::Pending).await;
    assert_eq!(
        pending.len(),
        4,
        "e1, e2, e4 and e5, none lost: {pending:?}"
    );
}
