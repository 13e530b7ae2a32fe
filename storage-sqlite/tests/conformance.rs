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
}

carewatch_core::store_conformance_tests!(Sqlite);
