//! Channels and maintenance windows on the store: kept per reseller, and deleting a channel.

use super::{
    LEASE, assert_not_found, channel, channels_of, claim, commit, create_channel, due_states,
    enqueue, entry, finish, keys, lease, on_call, outbox_entry, outbox_of, states_of, window,
    windows_of,
};
use crate::health::Health;
use crate::notification::rules::Phase;
use crate::notification::{
    ChannelRecord, ChannelRules, DeliveryOutcome, NewOutboxEntry, NotificationState,
    NotifierCommit, OutboxFilter,
};
use crate::team::Role;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::testing::suite::team::member;
use crate::testing::suite::{refused, reseller_id, secs, slc, t};

/// Channels and maintenance windows belong to one reseller: listed per
/// reseller (channels by creation) or all together, round-tripping every
/// field; another reseller's is NotFound to delete; a window on another
/// reseller's (or an unregistered) installation is NotFound, and so is
/// anything for a missing reseller.
pub(crate) async fn channels_and_maintenance_windows_are_per_reseller(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let a_site = fx.site("alpha", "M01-C01-0001").await;
    let b_site = fx.site("beta", "M02-C01-0001").await;

    let mut a1 = channel(1, &alpha, t(10));
    a1.kind = "email".into();
    a1.rules = ChannelRules {
        attention: true,
        installations: Some(vec![a_site.slc.clone(), slc("M01-C01-0009")]),
        hold: secs(300),
        reminder: Some(secs(3600)),
    };
    let b1 = channel(2, &beta, t(15));
    let mut a2 = channel(3, &alpha, t(20));
    a2.rules.installations = Some(Vec::new());
    for record in [&a1, &b1, &a2] {
        create_channel(store, record).await;
    }
    assert_eq!(
        channels_of(store, Some(&alpha)).await,
        vec![a1.clone(), a2.clone()],
        "alpha's channels, by creation, every field as stored"
    );
    assert_eq!(channels_of(store, Some(&beta)).await, vec![b1.clone()]);
    assert_eq!(
        channels_of(store, None).await,
        vec![a1.clone(), b1.clone(), a2.clone()],
        "every reseller's channels, by creation"
    );
    assert_not_found(
        store
            .create_channel(&channel(4, &reseller_id("nobody"), t(30)))
            .await,
        "a channel of a missing reseller",
    );
    let _ = refused(
        store.create_channel(&channel(1, &alpha, t(40))).await,
        "a second channel with a taken id",
    );
    assert_eq!(channels_of(store, None).await.len(), 3, "nothing added");

    assert_not_found(
        store.delete_channel(&beta, &a1.id, t(50)).await,
        "beta deleting alpha's channel",
    );
    assert_eq!(
        channels_of(store, Some(&alpha)).await,
        vec![a1.clone(), a2.clone()]
    );
    store
        .delete_channel(&alpha, &a1.id, t(50))
        .await
        .expect("alpha deletes its channel");
    assert_eq!(channels_of(store, Some(&alpha)).await, vec![a2.clone()]);
    assert_not_found(
        store.delete_channel(&alpha, &a1.id, t(51)).await,
        "deleting it again",
    );

    let all = window(1, &alpha, None, t(3600), secs(3600), Some(secs(7 * 86_400)));
    let one = window(2, &alpha, Some(&a_site.slc), t(600), secs(600), None);
    let theirs = window(3, &beta, Some(&b_site.slc), t(600), secs(900), None);
    for w in [&all, &one, &theirs] {
        store
            .create_maintenance(w)
            .await
            .unwrap_or_else(|e| panic!("creating window {}: {e}", w.id));
    }
    assert_not_found(
        store
            .create_maintenance(&window(4, &alpha, Some(&b_site.slc), t(0), secs(60), None))
            .await,
        "alpha muting beta's installation",
    );
    assert_not_found(
        store
            .create_maintenance(&window(
                5,
                &alpha,
                Some(&slc("M09-C09-0009")),
                t(0),
                secs(60),
                None,
            ))
            .await,
        "muting an unregistered installation",
    );
    assert_not_found(
        store
            .create_maintenance(&window(
                6,
                &reseller_id("nobody"),
                None,
                t(0),
                secs(60),
                None,
            ))
            .await,
        "a window of a missing reseller",
    );
    assert_eq!(
        windows_of(store, Some(&alpha)).await,
        vec![all.clone(), one.clone()],
        "alpha's windows, every field as stored"
    );
    assert_eq!(windows_of(store, Some(&beta)).await, vec![theirs.clone()]);
    assert_eq!(
        windows_of(store, None).await,
        vec![all.clone(), one.clone(), theirs.clone()]
    );
    assert_not_found(
        store.delete_maintenance(&beta, &one.id, t(1)).await,
        "beta deleting alpha's window",
    );
    store
        .delete_maintenance(&alpha, &one.id, t(1))
        .await
        .expect("alpha deletes its window");
    assert_not_found(
        store.delete_maintenance(&alpha, &one.id, t(1)).await,
        "deleting it again",
    );
    assert_eq!(windows_of(store, Some(&alpha)).await, vec![all.clone()]);

    // Through the facade, for an admin of alpha.
    let admin = member(&fx, &alpha, "admin@alpha.example", Role::Admin, START).await;
    assert_not_found(
        fx.carewatch
            .create_maintenance(&admin, Some(&b_site.slc), t(0), secs(600), None, "x")
            .await,
        "alpha's admin muting beta's installation",
    );
    let made = fx
        .carewatch
        .create_maintenance(
            &admin,
            Some(&a_site.slc),
            t(0),
            secs(600),
            None,
            "disk swap",
        )
        .await
        .expect("alpha's admin mutes its installation");
    assert!(
        fx.carewatch
            .maintenance_windows(&alpha)
            .await
            .expect("alpha's windows")
            .contains(&made)
    );
}

