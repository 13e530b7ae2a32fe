//! The gRPC server: Carewatch's services, health and reflection, over TLS,
//! with graceful shutdown and the maintenance loop alongside.

use std::future::Future;
use std::time::Duration;

use carewatch_core::Carewatch;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::tls::TlsIdentity;
use carewatch_grpc::proto::{
    admin_server::AdminServer, dashboard_server::DashboardServer, ingest_server::IngestServer,
};
use carewatch_grpc::services::{AdminService, DashboardService, IngestService};
use carewatch_grpc::shutdown::Shutdown;

/// How to serve.
#[derive(Debug)]
pub struct ServeOptions {
    /// TLS identity; `None` only for an explicitly insecure loopback server.
    pub tls: Option<TlsIdentity>,
    /// Longest a unary call may take.
    pub request_timeout: Duration,
    /// How often the maintenance loop runs (sweep, liveness).
    pub maintenance_every: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            tls: None,
            request_timeout: Duration::from_secs(30),
            maintenance_every: Duration::from_secs(1),
        }
    }
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed (TLS setup, accept loop).
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Building the reflection service failed.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serves Carewatch on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight calls finish and stops the maintenance loop.
pub async fn serve(
    carewatch: Carewatch,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (streams_shutdown, streams_signal) = Shutdown::new();
    // Headroom over the message limit, so a moderately oversized message gets
    // Carewatch's typed `too_large` refusal; the transport cuts only absurd ones.
    let limit = carewatch.config().max_message_bytes() * 2 + 4096;
    let ingest = IngestServer::new(IngestService::new(
        carewatch.clone(),
        streams_signal.clone(),
    ))
    .max_decoding_message_size(limit);
    let dashboard = DashboardServer::new(DashboardService::new(carewatch.clone(), streams_signal))
        .max_decoding_message_size(64 * 1024);
    let admin =
        AdminServer::new(AdminService::new(carewatch.clone())).max_decoding_message_size(64 * 1024);

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<IngestServer<IngestService>>()
        .await;
    health_reporter
        .set_serving::<DashboardServer<DashboardService>>()
        .await;
    health_reporter
        .set_serving::<AdminServer<AdminService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(carewatch_grpc::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let mut builder = Server::builder()
        .timeout(options.request_timeout)
        .http2_keepalive_interval(Some(Duration::from_secs(30)));
    if let Some(tls) = &options.tls {
        builder = builder.tls_config(
            ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem)),
        )?;
    }

    // The maintenance loop stops when the server does.
    let (stop_maintenance, stopped) = tokio::sync::watch::channel(());
    let maintenance = tokio::spawn({
        let carewatch = carewatch.clone();
        let mut stopped = stopped.clone();
        async move {
            carewatch
                .run_maintenance(options.maintenance_every, async move {
                    let _ = stopped.changed().await;
                })
                .await;
        }
    });

    let result = builder
        .add_service(health)
        .add_service(reflection)
        .add_service(ingest)
        .add_service(dashboard)
        .add_service(admin)
        .serve_with_incoming_shutdown(without_nagle(listener), async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing calls in flight");
            streams_shutdown.fire();
            health_reporter
                .set_not_serving::<IngestServer<IngestService>>()
                .await;
        })
        .await;
    drop(stop_maintenance);
    let _ = maintenance.await;
    // A last liveness mark: the downtime that follows starts from here.
    if let Err(e) = carewatch.mark_alive().await {
        tracing::warn!(error = %e, "final liveness mark failed");
    }
    result.map_err(ServeError::from)
}

/// Accepted connections with Nagle's algorithm off. Tonic sets `TCP_NODELAY`
/// only on listeners it binds itself, not on a stream of accepted sockets;
/// without it a small reply waits for the peer's delayed ACK (up to 40 ms on
/// Linux), which set the heartbeat latency floor and capped throughput.
fn without_nagle(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<TcpStream>> {
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot turn Nagle's algorithm off");
            }
        })
    })
}
