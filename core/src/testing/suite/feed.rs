//! The change feed: what is appended, in what order, atomically with the
//! change; paging and resuming; retention; no gaps visible to readers while
//! many writers append; watchers resume from the last event they saw.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::{beat, refused, report, secs};
use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::feed::{Change, ChangeEvent, EventId};
use crate::store::{HistoryKind, Store};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, INTERVAL, JITTER};

async fn all_events(store: &Arc<dyn Store>) -> Vec<ChangeEvent> {
    store
        .changes(EventId(0), 10_000)
        .await
        .expect("reading the feed")
}

/// A short, comparable description of an event.
fn describe(e: &ChangeEvent) -> String {
    let what = match &e.change {
        Change::Health { previous, summary } => {
            format!("health {previous:?}->{:?}", summary.health)
        }
        Change::Server { server, event } => match event {
            HistoryKind::ConditionOpened { code, .. } => format!("{server} opened {code}"),
            HistoryKind::ConditionResolved { code, .. } => format!("{server} resolved {code}"),
            HistoryKind::BecameUnavailable { missed } => {
                format!("{server} unavailable after {missed}")
            }
            HistoryKind::Recovered { missed, .. } => format!("{server} recovered after {missed}"),
            HistoryKind::FirstSeen => format!("{server} first seen"),
            HistoryKind::Decommissioned => format!("{server} decommissioned"),
            HistoryKind::Recommissioned { .. } => format!("{server} recommissioned"),
            HistoryKind::Parked => format!("{server} parked"),
            HistoryKind::Resumed { .. } => format!("{server} resumed"),
        },
        Change::Registered => "registered".into(),
        Change::Unknown { kind } => format!("unknown {kind}"),
        Change::Labels => "labels".into(),
        Change::Removed => "removed".into(),
        Change::Consent { accepted } => format!("consent {accepted}"),
        Change::Subscription { expires_at } => {
            format!(
                "subscription {}",
                if expires_at.is_some() {
                    "set"
                } else {
                    "removed"
                }
            )
        }
    };
    format!("{} {} {}: {what}", e.id, e.reseller, e.slc)
}

/// Every change a reseller cares about is appended, in order, with ids one
/// apart, each naming its installation's reseller; a heartbeat that changes
/// nothing and a refused message append nothing; pages continue exactly.
pub(crate) async fn change_feed_records_every_change_in_order(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    assert_eq!(fx.store.latest_change().await.expect("head"), EventId(0));
    let a = fx.site("alpha", "M01-C01-0001").await;
    let b = fx.site("beta", "M02-C01-0001").await;
    beat(&fx, &a, "rs-1", 1).await;
    beat(&fx, &b, "rs-1", 1).await;
    let quiet = all_events(&fx.store).await.len();
    fx.advance(secs(1));
    beat(&fx, &a, "rs-1", 2).await;
    let _ = refused(
        fx.carewatch
            .ingest(super::heartbeat_msg(&a, "rs-1", 1))
            .await,
        "a replay",
    );
    assert_eq!(
        all_events(&fx.store).await.len(),
        quiet,
        "a heartbeat that changes nothing and a refused message append nothing"
    );
    report(
        &fx,
        &a,
        "rs-1",
        3,
        &[(ConditionCode::StorageFull, "D:", "full")],
    )
    .await;
    report(&fx, &a, "rs-1", 4, &[]).await;
    fx.advance(INTERVAL * 3 + JITTER);
    fx.carewatch.sweep().await.expect("sweep");

    let events = all_events(&fx.store).await;
    let described: Vec<String> = events.iter().map(describe).collect();
    let expected = [
        "1 alpha M01-C01-0001: registered",
        "2 alpha M01-C01-0001: consent true",
        "3 alpha M01-C01-0001: subscription set",
        "4 beta M02-C01-0001: registered",
        "5 beta M02-C01-0001: consent true",
        "6 beta M02-C01-0001: subscription set",
        "7 alpha M01-C01-0001: rs-1 first seen",
        "8 alpha M01-C01-0001: health Pending->Healthy",
        "9 beta M02-C01-0001: rs-1 first seen",
        "10 beta M02-C01-0001: health Pending->Healthy",
        "11 alpha M01-C01-0001: rs-1 opened STORAGE_FULL",
        "12 alpha M01-C01-0001: health Healthy->Critical",
        "13 alpha M01-C01-0001: rs-1 resolved STORAGE_FULL",
        "14 alpha M01-C01-0001: health Critical->Healthy",
    ];
    assert_eq!(described[..expected.len()], expected, "{described:#?}");
    // The sweep: both servers unavailable, both sites Offline, in some order.
    let mut swept: Vec<&str> = described[expected.len()..]
        .iter()
        .map(|d| d.split_once(": ").map_or("", |(_, what)| what))
        .collect();
    swept.sort_unstable();
    assert_eq!(
        swept,
        [
            "health Healthy->Offline",
            "health Healthy->Offline",
            "rs-1 unavailable after 3",
            "rs-1 unavailable after 3"
        ],
        "{described:#?}"
    );
    let ids: Vec<u64> = events.iter().map(|e| e.id.0).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "ids one apart"
    );
    assert!(
        events.windows(2).all(|w| w[0].at <= w[1].at),
        "times never go backwards"
    );
    assert_eq!(
        fx.store.latest_change().await.expect("head"),
        EventId(ids.len() as u64)
    );

    // Pages continue exactly where the last one ended.
    let mut paged = Vec::new();
    let mut after = EventId(0);
    loop {
        let page = fx.store.changes(after, 4).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.id;
        paged.extend(page);
    }
    assert_eq!(paged, events, "paging by 4 reads the same events");
    assert!(
        fx.store
            .changes(after, 10)
            .await
            .expect("after the head")
            .is_empty()
    );
}

