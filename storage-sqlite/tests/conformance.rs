//! The shared storage conformance suite, run against SQLite.

use std::sync::Arc;

use carewatch_core::store::Store;
use carewatch_core::testing::{TestBackend, TestDatabase};
use carewatch_storage_sqlite::SqliteStore;
use tempfile::TempDir;

struct Sqlite;

struct SqliteFile {
    dir: TempDir,
}

#[async_trait::async_trait]
impl TestBackend for Sqlite {
    async fn fresh(&self) -> Box<dyn TestDatabase> {
        Box::new(SqliteFile {
            dir: tempfile::tempdir().expect("temporary directory"),
        })
    }
}

#[async_trait::async_trait]
impl TestDatabase for SqliteFile {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            SqliteStore::open(self.dir.path().join("carewatch.db"))
                .await
                .expect("opens SQLite store"),
        )
    }

    async fn append_raw_change(
        &self,
        at: carewatch_core::time::Timestamp,
        slc: &carewatch_core::ids::Slc,
        kind: &str,
        server_id: Option<&str>,
    ) {
        let db = rusqlite::Connection::open(self.dir.path().join("carewatch.db"))
            .expect("opens the file");
        db.busy_timeout(std::time::Duration::from_secs(10))
            .expect("busy timeout");
        db.execute(
            "INSERT INTO changes (at, slc, kind, server_id) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![at.as_millis(), slc.as_str(), kind, server_id],
        )
        .expect("appends a raw change");
        if let Some(server) = server_id {
            db.execute(
                "INSERT INTO history (slc, at, server_id, kind) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![slc.as_str(), at.as_millis(), server, kind],
            )
            .expect("appends a raw history entry");
        }
    }
}

carewatch_core::store_conformance_tests!(Sqlite);