/// Deleting a channel deletes its states and gives up its pending entries
/// ("channel deleted", at the deletion), claimed or not; they stay listed,
/// are never claimed again, and a late outcome changes nothing. Delivered
/// entries and other channels' are untouched.
pub(crate) async fn deleting_a_channel_gives_up_its_pending_entries(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store = &fx.store;
    let alpha = fx.reseller("alpha").await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let x = channel(1, &alpha, START);
    let y = channel(2, &alpha, START.saturating_add(secs(1)));
    create_channel(store, &x).await;
    create_channel(store, &y).await;
    for (i, (ch, key)) in [(&x, "x0"), (&x, "x1"), (&x, "x2"), (&y, "y0")]
        .into_iter()
        .enumerate()
    {
        enqueue(store, &[entry(ch, key, Some(&site.slc), t(i as u64))]).await;
    }
    let claimed = claim(store, "node-1", t(10), 2).await;
    assert_eq!(keys(&claimed), ["x0", "x1"]);
    finish(
        store,
        &claimed[0],
        "node-1",
        DeliveryOutcome::Delivered,
        t(11),
    )
    .await;
    let x0 = outbox_entry(store, &alpha, "x0").await;
    let y0 = outbox_entry(store, &alpha, "y0").await;

    let from = lease(store, "node-1", t(12)).await.expect("the lease");
    let pending = |ch: &ChannelRecord| NotificationState {
        channel: ch.id.clone(),
        slc: site.slc.clone(),
        phase: Phase::Pending {
            health: Health::Critical,
            since: t(12),
            muted: false,
        },
        due_at: Some(t(100)),
    };
    let step = NotifierCommit {
        node: "node-1".into(),
        from,
        to: from.position,
        states: vec![pending(&x), pending(&y)],
        outbox: Vec::new(),
        claim_until: None,
    };
    assert!(commit(store, &step).await);
    let pairs = [
        (x.id.clone(), site.slc.clone()),
        (y.id.clone(), site.slc.clone()),
    ];
    assert_eq!(states_of(store, &pairs).await.len(), 2);

    store
        .delete_channel(&alpha, &x.id, t(20))
        .await
        .expect("deleting channel x");
    assert_eq!(channels_of(store, Some(&alpha)).await, vec![y.clone()]);
    assert_eq!(
        states_of(store, &pairs).await,
        vec![pending(&y)],
        "its states go with it"
    );
    assert_eq!(due_states(store, t(1000), 10).await, vec![pending(&y)]);
    for key in ["x1", "x2"] {
        let given_up = outbox_entry(store, &alpha, key).await;
        assert_eq!(
            (
                given_up.failed_at,
                given_up.last_error.as_deref(),
                given_up.delivered_at
            ),
            (Some(t(20)), Some("channel deleted"), None),
            "{key}: pending, given up"
        );
    }
    assert_eq!(outbox_entry(store, &alpha, "x0").await, x0, "delivered");
    assert_eq!(
        outbox_entry(store, &alpha, "y0").await,
        y0,
        "another channel's"
    );
    assert_eq!(
        keys(&outbox_of(store, &alpha, OutboxFilter::Failed).await),
        ["x2", "x1"]
    );
    assert_eq!(
        keys(&claim(store, "node-2", t(10).saturating_add(LEASE + secs(1)), 10).await),
        ["y0"],
        "given-up entries are never claimed"
    );
    finish(
        store,
        &claimed[1],
        "node-1",
        DeliveryOutcome::Delivered,
        t(21),
    )
    .await;
    assert_eq!(
        outbox_entry(store, &alpha, "x1").await.failed_at,
        Some(t(20)),
        "a late outcome changes nothing"
    );
}

