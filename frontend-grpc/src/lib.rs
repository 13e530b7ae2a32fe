//! # carewatch-grpc
//!
//! The gRPC face of Carewatch, as a library: four services (Ingest for
//! recording servers, Dashboard for resellers, Notifications for a
//! reseller's channels and maintenance windows, Admin for the operator) over
//! a running [`carewatch_core::Carewatch`], and a client helper. It translates
//! between protobuf and the core and holds no business rules; it runs
//! nothing by itself: the composition root (`carewatch-cli`) mounts it.

pub mod auth;
pub mod client;
pub mod convert;
pub mod routes;
pub mod services;
pub mod status;
mod stopping;

/// The generated protobuf types and tonic stubs of `carewatch.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("carewatch.v1");

    /// The encoded descriptor set, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("carewatch_descriptor");
}
