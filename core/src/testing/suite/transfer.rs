//! Transferring an installation to another reseller (issue 18): atomic,
//! the old reseller finds it nowhere (its watch gets one `Removed`), what
//! it had set up for it goes, and what happened before is hidden from the
//! new reseller unless the transfer shares it.

use std::time::Duration;

use futures::StreamExt;

use super::notifications::{channel, create_channel, enqueue, entry, window};
use super::team::member;
use super::{beat, detail, refused, rs, secs, slc, t};
use crate::error::Error;
use crate::feed::{Change, ChangeEvent, EventId};
use crate::ids::ResellerId;
use crate::labels::Labels;
use crate::notification::rules::Phase;
use crate::notification::{
    Committed, DeliveryOutcome, NotificationState, NotifierCommit, OutboxFilter,
};
use crate::report::Period;
use crate::store::{HistoryKind, OverviewQuery, Store};
use crate::team::Role;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};
use crate::{Carewatch, WatchStream};

async fn next(watch: &mut WatchStream) -> ChangeEvent {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream is open")
        .expect("no error")
}

async fn rows_of(carewatch: &Carewatch, reseller: &ResellerId) -> Vec<String> {
    let query = OverviewQuery {
        include_healthy: true,
        ..OverviewQuery::default()
    };
    carewatch
        .overview(reseller, &query)
        .await
        .unwrap_or_else(|e| panic!("overview of {reseller}: {e}"))
        .rows
        .iter()
        .map(|r| r.slc.to_string())
        .collect()
}

