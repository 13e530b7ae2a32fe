//! Every gRPC service of Carewatch as one set of routes, for the composition
//! root to serve (alone, or merged with the web front end on one port).

use std::future::Future;

use carewatch_core::Carewatch;
use tokio::sync::watch;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::proto::{
    self, admin_server::AdminServer, dashboard_server::DashboardServer,
    ingest_server::IngestServer, notifications_server::NotificationsServer,
};
use crate::services::{AdminService, DashboardService, IngestService, NotificationsService};

/// Bytes a gRPC message may carry beyond its sealed payload: the SLC, the
/// recording-server id, the sequence and protobuf's framing (at most ~250).
const INGEST_FRAMING: usize = 1024;
/// The largest Dashboard, Admin or Notifications request (ids, tokens,
/// page tokens, a channel's URL and rules).
const SMALL_REQUEST: usize = 64 * 1024;

/// The routes and the health reporter that says whether Ingest serves.
#[derive(Debug)]
pub struct GrpcRoutes {
    /// Ingest, Dashboard, Admin, Notifications, health and reflection.
    pub routes: Routes,
    /// Health of the services: not serving while the storage fails
    /// (followed by a task of its own) and once the node stops receiving.
    pub health: HealthReporter,
}

impl GrpcRoutes {
    /// Marks every Carewatch service as not serving. Call it after
    /// [`Carewatch::stop_receiving`]: before, the task that follows the
    /// storage may say SERVING again.
    pub async fn set_not_serving(&self) {
        set_not_serving(&self.health).await;
    }
}

/// Marks every Carewatch service as not serving (on shutdown).
pub async fn set_not_serving(health: &HealthReporter) {
    set_status(health, ServingStatus::NotServing).await;
}

async fn set_status(health: &HealthReporter, status: ServingStatus) {
    for service in [
        // The server as a whole (what a container's health check and most
        // balancers ask about): it serves only what its storage answers.
        "",
        <IngestServer<IngestService> as NamedService>::NAME,
        <DashboardServer<DashboardService> as NamedService>::NAME,
        <AdminServer<AdminService> as NamedService>::NAME,
        <NotificationsServer<NotificationsService> as NamedService>::NAME,
    ] {
        health.set_service_status(service, status).await;
    }
}

/// Every Carewatch service answers only through its storage: each is
/// NOT_SERVING while the storage fails, and for good once the node stops
/// receiving (its last word, whatever the storage does meanwhile).
async fn follow_storage(
    health: HealthReporter,
    mut works: watch::Receiver<bool>,
    stopping: impl Future<Output = ()>,
) {
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            biased;
            () = &mut stopping => break,
            changed = works.changed() => {
                if changed.is_err() {
                    return;
                }
                let status = if *works.borrow_and_update() {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                set_status(&health, status).await;
            }
        }
    }
    set_not_serving(&health).await;
}

/// Builds the routes over a running service.
pub async fn routes(carewatch: &Carewatch) -> Result<GrpcRoutes, tonic_reflection::server::Error> {
    // The transport admits a message a little over Carewatch's limit, so a
    // message over the limit gets the typed `too_large` refusal from the core
    // rather than an untyped transport error.
    let ingest_limit = carewatch.config().max_message_bytes() + INGEST_FRAMING;
    let ingest = IngestServer::new(IngestService::new(carewatch.clone()))
        .max_decoding_message_size(ingest_limit);
    let dashboard = DashboardServer::new(DashboardService::new(carewatch.clone()))
        .max_decoding_message_size(SMALL_REQUEST);
    let admin = AdminServer::new(AdminService::new(carewatch.clone()))
        .max_decoding_message_size(SMALL_REQUEST);
    let notifications = NotificationsServer::new(NotificationsService::new(carewatch.clone()))
        .max_decoding_message_size(SMALL_REQUEST);

    let (health_reporter, health) = tonic_health::server::health_reporter();
    let mut storage_works = carewatch.storage_works();
    let status = if *storage_works.borrow_and_update() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    set_status(&health_reporter, status).await;
    tokio::spawn(follow_storage(
        health_reporter.clone(),
        storage_works,
        carewatch.stopping(),
    ));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let routes = Routes::new(health)
        .add_service(reflection)
        .add_service(ingest)
        .add_service(dashboard)
        .add_service(admin)
        .add_service(notifications);
    Ok(GrpcRoutes {
        routes,
        health: health_reporter,
    })
}

