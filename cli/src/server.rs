//! The server: one listener (TLS unless explicitly plaintext on loopback)
//! for every front end, with the maintenance loop alongside.
//!
//! Connection hygiene, so no client can lock others out or keep a stopped
//! node alive: a TLS handshake must finish, and a connection must send its
//! first request, within `handshake_timeout`; a source address may hold at
//! most `max_pending_per_address` connections that have not yet sent one;
//! all connections together are capped by `max_connections` (derived from
//! the open-file limit), with a log line when the cap refuses one; HTTP/2
//! connections are pinged and dropped when they stop answering; a stop
//! finishes the calls in flight and closes every connection within
//! `shutdown_grace`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carewatch_core::Carewatch;
use carewatch_core::log_limit::RateLimitedLog;
use carewatch_grpc::routes::routes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::TcpConnectInfo;
use tower::ServiceExt;

use crate::tls::{TlsIdentity, server_config_with};
use crate::tls_reload::ReloadingCert;

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How to serve.
#[derive(Debug)]
pub struct ServeOptions {
    /// TLS identity; `None` only for an explicitly insecure loopback server.
    pub tls: Option<TlsIdentity>,
    /// How often the maintenance loop runs (sweep, liveness).
    pub maintenance_every: Duration,
    /// Longest time from accepting a connection to its TLS handshake being
    /// done, and again to its first request.
    pub handshake_timeout: Duration,
    /// Connections from one address that have not sent a request yet.
    pub max_pending_per_address: usize,
    /// Connections at once; `None` derives it from the open-file limit.
    pub max_connections: Option<usize>,
    /// HTTP/2 ping interval on a connection; it is closed if a ping is not
    /// answered within the same time.
    pub keepalive: Duration,
    /// Longest a stop waits for calls in flight before closing connections.
    pub shutdown_grace: Duration,
    /// How often the TLS certificate's files are looked at (and read again
    /// if they changed; at once on SIGHUP).
    pub tls_look_every: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            tls: None,
            maintenance_every: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(10),
            max_pending_per_address: 128,
            max_connections: None,
            keepalive: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            tls_look_every: crate::tls_reload::LOOK_EVERY,
        }
    }
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// TLS could not be set up from the identity.
    #[error("TLS: {0}")]
    Tls(String),
    /// Building the reflection service failed.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// File descriptors kept for the database, logs and the like.
const RESERVED_FILES: u64 = 128;

/// Raises the open-file limit to its hard maximum and returns how many
/// connections fit under it.
fn connection_capacity() -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(1024);
    usize::try_from(limit.saturating_sub(RESERVED_FILES).max(64)).unwrap_or(usize::MAX)
}

/// Serves Carewatch on `listener` until `shutdown` completes. Then, in this
/// order: the node stops receiving (recorded as the exact end of its
/// receiving, new messages refused, streams end with UNAVAILABLE,
/// maintenance stops), the listener closes, connections are asked to
/// finish (HTTP/2 GOAWAY), and after `shutdown_grace` the rest are closed.
pub async fn serve(
    carewatch: Carewatch,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let grpc = routes(&carewatch).await?;
    let health = grpc.health.clone();
    // gRPC and the web front end on one listener: their paths never meet
    // (`/carewatch.v1.*`, `/grpc.*` against `/`, `/api/v1/…` …). Cookies are
    // `Secure` whenever the server speaks TLS.
    let web = carewatch_web::WebOptions {
        secure_cookies: options.tls.is_some(),
    };
    let router = grpc
        .into_router()
        .merge(carewatch_web::router(carewatch.clone(), web));
    let (tls, certificate) = options.tls.as_ref().map(acceptor).transpose()?.unzip();
    // Stops with the server (aborted when dropped).
    let _reloading = certificate.map(|certificate| {
        AbortOnDrop(tokio::spawn(certificate.keep_fresh(options.tls_look_every)))
    });
    let max_connections = options.max_connections.unwrap_or_else(connection_capacity);
    tracing::debug!(max_connections, "accepting connections");

    let maintenance = tokio::spawn({
        let carewatch = carewatch.clone();
        let every = options.maintenance_every;
        async move {
            carewatch
                .run_maintenance(every, std::future::pending())
                .await
        }
    });

    let (draining, drain) = watch::channel(false);
    let limits = Arc::new(Limits {
        slots: Arc::new(Semaphore::new(max_connections)),
        pending: Mutex::default(),
        max_pending_per_address: options.max_pending_per_address,
        logs: RateLimitedLog::default(),
    });
    let settings = Arc::new(ConnectionSettings {
        tls,
        handshake_timeout: options.handshake_timeout,
        keepalive: options.keepalive,
    });
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        limits.logs.log("accept_failed", |n| tracing::warn!(error = %e, failures = n, "accepting a connection failed"));
                        // Out of file descriptors: give connections time to close.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(admission) = limits.admit(peer.ip()) else {
                    continue;
                };
                let connection = Connection {
                    stream,
                    peer,
                    router: router.clone(),
                    settings: settings.clone(),
                    drain: drain.clone(),
                };
                connections.spawn(connection.run(admission));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    // The exact end of this node's receiving: before the listener closes.
    if let Err(e) = carewatch.stop_receiving().await {
        tracing::warn!(error = %e, "recording the stop failed; the next start counts from the last liveness mark");
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "shutting down: no new connections, finishing calls in flight"
    );
    carewatch_grpc::routes::set_not_serving(&health).await;
    let _ = draining.send(true);
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            connections = connections.len(),
            "closing connections still open after {:?}",
            options.shutdown_grace
        );
        connections.shutdown().await;
    }
    let _ = maintenance.await;
    Ok(())
}

