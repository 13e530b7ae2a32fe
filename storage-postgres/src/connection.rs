//! The pool, the schema migrations, and running every store call as one
//! transaction (retried when PostgreSQL rolled it back because of a
//! concurrent one).

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use carewatch_core::{Error, Result};
use sqlx_core::connection::{ConnectOptions, Connection};
use sqlx_core::migrate::{Migration, MigrationType, Migrator};
use sqlx_core::sql_str::SqlSafeStr;
use sqlx_postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::errors::{DbResult, Failure, Kind, into_error, map_err, retry_kind};
use crate::listen::ChangeSignals;

/// Most connections a store opens by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// How long a call waits for a connection by default before it fails with
/// `StorageUnavailable`.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The `application_name` a store's connections carry unless told otherwise.
pub const DEFAULT_APPLICATION_NAME: &str = "carewatch";

/// A transaction rolled back by the server for a concurrent one (40001,
/// 40P01) is run again this many times.
const CONFLICT_RETRIES: u32 = 4;
/// A transaction whose connection broke before COMMIT is run again this many
/// times (each on another connection).
const CONNECTION_RETRIES: u32 = 2;
/// An idle connection older than this is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The schema migrations, embedded in the binary and run by sqlx's
/// `Migrator`, which takes a PostgreSQL advisory lock (`pg_advisory_lock`,
/// keyed on the database name) before it looks at `_sqlx_migrations`, so
/// nodes starting together apply each migration once. This is what
/// `sqlx::migrate!("./migrations")` expands to; the macro itself is not used
/// because the `sqlx` facade crate pulls in `sqlx-sqlite`, whose
/// `libsqlite3-sys` `links` conflicts with the SQLite backend's (Cargo
/// resolves `links` for optional dependencies too), so this crate depends
/// on `sqlx-core` and `sqlx-postgres` directly.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "health totals",
        include_str!("../migrations/0002_health_totals.sql"),
    ),
    (
        3,
        "clean stops",
        include_str!("../migrations/0003_clean_stops.sql"),
    ),
    (
        4,
        "change feed",
        include_str!("../migrations/0004_change_feed.sql"),
    ),
];

fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// How to reach the database, and how many connections to keep.
#[derive(Clone)]
pub struct PostgresConfig {
    connect: PgConnectOptions,
    schema: Option<String>,
    max_connections: u32,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.connect.get_host())
            .field("port", &self.connect.get_port())
            .field("username", &self.connect.get_username())
            .field("database", &self.connect.get_database())
            .field("application_name", &self.connect.get_application_name())
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl PostgresConfig {
    /// Settings from a `postgres://` URL, with the default pool limits.
    pub fn from_url(url: &str) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url).map_err(|e| Error::InvalidInput {
            field: "PostgreSQL URL",
            reason: e.to_string(),
        })?;
        Ok(Self::new(connect))
    }

    /// Settings from connect options, with the default pool limits.
    pub fn new(connect: PgConnectOptions) -> Self {
        let connect = match connect.get_application_name() {
            Some(_) => connect,
            None => connect.application_name(DEFAULT_APPLICATION_NAME),
        };
        Self {
            connect,
            schema: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
        }
    }

    /// Keeps the tables in this schema (created if missing): the connections'
    /// `search_path` is set to it. Lower-case ASCII letters, digits and `_`,
    /// not starting with a digit, at most 63 bytes.
    pub fn schema(mut self, name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(Error::InvalidInput {
                field: "PostgreSQL schema",
                reason: format!(
                    "{name:?}: use 1 to 63 lower-case letters, digits and _, not starting with a digit"
                ),
            });
        }
        self.schema = Some(name.to_owned());
        Ok(self)
    }

    /// The `application_name` of the connections (shows in `pg_stat_activity`).
    pub fn application_name(mut self, name: &str) -> Self {
        self.connect = self.connect.application_name(name);
        self
    }

    /// Most connections to open (at least 1).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long a call waits for a connection.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The connect options, with the schema in the `search_path`.
    pub fn connect_options(&self) -> PgConnectOptions {
        match &self.schema {
            Some(schema) => self
                .connect
                .clone()
                .options([("search_path", schema.as_str())]),
            None => self.connect.clone(),
        }
    }

    /// The pool options: the limits, and a liveness ping for connections
    /// that were idle (so a restarted server is noticed before a call fails).
    pub fn pool_options(&self) -> PgPoolOptions {
        PostgresStore::pool_options()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
    }
}

