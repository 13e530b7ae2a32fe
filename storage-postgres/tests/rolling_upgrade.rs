//! A rolling upgrade: a node of the version before starts again on a schema
//! that a node of the new version has already migrated.

mod common;

use carewatch_core::store::Store;
use common::Schema;
use sqlx_core::query::query;
use sqlx_core::sql_str::AssertSqlSafe;

/// A schema holding a migration this build does not know (a newer node's)
/// is opened, not refused: the nodes not yet upgraded must be able to
/// restart mid-upgrade, and migrations only add. It was refused with
/// sqlx's "migration was previously applied but is missing".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_on_a_schema_a_newer_node_migrated() {
    let schema = Schema::create().await;
    let first = schema.open_store(&schema.next_application_name()).await;
    first.close().await;
    let mut admin = common::admin_connection().await;
    query(AssertSqlSafe(format!(
        "INSERT INTO \"{}\"._sqlx_migrations
             (version, description, success, checksum, execution_time)
         VALUES (9999, 'a newer version''s', true, '\\x00', 1)",
        schema.name
    )))
    .execute(&mut admin)
    .await
    .expect("records a newer migration");
    let again = carewatch_storage_postgres::PostgresStore::open(
        schema.config(&schema.next_application_name()),
    )
    .await
    .expect("a node of the version before opens the newer schema");
    assert_eq!(
        again.latest_change().await.expect("reads"),
        carewatch_core::feed::EventId(0)
    );
    again.close().await;
}
