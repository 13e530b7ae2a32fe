//! How the connections are used: cached statements are prepared once per
//! connection, not once per run; a sweep that finds nothing to write does
//! not wait for the writer.

use std::sync::Arc;
use std::time::Duration;

use carewatch_core::ConditionCode;
use carewatch_core::feed::EventId;
use carewatch_core::store::{OverviewOrder, OverviewQuery, Store};
use carewatch_core::testing::{Fixture, TestDatabase};
use rusqlite::Connection;

use super::SqliteStore;

/// Hands the fixture the store under test, which the test keeps a handle on.
struct Shared(SqliteStore);

#[async_trait::async_trait]
impl TestDatabase for Shared {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.0.clone())
    }
}

/// Every statement `conn` holds that SQLite prepared again after its first
/// preparation, with how many times.
#[allow(unsafe_code)]
fn reprepared(conn: &Connection) -> Vec<(String, i32)> {
    use rusqlite::ffi;
    let mut found = Vec::new();
    // SAFETY: `conn` is borrowed (its connection mutex held by the caller),
    // so its handle and the statements it owns outlive this loop; nothing
    // else uses the connection meanwhile. `sqlite3_sql` points into the
    // statement, copied out before the next step.
    unsafe {
        let db = conn.handle();
        let mut statement = ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
        while !statement.is_null() {
            let times = ffi::sqlite3_stmt_status(statement, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
            if times > 0 {
                let sql = std::ffi::CStr::from_ptr(ffi::sqlite3_sql(statement))
                    .to_string_lossy()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                found.push((sql, times));
            }
            statement = ffi::sqlite3_next_stmt(db, statement);
        }
    }
    found
}

#[tokio::test]
async fn reads_and_sweeps_reuse_their_prepared_statements() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("carewatch.db"))
        .await
        .expect("opens");
    let f = Fixture::open(&Shared(store.clone())).await;

    // Installations with a condition, servers and history, then silence
    // long enough for the sweep to mark them unavailable.
    let mut sites = Vec::new();
    for n in 0..4 {
        let site = f.site("r1", &format!("SLC-REPREPARE-{n}")).await;
        f.report(
            &site,
            "rs-1",
            1,
            &[(ConditionCode::StorageFull, "D:", "full")],
        )
        .await
        .expect("report");
        f.heartbeat(&site, "rs-2", 1).await.expect("heartbeat");
        sites.push(site);
    }
    for _ in 0..5 {
        f.advance(Duration::from_secs(60));
        f.carewatch.sweep().await.expect("sweep");
    }

    // The same statements, run again with other values bound.
    for _ in 0..2 {
        for site in &sites {
            let detail = store
                .installation_detail(&site.reseller, &site.slc, 10)
                .await
                .expect("detail");
            assert!(detail.is_some(), "{} is found", site.slc);
        }
        for limit in [10, 20] {
            store.changes(EventId(0), limit).await.expect("feed");
            store
                .due_servers(f.carewatch.now(), limit)
                .await
                .expect("due servers");
            store
                .due_notification_states(f.carewatch.now(), limit)
                .await
                .expect("due states");
        }
        for order in [OverviewOrder::WorstFirst, OverviewOrder::Customer] {
            let query = OverviewQuery {
                include_healthy: true,
                order,
                ..OverviewQuery::default()
            };
            store
                .overview(&sites[0].reseller, &query)
                .await
                .expect("overview");
        }
    }

    let shared = &store.shared;
    let mut again = Vec::new();
    for conn in std::iter::once(&shared.writer).chain(&shared.readers) {
        let conn = conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        again.extend(reprepared(&conn));
    }
    assert!(
        again.is_empty(),
        "statements prepared again on later runs: {again:#?}"
    );
}

/// A sweep with no Care Plus run out (nearly every sweep) does not wait
/// for the writer: it used to take the writer's turn, and so queued behind
/// (and held up) the heartbeats' writes, only to find nothing.
#[tokio::test]
async fn a_sweep_with_nothing_expired_does_not_wait_for_the_writer() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("carewatch.db"))
        .await
        .expect("opens");
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started, writing) = tokio::sync::oneshot::channel();
    let busy = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .write(move |_tx| {
                    let _ = started.send(());
                    let _ = released.recv_timeout(Duration::from_secs(10));
                    Ok(())
                })
                .await
        }
    });
    writing.await.expect("the writer is busy");
    let now = carewatch_core::time::Timestamp::from_millis(1_900_000_000_000);
    let parked = tokio::time::timeout(Duration::from_secs(2), store.park_expired(now)).await;
    let _ = release.send(());
    busy.await.expect("joined").expect("the long write");
    assert_eq!(
        parked
            .expect("answered while the writer was busy")
            .expect("read"),
        0
    );
}