/// A Carewatch store in a PostgreSQL database, shareable by several nodes.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The schema the tables are in (NOTIFY payloads name it).
    schema: String,
    signals: ChangeSignals,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options = self.pool.connect_options();
        f.debug_struct("PostgresStore")
            .field("host", &options.get_host())
            .field("port", &options.get_port())
            .field("database", &options.get_database())
            .field("application_name", &options.get_application_name())
            .field("connections", &self.pool.size())
            .finish()
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One unit of store work on a connection inside a transaction; `data` is
/// the call's arguments, borrowed for as long as the connection is.
pub(crate) type Op<D, T> = for<'c> fn(&'c mut PgConnection, &'c D) -> BoxFuture<'c, DbResult<T>>;

/// Why one attempt failed.
enum Attempt {
    /// Before COMMIT was sent: nothing was applied.
    Before(Failure),
    /// COMMIT itself failed.
    Commit(sqlx_core::Error),
}

impl PostgresStore {
    /// Connects to the database at a `postgres://` URL with the default
    /// pool limits and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(PostgresConfig::from_url(url)?).await
    }

    /// Connects with [`PostgresConfig`] settings: creates the schema if one is
    /// set and missing, applies the migrations, opens the pool.
    pub async fn open(config: PostgresConfig) -> Result<Self> {
        let options = config.connect_options();
        let pool = config.pool_options();
        let schema = config.schema.clone();
        Self::start(options, pool, schema.as_deref()).await
    }

    /// Connects with connect and pool options of your own; the tables go to
    /// the first schema of the `search_path` the options set.
    pub async fn connect_with(options: PgConnectOptions, pool: PgPoolOptions) -> Result<Self> {
        let options = match options.get_application_name() {
            Some(_) => options,
            None => options.application_name(DEFAULT_APPLICATION_NAME),
        };
        Self::start(options, pool, None).await
    }

    /// The default pool options: [`DEFAULT_MAX_CONNECTIONS`],
    /// [`DEFAULT_ACQUIRE_TIMEOUT`], and a ping before handing out a
    /// connection that was idle for a while.
    pub fn pool_options() -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(600))
            // Connections are pinged when released; a ping on every acquire
            // would add a round trip to every heartbeat batch.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
    }

    async fn start(
        options: PgConnectOptions,
        pool: PgPoolOptions,
        schema: Option<&str>,
    ) -> Result<Self> {
        let timeout = pool.get_acquire_timeout();
        migrate(&options, schema, timeout).await?;
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|e| match map_err(e) {
                Error::StorageUnavailable {
                    reason,
                    message,
                    source,
                } => Error::StorageUnavailable {
                    reason,
                    message: format!("cannot connect to PostgreSQL: {message}"),
                    source,
                },
                other => other,
            })?;
        let schema = sqlx_core::query_scalar::query_scalar::<_, String>("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .map_err(map_err)?;
        tracing::debug!(schema, "postgres store open");
        Ok(Self {
            pool,
            schema,
            signals: ChangeSignals::default(),
        })
    }

    /// Wake-ups when any node appends change-feed events (LISTEN/NOTIFY).
    pub fn listen_for_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.signals.subscribe(&self.pool, &self.schema)
    }

    /// The connection pool (for diagnostics and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool: waits for calls in progress, then closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `op` in one READ COMMITTED write transaction (committed if `op`
    /// returns `Ok`); rows it must not see change under it are locked with
    /// `SELECT ... FOR UPDATE`.
    pub(crate) async fn write<D, T>(&self, data: &D, op: Op<D, T>) -> Result<T>
    where
        D: Sync + ?Sized,
        T: Send,
    {
        self.run(Some("BEGIN"), data, op).await
    }

    /// Runs `op` in one read-only REPEATABLE READ transaction: one consistent snapshot.
    pub(crate) async fn read<D, T>(&self, data: &D, op: Op<D, T>) -> Result<T>
    where
        D: Sync + ?Sized,
        T: Send,
    {
        self.run(
            Some("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
            data,
            op,
        )
        .await
    }

    /// Runs `op`, which issues exactly one statement, without BEGIN/COMMIT:
    /// the statement is its own transaction (one round trip on the hot path).
    /// `op` must be safe to run again after an unknown outcome (a read, or a
    /// conditional write that changes nothing the second time), because a
    /// broken connection is retried on another one.
    pub(crate) async fn single<D, T>(&self, data: &D, op: Op<D, T>) -> Result<T>
    where
        D: Sync + ?Sized,
        T: Send,
    {
        self.run(None, data, op).await
    }

    async fn run<D, T>(&self, begin: Option<&'static str>, data: &D, op: Op<D, T>) -> Result<T>
    where
        D: Sync + ?Sized,
        T: Send,
    {
        let (mut conflicts, mut broken) = (0u32, 0u32);
        loop {
            let (failure, at_commit) = match self.attempt(begin, data, op).await {
                Ok(value) => return Ok(value),
                Err(Attempt::Before(failure)) => (failure, false),
                // The server answered COMMIT with an error: it rolled back, so
                // a conflict may be retried. A broken connection at COMMIT
                // leaves the outcome unknown: never retried.
                Err(Attempt::Commit(e)) => (Failure::Db(e), true),
            };
            let retry = match retry_kind(&failure) {
                Some(Kind::Conflict) if conflicts < CONFLICT_RETRIES => {
                    conflicts += 1;
                    Some(backoff(conflicts))
                }
                Some(Kind::Unavailable) if broken < CONNECTION_RETRIES && !at_commit => {
                    broken += 1;
                    Some(Duration::ZERO)
                }
                _ => None,
            };
            match retry {
                Some(pause) => {
                    tracing::debug!(error = %failure, "retrying a PostgreSQL transaction");
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                None => return Err(into_error(failure)),
            }
        }
    }

    async fn attempt<D, T>(
        &self,
        begin: Option<&'static str>,
        data: &D,
        op: Op<D, T>,
    ) -> std::result::Result<T, Attempt>
    where
        D: Sync + ?Sized,
        T: Send,
    {
        let Some(begin) = begin else {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|e| Attempt::Before(e.into()))?;
            return op(&mut conn, data).await.map_err(Attempt::Before);
        };
        let mut tx = self
            .pool
            .begin_with(begin)
            .await
            .map_err(|e| Attempt::Before(e.into()))?;
        let value = op(&mut tx, data).await.map_err(Attempt::Before)?;
        tx.commit().await.map_err(Attempt::Commit)?;
        Ok(value)
    }
}

/// 5, 10, 20, 40 ms, plus up to 5 ms of jitter so two nodes that
/// deadlocked do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % 5_000_000);
    Duration::from_millis(5u64 << attempt.min(6).saturating_sub(1)) + Duration::from_nanos(jitter)
}

