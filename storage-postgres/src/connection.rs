//! The store's connection pool: opening it (after the migrations), its
//! options, and closing it.

use std::time::Duration;

use carewatch_core::{Error, Result};
use sqlx_core::connection::Connection;
use sqlx_postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_APPLICATION_NAME, DEFAULT_MAX_CONNECTIONS, PostgresConfig,
};
use crate::errors::map_err;
use crate::listen::ChangeSignals;
use crate::migrate::migrate;

/// An idle connection older than this is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

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

    /// [`PostgresStore::open`] for a database Carewatch already uses:
    /// `NotFound` if the schema holds no Carewatch tables, rather than
    /// creating them (a tool that changes what the nodes read must not
    /// make up an empty deployment from a mistyped URL or schema).
    pub async fn open_existing(config: PostgresConfig) -> Result<Self> {
        let options = config.connect_options();
        let timeout = config.pool_options().get_acquire_timeout();
        if !crate::migrate::holds_carewatch(&options, timeout).await? {
            let place = config
                .schema
                .as_deref()
                .map_or_else(String::new, |s| format!(" in schema {s}"));
            return Err(Error::NotFound {
                what: format!("a Carewatch database{place} there"),
            });
        }
        Self::open(config).await
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
        let options = with_read_committed_writes(with_idle_in_transaction_limit(options));
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
}

/// How long the server lets a session of Carewatch's sit idle inside a
/// transaction before it ends it (`idle_in_transaction_session_timeout`),
/// unless the connect options set their own.
pub(crate) const IDLE_IN_TRANSACTION_LIMIT: &str = "60s";

/// `options` whose write transactions (a bare `BEGIN`) are READ COMMITTED
/// whatever the server's, database's or role's default, and whatever the
/// URL says (set last, it wins): the bounds' count after a lock
/// (`store::limits`) must read what the lock's previous holder committed.
/// Set once per connection, not in every `BEGIN` of the hot path.
pub(crate) fn with_read_committed_writes(options: PgConnectOptions) -> PgConnectOptions {
    options.options([("default_transaction_isolation", "read committed")])
}

/// `options` with [`IDLE_IN_TRANSACTION_LIMIT`]: a node that dies in the
/// middle of a transaction (power, network) leaves its session idle in it,
/// holding its locks, until the server notices the dead connection (TCP
/// keepalive: two hours by default), and every other node's liveness mark
/// waits behind its table lock meanwhile. Carewatch's own transactions are
/// never idle that long between two statements.
pub(crate) fn with_idle_in_transaction_limit(options: PgConnectOptions) -> PgConnectOptions {
    let set_already = options
        .get_options()
        .is_some_and(|o| o.contains("idle_in_transaction_session_timeout"));
    if set_already {
        options
    } else {
        options.options([(
            "idle_in_transaction_session_timeout",
            IDLE_IN_TRANSACTION_LIMIT,
        )])
    }
}
