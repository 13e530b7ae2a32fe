//! What the notifier queues is claimed in its own commit and handed to
//! delivery at once: sent though the outbox is not looked at again.

mod world;

use std::time::Duration;

use carewatch_core::ConditionCode;
use carewatch_core::IncomingMessage;
use carewatch_core::condition::{ReportedCondition, StatusSnapshot};
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::installation::Product;
use carewatch_notify::DispatcherOptions;
use carewatch_notify::testing::http::Reply;
use world::{WAIT, World, stop_within};

/// An installation of the world's reseller reporting a full recording
/// drive (Critical), told about on the world's channel once held 2 min.
async fn a_critical_installation(world: &World) -> Slc {
    let carewatch = &world.carewatch;
    let slc = Slc::new("M01-C01-0001").expect("SLC");
    let product = Product::new("XProtect Corporate", "2016 R3").expect("product");
    carewatch
        .register_installation(&slc, &world.admin.reseller, product)
        .await
        .expect("registers");
    carewatch.set_consent(&slc, true).await.expect("consent");
    let year = carewatch
        .now()
        .saturating_add(Duration::from_secs(365 * 86_400));
    carewatch
        .set_subscription(&slc, Some(year))
        .await
        .expect("Care Plus");
    let key = carewatch.issue_installation_key(&slc).await.expect("key");
    let server = RecordingServerId::new("rs-1").expect("server id");
    let full = StatusSnapshot::new(vec![
        ReportedCondition::new(ConditionCode::StorageFull, "D:", "recording drive full")
            .expect("condition"),
    ])
    .expect("snapshot");
    carewatch
        .ingest(IncomingMessage::status_report(
            &key, &slc, &server, 1, &full,
        ))
        .await
        .expect("report");
    slc
}

/// The dispatcher looks at the outbox once an hour here, so only the
/// hand-over can send the step's notification; it is sent once, as the
/// outbox then records, with its claim ended.
#[tokio::test(flavor = "multi_thread")]
async fn what_a_step_queues_is_sent_without_looking_at_the_outbox_again() {
    let world = World::new().await;
    let slc = a_critical_installation(&world).await;
    let held = world.carewatch.notify_step().await.expect("step");
    assert_eq!(held.queued, 0, "held for the channel's 2 min");
    world.clock.advance(Duration::from_secs(121));

    let (stop, task) = world.dispatch_exactly(DispatcherOptions {
        every: Duration::from_secs(3600),
        ..DispatcherOptions::default()
    });
    let got = world.receiver.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let entry = world.entry_when(|e| e.delivered_at.is_some()).await;
    assert_eq!(entry.slc, Some(slc));
    assert_eq!(entry.attempts, 1, "one attempt, recorded");
    assert_eq!(got[0].header("idempotency-key"), Some(entry.key.as_str()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.receiver.count(), 1, "sent once");
    stop_within(stop, task, WAIT).await;
}

/// A backlog in the outbox (channel tests, claimed two at a time and each
/// answered after 150 ms) does not hold up what the notifier hands over:
/// claims and hand-overs take turns, so the step's notification goes out
/// among the first few, not after the whole backlog.
#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_in_the_outbox_does_not_hold_up_what_a_step_hands_over() {
    let world = World::new().await;
    let slc = a_critical_installation(&world).await;
    world.carewatch.notify_step().await.expect("step");
    world.clock.advance(Duration::from_secs(121));
    const BACKLOG: usize = 20;
    world.queue_tests(BACKLOG).await;
    world
        .receiver
        .plan((0..=BACKLOG).map(|_| Reply::status(200).after(Duration::from_millis(150))));

    let (stop, task) = world.dispatch_with(DispatcherOptions {
        batch: 2,
        concurrency: 1,
        ..DispatcherOptions::default()
    });
    let got = world.receiver.wait_for(BACKLOG + 1, WAIT * 2).await;
    assert_eq!(got.len(), BACKLOG + 1);
    let position = got
        .iter()
        .position(|r| {
            r.header("idempotency-key")
                .is_some_and(|key| key.contains(slc.as_str()))
        })
        .expect("the step's notification arrived");
    assert!(
        position < 8,
        "the step's notification was request {} of {}",
        position + 1,
        got.len()
    );
    stop_within(stop, task, WAIT).await;
}
