//! What every gRPC test file needs: a SQLite store in a temporary
//! directory, and every route of a fixture served on a loopback port.

use std::sync::Arc;

use carewatch_core::store::Store;
use carewatch_core::testing::{Fixture, TestDatabase};
use carewatch_storage_sqlite::SqliteStore;
use tempfile::TempDir;

/// A SQLite database file in its own temporary directory.
pub struct SqliteFile {
    dir: TempDir,
}

impl SqliteFile {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
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

/// Serves every gRPC route of `fixture` on a loopback port; its URL.
pub async fn serve(fixture: &Fixture) -> String {
    let routes = carewatch_grpc::routes::routes(&fixture.carewatch)
        .await
        .expect("routes build");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes.routes)
            .serve_with_incoming(incoming),
    );
    url
}
