//! The service's own downtime: not missed heartbeats; stored windows, restarts, the epoch.

use std::sync::Arc;
use std::time::Duration;

use super::{epoch, rs_id, sweep, windows};
use crate::availability::{Availability, DowntimeWindow};
use crate::health::Health;
use crate::liveness::{LivenessMark, MarkReason};
use crate::seal::MasterKey;
use crate::store::{AvailabilityChange, AvailabilityOutcome, HistoryKind};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, INTERVAL, JITTER, START};
use crate::testing::suite::{beat, count_history, detail, event, keep_alive, secs, server, t};
use crate::time::{Clock, ManualClock, Timestamp};

/// The service's own downtime does not count as missed heartbeats: after a
/// restart everybody has three full intervals to report. A server already
/// unavailable before the outage stays so, with its original `since`.
pub(crate) async fn own_downtime_does_not_count_as_missed_heartbeats(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let clock = Arc::new(ManualClock::new(START));
    let master_key = MasterKey::generate();
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    beat(&fx, &site, "rs-1", 1).await;
    beat(&fx, &site, "rs-2", 1).await;

    // The service runs for 200 s; rs-1 reports every minute, rs-2 is silent.
    for (sequence, run) in [(2, 60), (3, 60), (4, 60), (5, 20)] {
        keep_alive(&fx, secs(run)).await;
        beat(&fx, &site, "rs-1", sequence).await;
    }
    assert_eq!(fx.carewatch.now(), t(200));
    let d = detail(&fx, &site).await;
    assert_eq!(
        server(&d, "rs-2").availability,
        Availability::Unavailable {
            since: t(180),
            missed: 3
        },
        "while the service runs, rs-2's silence makes it unavailable"
    );
    assert_eq!(server(&d, "rs-1").availability, Availability::Available);
    assert_eq!(
        windows(&fx.store).await,
        vec![],
        "a service ticking every 5 s has no downtime"
    );

    // The service stops for ten intervals.
    drop(fx);
    clock.advance(INTERVAL * 10);
    let restart = t(800);
    assert_eq!(clock.now(), restart);
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;
    assert_eq!(
        windows(&fx.store).await,
        vec![DowntimeWindow::new(t(200), restart).expect("a window")],
        "the restart must record the gap since the last liveness mark as own downtime"
    );

    sweep(&fx, 1, 0, "right after the restart").await;
    let d = detail(&fx, &site).await;
    let s1 = server(&d, "rs-1");
    assert_eq!(
        (s1.availability, s1.next_check_at),
        (
            Availability::Available,
            Some(restart.saturating_add(INTERVAL + JITTER))
        ),
        "rs-1 must not be blamed for the service's downtime: Available, counted from the restart"
    );
    assert_eq!(
        server(&d, "rs-2").availability,
        Availability::Unavailable {
            since: t(180),
            missed: 3
        },
        "rs-2 was unavailable before the outage and stays so, since its original time"
    );
    assert_eq!(
        d.summary.health,
        Health::Critical,
        "only rs-2 is down: Critical, not Offline"
    );

    let after = |s: u64| restart.saturating_add(secs(s));
    fx.advance(secs(61));
    sweep(&fx, 0, 0, "61 s after the restart").await;
    fx.advance(secs(1));
    sweep(&fx, 1, 1, "62 s after the restart").await;
    assert_eq!(
        server(&detail(&fx, &site).await, "rs-1").availability,
        Availability::Late { missed: 1 },
        "the first heartbeat counted is the one due I after the restart"
    );
    fx.advance(secs(119));
    sweep(&fx, 1, 0, "181 s after the restart").await;
    assert_eq!(
        server(&detail(&fx, &site).await, "rs-1").availability,
        Availability::Late { missed: 2 },
        "not unavailable before restart + 3·I + jitter"
    );
    fx.advance(secs(1));
    sweep(&fx, 1, 1, "182 s after the restart").await;
    let d = detail(&fx, &site).await;
    assert_eq!(
        server(&d, "rs-1").availability,
        Availability::Unavailable {
            since: after(180),
            missed: 3
        },
        "unavailable since restart + 3·I; only heartbeats due while receiving count as missed"
    );
    assert_eq!(d.summary.health, Health::Offline);
    assert!(
        d.history.contains(&event(
            after(180),
            "rs-1",
            HistoryKind::BecameUnavailable { missed: 3 }
        )),
        "rs-1's unavailability must be recorded at restart + 3·I with 3 missed: {:#?}",
        d.history
    );
    assert_eq!(
        count_history(&d, |k| matches!(k, HistoryKind::BecameUnavailable { .. })),
        2,
        "each server became unavailable exactly once"
    );
}