/// A transaction that fails appends nothing; events of other writers never
/// show a gap to a reader that reads while they commit (ids are given in
/// commit order); every event is kept until pruned, then resuming before
/// the oldest kept is refused, and numbering goes on after pruning.
pub(crate) async fn change_feed_has_no_gaps_and_is_pruned_by_age(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let mut sites = Vec::new();
    for n in 1..=8 {
        sites.push(fx.site("alpha", &format!("M01-C01-{n:04}")).await);
    }
    // A failing write appends nothing.
    let head = fx.store.latest_change().await.expect("head");
    let ghost = crate::ids::Slc::new("M99-C99-9999").expect("slc");
    let _ = refused(
        fx.carewatch.set_consent(&ghost, true).await,
        "a missing installation",
    );
    assert_eq!(fx.store.latest_change().await.expect("head"), head);

    // Eight writers flip conditions while a reader follows the feed.
    let writers = futures::future::join_all(sites.iter().map(|site| {
        let fx = &fx;
        async move {
            for sequence in 1..=12u64 {
                let conditions: &[(ConditionCode, &str, &str)] = if sequence % 2 == 0 {
                    &[(ConditionCode::CameraUnreachable, "Camera 1", "")]
                } else {
                    &[]
                };
                report(fx, site, "rs-1", sequence, conditions).await;
            }
        }
    }));
    let store = fx.store.clone();
    let reader = tokio::spawn(async move {
        let mut last = head;
        let mut seen = 0usize;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            let page = store
                .changes(last, 50)
                .await
                .expect("reading while writers commit");
            for event in page {
                assert_eq!(
                    event.id.0,
                    last.0 + 1,
                    "a reader saw a gap before {}",
                    event.id
                );
                last = event.id;
                seen += 1;
            }
            if seen >= 8 * (1 + 1 + 11 * 2) {
                break;
            }
            tokio::task::yield_now().await;
        }
        seen
    });
    writers.await;
    let seen = reader.await.expect("reader");
    // Per site: first seen and Pending->Healthy, then 11 changes of the
    // condition, each with its health change.
    assert_eq!(seen, 8 * (2 + 11 * 2), "every event, once");

    // Retention: prune what happened before a minute from now, first only
    // up to two events before the head (what a notifier would have
    // processed), then everything.
    let head = fx.store.latest_change().await.expect("head");
    let cut = fx.carewatch.now().saturating_add(secs(60));
    let processed = EventId(head.0 - 2);
    let pruned = fx.store.prune_changes(cut, processed).await.expect("prune");
    assert_eq!(pruned, processed.0, "the events up to `through`, no more");
    let kept = fx.store.changes(processed, 10).await.expect("the rest");
    assert_eq!(
        kept.iter().map(|e| e.id).collect::<Vec<_>>(),
        [EventId(head.0 - 1), head],
        "events after `through` stay, however old"
    );
    let pruned = fx
        .store
        .prune_changes(cut, EventId(u64::MAX))
        .await
        .expect("prune");
    assert_eq!(pruned, 2, "every event so far is older than the cut");
    assert_eq!(
        fx.store.latest_change().await.expect("head"),
        head,
        "the head stays"
    );
    assert!(
        fx.store
            .changes(head, 10)
            .await
            .expect("from the head")
            .is_empty()
    );
    let err = fx
        .store
        .changes(EventId(head.0 - 1), 10)
        .await
        .expect_err("the event after it was pruned");
    assert!(matches!(err, Error::ResumeTooOld { .. }), "{err:?}");
    let err = fx
        .store
        .changes(EventId(head.0 + 5), 10)
        .await
        .expect_err("beyond the head");
    assert!(matches!(err, Error::ResumeTooOld { .. }), "{err:?}");
    fx.carewatch
        .set_consent(&sites[0].slc, false)
        .await
        .expect("consent");
    // The consent event and its servers' refusal entries.
    let next = fx.store.changes(head, 10).await.expect("after the head");
    let ids: Vec<EventId> = next.iter().map(|e| e.id).collect();
    let expected: Vec<EventId> = (1..=next.len() as u64)
        .map(|n| EventId(head.0 + n))
        .collect();
    assert!(!next.is_empty());
    assert_eq!(ids, expected, "numbering goes on after pruning");
    assert!(
        next.iter()
            .any(|e| e.change == crate::feed::Change::Consent { accepted: false }),
        "{next:#?}"
    );
}

