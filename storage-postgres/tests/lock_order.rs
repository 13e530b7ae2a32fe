//! Writers of many server rows wait for them in (slc, server_id) order, so
//! two of them cannot deadlock. The batch of heartbeats applied in place
//! (one UPDATE) used to wait for its rows in arrival order: in a
//! minute-start burst it deadlocked with a batch's locking path, which
//! PostgreSQL found only after `deadlock_timeout` (1 s), long enough for the
//! node to find its storage stalled. Now it takes them in key order.

mod common;

use std::time::{Duration, Instant};

use carewatch_core::ids::Slc;
use carewatch_core::installation::{Installation, Product};
use carewatch_core::store::{Store, WriteOutcome};
use carewatch_core::time::Timestamp;
use common::Schema;
use sqlx_core::connection::Connection;
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::sql_str::AssertSqlSafe;
use sqlx_postgres::PgConnection;

const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);

use common::sign_of_life as sign;

/// Locks one server row in `tx`'s transaction.
async fn lock_row(conn: &mut PgConnection, slc: &Slc, server: &str) -> Result<(), String> {
    query("SELECT 1 FROM servers WHERE slc = $1 AND server_id = $2 FOR UPDATE")
        .bind(slc.as_str())
        .bind(server)
        .fetch_one(&mut *conn)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_applied_in_place_lock_their_rows_in_key_order() {
    let schema = Schema::create().await;
    let application = schema.next_application_name();
    let store = std::sync::Arc::new(schema.open_store(&application).await);
    let reseller = common::create_alpha_reseller(&store, START).await;
    let slc = Slc::new("M01-C01-0001").expect("slc");
    store
        .register_installation(&Installation {
            slc: slc.clone(),
            reseller,
            product: Product::new("XProtect Corporate", "2016 R3").expect("product"),
            subscription_expires_at: None,
            consent: true,
            registered_at: START,
        })
        .await
        .expect("registers");
    store
        .record_signs_of_life(&[sign(&slc, "rs-a", 1, START), sign(&slc, "rs-b", 1, START)])
        .await
        .expect("both servers heard from");

    // Another writer that locks in key order holds rs-a and will want rs-b.
    let mut other = common::admin_connection().await;
    query(AssertSqlSafe(format!(
        "SET search_path TO \"{}\"",
        schema.name
    )))
    .execute(&mut other)
    .await
    .expect("search path");
    // It looks for a deadlock long before the store's connection would
    // (default 1 s), so a deadlock fails this writer, not the batch.
    query("SET deadlock_timeout = '50ms'")
        .execute(&mut other)
        .await
        .expect("deadlock_timeout (the test database's user is a superuser)");
    query("SET lock_timeout = '5s'")
        .execute(&mut other)
        .await
        .expect("lock_timeout");
    query("BEGIN").execute(&mut other).await.expect("begin");
    lock_row(&mut other, &slc, "rs-a")
        .await
        .expect("rs-a locked");

    // A batch arriving as rs-b, rs-a: both available, applied in place.
    let later = START.saturating_add(Duration::from_secs(60));
    let batch = vec![sign(&slc, "rs-b", 2, later), sign(&slc, "rs-a", 2, later)];
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.record_signs_of_life(&batch).await })
    };
    // Until the batch waits for rs-a.
    let mut admin = common::admin_connection().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&application)
        .fetch_one(&mut admin)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the batch never waited for rs-a's row"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // In key order, the batch holds nothing while it waits: rs-b is free.
    let second = lock_row(&mut other, &slc, "rs-b").await;
    query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("rollback");
    assert_eq!(
        second,
        Ok(()),
        "the batch must not hold rs-b while it waits for rs-a"
    );
    let outcomes = writer
        .await
        .expect("the batch's task")
        .expect("the batch is applied once the other writer is done");
    assert_eq!(
        outcomes,
        vec![WriteOutcome::Applied(None), WriteOutcome::Applied(None)]
    );
    let _ = other.close().await;
    let _ = admin.close().await;
}
