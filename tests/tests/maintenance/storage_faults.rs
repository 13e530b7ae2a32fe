//! A storage outage or stall, with servers beating: nobody is blamed for it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use carewatch_core::IncomingMessage;
use carewatch_core::availability::{self, Availability, AvailabilityPolicy, Downtime};
use carewatch_core::ids::{RecordingServerId, ResellerId};
use carewatch_core::seal::MasterKey;
use carewatch_core::store::HistoryKind;
use tokio::time::{Instant, sleep, sleep_until};

use crate::support::{
    EVERY, another_node, beat_every_second, became_unavailable, fast_config, fast_config_with,
    open_with, site, the_one_window,
};

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

        let window = the_one_window(&store).await;
        let began = service.now().saturating_sub(Duration::from_secs(30));
        assert!(
            window.start() <= began.saturating_add(Duration::from_millis(1000)),
            "the window starts with the first refused write: {window:?}"
        );
        let unavailable = became_unavailable(&service, &slc).await;
        assert_eq!(
            unavailable.len(),
            1,
            "{outage:?}: only rs-quiet: {unavailable:?}"
        );
        let expected_since = window.end().saturating_add(Duration::from_secs(3));
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

/// Found by review: the health service said Ingest was serving while every
/// call failed on the storage. The service publishes whether its storage
/// works: not from the first failure until a liveness mark succeeds.
#[tokio::test(start_paused = true)]
async fn the_storage_state_follows_an_outage_and_its_recovery() {
    let (_dir, store, service) = open_with(Duration::ZERO, fast_config()).await;
    let mut works = service.storage_works();
    assert!(*works.borrow_and_update(), "works at the start");
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let run = service.run_maintenance(EVERY, sleep_until(at(20)));
    let outage = async {
        sleep_until(at(5)).await;
        store.failing.store(true, Ordering::SeqCst);
        tokio::time::timeout(EVERY * 2, works.changed())
            .await
            .expect("seen by the next liveness mark at the latest")
            .expect("the service is open");
        assert!(!*works.borrow_and_update(), "a failing storage is reported");
        sleep_until(at(10)).await;
        assert!(!*works.borrow(), "still failing");
        store.failing.store(false, Ordering::SeqCst);
        tokio::time::timeout(EVERY * 2, works.changed())
            .await
            .expect("works again after the next liveness mark")
            .expect("the service is open");
        assert!(*works.borrow_and_update(), "works again after a mark");
    };
    tokio::join!(run, outage);
}

/// Found by review: of two nodes that both saw an outage, the one whose
/// recovery mark found it already recorded by the other did not load the
/// window, and counted the outage in the missed heartbeats of a server
/// that recovered through it.
#[tokio::test(start_paused = true)]
async fn a_node_loads_the_outage_another_node_recorded() {
    let master_key = MasterKey::generate();
    let (_dir, store, node_a) = open_with(
        Duration::ZERO,
        fast_config_with(master_key.clone()).with_node_id("node-a"),
    )
    .await;
    let node_b = another_node(
        &store,
        &node_a,
        fast_config_with(master_key).with_node_id("node-b"),
    )
    .await;
    let (slc, key) = site(&node_a).await;
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    // rs-1 beats at node A for 5 s, then falls silent: A's sweeps make it
    // unavailable. rs-2 beats at node B throughout, so B sees the outage.
    let a_runs = node_a.run_maintenance(EVERY, sleep_until(at(45)));
    let rs_1 = beat_every_second(&node_a, &slc, &key, "rs-1", at(0), at(5));
    let rs_2 = beat_every_second(&node_b, &slc, &key, "rs-2", at(0), at(45));
    // B marks once A has recorded the outage (and sweeps nothing: A's
    // sweeps, which see the window, apply every verdict due).
    let b_runs = async {
        sleep_until(at(35)).await;
        node_b.mark_alive().await.expect("B marks");
    };
    let fault = async {
        sleep_until(at(20)).await;
        store.failing.store(true, Ordering::SeqCst);
        sleep_until(at(30)).await;
        store.failing.store(false, Ordering::SeqCst);
    };
    let rs_1_returns = async {
        sleep_until(at(40)).await;
        let server = RecordingServerId::new("rs-1").expect("id");
        node_b
            .ingest(IncomingMessage::heartbeat(&key, &slc, &server, 6))
            .await
            .expect("admitted");
    };
    tokio::join!(a_runs, b_runs, rs_1, rs_2, fault, rs_1_returns);

    let window = the_one_window(&store).await;
    let detail = node_a
        .installation(&ResellerId::new("alpha").expect("id"), &slc)
        .await
        .expect("detail");
    let (received, missed) = detail
        .history
        .iter()
        .find_map(|e| match e.kind {
            HistoryKind::Recovered { missed, .. } if e.server.as_str() == "rs-1" => {
                Some((e.at, missed))
            }
            _ => None,
        })
        .expect("rs-1 recovered");
    // Its last heartbeat before: the fifth, at 4 s.
    let interval = Duration::from_secs(1);
    let expected = availability::missed_before(
        received.saturating_sub(interval * 36),
        received,
        interval,
        &AvailabilityPolicy::new(3, Duration::from_millis(200)).expect("policy"),
        &Downtime::new(vec![window]),
    );
    assert!(expected < 30, "the outage is not counted: {expected}");
    assert_eq!(missed, expected, "node B counts without the outage");
}