pub(crate) async fn a_transfer_moves_an_installation_to_another_reseller_at_once(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let store: &std::sync::Arc<dyn Store> = &fx.store;
    let mut site = fx.site("alpha", "M01-C01-0001").await;
    let alpha = site.reseller.clone();
    let beta = fx.reseller("beta").await;
    let alpha_admin = member(&fx, &alpha, "admin@alpha", Role::Admin, START).await;
    let beta_admin = member(&fx, &beta, "admin@beta", Role::Admin, START).await;
    beat(&fx, &site, "rs-1", 1).await;
    // What alpha set up for it: labels, a maintenance window, a channel
    // with a notification state and a pending entry about it.
    let labels = Labels::new("Harbour Mall", "Gate 2", "", &["vip".to_owned()]).expect("labels");
    fx.carewatch
        .set_labels(&alpha_admin, &site.slc, &labels)
        .await
        .expect("labels");
    let hook = channel(1, &alpha, START);
    create_channel(store, &hook).await;
    let mut own_window = window(1, &alpha, Some(&site.slc), t(3600), secs(600), None);
    own_window.id =
        crate::notification::maintenance::WindowId::new("00000000000000a1").expect("window id");
    store.create_maintenance(&own_window).await.expect("window");
    let lease = store
        .notifier_lease("node-1", START, Duration::from_secs(30))
        .await
        .expect("lease")
        .expect("free");
    let committed = store
        .commit_notifications(NotifierCommit {
            node: "node-1".into(),
            from: lease,
            to: lease.position,
            states: vec![NotificationState {
                channel: hook.id.clone(),
                slc: site.slc.clone(),
                phase: Phase::Pending {
                    health: crate::health::Health::Critical,
                    since: START,
                    muted: false,
                },
                due_at: Some(t(120)),
            }],
            outbox: Vec::new(),
            claim_until: None,
        })
        .await
        .expect("commit");
    assert!(committed.written());
    // One told before the transfer (delivered), one still to tell.
    enqueue(store, &[entry(&hook, "told", Some(&site.slc), START)]).await;
    let told = store
        .claim_deliveries("node-9", START, Duration::from_secs(30), 10)
        .await
        .expect("claimed");
    assert_eq!(told.len(), 1);
    store
        .finish_delivery(told[0].id, "node-9", &DeliveryOutcome::Delivered, START)
        .await
        .expect("delivered");
    enqueue(store, &[entry(&hook, "pending", Some(&site.slc), START)]).await;

    let head = fx.carewatch.latest_change().await.expect("head");
    let mut alpha_watch = fx
        .carewatch
        .watch(&alpha, None, Some(head))
        .await
        .expect("alpha watches");
    let mut alpha_one = fx
        .carewatch
        .watch(&alpha, Some(&site.slc), Some(head))
        .await
        .expect("alpha watches the one");
    let mut beta_watch = fx
        .carewatch
        .watch(&beta, None, Some(head))
        .await
        .expect("beta watches");

    // Refused transfers change nothing.
    let before = detail(&fx, &site).await;
    let same = refused(
        fx.carewatch
            .transfer_installation(&site.slc, &alpha, false)
            .await,
        "a transfer to its own reseller",
    );
    assert!(matches!(same, Error::InvalidInput { .. }), "{same:?}");
    let nobody = ResellerId::new("nobody").expect("id");
    let missing = refused(
        fx.carewatch
            .transfer_installation(&site.slc, &nobody, false)
            .await,
        "a transfer to an unknown reseller",
    );
    assert!(matches!(missing, Error::NotFound { .. }), "{missing:?}");
    let unknown = refused(
        fx.carewatch
            .transfer_installation(&slc("M01-C01-0099"), &beta, false)
            .await,
        "a transfer of an unknown installation",
    );
    assert!(matches!(unknown, Error::NotFound { .. }), "{unknown:?}");
    assert_eq!(detail(&fx, &site).await, before, "refusals change nothing");

    fx.advance(secs(10));
    let moved = fx
        .carewatch
        .transfer_installation(&site.slc, &beta, false)
        .await
        .expect("transferred");
    assert_eq!(moved.reseller, beta);

    // The old reseller: nowhere, and its watches say so once.
    assert!(rows_of(&fx.carewatch, &alpha).await.is_empty());
    for result in [
        fx.carewatch
            .installation(&alpha, &site.slc)
            .await
            .map(|_| ()),
        fx.carewatch
            .set_labels(&alpha_admin, &site.slc, &Labels::default())
            .await,
        fx.carewatch
            .watch(&alpha, Some(&site.slc), None)
            .await
            .map(|_| ()),
        fx.carewatch
            .installation_uptime(
                &alpha,
                &site.slc,
                Period::new(START, t(10)).expect("period"),
            )
            .await
            .map(|_| ()),
    ] {
        let err = refused(result, "the old reseller reaching it");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }
    for watch in [&mut alpha_watch, &mut alpha_one] {
        let removed = next(watch).await;
        assert_eq!(
            (&removed.slc, &removed.reseller, &removed.change, removed.at),
            (&site.slc, &alpha, &Change::Removed, t(10))
        );
    }
    let windows = store
        .maintenance_windows(Some(&alpha))
        .await
        .expect("windows");
    assert!(windows.is_empty(), "{windows:?}");
    let states = store
        .notification_states(&[(hook.id.clone(), site.slc.clone())])
        .await
        .expect("states");
    assert!(states.is_empty(), "{states:?}");
    // Its notifications too, delivered ones included: they name it, its
    // health and labels (the old reseller finds it nowhere).
    let kept = store
        .outbox(&alpha, OutboxFilter::All, 10)
        .await
        .expect("outbox");
    assert!(kept.is_empty(), "{kept:?}");
    // A notifier step that read the feed before the transfer and commits
    // after it writes nothing about it for alpha; nor does a direct enqueue.
    let position = store
        .notifier_lease("node-1", t(10), Duration::from_secs(30))
        .await
        .expect("lease")
        .expect("still node-1's");
    let late = store
        .commit_notifications(NotifierCommit {
            node: "node-1".into(),
            from: position,
            to: position.position,
            states: vec![NotificationState {
                channel: hook.id.clone(),
                slc: site.slc.clone(),
                phase: Phase::Pending {
                    health: crate::health::Health::Offline,
                    since: t(5),
                    muted: false,
                },
                due_at: Some(t(125)),
            }],
            outbox: vec![entry(&hook, "late", Some(&site.slc), t(10))],
            claim_until: Some(t(70)),
        })
        .await
        .expect("commit");
    assert_eq!(
        late,
        Committed::Written {
            claimed: Vec::new()
        },
        "the step itself commits, and claims nothing it did not write"
    );
    enqueue(
        store,
        &[entry(&hook, "late enqueue", Some(&site.slc), t(10))],
    )
    .await;
    let states = store
        .notification_states(&[(hook.id.clone(), site.slc.clone())])
        .await
        .expect("states");
    assert!(states.is_empty(), "{states:?}");
    let entries = store
        .outbox(&alpha, OutboxFilter::All, 10)
        .await
        .expect("outbox");
    assert!(entries.is_empty(), "{entries:?}");

    // The operator still sees what came before.
    let whole = fx
        .carewatch
        .full_history(&site.slc, 100)
        .await
        .expect("the operator's history");
    assert!(
        whole
            .iter()
            .any(|e| e.server == rs("rs-1") && e.kind == HistoryKind::FirstSeen),
        "{whole:?}"
    );
    let unknown = refused(
        fx.carewatch.full_history(&slc("M01-C01-0099"), 100).await,
        "the history of an unknown installation",
    );
    assert!(matches!(unknown, Error::NotFound { .. }), "{unknown:?}");

    // The new reseller: there, without alpha's labels or history.
    assert_eq!(rows_of(&fx.carewatch, &beta).await, [site.slc.to_string()]);
    let registered = next(&mut beta_watch).await;
    assert_eq!(
        (&registered.slc, &registered.change, registered.at),
        (&site.slc, &Change::Registered, t(10))
    );
    site.reseller = beta.clone();
    let now_beta = detail(&fx, &site).await;
    assert_eq!(now_beta.labels, Labels::default());
    assert!(
        now_beta.history.is_empty(),
        "alpha's history is hidden: {:?}",
        now_beta.history
    );
    assert_eq!(now_beta.servers.len(), 1, "its servers are still watched");
    assert_eq!(
        (
            now_beta.servers[0].first_seen_at,
            now_beta.servers[0].last_seen_at
        ),
        (t(10), t(10)),
        "seen before the transfer reads as seen at it"
    );
    let line = fx
        .carewatch
        .overview(
            &beta,
            &OverviewQuery {
                include_healthy: true,
                ..OverviewQuery::default()
            },
        )
        .await
        .expect("beta's overview")
        .rows
        .remove(0);
    assert_eq!(line.last_seen_at, Some(t(10)), "in the overview too");
    // Messages go on; what happens now is beta's.
    fx.advance(secs(10));
    beat(&fx, &site, "rs-1", 2).await;
    beat(&fx, &site, "rs-2", 1).await;
    let now_beta = detail(&fx, &site).await;
    assert_eq!(
        now_beta
            .history
            .iter()
            .map(|e| (e.server.clone(), e.kind.clone()))
            .collect::<Vec<_>>(),
        [(rs("rs-2"), HistoryKind::FirstSeen)]
    );
    let events = fx
        .store
        .changes(EventId(0), 10_000)
        .await
        .expect("the feed");
    assert!(
        events
            .iter()
            .filter(|e| e.slc == site.slc && e.reseller == beta)
            .all(|e| e.at >= t(10)),
        "beta sees nothing of before: {events:?}"
    );
    assert!(
        events
            .iter()
            .filter(|e| e.slc == site.slc && e.reseller == alpha)
            .all(|e| e.change == Change::Removed),
        "alpha keeps only its Removed: {events:?}"
    );
    // Its uptime counts from the transfer.
    let uptime = fx
        .carewatch
        .installation_uptime(&beta, &site.slc, Period::new(START, t(20)).expect("period"))
        .await
        .expect("uptime");
    assert_eq!(uptime.uptime.unmonitored, secs(10), "{uptime:?}");
    fx.carewatch
        .set_labels(&beta_admin, &site.slc, &labels)
        .await
        .expect("beta labels it");

    // Back to alpha, sharing: alpha sees beta's time, never its own first.
    fx.advance(secs(10));
    fx.carewatch
        .transfer_installation(&site.slc, &alpha, true)
        .await
        .expect("transferred back");
    site.reseller = alpha.clone();
    let back = detail(&fx, &site).await;
    assert_eq!(back.history, now_beta.history, "shared: beta's, not before");
    assert_eq!(back.labels, Labels::default(), "labels never travel");
    let err = refused(
        fx.carewatch.installation(&beta, &site.slc).await,
        "beta after the second transfer",
    );
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
