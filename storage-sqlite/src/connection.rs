//! Connections, and running blocking SQLite work off the async runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use carewatch_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{AcquireError, Semaphore};

use crate::codec::map_err;
use crate::migrate::migrate;

#[cfg(test)]
mod tests;

const READERS: usize = 3;

/// A Carewatch store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
    /// Whether this is the view for background work's reads
    /// ([`Self::for_background_reads`]): they take the background reader.
    background: bool,
}

struct Shared {
    path: PathBuf,
    // Fields drop in this order: the readers close before the writer, so
    // the writer is the last connection and, closing, checkpoints the WAL
    // and removes it (read-only connections cannot).
    readers: Vec<Mutex<Connection>>,
    /// The reader of background work (the notifier's reads, on the
    /// low-priority notification thread), with its own turn: held back by
    /// the scheduler, such a read holds neither a connection nor a turn
    /// that the server's own reads wait for.
    background_reader: Mutex<Connection>,
    writer: Mutex<Connection>,
    next_reader: AtomicUsize,
    /// One permit per connection: callers queue here, on the async side,
    /// instead of each parking a blocking-pool thread on a connection's
    /// mutex (256 concurrent status reports made 256 threads).
    writer_turn: Arc<Semaphore>,
    reader_turns: Arc<Semaphore>,
    background_turn: Arc<Semaphore>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .finish()
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a committed transaction survives a power cut, not only a crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    settle_statements(conn)
}

/// Cached statements keep their plan whatever is bound to them. Without
/// this, SQLite re-prepares (parses and plans again) a statement on every
/// run when a bound value might change its plan: a `LIMIT ?`, or a column
/// that has a partial index, as in `WHERE slc = ?1` on `conditions`. Every
/// installation read, feed read and sweep did so, at about 100,000
/// instructions each; the plans chosen are the same either way (the
/// statements name their partial indexes' conditions literally).
fn settle_statements(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(64);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema
    /// up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(|e| Error::storage("opening the SQLite database was interrupted", e))?
    }

    fn open_blocking(path: PathBuf) -> Result<Self> {
        let context = |e: rusqlite::Error| {
            diagnose(&path, map_err(e)).context(format_args!(
                "cannot open SQLite database {}",
                path.display()
            ))
        };
        let mut writer = Connection::open(&path).map_err(context)?;
        configure(&writer).map_err(context)?;
        migrate(&mut writer).map_err(context)?;
        let readers = (0..READERS)
            .map(|_| open_reader(&path))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(context)?;
        let background_reader = open_reader(&path).map_err(context)?;
        tracing::debug!(path = %path.display(), "sqlite store open");
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                writer: Mutex::new(writer),
                readers,
                background_reader,
                next_reader: AtomicUsize::new(0),
                writer_turn: Arc::new(Semaphore::new(1)),
                reader_turns: Arc::new(Semaphore::new(READERS)),
                background_turn: Arc::new(Semaphore::new(1)),
            }),
            background: false,
        })
    }

    /// This store for the reads of background work on a thread of its own
    /// (see `Store::for_background_reads`): they run on the calling
    /// runtime's blocking threads, which inherit its priority, one at a
    /// time on a reader connection of their own.
    pub(crate) fn for_background_reads(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            background: true,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Runs `f` in one write transaction (committed if `f` returns `Ok`,
    /// rolled back otherwise).
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        // Background work never writes through its view: the write lock
        // must not be held from a thread the scheduler holds back.
        debug_assert!(!self.background, "a write through the background view");
        let shared = self.shared.clone();
        // Held until the work is done, even if the caller stops waiting.
        let turn = self
            .shared
            .writer_turn
            .clone()
            .acquire_owned()
            .await
            .map_err(closed)?;
        run_blocking(move || {
            let _turn = turn;
            let conn = shared
                .writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let tx = Transaction::begin(&conn, "BEGIN IMMEDIATE").map_err(map_err)?;
            let value = f(&conn)?;
            tx.commit().map_err(map_err)?;
            Ok(value)
        })
        .await
        .map_err(|e| diagnose(&self.shared.path, e))
    }

    /// Runs `f` on a read connection, in one read transaction (a consistent snapshot).
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        let background = self.background;
        let turns = if background {
            &self.shared.background_turn
        } else {
            &self.shared.reader_turns
        };
        let turn = turns.clone().acquire_owned().await.map_err(closed)?;
        run_blocking(move || {
            let _turn = turn;
            let conn = if background {
                shared
                    .background_reader
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            } else {
                shared.free_reader()
            };
            let _snapshot = Transaction::begin(&conn, "BEGIN DEFERRED").map_err(map_err)?;
            f(&conn)
        })
        .await
        .map_err(|e| diagnose(&self.shared.path, e))
    }
}

