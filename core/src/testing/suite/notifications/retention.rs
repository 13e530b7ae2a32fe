//! The outbox's retention: finished entries deleted once old, pending ones
//! kept however old; the change feed's: events the notifier has not
//! processed kept however old.

use super::{
    channel, claim, create_channel, enqueue, entry, finish, keys, on_call, outbox_of, settle,
    told_kinds,
};
use crate::catalogue::ConditionCode;
use crate::feed::EventId;
use crate::notification::{ChannelRules, DeliveryOutcome, OutboxFilter};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{report, secs, t};

/// `prune_outbox` deletes delivered and given-up entries created and
/// finished before the cut-off, oldest first and at most `limit` a call;
/// pending entries stay however old, and so does an entry finished after
/// the cut-off, until a later cut-off passes it.
pub(crate) async fn finished_notifications_are_pruned_past_their_retention(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let ch = channel(1, &alpha, START);
    create_channel(store, &ch).await;
    let made = [
        "delivered-first",
        "given-up",
        "pending",
        "delivered-second",
        "finished-late",
    ];
    for (i, key) in made.iter().enumerate() {
        enqueue(store, &[entry(&ch, key, None, t(i as u64))]).await;
    }
    let claimed = claim(store, "node-1", t(5), 100).await;
    assert_eq!(keys(&claimed), made, "all claimed, oldest first");
    let outcomes = [
        (DeliveryOutcome::Delivered, t(5)),
        (
            DeliveryOutcome::Failed {
                error: "HTTP 410 from hooks.example.net".into(),
            },
            t(6),
        ),
        (
            DeliveryOutcome::Retry {
                at: t(1000),
                error: "HTTP 503 from hooks.example.net".into(),
            },
            t(6),
        ),
        (DeliveryOutcome::Delivered, t(7)),
        (DeliveryOutcome::Delivered, t(15)),
    ];
    for (entry, (outcome, at)) in claimed.iter().zip(outcomes) {
        finish(store, entry, "node-1", outcome, at).await;
    }
    enqueue(store, &[entry(&ch, "made-late", None, t(20))]).await;
    let late = claim(store, "node-1", t(21), 100).await;
    assert_eq!(keys(&late), ["made-late"]);
    finish(store, &late[0], "node-1", DeliveryOutcome::Delivered, t(21)).await;

    let prune = |before, limit| async move {
        store
            .prune_outbox(before, limit)
            .await
            .unwrap_or_else(|e| panic!("pruning the outbox before {before}: {e}"))
    };
    let left = || async { keys(&outbox_of(store, &alpha, OutboxFilter::All).await).join(" ") };
    assert_eq!(prune(t(10), 2).await, 2, "at most the limit");
    assert_eq!(
        left().await,
        "made-late finished-late delivered-second pending",
        "the oldest finished ones first"
    );
    assert_eq!(prune(t(10), 2).await, 1);
    assert_eq!(prune(t(10), 2).await, 0, "nothing more before the cut-off");
    assert_eq!(
        left().await,
        "made-late finished-late pending",
        "pending entries and those finished since the cut-off stay"
    );
    assert_eq!(prune(t(30), 100).await, 2);
    assert_eq!(left().await, "pending", "a pending entry stays however old");
    assert_eq!(
        outbox_of(store, &alpha, OutboxFilter::Pending).await.len(),
        1,
        "and is still pending"
    );
}

/// Maintenance prunes only the change-feed events the notifier has
/// processed: an installation that turned Critical while no node ran (for
/// longer than the feed's retention) is still told once the notifier
/// runs again, and its events are pruned after that.
pub(crate) async fn the_feed_keeps_what_the_notifier_has_not_processed(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let _ = on_call(&fx, &site.reseller, ChannelRules::default()).await;
    report(&fx, &site, "rs-1", 1, &[]).await;
    assert_eq!(settle(&fx).await, 0, "healthy: nothing to tell");
    let processed = fx.store.latest_change().await.expect("feed head");

    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    report(&fx, &site, "rs-1", 2, &full).await;
    let head = fx.store.latest_change().await.expect("feed head");
    assert!(head > processed, "turning Critical appended events");
    // No notifier ran for eight days, a week being the feed's retention.
    fx.advance(secs(8 * 24 * 3600));
    let pruned = fx.carewatch.prune_changes().await.expect("pruning");
    assert_eq!(pruned, processed.0, "only what the notifier processed");
    let kept = fx.store.changes(processed, 100).await.expect("kept events");
    assert_eq!(kept.last().map(|e| e.id), Some(head), "the rest stays");

    assert_eq!(settle(&fx).await, 1, "the problem, told late but told");
    assert_eq!(told_kinds(&fx.store, &site.reseller).await, ["problem"]);
    assert_eq!(
        fx.carewatch.prune_changes().await.expect("pruning"),
        head.0 - processed.0,
        "processed now, so pruned"
    );
    assert!(
        fx.store
            .changes(EventId(0), 100)
            .await
            .is_err_and(|e| e.code() == "resume_too_old"),
        "the feed's start was pruned"
    );
}

/// An event the notifier never processes (no notifier runs, or it is
/// stuck) is kept at most four retentions, not for ever.
pub(crate) async fn unprocessed_events_are_kept_at_most_four_retentions(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    report(&fx, &site, "rs-1", 1, &[]).await;
    let head = fx.store.latest_change().await.expect("feed head");
    assert_eq!(
        fx.store
            .notifier_position()
            .await
            .expect("position")
            .position,
        EventId(0),
        "no notifier ran"
    );
    fx.advance(secs(27 * 24 * 3600));
    assert_eq!(fx.carewatch.prune_changes().await.expect("pruning"), 0);
    fx.advance(secs(2 * 24 * 3600));
    assert_eq!(
        fx.carewatch.prune_changes().await.expect("pruning"),
        head.0,
        "past four weeks, whatever the notifier's position"
    );
}