/// Applies the migrations on a connection of its own, closed afterwards: the
/// migrator's session advisory lock is released even if a migration fails.
async fn migrate(
    options: &PgConnectOptions,
    schema: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    let unavailable = |e: sqlx_core::Error| match map_err(e) {
        Error::StorageUnavailable {
            reason,
            message,
            source,
        } => Error::StorageUnavailable {
            reason,
            message: format!("cannot connect to PostgreSQL: {message}"),
            source,
        },
        other => other,
    };
    let mut conn = tokio::time::timeout(timeout, options.connect())
        .await
        .map_err(|e| Error::storage_unavailable("connecting to PostgreSQL timed out", e))?
        .map_err(unavailable)?;
    let result = migrate_on(&mut conn, schema).await;
    // Dropping the connection would also end the session (and its locks).
    let _ = conn.close().await;
    result
}

async fn migrate_on(conn: &mut PgConnection, schema: Option<&str>) -> Result<()> {
    if let Some(schema) = schema {
        // The name was validated by PostgresConfig::schema (no quoting issues).
        let sql = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        let create = sqlx_core::query::query::<sqlx_postgres::Postgres>(
            sqlx_core::sql_str::AssertSqlSafe(sql),
        );
        match create.execute(&mut *conn).await {
            Ok(_) => {}
            // Two nodes creating it at once: the loser sees a unique violation.
            Err(e) if crate::errors::classify(&e) == Kind::UniqueViolation => {}
            Err(e) => return Err(map_err(e)),
        }
    }
    let current: Option<String> = sqlx_core::query_scalar::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    if current.is_none() {
        return Err(Error::Storage {
            message: "the search_path names no existing schema: create it, or set one with PostgresConfig::schema".into(),
            source: None,
        });
    }
    // `run_direct` is what `Migrator::run` calls once it has a connection;
    // called directly, the future stays `Send` for any connection lifetime.
    migrator()
        .run_direct(None, conn, false)
        .await
        .map_err(|e| match e {
            sqlx_core::migrate::MigrateError::Execute(e) => map_err(e),
            other => Error::storage("migrating the PostgreSQL schema failed", other),
        })?;
    tracing::debug!(schema = ?current, "postgres schema up to date");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use sqlx_core::query::query;

    use super::*;

    /// Two transactions that lock two rows in opposite orders deadlock; the
    /// server aborts one (40P01) and it is run again: both succeed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deadlocked_transactions_are_retried() {
        let url = std::env::var("CAREWATCH_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let schema = format!("cw_test_{secs}_unit{}", std::process::id());
        let config = PostgresConfig::from_url(&url)
            .expect("url")
            .schema(&schema)
            .expect("schema name");
        let store = PostgresStore::open(config).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL unreachable at {url} ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 or set CAREWATCH_TEST_DATABASE_URL=postgres://USER@HOST:PORT/DATABASE"
            )
        });
        for node in ["a", "b"] {
            query("INSERT INTO liveness (node, alive_at) VALUES ($1, 0)")
                .bind(node)
                .execute(store.pool())
                .await
                .expect("inserts");
        }
        let op: Op<(AtomicU32, &str, &str), ()> = |c, (attempts, first, second)| {
            Box::pin(async move {
                attempts.fetch_add(1, Ordering::Relaxed);
                for node in [first, second] {
                    query("UPDATE liveness SET alive_at = alive_at + 1 WHERE node = $1")
                        .bind(*node)
                        .execute(&mut *c)
                        .await?;
                    query("SELECT pg_sleep(0.2)").execute(&mut *c).await?;
                }
                Ok(())
            })
        };
        let forwards = (AtomicU32::new(0), "a", "b");
        let backwards = (AtomicU32::new(0), "b", "a");
        let (f, b) = tokio::join!(store.write(&forwards, op), store.write(&backwards, op));
        f.expect("forwards commits");
        b.expect("backwards commits");
        let total = forwards.0.load(Ordering::Relaxed) + backwards.0.load(Ordering::Relaxed);
        assert!(
            total >= 3,
            "one of them was aborted by the deadlock detector and ran again ({total} attempts)"
        );
        let sum: i64 =
            sqlx_core::query_scalar::query_scalar("SELECT sum(alive_at)::bigint FROM liveness")
                .fetch_one(store.pool())
                .await
                .expect("reads");
        assert_eq!(sum, 4, "each transaction applied once");
        let drop_schema = format!("DROP SCHEMA \"{schema}\" CASCADE");
        store.close().await;
        let mut conn = PgConnectOptions::from_str(&url)
            .expect("url")
            .connect()
            .await
            .expect("connects");
        query(sqlx_core::sql_str::AssertSqlSafe(drop_schema))
            .execute(&mut conn)
            .await
            .expect("drops schema");
    }

    /// Version 2 counts the installations a version-1 database already has
    /// (resellers without any get zero rows too), and its triggers follow
    /// inserts, health changes, other changes, moves, deletes and new resellers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_totals_start_from_existing_rows_and_follow_every_write() {
        let url = std::env::var("CAREWATCH_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let schema = format!("cw_test_{secs}_unitv2{}", std::process::id());
        let options = PgConnectOptions::from_str(&url).expect("url");
        let mut admin = options.connect().await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL unreachable at {url} ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 or set CAREWATCH_TEST_DATABASE_URL=postgres://USER@HOST:PORT/DATABASE"
            )
        });
        query(sqlx_core::sql_str::AssertSqlSafe(format!(
            "CREATE SCHEMA \"{schema}\""
        )))
        .execute(&mut admin)
        .await
        .expect("creates schema");
        let mut conn = options
            .clone()
            .options([("search_path", schema.as_str())])
            .connect()
            .await
            .expect("connects");
        migrator()
            .run_direct(Some(1), &mut conn, false)
            .await
            .expect("version 1");
        for sql in [
            "INSERT INTO resellers VALUES ('alpha', 'Alpha', '\\x00', 0), ('beta', 'Beta', '\\x00', 0)",
            "INSERT INTO installations VALUES
                 ('A-1', 'alpha', 'XProtect', '1', NULL, true, 0, 0, NULL, 0, 0, 0, 0),
                 ('A-2', 'alpha', 'XProtect', '1', NULL, true, 0, 0, NULL, 0, 0, 0, 0),
                 ('A-3', 'alpha', 'XProtect', '1', NULL, true, 0, 3, NULL, 0, 0, 0, 0)",
        ] {
            query(sqlx_core::sql_str::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("version-1 rows");
        }

        migrate_on(&mut conn, None).await.expect("version 2");
        let totals = async |conn: &mut PgConnection| -> Vec<(String, i16, i64)> {
            sqlx_core::query_as::query_as(
                "SELECT reseller_id, health, sum(n)::bigint FROM (
                     SELECT reseller_id, health, installations AS n FROM health_totals
                     UNION ALL SELECT reseller_id, health, delta FROM health_total_deltas
                 ) t GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2",
            )
            .fetch_all(conn)
            .await
            .expect("reads totals")
        };
        assert_eq!(
            totals(&mut conn).await,
            vec![("alpha".into(), 0, 2), ("alpha".into(), 3, 1)],
            "existing installations are counted"
        );
        let rows: i64 = sqlx_core::query_scalar::query_scalar("SELECT count(*) FROM health_totals")
            .fetch_one(&mut conn)
            .await
            .expect("counts rows");
        assert_eq!(rows, 10, "every reseller has a row per health");

        for sql in [
            "INSERT INTO resellers VALUES ('gamma', 'Gamma', '\\x00', 0)",
            "INSERT INTO installations VALUES ('B-1', 'beta', 'Husky', 'M50', NULL, true, 0, 1, NULL, 0, 0, 0, 0)",
            "INSERT INTO installations VALUES ('G-1', 'gamma', 'Husky', 'M50', NULL, true, 0, 4, NULL, 0, 0, 0, 0)",
            "UPDATE installations SET health = 3 WHERE slc = 'A-1'",
            "UPDATE installations SET late = 1, health = health WHERE slc = 'A-2'",
            "UPDATE installations SET reseller_id = 'beta' WHERE slc = 'A-3'",
            "DELETE FROM installations WHERE slc = 'A-2'",
        ] {
            query(sqlx_core::sql_str::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect(sql);
        }
        assert_eq!(
            totals(&mut conn).await,
            vec![
                ("alpha".into(), 3, 1),
                ("beta".into(), 1, 1),
                ("beta".into(), 3, 1),
                ("gamma".into(), 4, 1),
            ]
        );
        // One transaction moving the same pair back and forth: the row is
        // changed once, the rest mostly parked; the next change folds them in.
        query("BEGIN").execute(&mut conn).await.expect("begins");
        for health in [0i16, 3, 0, 3, 0] {
            query("UPDATE installations SET health = $1 WHERE slc = 'A-1'")
                .bind(health)
                .execute(&mut conn)
                .await
                .expect("moves");
        }
        query("COMMIT").execute(&mut conn).await.expect("commits");
        assert_eq!(
            totals(&mut conn).await,
            vec![
                ("alpha".into(), 0, 1),
                ("beta".into(), 1, 1),
                ("beta".into(), 3, 1),
                ("gamma".into(), 4, 1),
            ]
        );
        query("UPDATE installations SET health = 2 WHERE slc = 'A-1'")
            .execute(&mut conn)
            .await
            .expect("moves");
        let parked: Vec<(String, i16)> = sqlx_core::query_as::query_as(
            "SELECT reseller_id, health FROM health_total_deltas ORDER BY 1, 2",
        )
        .fetch_all(&mut conn)
        .await
        .expect("lists deltas");
        assert!(
            parked
                .iter()
                .all(|(r, h)| (r.as_str(), *h) != ("alpha", 0) && (r.as_str(), *h) != ("alpha", 2)),
            "the next change of a pair folds what was parked for it: {parked:?}"
        );
        assert_eq!(totals(&mut conn).await[0], ("alpha".into(), 2, 1));

        let _ = conn.close().await;
        query(sqlx_core::sql_str::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(&mut admin)
        .await
        .expect("drops schema");
    }
}
