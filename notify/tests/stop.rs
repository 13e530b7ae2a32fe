//! A dispatcher's stop: what it claimed and did not finish is anyone's
//! again at once.

mod world;

use std::time::Duration;

use carewatch_notify::testing::http::Reply;
use world::{WAIT, World, stop_within};

/// An attempt a stop cuts off is released: another node sends it at once,
/// with the same idempotency key. The clock here does not move, so without
/// the release the entry would stay claimed by the stopped node for its
/// whole lease. (Another node, not the same one started again: that one
/// releases its previous run's claims as it starts, stop or no stop.)
#[tokio::test(flavor = "multi_thread")]
async fn what_a_stop_cuts_off_is_sent_at_once_by_another_node() {
    let world = World::new().await;
    world.receiver.plan([
        Reply::status(200).after(Duration::from_secs(30)),
        Reply::status(200),
    ]);
    world.queue_tests(1).await;
    let (stop, task) = world.dispatch(Duration::from_millis(200));
    assert_eq!(
        world.receiver.wait_for(1, WAIT).await.len(),
        1,
        "the first attempt began"
    );
    stop_within(stop, task, WAIT).await;
    assert!(
        world.outbox().await[0].delivered_at.is_none(),
        "cut off, not recorded"
    );

    let other = world.other_node("node-b").await;
    let (stop, task) = world.dispatch_as(other, Duration::from_secs(1));
    let received = world.receiver.wait_for_accepted(1, WAIT).await;
    assert_eq!(received.len(), 2, "sent again: {received:?}");
    assert_eq!(received[1].answered, Some(200));
    let delivered = world.entry_when(|e| e.delivered_at.is_some()).await;
    for request in &received {
        assert_eq!(
            request.header("idempotency-key"),
            Some(delivered.key.as_str())
        );
    }
    assert_eq!(
        delivered.attempts, 1,
        "the cut-off attempt was never recorded"
    );
    stop_within(stop, task, WAIT).await;
}

/// A stop hands the notifier lease over at once: another node's notifier
/// takes it at its next step instead of once it runs out (the clock here
/// does not move, so without the release it never would).
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_hands_the_notifier_lease_over_at_once() {
    let world = World::new().await;
    let store = world.carewatch.store().clone();
    let now = world.carewatch.now();
    // Asking as of the epoch for no time takes nothing from a holder, and
    // leaves a free lease free (run out at once).
    let held = || {
        let store = store.clone();
        async move {
            store
                .notifier_lease(
                    "node-b",
                    carewatch_core::time::Timestamp::EPOCH,
                    Duration::ZERO,
                )
                .await
                .expect("asks for the lease")
                .is_none()
        }
    };
    let (stop, task) = world.dispatch(Duration::from_millis(200));
    let deadline = tokio::time::Instant::now() + WAIT;
    while !held().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the notifier never took the lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_within(stop, task, WAIT).await;
    assert!(
        store
            .notifier_lease("node-b", now, Duration::from_secs(10))
            .await
            .expect("asks for the lease")
            .is_some(),
        "another node takes it at once"
    );
}
