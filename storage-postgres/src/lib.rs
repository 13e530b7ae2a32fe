//! # carewatch-storage-postgres
//!
//! The PostgreSQL storage of Carewatch, for several nodes sharing one
//! database. The schema migrations are built into the binary and applied on
//! open under sqlx's advisory lock, so nodes starting together are safe.
//! Every store call is one transaction; writes lock the rows they compare
//! against (`SELECT ... FOR UPDATE`), so concurrent nodes apply a message
//! once and `last_seen_at` never moves backwards. PostgreSQL errors are
//! mapped in one place (`src/errors.rs`): outages become
//! `Error::StorageUnavailable` (retryable), transactions rolled back for a
//! concurrent one are run again.
//!
//! The tables go to one schema (the first of the connections' `search_path`;
//! [`PostgresConfig::schema`] sets it), so several Carewatch deployments, or
//! tests, can share a database.
//!
//! ```no_run
//! # async fn example() -> carewatch_core::Result<()> {
//! use carewatch_storage_postgres::{PostgresConfig, PostgresStore};
//!
//! let store = PostgresStore::connect("postgres://carewatch@db.example/carewatch").await?;
//! // or, with a schema of its own and other limits:
//! let config = PostgresConfig::from_url("postgres://carewatch@db.example/carewatch")?
//!     .schema("carewatch")?
//!     .application_name("carewatch-node-1")
//!     .max_connections(32);
//! let store = PostgresStore::open(config).await?;
//! # let _ = store; Ok(()) }
//! ```

mod codec;
mod config;
mod connection;
mod errors;
mod listen;
mod migrate;
mod ops;
mod transaction;

pub use config::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_APPLICATION_NAME, DEFAULT_MAX_CONNECTIONS, PostgresConfig,
};
pub use connection::PostgresStore;
/// The sqlx connect and pool options [`PostgresStore::connect_with`] takes.
pub use sqlx_postgres::{PgConnectOptions, PgPoolOptions};
