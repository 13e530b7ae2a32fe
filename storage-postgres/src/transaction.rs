//! Running every store call as one transaction, retried when PostgreSQL
//! rolled it back because of a concurrent one, or when the connection broke
//! before COMMIT.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use carewatch_core::{Error, Result};
use sqlx_core::sql_str::SqlSafeStr;
use sqlx_postgres::PgConnection;

use crate::connection::PostgresStore;
use crate::errors::{DbResult, Failure, Kind, into_error, retry_kind};

/// A transaction rolled back by the server for a concurrent one (40001,
/// 40P01) is run again this many times.
const CONFLICT_RETRIES: u32 = 4;
/// A transaction whose connection broke before COMMIT is run again this many
/// times (each on another connection).
const CONNECTION_RETRIES: u32 = 2;

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
    /// Runs `op` in one READ COMMITTED write transaction (committed if `op`
    /// returns `Ok`); rows it must not see change under it are locked with
    /// `SELECT ... FOR UPDATE`.
    pub(crate) async fn write<D, T>(&self, data: &D, op: Op<D, T>) -> Result<T>
    where
        D: Sync + ?Sized,
        T: Send,
    {
        // READ COMMITTED by the connection's setting
        // (`with_read_committed_writes`), whatever the server's default.
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
                .pool()
                .acquire()
                .await
                .map_err(|e| Attempt::Before(e.into()))?;
            return op(&mut conn, data).await.map_err(Attempt::Before);
        };
        let conn = self
            .pool()
            .acquire()
            .await
            .map_err(|e| Attempt::Before(e.into()))?;
        // BEGIN runs in a task of its own, to its end even when this call is
        // dropped (a client gone, a timeout): sqlx counts a transaction only
        // once BEGIN's answer is read, so a call dropped while BEGIN was on
        // the wire returned the connection to the pool inside a transaction
        // the server kept open, and later statements on it ran in there,
        // uncommitted. Begun, a dropped transaction is rolled back. (The
        // wait for a connection stays here, given up with the call.)
        let mut tx = tokio::spawn(sqlx_core::transaction::Transaction::begin(
            conn,
            Some(begin.into_sql_str()),
        ))
        .await
        .map_err(|e| {
            Attempt::Before(Error::storage("a PostgreSQL transaction could not begin", e).into())
        })?
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

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::atomic::{AtomicU32, Ordering};

    use sqlx_core::connection::ConnectOptions;
    use sqlx_core::query::query;
    use sqlx_postgres::PgConnectOptions;

    use super::*;
    use crate::PostgresConfig;

    /// A store on a schema of its own named after `tag`, its connections
    /// carrying `tag` as their application name; with the URL and schema.
    async fn store_of_its_own(tag: &str) -> (PostgresStore, String, String) {
        let url = std::env::var("CAREWATCH_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let schema = format!("cw_test_{secs}_{tag}{}", std::process::id());
        let config = PostgresConfig::from_url(&url)
            .expect("url")
            .schema(&schema)
            .expect("schema name")
            .application_name(&schema)
            .max_connections(2);
        let store = PostgresStore::open(config).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL unreachable at {url} ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 or set CAREWATCH_TEST_DATABASE_URL=postgres://USER@HOST:PORT/DATABASE"
            )
        });
        (store, url, schema)
    }

    /// Closes `store` and drops its schema.
    async fn close_and_drop(store: PostgresStore, url: &str, schema: &str) {
        store.close().await;
        let mut conn = PgConnectOptions::from_str(url)
            .expect("url")
            .connect()
            .await
            .expect("connects");
        query(sqlx_core::sql_str::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(&mut conn)
        .await
        .expect("drops schema");
    }

    /// Store calls dropped at any point (a client gone, a timeout) leave no
    /// pooled connection inside a transaction: one dropped while its BEGIN
    /// was on the wire went back to the pool in a transaction the server
    /// kept open, and the next calls on it ran (uncommitted) inside it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_dropped_mid_begin_leave_no_open_transaction() {
        let (store, url, schema) = store_of_its_own("cancel").await;
        let store = std::sync::Arc::new(store);
        let mut observer = PgConnectOptions::from_str(&url)
            .expect("url")
            .connect()
            .await
            .expect("connects");
        // A later BEGIN on a connection left so ends its transaction, so
        // each round is looked at on its own: a connection still in a
        // transaction 2 s after the call was dropped was left so (the pool
        // rolls back what it knows of within milliseconds).
        let mut left_open = 0;
        for round in 0..3000u64 {
            let calls = store.clone();
            let call = tokio::spawn(async move {
                use carewatch_core::store::Store;
                let _ = calls.latest_change().await;
            });
            std::thread::sleep(Duration::from_micros(round % 300));
            call.abort();
            let _ = call.await;
            let given_up = tokio::time::Instant::now() + Duration::from_secs(2);
            loop {
                let open: i64 = sqlx_core::query_scalar::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
                )
                .bind(&schema)
                .fetch_one(&mut observer)
                .await
                .expect("reads pg_stat_activity");
                if open == 0 {
                    break;
                }
                if tokio::time::Instant::now() >= given_up {
                    left_open += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if left_open >= 1 {
                break;
            }
        }
        assert_eq!(
            left_open, 0,
            "rounds that left a pooled connection in a transaction"
        );
        let store = std::sync::Arc::into_inner(store).expect("the only handle");
        close_and_drop(store, &url, &schema).await;
    }

    /// The server ends a session of Carewatch's left idle inside a
    /// transaction (a node that died mid-transaction) after a minute,
    /// unless the connect options say otherwise.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_idle_in_a_transaction_are_ended_by_the_server() {
        let (store, url, schema) = store_of_its_own("idle").await;
        let limit: String =
            sqlx_core::query_scalar::query_scalar("SHOW idle_in_transaction_session_timeout")
                .fetch_one(store.pool())
                .await
                .expect("reads the setting");
        assert_eq!(limit, "1min");
        let own = PgConnectOptions::from_str(&url)
            .expect("url")
            .options([("idle_in_transaction_session_timeout", "5s")]);
        let theirs = super::super::connection::with_idle_in_transaction_limit(own);
        assert_eq!(
            theirs.get_options(),
            Some("-c idle_in_transaction_session_timeout=5s"),
            "an operator's own setting is kept"
        );
        close_and_drop(store, &url, &schema).await;
    }

    /// Found by review: the bounds' count after a lock relies on READ
    /// COMMITTED writes; a server, database or URL defaulting to a stricter
    /// level would let concurrent creates pass a bound. The store's
    /// connections say READ COMMITTED last, over a URL's own setting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_transactions_are_read_committed_whatever_the_default() {
        let (store, url, schema) = store_of_its_own("isolation").await;
        store.close().await;
        // The same schema, through a URL whose own default is stricter.
        let stricter = PgConnectOptions::from_str(&url)
            .expect("url")
            .options([("default_transaction_isolation", "serializable")]);
        let config = PostgresConfig::new(stricter)
            .schema(&schema)
            .expect("schema name")
            .max_connections(1);
        let store = PostgresStore::open(config).await.expect("opens");
        let level: String =
            sqlx_core::query_scalar::query_scalar("SHOW default_transaction_isolation")
                .fetch_one(store.pool())
                .await
                .expect("reads the setting");
        assert_eq!(level, "read committed", "set last, over the URL's");
        close_and_drop(store, &url, &schema).await;
    }

    /// Two transactions that lock two rows in opposite orders deadlock; the
    /// server aborts one (40P01) and it is run again: both succeed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deadlocked_transactions_are_retried() {
        let (store, url, schema) = store_of_its_own("unit").await;
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
        close_and_drop(store, &url, &schema).await;
    }
}
