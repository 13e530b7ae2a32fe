//! Writers of many server rows wait for them in (slc, server_id) order, so
//! two of them cannot deadlock. The batch of heartbeats applied in place
//! (one UPDATE) used to wait for its rows in arrival order: in a
//! minute-start burst it deadlocked with a batch's locking path, which
//! PostgreSQL found only after `deadlock_timeout` (1 s), long enough for the
//! node to find its storage stalled. Now it takes them in key order.

mod common;

use std::time::{Duration, Instant};

use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::store::{InstallationUpdate, Store, WriteOutcome};
use carewatch_core::time::Timestamp;
use carewatch_storage_postgres::PostgresStore;
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
    let (schema, application, store, reseller) = fresh_store().await;
    let slc =
        installation_heard_from(&store, &reseller, "M01-C01-0001", &["rs-a", "rs-b"], None).await;

    // Another writer that locks in key order holds rs-a and will want rs-b.
    let mut other = side_transaction(&schema).await;
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
    until_waiting_for_a_lock(&application).await;

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
}

/// A fresh schema, a store on it (its connections named by the returned
/// application name) and the reseller alpha.
async fn fresh_store() -> (Schema, String, std::sync::Arc<PostgresStore>, ResellerId) {
    let schema = Schema::create().await;
    let application = schema.next_application_name();
    let store = std::sync::Arc::new(schema.open_store(&application).await);
    let reseller = common::create_alpha_reseller(&store, START).await;
    (schema, application, store, reseller)
}

/// In `ingest`'s transaction, locks installation `slc` as ingest does to
/// refresh its line (or to add a server to it), then rolls back.
async fn lock_installation_then_roll_back(
    ingest: &mut PgConnection,
    slc: &Slc,
) -> Result<(), String> {
    let locked = query("SELECT 1 FROM installations WHERE slc = $1 FOR NO KEY UPDATE")
        .bind(slc.as_str())
        .fetch_one(&mut *ingest)
        .await
        .map(drop)
        .map_err(|e| e.to_string());
    query("ROLLBACK")
        .execute(&mut *ingest)
        .await
        .expect("rollback");
    locked
}

/// Installation `slc` of `reseller`, its `servers` heard from at START.
async fn installation_heard_from(
    store: &PostgresStore,
    reseller: &ResellerId,
    slc: &str,
    servers: &[&str],
    subscription_expires_at: Option<Timestamp>,
) -> Slc {
    let slc = Slc::new(slc).expect("slc");
    store
        .register_installation(&Installation {
            slc: slc.clone(),
            reseller: reseller.clone(),
            product: Product::new("XProtect Corporate", "2016 R3").expect("product"),
            subscription_expires_at,
            consent: true,
            registered_at: START,
        })
        .await
        .expect("registers");
    let signs: Vec<_> = servers.iter().map(|s| sign(&slc, s, 1, START)).collect();
    store
        .record_signs_of_life(&signs)
        .await
        .expect("heard from");
    slc
}

/// A connection of its own on the schema, quick to find deadlocks (it, not
/// the store's connection, fails if one forms), inside a transaction.
async fn side_transaction(schema: &Schema) -> PgConnection {
    let mut other = common::admin_connection().await;
    for sql in [
        AssertSqlSafe(format!("SET search_path TO \"{}\"", schema.name)),
        AssertSqlSafe("SET deadlock_timeout = '50ms'".to_owned()),
        AssertSqlSafe("SET lock_timeout = '5s'".to_owned()),
        AssertSqlSafe("BEGIN".to_owned()),
    ] {
        query(sql).execute(&mut other).await.expect("set up");
    }
    other
}

/// Waits until a connection of `application` waits for a lock.
async fn until_waiting_for_a_lock(application: &str) {
    let mut admin = common::admin_connection().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = $1 AND wait_event_type = 'Lock'",
        )
        .bind(application)
        .fetch_one(&mut admin)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store never waited for a lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = admin.close().await;
}

