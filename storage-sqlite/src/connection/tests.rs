//! How the connections are used: cached statements (transactions' BEGIN,
//! COMMIT and ROLLBACK too) are prepared once per connection, not once per
//! run; a failed or panicking write leaves nothing behind; a sweep that
//! finds nothing to write does not wait for the writer.

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

/// The statements `conn` holds (prepared and kept), each with how many
/// times it ran.
#[allow(unsafe_code)]
fn held(conn: &Connection) -> Vec<(String, i32)> {
    use rusqlite::ffi;
    let mut found = Vec::new();
    // SAFETY: as in `reprepared`.
    unsafe {
        let db = conn.handle();
        let mut statement = ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
        while !statement.is_null() {
            let runs = ffi::sqlite3_stmt_status(statement, ffi::SQLITE_STMTSTATUS_RUN, 0);
            let sql = std::ffi::CStr::from_ptr(ffi::sqlite3_sql(statement))
                .to_string_lossy()
                .into_owned();
            found.push((sql, runs));
            statement = ffi::sqlite3_next_stmt(db, statement);
        }
    }
    found
}

fn runs_of(held: &[(String, i32)], sql: &str) -> i32 {
    held.iter()
        .filter(|(s, _)| s == sql)
        .map(|(_, runs)| *runs)
        .sum()
}

/// A store in a new temporary directory (kept while the directory lives).
async fn open_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("carewatch.db"))
        .await
        .expect("opens");
    (dir, store)
}

/// Adds `node` to the `liveness` table, the tests' scratch rows.
fn insert_node(tx: &Connection, node: &str) -> carewatch_core::Result<usize> {
    tx.execute(
        "INSERT INTO liveness (node, alive_at) VALUES (?1, 1)",
        [node],
    )
    .map_err(crate::codec::map_err)
}

/// [`insert_node`] in a write of its own, which must work.
async fn write_node(store: &SqliteStore, node: &str) {
    let node = node.to_owned();
    store
        .write(move |tx| insert_node(tx, &node))
        .await
        .unwrap_or_else(|e| panic!("writing a node: {e}"));
}

