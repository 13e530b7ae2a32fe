//! Liveness marks: slow sweeps are not own downtime, a real outage is.

use std::sync::atomic::Ordering;
use std::time::Duration;

use carewatch_core::store::Store;
use carewatch_core::time::Timestamp;
use tokio::time::sleep;

use crate::support::{EVERY, SLOW_SWEEP, longest_gap, open, the_one_window};

#[tokio::test(start_paused = true)]
async fn slow_sweeps_are_not_recorded_as_own_downtime() {
    let (_dir, store, service) = open(SLOW_SWEEP).await;
    let started = service.now();

    service
        .run_maintenance(EVERY, sleep(Duration::from_secs(150)))
        .await;

    // The bug's symptom: a false window, which would excuse missed heartbeats.
    let windows = store
        .downtime(Timestamp::EPOCH)
        .await
        .expect("downtime")
        .windows;
    assert!(
        windows.is_empty(),
        "slow sweeps recorded as own downtime: {windows:?}"
    );
    // Its cause: liveness waiting for the sweep.
    let marks = store.marks.lock().expect("marks").clone();
    let gap = longest_gap(&marks);
    assert!(
        gap <= 2 * EVERY,
        "liveness waited {gap:?} (for a sweep?) between marks"
    );
    assert!(
        marks.len() >= 140,
        "liveness marked only {} times in 150 s",
        marks.len()
    );
    // And the sweeps really were slow, and ran all along.
    assert_eq!(service.now().since(started), Duration::from_secs(150));
    let sweeps = store.sweeps.load(Ordering::SeqCst);
    assert!(sweeps >= 4, "only {sweeps} slow sweeps completed in 150 s");
}

#[tokio::test(start_paused = true)]
async fn a_real_outage_is_recorded_as_own_downtime() {
    // Quick sweeps: this must hold before and after liveness got its own timer.
    let (_dir, store, service) = open(Duration::ZERO).await;
    let started = service.now();
    let at = |secs| started.saturating_add(Duration::from_secs(secs));

    service
        .run_maintenance(EVERY, sleep(Duration::from_secs(5)))
        .await;
    // Nothing marks liveness for a minute, then maintenance resumes.
    sleep(Duration::from_secs(60)).await;
    service
        .run_maintenance(EVERY, sleep(Duration::from_secs(5)))
        .await;

    let window = the_one_window(&store).await;
    // From the last mark before the outage (at 4 or 5 s, as the shutdown and
    // that tick fall together) to the first one after it (at once, at 65 s).
    assert!(
        (at(4)..=at(5)).contains(&window.start()),
        "window starts at {}",
        window.start()
    );
    assert_eq!(window.end(), at(65));
    assert!(
        longest_gap(&store.marks.lock().expect("marks")) >= Duration::from_secs(60),
        "the outage left no gap between marks"
    );
}
