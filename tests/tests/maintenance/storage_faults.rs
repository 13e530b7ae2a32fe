//! A storage outage or stall, with servers beating: nobody is blamed for it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use carewatch_core::availability::Availability;
use carewatch_core::ids::ResellerId;
use carewatch_core::store::Store;
use carewatch_core::time::Timestamp;
use tokio::time::{Instant, sleep, sleep_until};

use crate::support::{EVERY, beat_every_second, became_unavailable, fast_config, open_with, site};

/// Observed 2: a storage outage, long (20 s) or short (3 s), made almost
/// every server unavailable when the storage came back. Now the outage is
/// own downtime from the first refused write, and nobody is blamed.
#[tokio::test(start_paused = true)]
async fn a_storage_outage_makes_nobody_unavailable() {
    for outage in [Duration::from_secs(20), Duration::from_secs(3)] {
        let (_dir, store, service) = open_with(Duration::ZERO, fast_config()).await;
        let (slc, key) = site(&service).await;
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let run = service.run_maintenance(EVERY, sleep_until(at(40)));
        let live = beat_every_second(&service, &slc, &key, "rs-live", at(0), at(40));
        // Goes silent 0.5 s before the outage: owes 3 intervals after it.
        let quiet = beat_every_second(
            &service,
            &slc,
            &key,
            "rs-quiet",
            at(0),
            at(10) - Duration::from_millis(500),
        );
        let fault = async {
            sleep_until(at(10)).await;
            store.failing.store(true, Ordering::SeqCst);
            sleep(outage).await;
            store.failing.store(false, Ordering::SeqCst);
        };
        tokio::join!(run, live, quiet, fault);

        let windows = store
            .downtime(Timestamp::EPOCH)
            .await
            .expect("downtime")
            .windows;
        assert_eq!(windows.len(), 1, "one outage, one window: {windows:?}");
        let began = service.now().saturating_sub(Duration::from_secs(30));
        assert!(
            windows[0].start() <= began.saturating_add(Duration::from_millis(1000)),
            "the window starts with the first refused write: {windows:?}"
        );
        let unavailable = became_unavailable(&service, &slc).await;
        assert_eq!(
            unavailable.len(),
            1,
            "{outage:?}: only rs-quiet: {unavailable:?}"
        );
        let expected_since = windows[0].end().saturating_add(Duration::from_secs(3));
        assert_eq!(
            unavailable[0],
            format!("rs-quiet at {expected_since}: BecameUnavailable {{ missed: 3 }}"),
            "{outage:?}: three intervals after the outage, three missed"
        );
    }
}

/// A storage that stalls (every call waits 3 s, then succeeds): heartbeats
/// received during the stall are written late, and a sweep must not read
/// the servers before them and call them late.
#[tokio::test(start_paused = true)]
async fn a_storage_stall_makes_nobody_late() {
    let (_dir, store, service) = open_with(Duration::ZERO, fast_config()).await;
    let (slc, key) = site(&service).await;
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let run = service.run_maintenance(EVERY, sleep_until(at(30)));
    let live = beat_every_second(&service, &slc, &key, "rs-1", at(0), at(30));
    let reseller = ResellerId::new("alpha").expect("id");
    let watch = async {
        let mut seen = Vec::new();
        while Instant::now() < at(30) {
            if let Ok(detail) = service.installation(&reseller, &slc).await {
                for s in &detail.servers {
                    if !matches!(s.availability, Availability::Available) {
                        seen.push(format!(
                            "{:?} at {:?}",
                            s.availability,
                            Instant::now() - start
                        ));
                    }
                }
            }
            sleep(Duration::from_millis(100)).await;
        }
        seen
    };
    let fault = async {
        for begin in [5, 15] {
            sleep_until(at(begin)).await;
            *store.stall_until.lock().expect("stall") = Some(at(begin + 3));
            sleep_until(at(begin + 3)).await;
            *store.stall_until.lock().expect("stall") = None;
        }
    };
    let ((), (), seen, ()) = tokio::join!(run, live, watch, fault);
    assert!(
        seen.is_empty(),
        "false verdicts during storage stalls: {seen:?}"
    );
    assert_eq!(
        became_unavailable(&service, &slc).await,
        Vec::<String>::new()
    );
}