/// Withdrawing consent parks the installation's servers: it writes the
/// installation and its servers. Ingest and the sweep lock a server, then
/// its installation. The service change used to lock the installation
/// first: with a heartbeat holding a server, the two deadlocked, found only
/// after `deadlock_timeout` (1 s, past the node's stall limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_change_locks_the_servers_before_their_installation() {
    let (schema, application, store, reseller) = fresh_store().await;
    let slc = installation_heard_from(&store, &reseller, "M01-C01-0001", &["rs-a"], None).await;

    // A heartbeat's transaction holds rs-a, as ingest does first.
    let mut ingest = side_transaction(&schema).await;
    lock_row(&mut ingest, &slc, "rs-a")
        .await
        .expect("rs-a locked");
    let withdrawing = {
        let store = store.clone();
        let slc = slc.clone();
        tokio::spawn(async move {
            store
                .update_installation(&slc, &InstallationUpdate::Consent(false), START)
                .await
        })
    };
    until_waiting_for_a_lock(&application).await;

    // Then the heartbeat wants the installation (its summary): free, since
    // the service change waits for rs-a holding nothing of this line.
    let installation = lock_installation_then_roll_back(&mut ingest, &slc).await;
    assert_eq!(
        installation,
        Ok(()),
        "the service change held the installation while it waited for a server"
    );
    let withdrawn = withdrawing
        .await
        .expect("the service change's task")
        .expect("consent withdrawn once the heartbeat is done");
    assert!(!withdrawn.consent);
    let _ = ingest.close().await;
}

/// The expiry sweep parks every installation whose Care Plus ended, in one
/// transaction. It used to lock each one's servers, then the installation,
/// then the next one's servers: holding installation A while waiting for a
/// server of B, which an ingest batch could hold while adding a new server
/// to A (a first sight locks A), a deadlock. It now locks every candidate's
/// servers first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_sweep_locks_every_installations_servers_first() {
    let (schema, application, store, reseller) = fresh_store().await;
    let ends = Some(START.saturating_add(Duration::from_secs(1)));
    let first = installation_heard_from(&store, &reseller, "M01-C01-0001", &["rs-a"], ends).await;
    let second = installation_heard_from(&store, &reseller, "M01-C01-0002", &["rs-b"], ends).await;

    // An ingest batch holds the second installation's server.
    let mut ingest = side_transaction(&schema).await;
    lock_row(&mut ingest, &second, "rs-b")
        .await
        .expect("rs-b locked");
    let parking = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .park_expired(START.saturating_add(Duration::from_secs(10)))
                .await
        })
    };
    until_waiting_for_a_lock(&application).await;

    // The batch then adds a server to the first installation: it locks it.
    let first_sight = lock_installation_then_roll_back(&mut ingest, &first).await;
    assert_eq!(
        first_sight,
        Ok(()),
        "the expiry sweep held an installation while it waited for another's server"
    );
    let parked = parking
        .await
        .expect("the expiry sweep's task")
        .expect("both parked once the batch is done");
    assert_eq!(parked, 2);
    let _ = ingest.close().await;
}

/// Another reseller's decommission is refused before it locks anything. It
/// locked the server row first (waiting while ingest held it) and read the
/// owner after: a stranger could stall an installation's ingest, and time
/// the answer to learn that the server exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_resellers_decommission_waits_for_no_lock() {
    let (schema, _application, store, reseller) = fresh_store().await;
    let slc = installation_heard_from(&store, &reseller, "M01-C01-0001", &["rs-a"], None).await;
    let mut ingest = side_transaction(&schema).await;
    lock_row(&mut ingest, &slc, "rs-a")
        .await
        .expect("rs-a locked, as a heartbeat being written holds it");
    let stranger = ResellerId::new("beta").expect("id");
    let server = carewatch_core::ids::RecordingServerId::new("rs-a").expect("id");
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        store.decommission_server(Some(&stranger), &slc, &server, START),
    )
    .await;
    query("ROLLBACK")
        .execute(&mut ingest)
        .await
        .expect("rollback");
    let _ = ingest.close().await;
    let answer = answer.expect("answered without waiting for the server's lock");
    assert!(
        matches!(answer, Err(carewatch_core::Error::NotFound { .. })),
        "{answer:?}"
    );
}
