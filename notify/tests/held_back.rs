//! A channel whose receiver is down costs one attempt per batch, not one
//! per entry: its other entries in the batch are held back (deferred, not
//! counted), and the batch's other channels are delivered meanwhile.

mod world;

use std::time::Duration;

use carewatch_core::notification::{ChannelRules, Destination, OutboxFilter};
use carewatch_notify::DispatcherOptions;
use world::{WAIT, World, stop_within};

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_receiver_is_tried_once_a_batch_and_holds_up_nobody() {
    let world = World::new().await;
    // A port nobody listens on: every connection is refused at once.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("its address").port()
    };
    let (dead, _) = world
        .carewatch
        .create_channel(
            &world.admin,
            "dead hook",
            Destination::Webhook {
                url: format!("http://127.0.0.1:{closed}/carewatch"),
            },
            ChannelRules::default(),
        )
        .await
        .expect("channel");
    for _ in 0..20 {
        world
            .carewatch
            .test_channel(&world.admin, &dead.id)
            .await
            .expect("queued");
        world.clock.advance(Duration::from_millis(1));
    }
    world.queue_tests(3).await;
    // One at a time, so which attempt fails first is certain.
    let (stop, task) = world.dispatch_with(DispatcherOptions {
        concurrency: 1,
        shutdown_grace: Duration::from_secs(5),
        ..DispatcherOptions::default()
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    let entries = loop {
        let entries = world
            .carewatch
            .outbox(&world.admin.reseller, OutboxFilter::All, 100)
            .await
            .expect("outbox");
        let settled = entries
            .iter()
            .all(|e| e.delivered_at.is_some() || e.last_error.is_some() || e.failed_at.is_some());
        if settled {
            break entries;
        }
        assert!(tokio::time::Instant::now() < deadline, "{entries:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop_within(stop, task, WAIT).await;
    let (dead_entries, good): (Vec<_>, Vec<_>) = entries.iter().partition(|e| e.channel == dead.id);
    assert_eq!((dead_entries.len(), good.len()), (20, 3));
    assert!(good.iter().all(|e| e.delivered_at.is_some()), "{good:#?}");
    assert_eq!(world.receiver.received().len(), 3);
    let tried: Vec<u32> = dead_entries.iter().map(|e| e.attempts).collect();
    assert_eq!(
        tried.iter().sum::<u32>(),
        1,
        "one attempt for the batch: {dead_entries:#?}"
    );
    for entry in dead_entries.iter().filter(|e| e.attempts == 0) {
        let error = entry.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("could not be reached") && entry.next_attempt_at > world.carewatch.now(),
            "held back for later: {entry:?}"
        );
    }
    let views = world
        .carewatch
        .channels(&world.admin.reseller)
        .await
        .expect("channels");
    let dead_view = views
        .iter()
        .find(|v| v.record.id == dead.id)
        .expect("listed");
    assert_eq!(
        dead_view.record.status.failures_in_a_row, 1,
        "held-back entries are not the channel's failures"
    );
}
