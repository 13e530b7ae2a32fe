//! Between SQLite values and domain types; SQLite errors into Carewatch errors.

use std::time::Duration;

use carewatch_core::auth::SequenceCursor;
use carewatch_core::health::{Health, HealthSummary};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::store::ServerRecord;
use carewatch_core::store::columns::sequence_from_column;
pub(crate) use carewatch_core::store::columns::{AvailabilityColumns, corrupt};
use carewatch_core::time::{Timestamp, duration_millis};
use carewatch_core::{Error, Result};
use rusqlite::{ErrorCode, Row};

/// Maps a SQLite error: lock contention and I/O trouble may pass (retryable);
/// everything else is a storage failure.
pub(crate) fn map_err(e: rusqlite::Error) -> Error {
    use carewatch_core::Unavailability::{Full, Locked, ReadOnly, Unreachable};
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::storage_outage(
            Locked,
            "the SQLite database is locked by another process or connection",
            e,
        ),
        Some(ErrorCode::DiskFull) => Error::storage_outage(
            Full,
            "disk full: no space left to write the SQLite database",
            e,
        ),
        Some(ErrorCode::ReadOnly) => Error::storage_outage(
            ReadOnly,
            "the SQLite database is read-only (a read-only file system or file)",
            e,
        ),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Error::storage_corrupt(
            "the SQLite database file is corrupt or not a database: restore it from a backup",
            e,
        ),
        Some(ErrorCode::CannotOpen) => Error::storage_outage(
            Unreachable,
            "cannot open the SQLite database file or its journal (missing directory, permissions)",
            e,
        ),
        Some(ErrorCode::SystemIoFailure) => {
            Error::storage_outage(Unreachable, "I/O error on the SQLite database file", e)
        }
        _ => Error::storage("SQLite operation failed", e),
    }
}

/// Whether the error is a UNIQUE or PRIMARY KEY violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// Whether the error is a FOREIGN KEY violation.
pub(crate) fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

pub(crate) trait RowExt {
    fn col<T: rusqlite::types::FromSql>(&self, index: usize) -> Result<T>;
}

impl RowExt for Row<'_> {
    fn col<T: rusqlite::types::FromSql>(&self, index: usize) -> Result<T> {
        self.get(index).map_err(map_err)
    }
}

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub(crate) fn ms(d: Duration) -> i64 {
    duration_millis(d)
}

pub(crate) fn duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

pub(crate) use carewatch_core::store::columns::{
    condition_code as code, digest, reseller_id, server_id, slc, token_hash,
};

/// The installation columns [`installation`] reads, as a literal for
/// `concat!`: statements on the ingest path are built at compile time, not
/// formatted (and hashed anew by the statement cache) for every message.
macro_rules! installation_columns {
    () => {
        "slc, reseller_id, product, product_version, subscription_expires_at, consent, registered_at"
    };
}
pub(crate) use installation_columns;

/// Columns: slc, reseller_id, product, product_version, subscription_expires_at, consent, registered_at.
pub(crate) const INSTALLATION_COLUMNS: &str = installation_columns!();

pub(crate) fn installation(row: &Row<'_>, at: usize) -> Result<Installation> {
    installation_of(row, at + 1, slc(&row.col::<String>(at)?)?)
}

/// Installation `slc` from the columns after `slc` in
/// [`installation_columns`], starting at column `at`.
pub(crate) fn installation_of(
    row: &Row<'_>,
    at: usize,
    slc: carewatch_core::ids::Slc,
) -> Result<Installation> {
    Ok(Installation {
        slc,
        reseller: reseller_id(&row.col::<String>(at)?)?,
        product: Product::new(&row.col::<String>(at + 1)?, &row.col::<String>(at + 2)?)
            .map_err(|e| corrupt("product", e))?,
        subscription_expires_at: row.col::<Option<i64>>(at + 3)?.map(ts),
        consent: row.col::<bool>(at + 4)?,
        registered_at: ts(row.col(at + 5)?),
    })
}

/// Columns: health, worst_code, servers, unavailable, late, active_conditions.
pub(crate) const SUMMARY_COLUMNS: &str =
    "health, worst_code, servers, unavailable, late, active_conditions";

