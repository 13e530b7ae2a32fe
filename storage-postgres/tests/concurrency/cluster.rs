//! Nodes on one schema: migrating once, one downtime window between them, a feed without gaps.

use std::time::Duration;

use carewatch_core::availability::DowntimeWindow;
use carewatch_core::liveness::{LivenessMark, MarkReason};
use carewatch_core::store::{InstallationUpdate, Store};
use carewatch_core::time::Timestamp;
use futures::future::join_all;

use crate::common::Schema;
use crate::support::{START, at, installations, nodes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let schema = Schema::create().await;
    let names: Vec<String> = (0..4).map(|_| schema.next_application_name()).collect();
    let opened = join_all(names.iter().map(|name| schema.open_store(name))).await;
    let sites = installations(&opened[0], 1).await;
    for store in &opened {
        assert!(
            store
                .installation(&sites[0])
                .await
                .expect("reads")
                .is_some(),
            "every node sees one schema"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_of_nodes_at_the_same_moment_take_turns() {
    let schema = Schema::create().await;
    let nodes = nodes(&schema, 4).await;
    let mark = |node: &str, at, reason| LivenessMark {
        node: node.to_owned(),
        at,
        reason,
        tolerance: Duration::from_secs(3),
    };
    assert_eq!(
        nodes[0]
            .mark_alive(&mark("node-0", START, MarkReason::Starting))
            .await
            .expect("marks"),
        None
    );
    // node-0 crashed; four nodes start together a minute later.
    let later = at(60_000);
    let names = ["node-1", "node-2", "node-3", "node-4"];
    let windows = join_all(nodes.iter().zip(names).map(|(n, name)| async move {
        n.mark_alive(&mark(name, later, MarkReason::Starting)).await
    }))
    .await;
    let windows: Vec<_> = windows.into_iter().map(|w| w.expect("marks")).collect();
    let gap = DowntimeWindow::new(START, later).expect("window");
    assert_eq!(
        windows.iter().filter(|w| **w == Some(gap)).count(),
        1,
        "only the first of nodes starting together records the gap: {windows:?}"
    );
    assert!(
        windows.iter().all(|w| *w == Some(gap) || w.is_none()),
        "{windows:?}"
    );
    assert_eq!(
        nodes[0]
            .downtime(Timestamp::EPOCH)
            .await
            .expect("downtime")
            .windows,
        vec![gap],
        "one window, recorded with the mark that found it"
    );
}

/// Another node's event wakes this node's feed reader (LISTEN/NOTIFY at the
/// other node's COMMIT), and events committed by concurrent transactions are
/// numbered in commit order: a reader polling meanwhile never sees a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_events_wake_listeners_and_arrive_without_gaps() {
    let schema = Schema::create().await;
    let nodes = nodes(&schema, 2).await;
    let mut signals = nodes[0].listen_for_changes();
    // Let the listener connect and LISTEN before the first event.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sites = installations(&nodes[1], 16).await;
    tokio::time::timeout(Duration::from_secs(2), signals.changed())
        .await
        .expect("node 0 is woken by node 1's commit")
        .expect("listener alive");

    let head = nodes[0].latest_change().await.expect("head");
    let writers = join_all(sites.iter().enumerate().map(|(n, slc)| {
        let store = nodes[n % 2].clone();
        async move {
            for k in 0..10 {
                let accepted = k % 2 == 0;
                store
                    .update_installation(slc, &InstallationUpdate::Consent(accepted), at(k))
                    .await
                    .expect("consent");
            }
        }
    }));
    let reader = async {
        let mut last = head;
        let mut seen = 0;
        while seen < 160 {
            for event in nodes[0].changes(last, 100).await.expect("read") {
                assert_eq!(event.id.0, last.0 + 1, "a gap before {}", event.id);
                last = event.id;
                seen += 1;
            }
            tokio::task::yield_now().await;
        }
        seen
    };
    let (_, seen) = tokio::join!(writers, reader);
    assert_eq!(seen, 160);
}