/// The nodes of the `liveness` table, the tests' scratch rows, in order.
async fn liveness_nodes(store: &SqliteStore) -> Vec<String> {
    store
        .read(|tx| {
            let mut stmt = tx
                .prepare("SELECT node FROM liveness ORDER BY node")
                .map_err(crate::codec::map_err)?;
            let rows = stmt
                .query_map([], |r| r.get(0))
                .map_err(crate::codec::map_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(crate::codec::map_err)
        })
        .await
        .expect("reading liveness")
}

/// rusqlite's `Transaction` parsed BEGIN, COMMIT and ROLLBACK again on
/// every store call (and finalised them): kept statements now.
#[tokio::test]
async fn transactions_begin_and_end_with_statements_kept_prepared() {
    let (_dir, store) = open_store().await;
    for n in 0..5 {
        write_node(&store, &format!("node-{n}")).await;
        liveness_nodes(&store).await;
    }
    let shared = &store.shared;
    let writer = held(&shared.writer.lock().expect("writer"));
    assert_eq!(runs_of(&writer, "BEGIN IMMEDIATE"), 5, "{writer:?}");
    assert_eq!(runs_of(&writer, "COMMIT"), 5, "{writer:?}");
    let mut readers = Vec::new();
    for reader in &shared.readers {
        readers.extend(held(&reader.lock().expect("reader")));
    }
    assert_eq!(runs_of(&readers, "BEGIN DEFERRED"), 5, "{readers:?}");
    assert_eq!(runs_of(&readers, "ROLLBACK"), 5, "{readers:?}");
}

/// A write whose work fails, or panics, is rolled back, and the writer is
/// not left inside its transaction for the next one.
#[tokio::test]
async fn a_failed_or_panicking_write_leaves_nothing_and_the_writer_usable() {
    let (_dir, store) = open_store().await;
    let failed = store
        .write(move |tx| {
            insert_node(tx, "failed")?;
            Err::<(), _>(carewatch_core::Error::storage(
                "the work failed",
                "on purpose",
            ))
        })
        .await;
    assert!(failed.is_err());
    let panicked: carewatch_core::Result<()> = store
        .write(move |tx| {
            insert_node(tx, "panicked")?;
            panic!("on purpose");
        })
        .await;
    assert!(panicked.is_err(), "{panicked:?}");
    write_node(&store, "kept").await;
    let nodes = liveness_nodes(&store).await;
    assert_eq!(nodes, ["kept"]);
}

#[tokio::test]
async fn reads_and_sweeps_reuse_their_prepared_statements() {
    let (_dir, store) = open_store().await;
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
    let (_dir, store) = open_store().await;
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

/// Closing the store after reads and writes leaves the database file
/// alone, the WAL checkpointed into it: the writer closes last (read-only
/// connections cannot remove the WAL), so a copy of the file, or a start on
/// a file system made read-only meanwhile, sees everything.
#[tokio::test]
async fn a_closed_store_leaves_no_write_ahead_log() {
    let (dir, store) = open_store().await;
    write_node(&store, "a").await;
    for _ in 0..3 {
        liveness_nodes(&store).await;
    }
    drop(store);
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    files.sort();
    assert_eq!(files, ["carewatch.db"]);
}

/// A transaction left open on a connection (a ROLLBACK that failed when the
/// last one ended) is ended by the next BEGIN, rolled back, instead of
/// making the connection refuse every transaction from then on.
#[tokio::test]
async fn a_transaction_left_open_is_rolled_back_by_the_next_one() {
    let (_dir, store) = open_store().await;
    {
        let writer = store.shared.writer.lock().expect("writer");
        writer
            .execute_batch("BEGIN; INSERT INTO liveness (node, alive_at) VALUES ('left', 1);")
            .expect("a transaction left open");
    }
    write_node(&store, "next").await;
    let nodes = liveness_nodes(&store).await;
    assert_eq!(
        nodes,
        ["next"],
        "what the open transaction did is rolled back"
    );
}

/// Lets a held read go when dropped, so a failing test does not leave its
/// blocking thread (and the runtime's shutdown) waiting forever.
struct Release(std::sync::mpsc::Sender<()>);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Starts a read on `store` that holds its connection until the returned
/// [`Release`] is dropped; returns once it holds it.
async fn hold_a_read(
    store: &SqliteStore,
) -> (Release, tokio::task::JoinHandle<carewatch_core::Result<()>>) {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, has_started) = tokio::sync::oneshot::channel();
    let read = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .read(move |_| {
                    let _ = started.send(());
                    let _ = held.recv();
                    Ok(())
                })
                .await
        }
    });
    let release = Release(release);
    tokio::time::timeout(Duration::from_secs(10), has_started)
        .await
        .expect("a read waited for a connection or a turn that another held")
        .expect("the held read started");
    (release, read)
}

/// A read on `store` that must not wait for a held one.
async fn read_without_waiting(store: &SqliteStore, what: &str) {
    let read = store.read(|conn| {
        conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
            .map_err(crate::codec::map_err)
    });
    let one = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("{what} waited for a held read"));
    assert_eq!(one.expect("read"), 1);
}

/// A read held (the scheduler holding its thread back; here one that
/// blocks) keeps only its own connection: every read after it takes a free
/// one, though the turn comes round to the held connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_read_does_not_hold_up_the_reads_after_it() {
    let (_dir, store) = open_store().await;
    let (release, held) = hold_a_read(&store).await;
    for n in 0..super::READERS * 2 {
        read_without_waiting(&store, &format!("read {n}")).await;
    }
    drop(release);
    held.await.expect("joined").expect("the held read");
}

/// Background work's reads (the notifier's, on the low-priority
/// notification thread) take a reader connection and turn of their own:
/// with every reader of the server's held, a background read still runs,
/// and while a background read is held, the server's reads still have
/// every reader, all at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_reads_take_no_reader_of_the_servers() {
    let (_dir, store) = open_store().await;
    let background = store.for_background_reads();
    let mut servers = Vec::new();
    for _ in 0..super::READERS {
        servers.push(hold_a_read(&store).await);
    }
    read_without_waiting(&background, "a background read").await;
    for (release, held) in servers.drain(..) {
        drop(release);
        held.await.expect("joined").expect("a server read");
    }

    let (release, held) = hold_a_read(&background).await;
    for _ in 0..super::READERS {
        servers.push(hold_a_read(&store).await);
    }
    for (release, held) in servers {
        drop(release);
        held.await.expect("joined").expect("a server read");
    }
    drop(release);
    held.await.expect("joined").expect("the background read");
}
