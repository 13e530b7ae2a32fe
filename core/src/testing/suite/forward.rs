//! What a newer Carewatch sharing the database writes (a rolling upgrade):
//! a node of this version reads past it instead of failing.

use std::time::Duration;

use futures::StreamExt;

use super::notifications::on_call;
use super::{beat, report};
use crate::catalogue::ConditionCode;
use crate::feed::{Change, EventId};
use crate::notification::ChannelRules;
use crate::testing::TestBackend;
use crate::testing::fixture::Fixture;

/// Change kinds a newer node wrote (one with a server, one without) are
/// read as `Change::Unknown` in their place: the notifier's step passes
/// over them (it failed on them, and stopped notifying every reseller while
/// this node held its lease), watchers resuming before them get the next
/// known change, and nothing is told of them.
pub(crate) async fn change_kinds_a_newer_version_wrote_are_passed_over(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-0001").await;
    on_call(&fx, &site.reseller, ChannelRules::default()).await;
    beat(&fx, &site, "rs-1", 1).await;
    let step = || async {
        fx.carewatch
            .notify_step()
            .await
            .expect("the notifier passes over unknown kinds")
    };
    step().await;
    let before = fx.store.latest_change().await.expect("the head");
    let history_before = fx
        .carewatch
        .full_history(&site.slc, 100)
        .await
        .expect("the full history reads")
        .len();
    let now = fx.carewatch.now();
    db.append_raw_change(now, &site.slc, "camera_moved", None)
        .await;
    db.append_raw_change(now, &site.slc, "server_renamed", Some("rs-1"))
        .await;
    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    report(&fx, &site, "rs-1", 2, &full).await;

    let events = fx.store.changes(before, 100).await.expect("the feed reads");
    let kinds: Vec<_> = events.iter().map(|e| e.change.name()).collect();
    assert_eq!(&kinds[..2], ["unknown", "unknown"], "{kinds:?}");
    assert_eq!(
        events[1].change,
        Change::Unknown {
            kind: "server_renamed".into()
        }
    );
    assert!(kinds[2..].iter().all(|k| *k != "unknown"), "{kinds:?}");
    let last = events.last().expect("events").id;

    let first = step().await;
    assert_eq!(first.events, events.len(), "every event processed");
    assert_eq!(step().await.events, 0, "past them");

    let mut watch = fx
        .carewatch
        .watch(&site.reseller, None, Some(before))
        .await
        .expect("resume before them");
    let next = tokio::time::timeout(Duration::from_secs(2), watch.next())
        .await
        .expect("an event within 2 s")
        .expect("open")
        .expect("no error");
    assert_eq!(next.id, events[2].id, "the first known change after them");
    assert!(next.id <= last && next.id > EventId(before.0 + 2));

    // Its history entry is passed over by the installation's page and the
    // operator's full history (they failed on it): only the report's
    // opened condition is new.
    let detail = fx
        .carewatch
        .installation(&site.reseller, &site.slc)
        .await
        .expect("the installation's page reads");
    let full = fx
        .carewatch
        .full_history(&site.slc, 100)
        .await
        .expect("the full history reads");
    assert_eq!(full.len(), history_before + 1, "{full:?}");
    assert_eq!(detail.history, full, "the same entries");
}
