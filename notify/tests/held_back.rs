//! A channel whose receiver cannot be reached costs one wave of attempts,
//! not one attempt per entry: once an attempt finds it unreachable, its
//! other entries are held back unsent (failed attempts, counted) until that
//! attempt's retry, and the batch's other channels are delivered meanwhile.

mod world;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use carewatch_core::notification::{ChannelRules, Destination};
use carewatch_notify::DispatcherOptions;
use world::{WAIT, World, stop_within};

/// A receiver that accepts connections and never answers; how many it took.
fn black_hole() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = listener.local_addr().expect("its address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (format!("http://{address}/carewatch"), accepted)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_never_answers_costs_one_wave_and_holds_up_nobody() {
    let world = World::new().await;
    let (url, accepted) = black_hole();
    let (dead, _) = world
        .carewatch
        .create_channel(
            &world.admin,
            "dead hook",
            Destination::Webhook { url },
            ChannelRules::default(),
        )
        .await
        .expect("channel");
    world.queue_tests_on(&dead.id, 40).await;
    world.queue_tests(3).await;
    // The default options (32 attempts at once), a 1-s timeout.
    let options = DispatcherOptions {
        shutdown_grace: Duration::from_secs(5),
        ..DispatcherOptions::default()
    };
    let concurrency = options.concurrency;
    let (stop, task) = world.dispatch_timing_out(options, Duration::from_secs(1));
    let entries = world
        .entries_when(|entries| {
            entries
                .iter()
                .all(|e| e.delivered_at.is_some() || e.attempts > 0)
        })
        .await;
    stop_within(stop, task, WAIT).await;
    let (dead_entries, live): (Vec<_>, Vec<_>) = entries.iter().partition(|e| e.channel == dead.id);
    assert_eq!((dead_entries.len(), live.len()), (40, 3));
    assert!(live.iter().all(|e| e.delivered_at.is_some()), "{live:#?}");
    let sent = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=concurrency).contains(&sent) && sent < 40,
        "one wave of attempts reached the receiver, not one per entry: {sent}"
    );
    assert!(
        dead_entries
            .iter()
            .all(|e| e.attempts == 1 && e.delivered_at.is_none()),
        "each counted once: {dead_entries:#?}"
    );
    let held_back = dead_entries
        .iter()
        .filter(|e| {
            e.last_error
                .as_deref()
                .is_some_and(|error| error.contains("could not be reached just before"))
        })
        .count();
    assert_eq!(held_back, 40 - sent, "the others were held back unsent");
}