pub(crate) fn summary(row: &Row<'_>, at: usize) -> Result<HealthSummary> {
    let count = |i: usize| -> Result<u32> {
        u32::try_from(row.col::<i64>(i)?).map_err(|e| corrupt("count", e))
    };
    let rank = u8::try_from(row.col::<i64>(at)?).map_err(|e| corrupt("health", e))?;
    Ok(HealthSummary {
        health: Health::from_rank(rank).map_err(|e| corrupt("health", e))?,
        worst: row
            .col::<Option<String>>(at + 1)?
            .as_deref()
            .map(code)
            .transpose()?,
        servers: count(at + 2)?,
        unavailable: count(at + 3)?,
        late: count(at + 4)?,
        active_conditions: count(at + 5)?,
    })
}

/// The server columns [`server`] reads, as a literal for `concat!`.
macro_rules! server_columns {
    () => {
        "slc, server_id, first_seen_at, last_seen_at, interval_ms, last_sequence, \
         last_digest, state, missed, unavailable_since, next_check_at, counted_from"
    };
}
pub(crate) use server_columns;

/// Columns of a server row, in the order [`server`] reads them.
pub(crate) const SERVER_COLUMNS: &str = server_columns!();

pub(crate) fn server(row: &Row<'_>) -> Result<ServerRecord> {
    let (slc, server) = (
        slc(&row.col::<String>(0)?)?,
        server_id(&row.col::<String>(1)?)?,
    );
    server_state(row, 2, slc, server)
}

/// Server `server` of `slc` from the columns after `slc, server_id` in
/// [`server_columns`], starting at column `at`.
pub(crate) fn server_state(
    row: &Row<'_>,
    at: usize,
    slc: carewatch_core::ids::Slc,
    server: carewatch_core::ids::RecordingServerId,
) -> Result<ServerRecord> {
    Ok(ServerRecord {
        slc,
        server,
        first_seen_at: ts(row.col(at)?),
        last_seen_at: ts(row.col(at + 1)?),
        interval: duration(row.col(at + 2)?),
        cursor: SequenceCursor {
            sequence: sequence_from_column(row.col(at + 3)?),
            digest: digest(&row.col::<Vec<u8>>(at + 4)?)?,
        },
        availability: AvailabilityColumns {
            state: row.col(at + 5)?,
            missed: row.col(at + 6)?,
            unavailable_since: row.col(at + 7)?,
        }
        .decode()?,
        next_check_at: row.col::<Option<i64>>(at + 8)?.map(ts),
        counted_from: row.col::<Option<i64>>(at + 9)?.map(ts),
    })
}

/// A sequence cursor from its two nullable columns (`last_sequence,
/// last_digest`) at `at`: `None` when there is none.
pub(crate) fn cursor(row: &Row<'_>, at: usize) -> Result<Option<SequenceCursor>> {
    match (
        row.col::<Option<i64>>(at)?,
        row.col::<Option<Vec<u8>>>(at + 1)?,
    ) {
        (Some(sequence), Some(stored)) => Ok(Some(SequenceCursor {
            sequence: sequence_from_column(sequence),
            digest: digest(&stored)?,
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn each_storage_fault_names_itself() {
        for (code, kind, words) in [
            (rusqlite::ffi::SQLITE_FULL, "storage_full", "no space left"),
            (
                rusqlite::ffi::SQLITE_READONLY,
                "storage_read_only",
                "read-only",
            ),
            (rusqlite::ffi::SQLITE_BUSY, "storage_locked", "locked"),
            (rusqlite::ffi::SQLITE_LOCKED, "storage_locked", "locked"),
            (rusqlite::ffi::SQLITE_CORRUPT, "storage_corrupt", "corrupt"),
            (
                rusqlite::ffi::SQLITE_NOTADB,
                "storage_corrupt",
                "not a database",
            ),
            (
                rusqlite::ffi::SQLITE_CANTOPEN,
                "storage_unavailable",
                "cannot open",
            ),
            (
                rusqlite::ffi::SQLITE_IOERR,
                "storage_unavailable",
                "I/O error",
            ),
            (
                rusqlite::ffi::SQLITE_MISUSE,
                "storage",
                "SQLite operation failed",
            ),
        ] {
            let error = map_err(failure(code));
            assert_eq!(error.code(), kind, "{error}");
            assert!(error.to_string().contains(words), "{error}");
        }
    }
}
