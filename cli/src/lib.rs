//! # carewatch-cli
//!
//! The composition root of Carewatch: it opens the store (SQLite or
//! PostgreSQL), builds one [`carewatch_core::Carewatch`], runs its
//! maintenance and mounts the front ends on one listener. The `carewatch`
//! binary is its command line. Rules live in `carewatch-core`; this crate
//! only wires.

pub mod store;

#[cfg(feature = "server")]
pub mod background;
#[cfg(feature = "server")]
pub mod commands;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod simulate;
#[cfg(feature = "server")]
pub mod tls;
#[cfg(feature = "server")]
pub mod tls_reload;