/// A watcher that reconnects with the last event id it saw gets every change
/// since, in order, then live ones; one that asks for an event no longer
/// kept is refused (re-read the overview); another reseller's events never
/// come.
pub(crate) async fn watchers_resume_after_the_last_event_they_saw(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let a = fx.site("alpha", "M01-C01-0001").await;
    let b = fx.site("beta", "M02-C01-0001").await;
    beat(&fx, &a, "rs-1", 1).await;
    let mut watch = fx
        .carewatch
        .watch(&a.reseller, None, None)
        .await
        .expect("watch");
    report(
        &fx,
        &a,
        "rs-1",
        2,
        &[(ConditionCode::StorageFull, "D:", "")],
    )
    .await;
    let first = next(&mut watch).await;
    assert!(matches!(first.change, Change::Server { .. }), "{first:?}");
    drop(watch);

    // While disconnected: alpha's health change (already appended), then more.
    report(&fx, &b, "rs-1", 1, &[]).await;
    report(&fx, &a, "rs-1", 3, &[]).await;
    let mut resumed = fx
        .carewatch
        .watch(&a.reseller, None, Some(first.id))
        .await
        .expect("resume");
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(describe(&next(&mut resumed).await));
    }
    let tail = |d: &String| {
        d.split_once(": ")
            .map(|(_, w)| w.to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        got.iter().map(tail).collect::<Vec<_>>(),
        [
            "health Healthy->Critical",
            "rs-1 resolved STORAGE_FULL",
            "health Critical->Healthy"
        ],
        "every change since, in order, only alpha's: {got:?}"
    );
    // And then live.
    report(
        &fx,
        &a,
        "rs-1",
        4,
        &[(ConditionCode::CameraUnreachable, "Cam", "")],
    )
    .await;
    let live = next(&mut resumed).await;
    assert!(
        describe(&live).ends_with("rs-1 opened CAMERA_UNREACHABLE"),
        "{live:?}"
    );

    fx.store
        .prune_changes(
            fx.carewatch.now().saturating_add(secs(1)),
            EventId(u64::MAX),
        )
        .await
        .expect("prune");
    let err = fx
        .carewatch
        .watch(&a.reseller, None, Some(first.id))
        .await
        .expect_err("pruned");
    assert_eq!(err.code(), "resume_too_old");
}

async fn next(watch: &mut crate::WatchStream) -> ChangeEvent {
    tokio::time::timeout(Duration::from_secs(2), watch.next())
        .await
        .expect("an event within 2 s")
        .expect("the stream is open")
        .expect("no error")
}

/// Found by reading the watch path: a reseller's watchers were unbounded,
/// and every change is filtered for each on the node's CPU that every
/// tenant shares. A reseller has at most 2,000 open on a node: one more is
/// `LimitReached`; another reseller is not affected; closing one frees a
/// place.
pub(crate) async fn a_reseller_has_a_bounded_number_of_watchers_per_node(
    backend: &(impl TestBackend + ?Sized),
) {
    use crate::store::limits::MAX_WATCHERS_PER_RESELLER;

    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let mut open = Vec::with_capacity(MAX_WATCHERS_PER_RESELLER);
    for n in 0..MAX_WATCHERS_PER_RESELLER {
        open.push(
            fx.carewatch
                .watch(&alpha, None, None)
                .await
                .unwrap_or_else(|e| panic!("watcher {n}: {e}")),
        );
    }
    let err = refused(
        fx.carewatch.watch(&alpha, None, None).await,
        "one watcher more",
    );
    assert!(
        matches!(err, Error::LimitReached { limit, .. } if limit == MAX_WATCHERS_PER_RESELLER),
        "{err:?}"
    );
    fx.carewatch
        .watch(&beta, None, None)
        .await
        .expect("another reseller watches");
    drop(open.pop());
    fx.carewatch
        .watch(&alpha, None, None)
        .await
        .expect("a closed watcher frees its place");
}