/// Liveness marks and downtime windows. `mark_alive` records, in the same
/// transaction, the window [`crate::liveness::gap_before`] finds given every
/// node's stored liveness; `mark_stopped` keeps a clean stop's exact time,
/// which a late-arriving older mark does not undo; every recorded window
/// changes the epoch; `downtime(after)` lists the windows ending after
/// `after`, by start; everything survives reopening.
pub(crate) async fn downtime_windows_are_stored(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let store = db.open().await;
    let at = |s: u64| START.saturating_add(secs(s));
    let window = |from: u64, to: u64| DowntimeWindow::new(at(from), at(to)).expect("a window");
    let mark = |node: &str, s: u64, reason: MarkReason| LivenessMark {
        node: node.into(),
        at: at(s),
        reason,
        tolerance: secs(3),
    };
    let recovered_since = |s: u64| MarkReason::StorageRecovered { since: at(s) };
    let empty = store.downtime(Timestamp::EPOCH).await.expect("downtime");
    assert_eq!(empty.windows, vec![]);

    for (m, expected, what) in [
        (
            mark("node-a", 0, MarkReason::Starting),
            None,
            "the first mark ever",
        ),
        (
            mark("node-a", 1, MarkReason::Running),
            None,
            "a running mark within the tolerance",
        ),
        (
            mark("node-b", 2, MarkReason::Starting),
            None,
            "node-b starts while node-a receives",
        ),
        (
            mark("node-b", 4, MarkReason::Running),
            None,
            "node-b's next mark",
        ),
    ] {
        assert_eq!(
            store.mark_alive(&m).await.expect("mark_alive"),
            expected,
            "{what}: {m:?}"
        );
    }
    store
        .mark_stopped("node-a", at(5))
        .await
        .expect("mark_stopped");
    assert_eq!(
        store
            .mark_alive(&mark("node-b", 6, MarkReason::Running))
            .await
            .expect("mark_alive"),
        None,
        "node-b keeps receiving after node-a's clean stop"
    );
    // node-b crashes after its mark at 6; node-a comes back at 20.
    assert_eq!(
        store
            .mark_alive(&mark("node-a", 20, MarkReason::Starting))
            .await
            .expect("mark_alive"),
        Some(window(6, 20)),
        "the fleet stopped receiving with node-b's last mark"
    );
    let log = store.downtime(Timestamp::EPOCH).await.expect("downtime");
    assert_eq!(log.windows, vec![window(6, 20)], "recorded with the mark");
    assert_ne!(
        log.epoch, empty.epoch,
        "a recorded window changes the epoch"
    );

    // A clean stop at 30, then a mark taken at 29 that lands late.
    store
        .mark_stopped("node-a", at(30))
        .await
        .expect("mark_stopped");
    assert_eq!(
        store
            .mark_alive(&mark("node-a", 29, MarkReason::Running))
            .await
            .expect("mark_alive"),
        None
    );
    assert_eq!(
        store
            .mark_alive(&mark("node-a", 31, MarkReason::Starting))
            .await
            .expect("mark_alive"),
        Some(window(30, 31)),
        "a restart 1 s after a clean stop: the exact stop, kept despite the older mark"
    );
    assert_eq!(
        store
            .mark_alive(&mark("node-a", 40, recovered_since(35)))
            .await
            .expect("mark_alive"),
        Some(window(35, 40)),
        "a storage outage counts from the first refused write"
    );
    let before_manual = store.downtime(Timestamp::EPOCH).await.expect("downtime");
    assert_eq!(
        before_manual.windows,
        vec![window(6, 20), window(30, 31), window(35, 40)]
    );

    store
        .record_downtime(window(100, 200))
        .await
        .expect("record_downtime");
    let after_manual = store.downtime(Timestamp::EPOCH).await.expect("downtime");
    assert_ne!(after_manual.epoch, before_manual.epoch);
    let all = vec![
        window(6, 20),
        window(30, 31),
        window(35, 40),
        window(100, 200),
    ];
    for (after, expected) in [
        (Timestamp::EPOCH, all.clone()),
        (at(19), all.clone()),
        (at(20), all[1..].to_vec()),
        (at(150), all[3..].to_vec()),
        (at(200), vec![]),
    ] {
        let log = store.downtime(after).await.expect("downtime");
        assert_eq!(
            log.windows, expected,
            "downtime({after}) must list the windows ending strictly after it, by start"
        );
        assert_eq!(log.epoch, after_manual.epoch, "the epoch ignores `after`");
    }

    drop(store);
    let store = db.open().await;
    assert_eq!(
        store
            .downtime(Timestamp::EPOCH)
            .await
            .expect("downtime after reopening"),
        after_manual,
        "downtime windows and their epoch must survive reopening"
    );
    assert_eq!(
        store
            .mark_alive(&mark("node-a", 300, MarkReason::Starting))
            .await
            .expect("mark_alive"),
        Some(window(40, 300)),
        "liveness marks must survive reopening"
    );
}

