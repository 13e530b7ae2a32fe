//! The database drops every connection of a node (a restart, a failover, an
//! administrator): ingest through the facade resumes on new connections and
//! no acknowledged status report is lost.

mod common;

use std::sync::Arc;
use std::time::Duration;

use carewatch_core::availability::Availability;
use carewatch_core::store::{HistoryKind, InstallationDetail, Store};
use carewatch_core::testing::fixture::Fixture;
use carewatch_core::testing::{Site, TestDatabase};
use carewatch_core::{ConditionCode, Error, IngestAck};
use common::Schema;
use sqlx_core::query_scalar::query_scalar;

/// One node: a store with an `application_name` of its own, so the test
/// kills exactly its connections.
struct Node<'a> {
    schema: &'a Schema,
    application_name: String,
}

#[async_trait::async_trait]
impl TestDatabase for Node<'_> {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.schema.open_store(&self.application_name).await)
    }
}

/// Terminates every backend of `application_name`; returns how many.
async fn kill_connections(application_name: &str) -> i64 {
    let mut admin = common::admin_connection().await;
    let killed: Vec<bool> = query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1",
    )
    .bind(application_name)
    .fetch_all(&mut admin)
    .await
    .expect("terminates backends");
    i64::try_from(killed.into_iter().filter(|k| *k).count()).expect("small")
}

/// Retries while the store reports itself unavailable (the documented,
/// retryable outcome of a call that met a dropped connection).
async fn ingest_until_acknowledged(
    fx: &Fixture,
    site: &Site,
    sequence: u64,
    subject: &str,
) -> (IngestAck, u32) {
    let mut unavailable = 0;
    loop {
        match fx
            .report(
                site,
                "rs-1",
                sequence,
                &[(ConditionCode::CameraUnreachable, subject, "timeout")],
            )
            .await
        {
            Ok(ack) => return (ack, unavailable),
            Err(e @ Error::StorageUnavailable { .. }) if unavailable < 20 => {
                assert!(e.is_retryable());
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("report {sequence} after the connections were dropped: {e:?}"),
        }
    }
}

fn camera(sequence: u64) -> String {
    format!("Camera {sequence}")
}

async fn detail(fx: &Fixture, site: &Site) -> InstallationDetail {
    fx.carewatch
        .installation(&site.reseller, &site.slc)
        .await
        .expect("reads the detail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_resumes_after_the_connections_are_killed() {
    let schema = Schema::create().await;
    let node = Node {
        application_name: format!("{}_node", schema.name),
        schema: &schema,
    };
    let fx = Fixture::open(&node).await;
    let site = fx.site("alpha", "M01-C01-0001").await;

    // Each report's snapshot holds every camera so far: the detail then
    // shows whether any acknowledged report went missing.
    const REPORTS: u64 = 30;
    let mut snapshots: Vec<String> = Vec::new();
    let mut killed_total = 0;
    let mut unavailable_total = 0;
    for sequence in 1..=REPORTS {
        fx.advance(Duration::from_secs(1));
        snapshots.push(camera(sequence));
        let conditions: Vec<_> = snapshots
            .iter()
            .map(|s| (ConditionCode::CameraUnreachable, s.as_str(), "timeout"))
            .collect();
        if sequence % 10 == 1 && sequence > 1 {
            killed_total += kill_connections(&node.application_name).await;
        }
        let mut unavailable = 0;
        let ack = loop {
            match fx.report(&site, "rs-1", sequence, &conditions).await {
                Ok(ack) => break ack,
                Err(Error::StorageUnavailable { .. }) if unavailable < 20 => {
                    unavailable += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("report {sequence}: {e:?}"),
            }
        };
        unavailable_total += unavailable;
        // A retry after an ambiguous failure may find it applied already.
        assert!(
            !ack.duplicate || unavailable > 0,
            "report {sequence} was new"
        );
    }
    assert!(
        killed_total > 0,
        "the test must actually have killed connections"
    );

    let before = detail(&fx, &site).await;
    assert_eq!(before.servers.len(), 1);
    assert_eq!(
        before.servers[0].cursor.sequence, REPORTS,
        "every acknowledged report is there"
    );
    assert_eq!(
        before.active_conditions.len(),
        snapshots.len(),
        "the last snapshot is the active set"
    );
    let opened = before
        .history
        .iter()
        .filter(|e| matches!(e.kind, HistoryKind::ConditionOpened { .. }))
        .count();
    assert_eq!(
        opened,
        snapshots.len(),
        "every report opened its camera exactly once"
    );

    // Now the outage between two calls: kill, then go on through the facade.
    let killed = kill_connections(&node.application_name).await;
    assert!(killed > 0, "the node had connections open");
    fx.advance(Duration::from_secs(1));
    let (ack, unavailable) = ingest_until_acknowledged(&fx, &site, REPORTS + 1, "Camera X").await;
    assert!(!ack.duplicate);
    eprintln!(
        "killed {} connections; calls that returned StorageUnavailable: {}",
        killed_total + killed,
        unavailable_total + unavailable
    );

    let after = detail(&fx, &site).await;
    assert_eq!(after.servers[0].cursor.sequence, REPORTS + 1);
    assert_eq!(after.servers[0].availability, Availability::Available);
    assert_eq!(
        after.active_conditions.len(),
        1,
        "the new snapshot replaced the old one"
    );
    assert_eq!(after.active_conditions[0].subject, "Camera X");
    // Nothing acknowledged before the outage was lost: the old history is
    // still there, under the events the new report added.
    let resolved = after
        .history
        .iter()
        .filter(|e| matches!(e.kind, HistoryKind::ConditionResolved { .. }))
        .count();
    assert_eq!(
        resolved,
        snapshots.len(),
        "each earlier camera was resolved by the new report, once"
    );
    let older: Vec<_> = after
        .history
        .iter()
        .filter(|e| e.at <= before.servers[0].last_seen_at)
        .cloned()
        .collect();
    let kept = before.history.len().min(older.len());
    assert_eq!(
        older[..kept],
        before.history[..kept],
        "history before the outage is unchanged"
    );
    assert_eq!(after.installation, before.installation);
    assert_eq!(
        after.servers[0].first_seen_at,
        before.servers[0].first_seen_at
    );

    // A second node on the same database sees the same.
    let other = Node {
        application_name: format!("{}_other", schema.name),
        schema: &schema,
    };
    let fx2 = Fixture::open_with(&other, fx.clock.clone(), fx.master_key.clone()).await;
    assert_eq!(detail(&fx2, &site).await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_retryable_error() {
    // Nothing listens on port 1.
    let config = carewatch_storage_postgres::PostgresConfig::from_url(
        "postgres://postgres@127.0.0.1:1/test",
    )
    .expect("valid URL")
    .acquire_timeout(Duration::from_secs(2));
    let err = carewatch_storage_postgres::PostgresStore::open(config)
        .await
        .expect_err("nothing to connect to");
    assert!(matches!(err, Error::StorageUnavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
}
