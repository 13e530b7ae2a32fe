//! Test databases on a real PostgreSQL server: one fresh schema per test,
//! dropped when the test's database handle is dropped; schemas left behind
//! by killed test runs are dropped by the next run.

#![allow(dead_code)] // each test binary uses a part of this

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carewatch_core::store::Store;
use carewatch_core::testing::{TestBackend, TestDatabase};
use carewatch_storage_postgres::{PgConnectOptions, PostgresConfig, PostgresStore};
use sqlx_core::connection::{ConnectOptions, Connection};
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::sql_str::AssertSqlSafe;
use sqlx_postgres::PgConnection;
use tokio::sync::OnceCell;

/// Where the tests find PostgreSQL.
pub const URL_VAR: &str = "CAREWATCH_TEST_DATABASE_URL";
/// Used when [`URL_VAR`] is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Every test schema's name starts with this.
const PREFIX: &str = "cw_test_";
/// Leftover schemas older than this are dropped (younger ones may belong to
/// a test run going on right now).
const STALE_AFTER: Duration = Duration::from_secs(3600);

pub fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn options() -> PgConnectOptions {
    let url = url();
    url.parse()
        .unwrap_or_else(|e| panic!("{URL_VAR}={url:?} is not a PostgreSQL URL: {e}"))
}

/// A connection for test administration; fails the test with instructions
/// when the server cannot be reached (never skips).
pub async fn admin_connection() -> PgConnection {
    let url = url();
    let options = options().application_name("cw_test_admin");
    let error = match tokio::time::timeout(Duration::from_secs(10), options.connect()).await {
        Ok(Ok(conn)) => return conn,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out after 10 s".to_owned(),
    };
    if std::env::var_os("CI").is_some() {
        panic!(
            "PostgreSQL test server unreachable at {url} ({error}). CI is set: the PostgreSQL backend \
             tests must run against a real server; start one and point {URL_VAR} at it."
        );
    }
    panic!(
        "PostgreSQL test server unreachable at {url} ({error}).\n\
         These tests need a real PostgreSQL (trust auth, database `test`). Either start the local one:\n\
         \n    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\n\
         or point the tests at another server:\n\
         \n    export {URL_VAR}=postgres://USER@HOST:PORT/DATABASE\n"
    );
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Drops `cw_test_<unix seconds>_<random>` schemas older than [`STALE_AFTER`]
/// (left by runs that were killed before their Drop ran). Once per process.
async fn drop_stale_schemas(conn: &mut PgConnection) {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let names: Vec<String> = query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'cw\\_test\\_%'",
        )
        .fetch_all(&mut *conn)
        .await
        .expect("lists test schemas");
        let now = unix_secs();
        for name in names {
            let created = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok());
            if created.is_some_and(|t| now.saturating_sub(t) > STALE_AFTER.as_secs()) {
                let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                // Another test process may be dropping it too: ignore failures.
                let _ = query(AssertSqlSafe(sql)).execute(&mut *conn).await;
            }
        }
    })
    .await;
}

/// PostgreSQL as a conformance-suite backend.
pub struct Postgres;

#[async_trait::async_trait]
impl TestBackend for Postgres {
    async fn fresh(&self) -> Box<dyn TestDatabase> {
        Box::new(Schema::create().await)
    }
}

/// One isolated database: a schema of its own, dropped on drop.
pub struct Schema {
    pub name: String,
    opened: AtomicU32,
}

