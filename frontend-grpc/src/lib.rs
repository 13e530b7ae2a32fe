//! # carewatch-grpc
//!
//! The network face of Carewatch: three gRPC services (Ingest for recording
//! servers, Dashboard for resellers, Admin for the operator) over TLS, plus
//! the standard health and reflection services. It translates between
//! protobuf and [`carewatch_core::Carewatch`] and holds no business rules.

pub mod auth;
pub mod client;
pub mod convert;
pub mod server;
pub mod services;
pub mod shutdown;
pub mod simulate;
pub mod status;
pub mod tls;

/// The generated protobuf types and tonic stubs of `carewatch.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("carewatch.v1");

    /// The encoded descriptor set, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("carewatch_descriptor");
}