/// "Send a test" twice in the same millisecond queues two tests, each
/// under its own idempotency key (the second was dropped as the first's).
pub(crate) async fn two_tests_of_a_channel_at_once_are_both_sent(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let (admin, channel) = on_call(&fx, &alpha, ChannelRules::default()).await;
    for _ in 0..2 {
        fx.carewatch
            .test_channel(&admin, &channel.id)
            .await
            .expect("a test of the channel");
    }
    let queued = outbox_of(&fx.store, &alpha, OutboxFilter::Pending).await;
    assert_eq!(queued.len(), 2, "{:?}", keys(&queued));
    assert_ne!(queued[0].key, queued[1].key);
}

/// Found by review: "send a test" had no bound, and every test is a
/// delivery the notifier shared by all resellers makes (retried like any
/// other): one admin's loop held up everyone's notifications. A channel
/// has at most three tests on their way: a newer one gives up the oldest
/// (so an admin who fixed a receiver can always test again), held against
/// bursts on two nodes; a test on another reseller's channel, or a missing
/// one, is NotFound.
pub(crate) async fn tests_of_a_channel_on_their_way_are_bounded(
    backend: &(impl TestBackend + ?Sized),
) {
    use crate::store::limits::{MAX_PENDING_TESTS_PER_CHANNEL, TEST_REPLACED, test_key_prefix};

    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let other_node = db.open().await;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let (admin, mine) = on_call(&fx, &alpha, ChannelRules::default()).await;
    let test = |n: usize| {
        entry(
            &mine,
            &format!("{}{n:02}", test_key_prefix(&mine.id)),
            None,
            t(n as u64),
        )
    };

    let results = futures::future::join_all((0..10).map(|n| {
        let store = if n % 2 == 0 { &fx.store } else { &other_node };
        let e = test(n);
        async move { store.enqueue_channel_test(&e).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let pending = outbox_of(&fx.store, &alpha, OutboxFilter::Pending).await;
    assert_eq!(
        pending.len(),
        MAX_PENDING_TESTS_PER_CHANNEL,
        "{:?}",
        keys(&pending)
    );
    let given_up = outbox_of(&fx.store, &alpha, OutboxFilter::Failed).await;
    assert_eq!(given_up.len(), 10 - MAX_PENDING_TESTS_PER_CHANNEL);
    assert!(
        given_up
            .iter()
            .all(|e| e.last_error.as_deref() == Some(TEST_REPLACED)),
        "{given_up:?}"
    );
    assert!(
        pending.iter().all(|p| given_up.iter().all(|g| g.id < p.id)),
        "the oldest are given up"
    );
    fx.carewatch
        .test_channel(&admin, &mine.id)
        .await
        .expect("through the facade, a newer test is always taken");
    let pending = outbox_of(&fx.store, &alpha, OutboxFilter::Pending).await;
    assert_eq!(pending.len(), MAX_PENDING_TESTS_PER_CHANNEL);

    let theirs = NewOutboxEntry {
        reseller: beta.clone(),
        ..test(50)
    };
    assert_not_found(
        fx.store.enqueue_channel_test(&theirs).await,
        "a test queued for beta on alpha's channel",
    );
    let missing = entry(&channel(77, &alpha, t(0)), "x.test.1", None, t(1));
    assert_not_found(
        fx.store.enqueue_channel_test(&missing).await,
        "a test of a missing channel",
    );
    assert_eq!(
        outbox_of(&fx.store, &alpha, OutboxFilter::Pending)
            .await
            .len(),
        MAX_PENDING_TESTS_PER_CHANNEL,
        "refusals change nothing"
    );
}
