//! The local PostgreSQL: its URL, a store on a schema of its own, and
//! stopping and starting the cluster.

use std::time::{Duration, SystemTime};

use carewatch_storage_postgres::{PostgresConfig, PostgresStore};
use sqlx_core::query::query;
use sqlx_core::sql_str::AssertSqlSafe;

pub(crate) fn url() -> String {
    std::env::var("CAREWATCH_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub(crate) async fn store(url: &str, schema: &str) -> PostgresStore {
    let config = PostgresConfig::from_url(url)
        .and_then(|c| c.schema(schema))
        .expect("PostgreSQL settings");
    PostgresStore::open(config).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {url} ({e}); start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
             or set CAREWATCH_TEST_DATABASE_URL"
        )
    })
}

pub(crate) async fn drop_schema(store: &PostgresStore, schema: &str) {
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    if let Err(e) = query(AssertSqlSafe(sql)).execute(store.pool()).await {
        eprintln!("dropping schema {schema}: {e}");
    }
}

fn cluster(action: &str) {
    let versions =
        std::fs::read_dir("/etc/postgresql").expect("/etc/postgresql (local PostgreSQL)");
    let version = versions
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .max()
        .expect("a PostgreSQL cluster version");
    let mut command = std::process::Command::new("pg_ctlcluster");
    command.args(["--skip-systemctl-redirect", &version, "main", action]);
    if action == "stop" {
        command.args(["-m", "fast"]);
    }
    let status = command.status().expect("runs pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action}: {status}");
}

/// The local PostgreSQL, stopped; started again when dropped (also
/// when the test fails meanwhile).
pub(crate) struct Stopped {
    running: bool,
}

impl Stopped {
    /// Stops it; returns when it has stopped.
    pub(crate) async fn stop() -> (Self, SystemTime) {
        tokio::task::spawn_blocking(|| cluster("stop"))
            .await
            .expect("pg_ctlcluster stop");
        (Self { running: false }, SystemTime::now())
    }

    /// Starts it; returns when it accepts connections.
    pub(crate) async fn start(mut self) -> SystemTime {
        tokio::task::spawn_blocking(|| cluster("start"))
            .await
            .expect("pg_ctlcluster start");
        self.running = true;
        SystemTime::now()
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.running {
            cluster("start");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
