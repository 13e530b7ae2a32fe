//! The notifier's steps over a backlog of feed events or of due states.

use super::{channel, commit, create_channel, due_states, lease, mark, window};
use crate::health::Health;
use crate::ids::Slc;
use crate::installation::Product;
use crate::notification::NotificationState;
use crate::notification::NotifierCommit;
use crate::notification::rules::Phase;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::{secs, slc, t};

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

/// More due states than a step takes (1,000) make the step say more are
/// waiting, as a full step of feed events does: the dispatcher then runs
/// the next step at once instead of after its pause, so the reminders of a
/// large outage do not come 1,000 a pause.
pub(crate) async fn due_states_beyond_a_step_say_more_waits(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let ch = channel(1, &alpha, START);
    create_channel(store, &ch).await;
    let product = Product::new("XProtect Corporate", "2016 R3").expect("valid product");
    let slcs: Vec<Slc> = (0..1001).map(|i| slc(&format!("M01-C01-{i:04}"))).collect();
    for s in &slcs {
        fx.carewatch
            .register_installation(s, &alpha, product.clone())
            .await
            .expect("registers");
    }
    // The registrations' feed events, read and committed.
    loop {
        let step = fx.carewatch.notify_step().await.expect("step");
        assert!(step.leader, "{step:?}");
        if !step.more {
            break;
        }
    }
    let head = store.latest_change().await.expect("feed head");
    let now = fx.carewatch.now();
    // Each due now; held (the default hold), so a step only moves its due
    // time on to the hold's end.
    let states = slcs
        .iter()
        .map(|s| NotificationState {
            channel: ch.id.clone(),
            slc: s.clone(),
            phase: Phase::Pending {
                health: Health::Offline,
                since: now,
                muted: false,
            },
            due_at: Some(now),
        })
        .collect();
    let due = NotifierCommit {
        node: fx.carewatch.config().node_id().to_owned(),
        from: mark(store, head).await,
        to: head,
        states,
        outbox: Vec::new(),
        claim_until: None,
    };
    assert!(commit(store, &due).await, "the lease holder commits");
    assert_eq!(due_states(store, now, 2000).await.len(), 1001);

    let first = fx.carewatch.notify_step().await.expect("first step");
    assert_eq!(first.events, 0, "no feed event: {first:?}");
    assert!(
        first.more,
        "a step took 1,000 due states, one waits: {first:?}"
    );
    assert_eq!(due_states(store, now, 2000).await.len(), 1, "1,000 taken");
    let second = fx.carewatch.notify_step().await.expect("second step");
    assert!(!second.more, "none due any more: {second:?}");
    assert!(due_states(store, now, 2000).await.is_empty());
}

/// A step that took its lease before states were made due from outside the
/// notifier (a maintenance window made, or deleted; an installation's
/// messages accepted again goes through the same nudge) is not written: it
/// read the states before, and its view of them (due later) would be
/// written over the nudge, so the window's start or end would not be looked
/// at. The next step, from where the notifier now stands, is written.
pub(crate) async fn a_step_that_read_before_a_nudge_is_not_written(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let ch = channel(1, &alpha, START);
    create_channel(store, &ch).await;
    let node = "node-1";
    // What every step here writes: a problem told, looked at next in a day.
    let step = |from: crate::notification::NotifierMark| NotifierCommit {
        node: node.to_owned(),
        from,
        to: from.position,
        states: vec![NotificationState {
            channel: ch.id.clone(),
            slc: site.slc.clone(),
            phase: Phase::Pending {
                health: Health::Offline,
                since: START,
                muted: false,
            },
            due_at: Some(t(86_400)),
        }],
        outbox: Vec::new(),
        claim_until: None,
    };
    let first = lease(store, node, t(1)).await.expect("free");
    assert!(commit(store, &step(first)).await, "nothing moved: written");
    assert!(
        due_states(store, t(10), 10).await.is_empty(),
        "due in a day"
    );

    let over_it = window(1, &alpha, Some(&site.slc), t(600), secs(600), None);
    for (n, what) in ["a window made", "a window deleted"]
        .into_iter()
        .enumerate()
    {
        let before = lease(store, node, t(2)).await.expect("node-1's");
        if n == 0 {
            store.create_maintenance(&over_it).await.expect("window");
        } else {
            store
                .delete_maintenance(&alpha, &over_it.id, t(3))
                .await
                .expect("deleted");
        }
        assert!(
            !commit(store, &step(before)).await,
            "a step that took its lease before {what} is not written"
        );
        assert_eq!(
            due_states(store, t(10), 10).await.len(),
            1,
            "{what} made the state due, and it stays so"
        );
        let after = lease(store, node, t(4)).await.expect("node-1's");
        assert_eq!(after.position, before.position, "no feed event read");
        assert!(after.nudges > before.nudges, "{what} counted: {after:?}");
        assert!(
            commit(store, &step(after)).await,
            "the next step, after {what}, is written"
        );
    }
}
