//! What the gRPC test files need: a SQLite store in a temporary directory,
//! every route of a fixture served on a loopback port, and a reseller's
//! dashboard client.

use std::sync::Arc;

use carewatch_core::ids::ResellerId;
use carewatch_core::store::Store;
use carewatch_core::testing::{Fixture, TestDatabase};
use carewatch_grpc::client::Bearer;
use carewatch_grpc::proto::dashboard_client::DashboardClient;
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
#[allow(dead_code)] // not every test file serves
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

/// The dashboard client of `reseller`, with a fresh reseller token.
pub type Dashboard = DashboardClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

/// Connects to `url` as `reseller` (its token rotated for the purpose).
#[allow(dead_code)] // not every test file reads the dashboard
pub async fn dashboard(fixture: &Fixture, url: &str, reseller: &str) -> Dashboard {
    let token = fixture
        .carewatch
        .rotate_reseller_token(&ResellerId::new(reseller).expect("valid"))
        .await
        .expect("rotates")
        .token
        .to_string();
    let channel = carewatch_grpc::client::connect(url, None)
        .await
        .expect("connects");
    DashboardClient::with_interceptor(channel, Bearer::new(&token).expect("valid token"))
}
