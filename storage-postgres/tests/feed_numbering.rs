//! Change-feed events are numbered once per transaction: a transaction that
//! appends many events (a batch of new servers, a sweep over a regional
//! outage) updates the shared counter row once, not once per event (which
//! made its COMMIT walk the row's growing chain of versions while every
//! other writer waited), and its events still get consecutive ids in the
//! order they were inserted, in time linear in their number whatever the
//! planner's statistics.

mod common;

use carewatch_core::store::Store;
use common::Schema;
use sqlx_core::connection::Connection;
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::sql_str::AssertSqlSafe;

const EVENTS: i64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactions_events_are_numbered_with_one_update_of_the_counter() {
    let schema = Schema::create().await;
    // Opening the store migrates the schema.
    let store = schema.open_store(&schema.next_application_name()).await;
    let before = store.latest_change().await.expect("the feed's head").0;

    let mut conn = common::admin_connection().await;
    query(AssertSqlSafe(format!(
        "SET search_path TO \"{}\"",
        schema.name
    )))
    .execute(&mut conn)
    .await
    .expect("search path");
    // As in production: statistics taken when every committed event is
    // numbered (the planner then expects next to no unnumbered events).
    query(
        "INSERT INTO changes (at, slc, kind)
         SELECT n, 'M01-C02-' || lpad(n::text, 4, '0'), 'registered' FROM generate_series(1, 2000) AS n",
    )
    .execute(&mut conn)
    .await
    .expect("earlier events");
    query("ANALYZE changes")
        .execute(&mut conn)
        .await
        .expect("statistics");
    let before = before + 2000;
    let mut tx = conn.begin().await.expect("begin");
    query(
        "INSERT INTO changes (at, slc, kind)
         SELECT n, 'M01-C01-' || lpad(n::text, 4, '0'), 'registered' FROM generate_series(1, $1) AS n",
    )
    .bind(EVENTS)
    .execute(&mut *tx)
    .await
    .expect("events appended");
    let unnumbered_read = async |tx: &mut sqlx_postgres::PgConnection| -> i64 {
        query_scalar("SELECT pg_stat_get_xact_tuples_returned('changes_unnumbered'::regclass)")
            .fetch_one(tx)
            .await
            .expect("this transaction's reads of the unnumbered events' index")
    };
    // Counted since the connection's statistics were last reported, which
    // may include the earlier transaction: hence the differences.
    let counter_updated = async |tx: &mut sqlx_postgres::PgConnection| -> i64 {
        query_scalar("SELECT pg_stat_get_xact_tuples_updated('change_head'::regclass)")
            .fetch_one(tx)
            .await
            .expect("updates of change_head")
    };
    let counter_before = counter_updated(&mut tx).await;
    let read_before = unnumbered_read(&mut tx).await;
    // Numbering runs at COMMIT; made to run now, it can be looked at.
    query("SET CONSTRAINTS changes_numbered IMMEDIATE")
        .execute(&mut *tx)
        .await
        .expect("numbering now");
    // Each unnumbered event read a few times (3,500 reads for 500), not
    // once per event (the nested loop of migration 0012's numbering under
    // these statistics: 253,500 reads for 500, minutes of COMMIT for the
    // thousands of events of a large batch).
    let read = unnumbered_read(&mut tx).await - read_before;
    assert!(
        read <= 10 * EVENTS,
        "numbering {EVENTS} events read the unnumbered events' index {read} times"
    );
    let counter_updates = counter_updated(&mut tx).await - counter_before;
    assert_eq!(
        counter_updates, 1,
        "{EVENTS} events must be numbered with one update of change_head"
    );
    let unnumbered: i64 = query_scalar("SELECT count(*) FROM changes WHERE id IS NULL")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(unnumbered, 0, "every event is numbered");
    let out_of_order: i64 = query_scalar(
        "SELECT count(*) FROM (
             SELECT id - lag(id) OVER (ORDER BY row_id) AS step FROM changes) AS steps
         WHERE step <> 1",
    )
    .fetch_one(&mut *tx)
    .await
    .expect("steps");
    assert_eq!(out_of_order, 0, "ids follow insertion order one by one");
    tx.commit().await.expect("commit");

    let after = store.latest_change().await.expect("the feed's head").0;
    assert_eq!(
        after,
        before + EVENTS as u64,
        "the head moved by the events appended"
    );
    let (first, last, count): (i64, i64, i64) = sqlx_core::query_as::query_as(
        "SELECT min(id), max(id), count(*) FROM changes WHERE id > $1",
    )
    .bind(before as i64)
    .fetch_one(&mut conn)
    .await
    .expect("the events as committed");
    assert_eq!(
        (first, last, count),
        (before as i64 + 1, after as i64, EVENTS),
        "the events have the ids after the head before, each once"
    );
    let _ = conn.close().await;
}
