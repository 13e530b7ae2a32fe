//! The dispatcher on a real store (SQLite) with a clock the test moves, and
//! a real HTTP receiver: retries with the same idempotency key until
//! delivered, giving up on a permanent refusal or after the last attempt,
//! the channel's delivery status, and an entry cut off mid-send (its node
//! died) delivered by another node once its lease ends, or at once by the
//! same node started again.

mod world;

use std::sync::Arc;
use std::time::Duration;

use carewatch_core::notification::delivery::{MAX_ATTEMPTS, verify_signature};
use carewatch_core::notification::{ChannelId, OutboxEntry, OutboxFilter};
use carewatch_notify::testing::http::Reply;
use carewatch_notify::{Dispatcher, DispatcherOptions, Sender, SenderOptions};
use tokio::sync::oneshot;
use world::{WAIT, World, stop_within, unix_now};

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_failing_three_times_gets_it_the_fourth_with_the_same_key() {
    let world = World::new().await;
    world.receiver.plan([503, 503, 503].map(Reply::status));
    world
        .carewatch
        .test_channel(&world.admin, &world.channel)
        .await
        .expect("test queued");
    let (stop, task) = world.dispatch(Duration::from_secs(5));
    for failed in 1..=3u32 {
        let entry = world.entry_when(|e| e.attempts == failed).await;
        assert!(entry.delivered_at.is_none() && entry.failed_at.is_none());
        let error = entry.last_error.clone().unwrap_or_default();
        assert!(
            error.contains("503") && error.contains("127.0.0.1"),
            "{error}"
        );
        assert!(!error.contains("/carewatch"), "no path: {error}");
        // The backoff: not before 8 s (10 s less 20% jitter) after the attempt.
        let wait = entry.next_attempt_at.since(world.carewatch.now());
        let base = 10u64 << (failed - 1);
        assert!(
            wait >= Duration::from_secs(base * 8 / 10)
                && wait <= Duration::from_secs(base * 12 / 10),
            "attempt {failed}: retry in {wait:?}"
        );
        let views = world
            .carewatch
            .channels(&world.admin.reseller)
            .await
            .expect("channels");
        assert_eq!(views[0].record.status.failures_in_a_row, failed);
        // Nothing is sent again before it is due.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(world.receiver.received().len(), failed as usize);
        world.clock.advance(wait + Duration::from_millis(1));
    }
    let entry = world.entry_when(|e| e.delivered_at.is_some()).await;
    assert_eq!(entry.attempts, 4);
    let got = world.receiver.received();
    assert_eq!(got.len(), 4);
    for request in &got {
        assert_eq!(request.header("idempotency-key"), Some(entry.key.as_str()));
        assert_eq!(
            request.body,
            entry.body.as_bytes(),
            "the same body every time"
        );
        assert!(
            verify_signature(
                world.secret.as_bytes(),
                request.header("carewatch-signature").unwrap_or_default(),
                &request.body,
                unix_now()
            ),
            "signed with the channel's secret"
        );
    }
    assert_eq!(got[0].json()["kind"], "test");
    let views = world
        .carewatch
        .channels(&world.admin.reseller)
        .await
        .expect("channels");
    assert_eq!(views[0].record.status.failures_in_a_row, 0);
    assert!(views[0].record.status.last_attempt_at.is_some());
    stop_within(stop, task, WAIT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_refusal_is_given_up_at_once_and_kept_with_its_error() {
    let world = World::new().await;
    world.receiver.plan([Reply::status(404)]);
    world
        .carewatch
        .test_channel(&world.admin, &world.channel)
        .await
        .expect("test queued");
    let (stop, _task) = world.dispatch(Duration::from_secs(5));
    let entry = world.entry_when(|e| e.failed_at.is_some()).await;
    assert_eq!(entry.attempts, 1);
    assert!(entry.delivered_at.is_none());
    let error = entry.last_error.unwrap_or_default();
    assert!(error.contains("404"), "{error}");
    let failed = world
        .carewatch
        .outbox(&world.admin.reseller, OutboxFilter::Failed, 10)
        .await
        .expect("failed ones");
    assert_eq!(failed.len(), 1);
    world.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.receiver.received().len(), 1, "never sent again");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn it_gives_up_after_the_last_attempt() {
    let world = World::new().await;
    world
        .receiver
        .plan((0..MAX_ATTEMPTS).map(|_| Reply::status(500)));
    world
        .carewatch
        .test_channel(&world.admin, &world.channel)
        .await
        .expect("test queued");
    let (stop, _task) = world.dispatch(Duration::from_secs(5));
    for attempt in 1..MAX_ATTEMPTS {
        world.entry_when(|e| e.attempts == attempt).await;
        world.clock.advance(Duration::from_secs(2 * 3600));
    }
    let entry = world.entry_when(|e| e.failed_at.is_some()).await;
    assert_eq!(entry.attempts, MAX_ATTEMPTS);
    let error = entry.last_error.unwrap_or_default();
    assert!(error.contains("gave up after 12 attempts"), "{error}");
    assert_eq!(world.receiver.received().len(), MAX_ATTEMPTS as usize);
    let views = world
        .carewatch
        .channels(&world.admin.reseller)
        .await
        .expect("channels");
    assert!(
        views[0].record.status.failing(),
        "a channel that keeps failing is flagged"
    );
    let _ = stop.send(());
}

/// A test notification's first attempt under way (the receiver holds it)
/// when its dispatcher's task is aborted, as a kill -9 would end it: no
/// stop, so no release; the entry stays claimed, its attempt unrecorded.
async fn crash_mid_send(world: &World) {
    world
        .receiver
        .plan([Reply::status(503).after(Duration::from_secs(8))]);
    world
        .carewatch
        .test_channel(&world.admin, &world.channel)
        .await
        .expect("test queued");
    let (_stop, task) = world.dispatch(Duration::ZERO);
    assert_eq!(world.receiver.wait_for(1, WAIT).await.len(), 1);
    task.abort();
    let _ = task.await;
}

/// The receiver got `entry` twice (the attempt cut off, then the delivery),
/// each time with its idempotency key.
#[track_caller]
fn sent_twice_with_its_key(world: &World, entry: &OutboxEntry) {
    let got = world.receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("idempotency-key"), Some(entry.key.as_str()));
    assert_eq!(got[1].header("idempotency-key"), Some(entry.key.as_str()));
}

/// A node that dies mid-send (here its task is aborted, as a kill -9 would
/// end it: no stop, so no release) keeps its claim until the lease ends:
/// another node sends the entry only then.
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_cut_off_mid_send_by_a_crash_is_sent_by_another_node_after_its_lease() {
    let world = World::new().await;
    crash_mid_send(&world).await;
    let entry = world.entry_when(|_| true).await;
    assert_eq!(
        entry.attempts, 0,
        "nothing recorded: the node went away mid-send"
    );

    // Another node leaves it alone while the claim lasts, and sends it
    // once it has run out.
    let other = world.other_node("node-b").await;
    let (stop, _task) = world.dispatch_as(other, Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        world.receiver.received().len(),
        1,
        "claimed: not sent twice at once"
    );
    world.clock.advance(Duration::from_secs(61));
    let entry = world.entry_when(|e| e.delivered_at.is_some()).await;
    sent_twice_with_its_key(&world, &entry);
    let _ = stop.send(());
}

/// The node that died mid-send, started again (the same node id), releases
/// its previous run's claim as it starts and sends the entry at once, with
/// the same key, not after the lease.
#[tokio::test(flavor = "multi_thread")]
async fn an_entry_cut_off_mid_send_by_a_crash_is_sent_at_once_by_its_node_restarted() {
    let world = World::new().await;
    crash_mid_send(&world).await;

    // The clock does not move: the claim would last another 60 s.
    let (stop, _task) = world.dispatch(Duration::from_secs(5));
    let entry = world.entry_when(|e| e.delivered_at.is_some()).await;
    assert_eq!(entry.attempts, 1, "{entry:?}");
    sent_twice_with_its_key(&world, &entry);
    let _ = stop.send(());
}

/// As `carewatch serve` runs it: on a thread and runtime of its own, its
/// store calls on the server's runtime.
#[tokio::test(flavor = "multi_thread")]
async fn a_dispatcher_on_its_own_thread_delivers_and_stops() {
    let world = World::new().await;
    world.queue_tests(1).await;
    let dispatcher = Dispatcher::new(
        world.carewatch.clone(),
        Arc::new(
            Sender::new(SenderOptions {
                allow_private_addresses: true, // the test's receiver is on loopback
                ..SenderOptions::default()
            })
            .expect("sender"),
        ),
        DispatcherOptions {
            every: Duration::from_millis(50),
            store_runtime: Some(tokio::runtime::Handle::current()),
            ..DispatcherOptions::default()
        },
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let own = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        own.block_on(dispatcher.run(async {
            let _ = stopped.await;
        }));
    });
    let entry = world.entry_when(|e| e.delivered_at.is_some()).await;
    assert_eq!(entry.attempts, 1);
    let got = world.receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("idempotency-key"), Some(entry.key.as_str()));
    let _ = stop.send(());
    tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || thread.join()))
        .await
        .expect("the dispatcher's thread stops")
        .expect("joined")
        .expect("the dispatcher's thread ended cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dispatcher_runs_the_notifier_and_stops_on_shutdown() {
    let world = World::new().await;
    let store = world.carewatch.store().clone();
    let (stop, task) = world.dispatch(Duration::from_secs(5));
    // The notifier takes its lease at once: another node cannot have it
    // then. (One probe only: on this frozen clock a probe that got the
    // lease would keep it.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = store
        .notifier_lease(
            "another-node",
            world.carewatch.now(),
            Duration::from_millis(1),
        )
        .await
        .expect("lease");
    assert_eq!(other, None, "the notifier never ran");
    stop_within(stop, task, Duration::from_secs(6)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receivers_retry_after_is_honoured() {
    let world = World::new().await;
    world
        .receiver
        .plan([Reply::status(429).header("Retry-After", "600")]);
    world
        .carewatch
        .test_channel(&world.admin, &world.channel)
        .await
        .expect("test queued");
    let asked_at = world.carewatch.now();
    let (stop, _task) = world.dispatch(Duration::from_secs(5));
    let entry = world.entry_when(|e| e.attempts == 1).await;
    let next = entry.next_attempt_at;
    assert!(
        next >= asked_at.saturating_add(Duration::from_secs(600)),
        "not before the receiver asked: {entry:?}"
    );
    let error = entry.last_error.unwrap_or_default();
    assert!(error.contains("429") && error.contains("600 s"), "{error}");
    // The backoff alone (at most 12 s) would have sent it again by now.
    world.clock.advance(Duration::from_secs(300));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.receiver.received().len(), 1, "waited as asked");
    world.clock.advance(Duration::from_secs(301));
    let entry = world.entry_when(|e| e.delivered_at.is_some()).await;
    assert_eq!(entry.attempts, 2);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_that_cannot_be_opened_holds_up_only_its_own_notifications() {
    let world = World::new().await;
    let store = world.carewatch.store().clone();
    let mut damaged = store
        .channels(Some(&world.admin.reseller))
        .await
        .expect("channels")
        .into_iter()
        .next()
        .expect("the world's channel");
    // As if sealed under another master key, or damaged on disk.
    damaged.id = ChannelId::generate();
    damaged.name = "damaged hook".into();
    damaged.sealed = b"not sealed under this key".to_vec();
    store.create_channel(&damaged).await.expect("stored");
    let views = world
        .carewatch
        .channels(&world.admin.reseller)
        .await
        .expect("the list still shows");
    assert_eq!(views.len(), 2, "{views:?}");
    let shown = views
        .iter()
        .find(|v| v.record.id == damaged.id)
        .expect("listed");
    assert!(
        shown.destination.contains("cannot be opened"),
        "{}",
        shown.destination
    );
    // The damaged channel's test is queued first; the good one's after it.
    for channel in [&damaged.id, &world.channel] {
        world
            .carewatch
            .test_channel(&world.admin, channel)
            .await
            .expect("test queued");
    }
    let (stop, _task) = world.dispatch(Duration::from_secs(5));
    let deadline = tokio::time::Instant::now() + WAIT;
    let entries = loop {
        let entries = world.outbox().await;
        if entries.iter().all(|e| e.attempts >= 1) {
            break entries;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "both tried: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let good = entries
        .iter()
        .find(|e| e.channel == world.channel)
        .expect("the good channel's");
    assert!(good.delivered_at.is_some(), "delivered: {good:?}");
    let bad = entries
        .iter()
        .find(|e| e.channel == damaged.id)
        .expect("the damaged channel's");
    assert!(
        bad.delivered_at.is_none() && bad.failed_at.is_none(),
        "{bad:?}"
    );
    assert!(
        bad.next_attempt_at > bad.created_at,
        "kept for later: {bad:?}"
    );
    let error = bad.last_error.clone().unwrap_or_default();
    assert!(error.contains("cannot be opened"), "{error}");
    assert_eq!(world.receiver.received().len(), 1, "only the good one sent");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn many_entries_are_each_delivered_once_with_every_outcome_recorded() {
    let world = World::new().await;
    let plan: Vec<Reply> = (0..40)
        .map(|n| {
            if n % 5 == 0 {
                Reply::status(503)
            } else {
                Reply::status(200)
            }
        })
        .collect();
    world.receiver.plan(plan);
    world.queue_tests(40).await;
    let (stop, _task) = world.dispatch_with(DispatcherOptions {
        batch: 16,
        concurrency: 4,
        ..DispatcherOptions::default()
    });
    assert_eq!(world.receiver.wait_for(40, WAIT).await.len(), 40);
    // Every attempt recorded: 32 delivered, 8 waiting for their retry.
    let entries = world
        .entries_when(|entries| entries.iter().all(|e| e.attempts == 1))
        .await;
    assert_eq!(entries.len(), 40);
    assert!(entries.iter().all(|e| e.attempts == 1), "{entries:?}");
    assert_eq!(
        entries.iter().filter(|e| e.delivered_at.is_some()).count(),
        32
    );
    let keys: std::collections::BTreeSet<_> = world
        .receiver
        .received()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 40, "each entry sent once");
    let status = world
        .carewatch
        .channels(&world.admin.reseller)
        .await
        .expect("channels")
        .remove(0)
        .record
        .status;
    assert!(status.last_attempt_at.is_some());
    assert!(status.failures_in_a_row <= 8, "{status:?}");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_that_could_outlast_its_claim_is_not_started() {
    let world = World::new().await;
    world
        .carewatch
        .test_channel(&world.admin, &world.channel)
        .await
        .expect("test queued");
    // Claims shorter than the sender's longest attempt (30 s): sending
    // could go on after another node took the entry over.
    let (stop, task) = world.dispatch_with(DispatcherOptions {
        lease: Duration::from_secs(5),
        ..DispatcherOptions::default()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(());
    task.await.expect("task");
    assert!(world.receiver.received().is_empty(), "nothing sent");
    assert_eq!(world.entry_when(|_| true).await.attempts, 0);

    // With a long enough claim another node sends it once the short one
    // ran out (the same node started again would release it at once).
    world.clock.advance(Duration::from_secs(6));
    let other = world.other_node("node-b").await;
    let (stop, _task) = world.dispatch_as(other, Duration::from_secs(5));
    let entry = world.entry_when(|e| e.delivered_at.is_some()).await;
    assert_eq!(entry.attempts, 1);
    assert_eq!(world.receiver.received().len(), 1);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn delivered_notifications_are_deleted_after_the_retention() {
    let world = World::new().await;
    world
        .carewatch
        .test_channel(&world.admin, &world.channel)
        .await
        .expect("test queued");
    let (stop, task) = world.dispatch(Duration::from_secs(5));
    world.entry_when(|e| e.delivered_at.is_some()).await;
    stop_within(stop, task, WAIT).await;
    // One more (a test names its instant), never sent: pending stays
    // however old.
    world.clock.advance(Duration::from_secs(1));
    world
        .carewatch
        .test_channel(&world.admin, &world.channel)
        .await
        .expect("second test queued");
    let retention = carewatch_core::DEFAULT_NOTIFICATION_RETENTION;
    world.clock.advance(retention - Duration::from_secs(60));
    assert_eq!(
        world.carewatch.prune_notifications().await.expect("prune"),
        0,
        "kept for the retention"
    );
    world.clock.advance(Duration::from_secs(120));
    assert_eq!(
        world.carewatch.prune_notifications().await.expect("prune"),
        1,
        "the delivered one, past the retention"
    );
    let left = world.outbox().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].delivered_at.is_none() && left[0].failed_at.is_none());
}

/// Outcomes are gathered into one write: while the last of a claimed batch
/// is still in flight, the nine delivered before it are not yet recorded
/// (with one write per finished attempt they would be), then all ten are,
/// together.
#[tokio::test(flavor = "multi_thread")]
async fn outcomes_are_recorded_together() {
    // Longer than the test; with the longest attempt (30 s) still within
    // the claim (60 s).
    let (world, stop) =
        nine_sent_and_one_held(Duration::from_secs(1), Duration::from_secs(20)).await;
    // The tenth is held by the receiver for a second: the other nine are
    // done, and waiting to be written with it.
    assert_eq!(recorded_and_delivered(&world).await.0, 0);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match recorded_and_delivered(&world).await.0 {
            0 => {}
            10 => break,
            n => panic!("recorded in one write, not {n} of 10 first"),
        }
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
}

/// How many of the outbox's entries have an attempt recorded, and how many
/// are delivered.
async fn recorded_and_delivered(world: &World) -> (usize, usize) {
    let entries = world.outbox().await;
    (
        entries.iter().filter(|e| e.attempts > 0).count(),
        entries.iter().filter(|e| e.delivered_at.is_some()).count(),
    )
}

/// Ten test notifications sent one at a time, outcomes gathered for
/// `gather`: the first nine answered at once, the tenth held `held`. Returns
/// once the tenth was received (and is being held).
async fn nine_sent_and_one_held(held: Duration, gather: Duration) -> (World, oneshot::Sender<()>) {
    let world = World::new().await;
    let mut plan: Vec<Reply> = (0..9).map(|_| Reply::status(200)).collect();
    plan.push(Reply::status(200).after(held));
    world.receiver.plan(plan);
    world.queue_tests(10).await;
    let (stop, _task) = world.dispatch_with(DispatcherOptions {
        concurrency: 1,
        gather,
        ..DispatcherOptions::default()
    });
    assert_eq!(world.receiver.wait_for(10, WAIT).await.len(), 10);
    (world, stop)
}

/// Gathered outcomes are written once the gathering time is up, without
/// waiting for the rest of the batch.
#[tokio::test(flavor = "multi_thread")]
async fn gathered_outcomes_are_written_when_due() {
    let (world, stop) =
        nine_sent_and_one_held(Duration::from_secs(5), Duration::from_millis(200)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while recorded_and_delivered(&world).await.0 < 9 {
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        world.receiver.received()[9].answered.is_none(),
        "the nine were written before the tenth was answered"
    );
    let _ = stop.send(());
}

/// A stop writes the gathered outcomes at once: the stop's grace may end
/// before the batch does, and an outcome not written would be sent again.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_writes_gathered_outcomes() {
    let world = World::new().await;
    world.receiver.plan([
        Reply::status(200),
        Reply::status(200).after(Duration::from_secs(30)),
    ]);
    world.queue_tests(2).await;
    let (stop, task) = world.dispatch_with(DispatcherOptions {
        concurrency: 1,
        // Longer than the test; with the longest attempt (30 s) still
        // within the claim (60 s).
        gather: Duration::from_secs(20),
        shutdown_grace: Duration::from_secs(1),
        ..DispatcherOptions::default()
    });
    assert_eq!(world.receiver.wait_for(2, WAIT).await.len(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorded_and_delivered(&world).await, (0, 0), "gathering");
    stop_within(stop, task, WAIT).await;
    assert_eq!(
        recorded_and_delivered(&world).await,
        (1, 1),
        "the first written at the stop, the second cut off"
    );
}