impl Schema {
    pub async fn create() -> Self {
        let mut conn = admin_connection().await;
        drop_stale_schemas(&mut conn).await;
        let name = format!("{PREFIX}{}_{}", unix_secs(), random_suffix());
        query(AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("creates the test schema");
        let _ = conn.close().await;
        Self {
            name,
            opened: AtomicU32::new(0),
        }
    }

    /// A distinct `application_name` for the next store on this schema.
    pub fn next_application_name(&self) -> String {
        // e.g. cw_test_1767225600_0a1b2c3d4e5f_2 (< 64 bytes)
        format!(
            "{}_{}",
            self.name,
            self.opened.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub fn config(&self, application_name: &str) -> PostgresConfig {
        PostgresConfig::new(options())
            .schema(&self.name)
            .expect("valid schema name")
            .application_name(application_name)
            .max_connections(8)
    }

    pub async fn open_store(&self, application_name: &str) -> PostgresStore {
        PostgresStore::open(self.config(application_name))
            .await
            .expect("opens PostgreSQL store")
    }
}

#[async_trait::async_trait]
impl TestDatabase for Schema {
    async fn open(&self) -> Arc<dyn Store> {
        let name = self.next_application_name();
        Arc::new(self.open_store(&name).await)
    }

    async fn append_raw_change(
        &self,
        at: carewatch_core::time::Timestamp,
        slc: &carewatch_core::ids::Slc,
        kind: &str,
        server_id: Option<&str>,
    ) {
        let mut admin = admin_connection().await;
        // The numbering trigger names the schema's tables unqualified.
        query(AssertSqlSafe(format!(
            "SET search_path TO \"{}\"",
            self.name
        )))
        .execute(&mut admin)
        .await
        .expect("the schema");
        query("INSERT INTO changes (at, slc, kind, server_id) VALUES ($1, $2, $3, $4)")
            .bind(at.as_millis())
            .bind(slc.as_str())
            .bind(kind)
            .bind(server_id)
            .execute(&mut admin)
            .await
            .expect("appends a raw change");
        if let Some(server) = server_id {
            query("INSERT INTO history (slc, at, server_id, kind) VALUES ($1, $2, $3, $4)")
                .bind(slc.as_str())
                .bind(at.as_millis())
                .bind(server)
                .bind(kind)
                .execute(&mut admin)
                .await
                .expect("appends a raw history entry");
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on:
        // drop the schema from a thread with a runtime of its own.
        let name = std::mem::take(&mut self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut conn = tokio::time::timeout(Duration::from_secs(10), options().connect())
                    .await
                    .ok()?
                    .ok()?;
                // A store still in a transaction holds locks: do not wait forever.
                query("SET lock_timeout = '5s'")
                    .execute(&mut conn)
                    .await
                    .ok()?;
                let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                let result = tokio::time::timeout(
                    Duration::from_secs(30),
                    query(AssertSqlSafe(sql)).execute(&mut conn),
                )
                .await;
                let _ = conn.close().await;
                result.ok()?.ok()
            })
        })
        .join();
        // A schema that could not be dropped now is dropped by a later run.
        let _ = dropped;
    }
}

/// Creates the reseller "alpha" (as of `at`) that the ingest tests populate.
pub async fn create_alpha_reseller(
    store: &PostgresStore,
    at: carewatch_core::time::Timestamp,
) -> carewatch_core::ids::ResellerId {
    let id = carewatch_core::ids::ResellerId::new("alpha").expect("reseller id");
    store
        .create_reseller(
            &carewatch_core::store::Reseller {
                id: id.clone(),
                name: "Alpha".into(),
                created_at: at,
            },
            &carewatch_core::auth::TokenHash::from_slice(&[7; 32]).expect("hash"),
        )
        .await
        .expect("creates reseller");
    id
}

/// The heartbeat interval of [`sign_of_life`].
pub const SIGN_INTERVAL: Duration = Duration::from_secs(60);

/// A sign of life built by hand (its digest encodes `sequence`), next due
/// one [`SIGN_INTERVAL`] after `received_at`.
pub fn sign_of_life(
    slc: &carewatch_core::ids::Slc,
    server: &str,
    sequence: u64,
    received_at: carewatch_core::time::Timestamp,
) -> carewatch_core::store::SignOfLife {
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&sequence.to_be_bytes());
    carewatch_core::store::SignOfLife {
        slc: slc.clone(),
        server: carewatch_core::ids::RecordingServerId::new(server).expect("server id"),
        cursor: carewatch_core::auth::SequenceCursor {
            sequence,
            digest: carewatch_core::auth::MessageDigest(digest),
        },
        received_at,
        interval: SIGN_INTERVAL,
        next_check_at: received_at.saturating_add(SIGN_INTERVAL),
        missed_before: 0,
        remembered: None,
    }
}