/// The acceptor, and its certificate (read again as its files change).
fn acceptor(identity: &TlsIdentity) -> Result<(TlsAcceptor, Arc<ReloadingCert>), ServeError> {
    let tls = |e: crate::tls::TlsError| ServeError::Tls(e.to_string());
    let certificate = ReloadingCert::new(identity).map_err(tls)?;
    let config = server_config_with(certificate.clone(), &[b"h2", b"http/1.1"]).map_err(tls)?;
    Ok((TlsAcceptor::from(Arc::new(config)), certificate))
}

/// Who may connect.
#[derive(Debug)]
struct Limits {
    slots: Arc<Semaphore>,
    /// Connections per address that have not sent a request yet.
    pending: Mutex<HashMap<IpAddr, usize>>,
    max_pending_per_address: usize,
    /// Refusals and accept failures, each kind logged at most every 10 s.
    logs: RateLimitedLog,
}

/// A connection's place: a slot, and (until its first request) a pending
/// count for its address.
struct Admission {
    _slot: OwnedSemaphorePermit,
    first_request: Arc<FirstRequest>,
}

/// Whether a connection has sent a request; until it has, it counts as
/// pending for its address.
struct FirstRequest {
    seen: AtomicBool,
    pending: Mutex<Option<PendingGuard>>,
}

impl FirstRequest {
    fn mark(&self) {
        if !self.seen.swap(true, Ordering::AcqRel) {
            drop(
                self.pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take(),
            );
        }
    }

    fn seen(&self) -> bool {
        self.seen.load(Ordering::Acquire)
    }
}

struct PendingGuard {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut pending = self.limits.pending();
        if let Some(n) = pending.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A place for a new connection from `ip`, or `None` (logged) if the
    /// server is full or the address already has too many pending ones.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admission> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            self.logs.log("connections_full", |n| {
                tracing::warn!(
                    refused = n,
                    "connection limit reached: refusing new connections (raise the open-file limit to take more)"
                );
            });
            return None;
        };
        {
            let mut pending = self.pending();
            let count = pending.entry(ip).or_insert(0);
            if *count >= self.max_pending_per_address {
                drop(pending);
                self.logs.log("pending_per_address", |n| {
                    tracing::warn!(source = %ip, refused = n,
                        "too many unfinished connections from one address: refusing more");
                });
                return None;
            }
            *count += 1;
        }
        Some(Admission {
            _slot: slot,
            first_request: Arc::new(FirstRequest {
                seen: AtomicBool::new(false),
                pending: Mutex::new(Some(PendingGuard {
                    limits: self.clone(),
                    ip,
                })),
            }),
        })
    }
}

struct ConnectionSettings {
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    keepalive: Duration,
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    settings: Arc<ConnectionSettings>,
    drain: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, admission: Admission) {
        let Self {
            stream,
            peer,
            router,
            settings,
            mut drain,
        } = self;
        // Small replies must not wait for the peer's delayed ACK.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot turn Nagle's algorithm off");
        }
        let info = TcpConnectInfo {
            local_addr: stream.local_addr().ok(),
            remote_addr: Some(peer),
        };
        let first_request = admission.first_request.clone();
        let service = {
            let first_request = first_request.clone();
            tower::service_fn(move |mut request: http::Request<Incoming>| {
                first_request.mark();
                request.extensions_mut().insert(info.clone());
                router.clone().oneshot(request)
            })
        };
        let service = TowerToHyperService::new(service);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.handshake_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(settings.keepalive)
            .keep_alive_timeout(settings.keepalive)
            // PROTOCOL.md promises this many calls at once per connection
            // (hyper's default today, set here so an upgrade cannot move it).
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        let deadline = tokio::time::Instant::now() + settings.handshake_timeout;
        let served = match &settings.tls {
            Some(acceptor) => {
                let Ok(Ok(tls)) = tokio::time::timeout_at(deadline, acceptor.accept(stream)).await
                else {
                    tracing::debug!(peer = %peer, "TLS handshake failed or timed out");
                    return;
                };
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                drive(connection, deadline, &first_request, &mut drain).await
            }
            None => {
                let connection =
                    builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                drive(connection, deadline, &first_request, &mut drain).await
            }
        };
        if let Err(e) = served {
            tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Concurrent calls (HTTP/2 streams) one connection may have open.
const MAX_CONCURRENT_STREAMS: u32 = 200;

/// Serves one connection until it ends, closing it if no request came by
/// `deadline`, and asking it to finish when the server drains.
async fn drive<C>(
    connection: C,
    deadline: tokio::time::Instant,
    first_request: &FirstRequest,
    drain: &mut watch::Receiver<bool>,
) -> Result<(), BoxError>
where
    C: Future<Output = Result<(), BoxError>> + GracefulConnection,
{
    tokio::pin!(connection);
    let mut draining = *drain.borrow();
    if draining {
        connection.as_mut().graceful();
    }
    let mut waiting_for_request = true;
    loop {
        tokio::select! {
            result = connection.as_mut() => return result,
            () = tokio::time::sleep_until(deadline), if waiting_for_request => {
                if !first_request.seen() {
                    tracing::debug!("closing a connection that sent no request in time");
                    return Ok(());
                }
                waiting_for_request = false;
            }
            changed = drain.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    connection.as_mut().graceful();
                }
            }
        }
    }
}

/// Asking a connection to finish its calls and close (GOAWAY on HTTP/2).
trait GracefulConnection {
    fn graceful(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E> GracefulConnection for auto::UpgradeableConnection<'_, I, S, E>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<BoxError>,
    S::ResBody: http_body::Body + Send + 'static,
    <S::ResBody as http_body::Body>::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
