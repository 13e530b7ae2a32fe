//! Deferred deliveries: the operator's delivery settings, not the channel,
//! did not work.

use super::{channel, claim, create_channel, enqueue, entry, outbox_entry, stored_channel};
use crate::notification::DeliveryOutcome;
use crate::notification::delivery::MAX_ATTEMPTS;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{secs, t};

/// A deferral counts no attempt and no failure of the channel: after more
/// deferrals than the attempt limit the entry is still pending and
/// claimable at its time, its error shown, and the channel is not flagged;
/// a retry recorded in the same batch still counts. A delivery then ends it.
pub(crate) async fn a_deferral_counts_no_attempt_and_no_failure_of_the_channel(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let (mail, hook) = (channel(1, &alpha, START), channel(2, &alpha, START));
    create_channel(store, &mail).await;
    create_channel(store, &hook).await;
    enqueue(
        store,
        &[
            entry(&mail, "deferred", None, t(1)),
            entry(&hook, "retried", None, t(1)),
        ],
    )
    .await;
    let mut now = t(2);
    for round in 0..MAX_ATTEMPTS + 2 {
        let claimed = claim(store, "node-1", now, 2).await;
        let later = now.saturating_add(secs(60));
        let outcomes: Vec<(u64, DeliveryOutcome)> = claimed
            .iter()
            .map(|e| {
                let outcome = if e.key == "deferred" {
                    DeliveryOutcome::Deferred {
                        at: later,
                        error: "no SMTP server configured".into(),
                    }
                } else {
                    DeliveryOutcome::Retry {
                        at: later,
                        error: "503".into(),
                    }
                };
                (e.id, outcome)
            })
            .collect();
        assert!(
            claimed.iter().any(|e| e.key == "deferred"),
            "round {round}: the deferred entry is claimable at its time"
        );
        store
            .finish_deliveries("node-1", now, &outcomes)
            .await
            .expect("outcomes recorded");
        assert!(
            claim(store, "node-1", now, 2).await.is_empty(),
            "round {round}: nothing before its time"
        );
        now = later;
    }
    let deferred = outbox_entry(store, &alpha, "deferred").await;
    assert_eq!(
        (
            deferred.attempts,
            deferred.failed_at,
            deferred.last_error.as_deref()
        ),
        (0, None, Some("no SMTP server configured"))
    );
    let status = stored_channel(store, &mail.id).await.status;
    assert_eq!(status.failures_in_a_row, 0);
    assert!(!status.failing());
    assert_eq!(
        status.last_error.as_deref(),
        Some("no SMTP server configured")
    );
    let retried = outbox_entry(store, &alpha, "retried").await;
    assert_eq!(retried.attempts, MAX_ATTEMPTS + 2, "retries still count");
    assert!(stored_channel(store, &hook.id).await.status.failing());

    let claimed = claim(store, "node-1", now, 2).await;
    let id = claimed
        .iter()
        .find(|e| e.key == "deferred")
        .expect("claimed")
        .id;
    store
        .finish_delivery(id, "node-1", &DeliveryOutcome::Delivered, now)
        .await
        .expect("delivered");
    let delivered = outbox_entry(store, &alpha, "deferred").await;
    assert_eq!((delivered.attempts, delivered.delivered_at), (1, Some(now)));
}
