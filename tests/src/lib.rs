//! A real Carewatch server for end-to-end tests: SQLite in a temporary
//! directory, TLS with a self-signed certificate, a loopback port, and
//! clients made with the generated tonic stubs.

pub mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carewatch_cli::server::{ServeOptions, serve};
use carewatch_cli::tls::TlsIdentity;
use carewatch_core::availability::AvailabilityPolicy;
use carewatch_core::ids::ResellerId;
use carewatch_core::seal::MasterKey;
use carewatch_core::time::SystemClock;
use carewatch_core::{Carewatch, Config};
use carewatch_grpc::client::{Bearer, connect};
use carewatch_grpc::proto::{
    admin_client::AdminClient, dashboard_client::DashboardClient, ingest_client::IngestClient,
};
use carewatch_storage_sqlite::SqliteStore;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Heartbeat interval of test servers: short so time-driven rules show quickly.
pub const INTERVAL: Duration = Duration::from_millis(300);

/// Dashboard client with a reseller token.
pub type Dashboard = DashboardClient<InterceptedService<Channel, Bearer>>;
/// Admin client with the operator token.
pub type Admin = AdminClient<InterceptedService<Channel, Bearer>>;

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    /// `https://localhost:<port>`.
    pub url: String,
    /// The certificate clients must trust.
    pub cert_pem: String,
    /// The operator token.
    pub operator_token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), carewatch_cli::server::ServeError>>>,
}

/// Where a test server keeps its state between restarts.
#[derive(Debug)]
pub struct DataDir {
    dir: tempfile::TempDir,
    master_key: MasterKey,
}

impl DataDir {
    /// A new, empty data directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
            master_key: MasterKey::generate(),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("carewatch.db")
    }
}

impl Default for DataDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TestServer {
    /// Starts a server on `data` (the operator token is issued on first start
    /// and re-issued on later ones, so tests always have one).
    pub async fn start(data: &DataDir) -> Self {
        let store = Arc::new(SqliteStore::open(data.db()).await.expect("opens SQLite"));
        let config = Config::new(data.master_key.clone())
            .with_heartbeat_interval(INTERVAL)
            .expect("interval")
            .with_policy(AvailabilityPolicy::new(3, INTERVAL / 3).expect("policy"))
            .with_liveness_tolerance(INTERVAL);
        let carewatch = Carewatch::open(store, Arc::new(SystemClock), config)
            .await
            .expect("service opens");
        let operator = carewatch
            .issue_operator_token(&ResellerId::new("admin").expect("id"))
            .await
            .expect("token");
        let (tls, _) = TlsIdentity::self_signed_in(data.path(), &[]).expect("certificate");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port");
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().expect("address").port()
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = ServeOptions {
            tls: Some(tls.clone()),
            maintenance_every: Duration::from_millis(50),
            ..ServeOptions::default()
        };
        let task = tokio::spawn(serve(carewatch, listener, options, async {
            let _ = stopped.await;
        }));
        Self {
            url,
            cert_pem: tls.cert_pem,
            operator_token: operator.token.to_string(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops it gracefully and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// A TLS channel to it.
    pub async fn channel(&self) -> Channel {
        connect(&self.url, Some(&self.cert_pem))
            .await
            .expect("TLS connection")
    }

    /// An Ingest client (recording servers carry no token: their messages are sealed).
    pub async fn ingest(&self) -> IngestClient<Channel> {
        IngestClient::new(self.channel().await)
    }

    /// An Admin client with the operator token.
    pub async fn admin(&self) -> Admin {
        AdminClient::with_interceptor(
            self.channel().await,
            Bearer::new(&self.operator_token).expect("token"),
        )
    }

    /// A Dashboard client with `token`.
    pub async fn dashboard(&self, token: &str) -> Dashboard {
        DashboardClient::with_interceptor(self.channel().await, Bearer::new(token).expect("token"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
