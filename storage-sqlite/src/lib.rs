//! # carewatch-storage-sqlite
//!
//! The embedded default storage of Carewatch: one SQLite file in WAL mode,
//! schema migrations built into the binary and applied on open. Writes go
//! through one connection, reads through a few more, all off the async
//! runtime. Every write is one transaction with `synchronous = FULL`, so an
//! acknowledged message is on disk.

mod codec;
mod connection;
mod migrate;
mod ops;

pub use connection::SqliteStore;
