//! The notifier's steps over a backlog of feed events.

use crate::testing::TestBackend;
use crate::testing::fixture::Fixture;

/// A backlog of feed events is taken in steps of at most 500: a full step
/// says more are waiting (the dispatcher then runs the next at once), the
/// last one does not, and together they read every event once.
pub(crate) async fn a_backlog_of_events_is_taken_in_steps_that_say_more_waits(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let head = || async { fx.store.latest_change().await.expect("feed head").0 };
    let mut sites = 0;
    // Each installation's registration and first heartbeat append events.
    while head().await <= 500 {
        assert!(sites < 1000, "installations append no feed events");
        let site = fx.site("alpha", &format!("M01-C01-{sites:04}")).await;
        fx.heartbeat(&site, "rs-1", 1).await.expect("heartbeat");
        sites += 1;
    }
    let backlog = usize::try_from(head().await).expect("a few hundred events");
    assert!(backlog < 1000, "two steps take it: {backlog}");

    let first = fx.carewatch.notify_step().await.expect("first step");
    assert!(first.leader, "{first:?}");
    assert_eq!(first.events, 500, "a step reads at most 500 events");
    assert!(first.more, "a full step says more are waiting");
    let second = fx.carewatch.notify_step().await.expect("second step");
    assert_eq!(first.events + second.events, backlog, "every event once");
    assert!(!second.more, "the backlog is done: {second:?}");
    let third = fx.carewatch.notify_step().await.expect("third step");
    assert_eq!(third.events, 0, "nothing read twice");
}
