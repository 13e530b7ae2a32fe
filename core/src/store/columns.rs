//! How domain values are laid out in storage columns. Every backend stores
//! and decodes through these, so the same fact is the same bytes in SQLite
//! and PostgreSQL, and a stored value that does not decode is reported the
//! same way. No SQL here: only the column values.
//!
//! Here the scalar values (ids, hashes, sequence numbers, health); each
//! record with columns of its own in a submodule, re-exported here.

mod audit;
mod availability;
mod change;
mod delivery;
mod history;
mod phase;
pub use audit::{ActorColumns, audit_record};
pub use availability::AvailabilityColumns;
pub use change::{ChangeColumns, SummaryColumns};
pub use delivery::OutcomeColumns;
pub use history::HistoryColumns;
pub use phase::PhaseColumns;

use std::fmt;

use crate::auth::{MessageDigest, TokenHash};
use crate::catalogue::ConditionCode;
use crate::error::Error;
use crate::health::Health;
use crate::ids::{RecordingServerId, ResellerId, Slc};

/// The error for a stored value that does not decode: the database was
/// altered outside Carewatch, or by a newer version.
pub fn corrupt(what: &str, e: impl fmt::Display) -> Error {
    Error::Storage {
        message: format!("stored {what} is invalid ({e}); was the database altered?"),
        source: None,
    }
}

/// A stored SLC.
pub fn slc(text: &str) -> Result<Slc, Error> {
    Slc::new(text).map_err(|e| corrupt("SLC", e))
}

/// A stored recording-server id.
pub fn server_id(text: &str) -> Result<RecordingServerId, Error> {
    RecordingServerId::new(text).map_err(|e| corrupt("recording server id", e))
}

/// A stored reseller id.
pub fn reseller_id(text: &str) -> Result<ResellerId, Error> {
    ResellerId::new(text).map_err(|e| corrupt("reseller id", e))
}

/// A stored login.
pub fn login(text: &str) -> Result<crate::team::Login, Error> {
    crate::team::Login::new(text).map_err(|e| corrupt("login", e))
}

/// A stored condition code.
pub fn condition_code(text: &str) -> Result<ConditionCode, Error> {
    ConditionCode::parse(text).map_err(|e| corrupt("condition code", e))
}

/// A stored token hash (32 bytes).
pub fn token_hash(bytes: &[u8]) -> Result<TokenHash, Error> {
    TokenHash::from_slice(bytes).ok_or_else(|| corrupt("token hash", "not 32 bytes"))
}

/// A stored message digest (32 bytes).
pub fn digest(bytes: &[u8]) -> Result<MessageDigest, Error> {
    <[u8; 32]>::try_from(bytes)
        .map(MessageDigest)
        .map_err(|_| corrupt("message digest", "not 32 bytes"))
}

/// A u64 sequence number as the signed 64-bit integer both databases store,
/// bit for bit. Signed comparison of the stored value is NOT the u64 order.
pub fn sequence_to_column(sequence: u64) -> i64 {
    i64::from_ne_bytes(sequence.to_ne_bytes())
}

/// The inverse of [`sequence_to_column`].
pub fn sequence_from_column(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
}

/// A stored [`Health::rank`].
pub fn health(rank: i64) -> Result<Health, Error> {
    u8::try_from(rank)
        .map_err(|e| corrupt("health", e))
        .and_then(|r| Health::from_rank(r).map_err(|e| corrupt("health", e)))
}

#[cfg(test)]
mod tests;
