//! A PostgreSQL store in a schema of its own per benchmark run, the way the
//! backend's tests isolate theirs (`storage-postgres/tests/common`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carewatch_core::{Error, Result};
use carewatch_storage_postgres::{PostgresConfig, PostgresStore};
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::sql_str::AssertSqlSafe;

/// Where the benchmarks find PostgreSQL (the same variable as the tests).
pub const URL_VAR: &str = "CAREWATCH_TEST_DATABASE_URL";
/// Used when [`URL_VAR`] is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Every benchmark schema's name starts with this.
const PREFIX: &str = "cw_bench_";
/// Leftover schemas older than this are dropped: younger ones may belong to
/// a run going on right now.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The PostgreSQL URL: [`URL_VAR`] or [`DEFAULT_URL`].
pub fn database_url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A store in a fresh schema `cw_bench_<unix seconds>_<random>`.
#[derive(Debug)]
pub struct BenchSchema {
    /// The store, its tables in the schema.
    pub store: PostgresStore,
    name: String,
}

impl BenchSchema {
    /// Creates the schema and opens a store in it; also drops schemas that
    /// runs killed more than an hour ago left behind.
    pub async fn create(url: &str) -> Result<Self> {
        let name = format!("{PREFIX}{}_{}", unix_secs(), random_suffix());
        let config = PostgresConfig::from_url(url)?
            .schema(&name)?
            .application_name(&name)
            .max_connections(8)
            // An unreachable server should be reported promptly, not awaited.
            .acquire_timeout(Duration::from_secs(3));
        let store = PostgresStore::open(config).await?;
        let schema = Self { store, name };
        schema.drop_stale_schemas().await?;
        Ok(schema)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the schema and everything in it, then closes the store.
    pub async fn drop_schema(self) -> Result<()> {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        let dropped = query(AssertSqlSafe(sql)).execute(self.store.pool()).await;
        self.store.close().await;
        dropped
            .map(drop)
            .map_err(|e| Error::storage(format!("cannot drop schema {}", self.name), e))
    }

    async fn drop_stale_schemas(&self) -> Result<()> {
        let pool = self.store.pool();
        let names: Vec<String> = query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'cw\\_bench\\_%'",
        )
        .fetch_all(pool)
        .await
        .map_err(|e| Error::storage("cannot list benchmark schemas", e))?;
        let now = unix_secs();
        for name in names {
            let created = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok());
            if created.is_some_and(|t| now.saturating_sub(t) > STALE_AFTER.as_secs()) {
                let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                // Another run may be dropping it too: a failure here is harmless.
                let _ = query(AssertSqlSafe(sql)).execute(pool).await;
            }
        }
        Ok(())
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
