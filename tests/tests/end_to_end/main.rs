//! The whole system over the network: a real server on a loopback port with
//! TLS, driven by the generated tonic clients.

mod dashboard;
mod ingest;
mod server;
mod support;