/// The service records its own downtime exactly: a restart after a crash
/// from the last liveness mark, a restart after a clean stop from the
/// moment it stopped receiving, at any length (here 2 s, shorter than the
/// liveness tolerance); messages after the stop are refused.
pub(crate) async fn restarts_record_own_downtime_exactly(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let clock = Arc::new(ManualClock::new(START));
    let master_key = MasterKey::generate();
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    beat(&fx, &site, "rs-1", 1).await;
    keep_alive(&fx, secs(10)).await;

    // A crash (no stop) 0.5 s after the last mark, back 2 s later.
    clock.advance(Duration::from_millis(500));
    drop(fx);
    clock.advance(secs(2));
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;
    assert_eq!(
        windows(&fx.store).await,
        vec![DowntimeWindow::new(t(10), clock.now()).expect("window")],
        "a crash counts from the last liveness mark"
    );

    // A clean stop 0.7 s after a mark; the process then lingers 5 s.
    keep_alive(&fx, secs(5)).await;
    clock.advance(Duration::from_millis(700));
    let stopped_at = clock.now();
    fx.carewatch.stop_receiving().await.expect("stop");
    let refused = fx.heartbeat(&site, "rs-1", 2).await;
    assert!(
        matches!(refused, Err(crate::Error::ShuttingDown)),
        "a stopped node refuses messages: {refused:?}"
    );
    clock.advance(secs(5));
    drop(fx);
    clock.advance(secs(2));
    let restarted_at = clock.now();
    let fx = Fixture::open_with(db.as_ref(), clock.clone(), master_key.clone()).await;
    assert_eq!(
        windows(&fx.store).await.last().copied(),
        Some(DowntimeWindow::new(stopped_at, restarted_at).expect("window")),
        "a clean stop counts from the moment it stopped receiving, not the exit"
    );
    beat(&fx, &site, "rs-1", 2).await;
}

/// A sweep computed with old downtime windows applies nothing: the store
/// answers `DowntimeChanged` (and changes nothing) when a window was recorded
/// since, and applies with the current epoch.
pub(crate) async fn sweeps_apply_only_with_the_latest_downtime(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    let ack = beat(&fx, &site, "rs-1", 1).await;
    let old = epoch(&fx).await;
    fx.advance(INTERVAL * 4);
    let now = fx.carewatch.now();
    let change = AvailabilityChange {
        slc: site.slc.clone(),
        server: rs_id("rs-1"),
        expected_last_seen: ack.received_at,
        availability: Availability::Unavailable {
            since: ack.received_at.saturating_add(INTERVAL * 3),
            missed: 3,
        },
        next_check_at: None,
        evaluated_at: now,
    };
    fx.store
        .record_downtime(DowntimeWindow::new(ack.received_at, now).expect("window"))
        .await
        .expect("record_downtime");
    let before = detail(&fx, &site).await;
    assert_eq!(
        fx.store
            .apply_availability(std::slice::from_ref(&change), old)
            .await
            .expect("apply"),
        AvailabilityOutcome::DowntimeChanged,
        "verdicts computed before a window was recorded must not apply"
    );
    assert_eq!(detail(&fx, &site).await, before, "nothing changed");
    let current = epoch(&fx).await;
    assert!(matches!(
        fx.store
            .apply_availability(&[change], current)
            .await
            .expect("apply"),
        AvailabilityOutcome::Applied(changes) if changes.len() == 1
    ));

    // Another node records a window the service has not loaded: its sweep
    // must not judge with the windows it has in memory.
    let ack = beat(&fx, &site, "rs-1", 2).await;
    let outage = DowntimeWindow::new(
        ack.received_at.saturating_add(secs(10)),
        ack.received_at.saturating_add(INTERVAL * 5),
    )
    .expect("window");
    fx.store
        .record_downtime(outage)
        .await
        .expect("record_downtime");
    fx.advance(INTERVAL * 5 + secs(10));
    fx.carewatch.sweep().await.expect("sweep");
    assert_eq!(
        server(&detail(&fx, &site).await, "rs-1").availability,
        Availability::Available,
        "the sweep must use the window another node recorded: 10 s after it, nothing is missed"
    );
}