impl Shared {
    /// A reader connection nobody is using, trying them in turn from the
    /// next one. A caller holds a reader permit (one per connection) and
    /// each permit holder at most one connection, so one is free: a read
    /// never waits for a busy connection while another is idle.
    fn free_reader(&self) -> MutexGuard<'_, Connection> {
        let count = self.readers.len();
        let first = self.next_reader.fetch_add(1, Ordering::Relaxed) % count;
        for offset in 0..count {
            match self.readers[(first + offset) % count].try_lock() {
                Ok(conn) => return conn,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        // Not reached while permits and connections are as many: wait then.
        self.readers[first]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A read-only connection, its statements settled and the schema loaded.
fn open_reader(path: &Path) -> rusqlite::Result<Mutex<Connection>> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    settle_statements(&conn)?;
    // Loads the schema now: a connection that loads it on its first read
    // expires every statement prepared before, and that read's own BEGIN
    // would be prepared twice.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
    Ok(Mutex::new(conn))
}

/// SQLite reports a full or read-only file system in several ways (an I/O
/// error on the journal, a file it cannot open): when it says only that,
/// writing a probe file beside the database tells which it is. Runs on
/// failures only.
fn diagnose(path: &Path, error: Error) -> Error {
    use carewatch_core::Unavailability::{Full, ReadOnly, Unreachable};
    let Error::StorageUnavailable {
        reason: Unreachable,
        message,
        source,
    } = error
    else {
        return error;
    };
    let reason = match probe_write(path) {
        Err(e) if e.kind() == std::io::ErrorKind::StorageFull => Some(Full),
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => Some(ReadOnly),
        _ => None,
    };
    match reason {
        Some(reason) => Error::StorageUnavailable {
            reason,
            message: format!(
                "{message}: the file system of {} is {}",
                path.display(),
                if reason == Full { "full" } else { "read-only" }
            ),
            source,
        },
        None => Error::StorageUnavailable {
            reason: Unreachable,
            message,
            source,
        },
    }
}

/// Writes and removes a small file beside the database.
fn probe_write(path: &Path) -> std::io::Result<()> {
    let mut probe = path.as_os_str().to_owned();
    probe.push(".probe");
    let probe = PathBuf::from(probe);
    let written = std::fs::write(&probe, [0u8; 4096]);
    let _ = std::fs::remove_file(&probe);
    written
}

/// The semaphores are never closed; this only keeps a would-be panic typed.
fn closed(e: AcquireError) -> Error {
    Error::storage("the SQLite connection queue is closed", e)
}

/// A transaction begun, committed and rolled back with cached statements.
/// rusqlite's `Transaction` parses `BEGIN`, `COMMIT` and `ROLLBACK` again
/// every time (`execute_batch`): about 2,000 instructions each, twice per
/// store call. Dropped uncommitted (an error, a failed COMMIT, a panic in
/// the work), it rolls back, so the connection never keeps a transaction
/// open for the next caller.
#[must_use = "the transaction ends (rolls back) when this is dropped"]
struct Transaction<'c> {
    conn: &'c Connection,
}

impl<'c> Transaction<'c> {
    fn begin(conn: &'c Connection, begin: &str) -> rusqlite::Result<Self> {
        if !conn.is_autocommit() {
            // A rollback that failed when the last one ended: end it now,
            // or this connection would refuse every BEGIN from here on.
            conn.prepare_cached("ROLLBACK")?.execute([])?;
        }
        conn.prepare_cached(begin)?.execute([])?;
        Ok(Self { conn })
    }

    fn commit(self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.conn.is_autocommit()
            && let Err(e) = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut rollback| rollback.execute([]))
        {
            tracing::warn!(error = %e, "rolling back a SQLite transaction failed");
        }
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::storage("a SQLite task was interrupted", e))?
}