impl GrpcRoutes {
    /// The routes as an axum router, with the transport's refusals (a
    /// message too large, or not valid protobuf) typed like Carewatch's own.
    pub fn into_router(self) -> axum::Router {
        self.routes
            .prepare()
            .into_axum_router()
            .layer(axum::middleware::map_response(typed_transport_refusals))
    }
}

/// The transport refuses a message far over the limit before Carewatch sees
/// it, as an untyped OUT_OF_RANGE; clients get the same `too_large` refusal
/// (INVALID_ARGUMENT and its `carewatch-error` kind) as for any message over
/// the limit. A request that is not valid protobuf, or not a whole message
/// (tonic's untyped INTERNAL), becomes `invalid_input`. Streams type both themselves (the
/// status is in their trailers).
async fn typed_transport_refusals(
    mut response: axum::response::Response,
) -> axum::response::Response {
    // Every gRPC response passes here: one look at the status, the message
    // only for the two untyped refusals.
    let headers = response.headers();
    let kind = match headers.get("grpc-status").map(|s| s.as_bytes()) {
        Some(b"11") if message_starts_with(headers, TRANSPORT_TOO_LARGE_PREFIX) => "too_large",
        // Not a fault of the server (INTERNAL, which a client may retry):
        // the request is not the message the method takes.
        Some(b"13")
            if MALFORMED_REQUEST_PREFIXES
                .iter()
                .any(|p| message_starts_with(headers, p)) =>
        {
            "invalid_input"
        }
        _ => return response,
    };
    let headers = response.headers_mut();
    headers.insert("grpc-status", http::HeaderValue::from_static("3"));
    headers.insert(
        crate::status::ERROR_KIND_KEY,
        http::HeaderValue::from_static(kind),
    );
    if kind == "too_large" {
        headers.insert(
            "grpc-message",
            http::HeaderValue::from_static(TOO_LARGE_MESSAGE),
        );
    }
    response
}

fn message_starts_with(headers: &http::HeaderMap, prefix: &[u8]) -> bool {
    headers
        .get("grpc-message")
        .is_some_and(|m| m.as_bytes().starts_with(prefix))
}

/// How tonic's decoder starts its message, percent-encoded in `grpc-message`.
const TRANSPORT_TOO_LARGE_PREFIX: &[u8] = b"Error,%20decoded%20message%20length%20too%20large";
/// How tonic's INTERNAL refusals of a malformed request start,
/// percent-encoded in `grpc-message`: not valid protobuf (prost's decode
/// error), a unary call with no message, a message cut short. (A
/// compressed-flag error stays INTERNAL, as the gRPC specification
/// requires.)
const MALFORMED_REQUEST_PREFIXES: [&[u8]; 3] = [
    b"failed%20to%20decode%20Protobuf%20message",
    b"Missing%20request%20message",
    b"Unexpected%20EOF%20decoding%20stream",
];
/// Percent-encoded as `grpc-message` requires.
const TOO_LARGE_MESSAGE: &str =
    "message%20too%20large:%20over%20the%20limit%20of%20the%20sealed%20field%20(see%20PROTOCOL.md)";

/// Whether a stream's error is a message that is not valid protobuf (e.g. a
/// string field that is not UTF-8) or was cut short; it becomes an
/// `invalid_input` refusal.
pub(crate) fn is_undecodable(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Internal
        && [
            "failed to decode Protobuf message",
            "Unexpected EOF decoding stream",
        ]
        .iter()
        .any(|p| status.message().starts_with(p))
}

/// Whether a stream's error is the transport's size refusal; it becomes the
/// typed `too_large` refusal.
pub(crate) fn is_transport_too_large(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::OutOfRange
        && status
            .message()
            .starts_with("Error, decoded message length too large")
}
