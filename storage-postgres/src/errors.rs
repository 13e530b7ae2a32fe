//! PostgreSQL errors into Carewatch errors, in one place.
//!
//! | what happened | becomes |
//! |---|---|
//! | `23505` unique_violation | `AlreadyExists` (the caller gives the `what`) |
//! | `23503` foreign_key_violation | `NotFound` (the caller gives the `what`) |
//! | `40001` serialization_failure, `40P01` deadlock_detected | transaction run again (a few times, short backoff), then `StorageUnavailable` |
//! | I/O, TLS, pool timed out or closed, `08xxx` connection exception, `57P01` admin_shutdown, `57P02` crash_shutdown, `57P03` cannot_connect_now, `53xxx` insufficient resources, `25006` read-only transaction (a standby after failover) | `StorageUnavailable` (retryable); a transaction whose connection broke before COMMIT is run again on another connection first |
//! | `53100` disk_full, `25006` read-only transaction | `StorageUnavailable` naming them (`storage_full`, `storage_read_only`) |
//! | `55P03` lock_not_available | `StorageUnavailable` (`storage_locked`) |
//! | `XX001` data_corrupted, `XX002` index_corrupted | `StorageCorrupt` |
//! | anything else | `Storage` |
//!
//! The mapping of a unique or foreign-key violation needs to know what was
//! being inserted, so [`on_insert`] takes the `what` texts; everything else
//! goes through [`map_err`]. The retry decision is [`retry_kind`].

use std::fmt;

use carewatch_core::{Error, Unavailability};
use sqlx_core::error::{DatabaseError, Error as SqlxError};
use sqlx_postgres::PgDatabaseError;

/// What an operation inside a transaction may fail with: a database error
/// (classified when the transaction ends, so conflicts can be retried) or a
/// domain error decided by the operation itself.
#[derive(Debug)]
pub(crate) enum Failure {
    Db(SqlxError),
    Domain(Error),
}

impl From<SqlxError> for Failure {
    fn from(e: SqlxError) -> Self {
        Self::Db(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Domain(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Db(e) => e.fmt(f),
            Self::Domain(e) => e.fmt(f),
        }
    }
}

pub(crate) type DbResult<T> = std::result::Result<T, Failure>;

/// How a database error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 23505: the row exists.
    UniqueViolation,
    /// 23503: a referenced row does not exist.
    ForeignKeyViolation,
    /// 40001 / 40P01: the transaction was rolled back by the server because
    /// of a concurrent one; running it again is safe.
    Conflict,
    /// The database cannot be reached or refuses work for now.
    Unavailable,
    /// Anything else: a bug, a schema mismatch, corrupt data.
    Other,
}

/// Classifies an error by SQLSTATE (database errors) or by variant
/// (connection and pool errors).
pub(crate) fn classify(e: &SqlxError) -> Kind {
    match e {
        SqlxError::Database(db) => classify_database(db.as_ref()),
        SqlxError::Io(_)
        | SqlxError::Tls(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed => Kind::Unavailable,
        _ => Kind::Other,
    }
}

fn classify_database(db: &dyn DatabaseError) -> Kind {
    let Some(code) = db
        .try_downcast_ref::<PgDatabaseError>()
        .map(PgDatabaseError::code)
    else {
        return Kind::Other;
    };
    match code {
        "23505" => Kind::UniqueViolation,
        "23503" => Kind::ForeignKeyViolation,
        "40001" | "40P01" => Kind::Conflict,
        // 08: connection exception; 57P01 admin_shutdown, 57P02 crash_shutdown,
        // 57P03 cannot_connect_now (starting up / recovering); 53: insufficient
        // resources (too many connections, disk full, out of memory).
        c if c.starts_with("08") || c.starts_with("53") => Kind::Unavailable,
        "57P01" | "57P02" | "57P03" => Kind::Unavailable,
        // A write reached a hot standby (the primary failed over): the
        // connection will point at the new primary later.
        "25006" => Kind::Unavailable,
        _ => Kind::Other,
    }
}

/// Maps an error nobody handled specially: conflicts that were retried too
/// often and outages are retryable, the rest is a storage failure.
pub(crate) fn map_err(e: SqlxError) -> Error {
    match classify(&e) {
        Kind::Conflict => Error::storage_unavailable(
            "PostgreSQL transaction kept conflicting with concurrent ones",
            e,
        ),
        Kind::Unavailable => match sqlstate(&e).as_deref() {
            Some("53100") => Error::storage_outage(
                Unavailability::Full,
                "disk full: PostgreSQL has no space left to write (53100)",
                e,
            ),
            Some("25006") => Error::storage_outage(
                Unavailability::ReadOnly,
                "PostgreSQL is read-only here: a standby, or the primary failed over (25006)",
                e,
            ),
            _ => Error::storage_unavailable("PostgreSQL unreachable or not accepting work", e),
        },
        Kind::UniqueViolation | Kind::ForeignKeyViolation | Kind::Other => {
            match sqlstate(&e).as_deref() {
                Some("55P03") => Error::storage_outage(
                    Unavailability::Locked,
                    "a PostgreSQL lock is held by another session (55P03)",
                    e,
                ),
                Some(code @ ("XX001" | "XX002")) => Error::storage_corrupt(
                    format!("PostgreSQL reports corrupt data ({code}): restore from a backup"),
                    e,
                ),
                _ => Error::storage("PostgreSQL operation failed", e),
            }
        }
    }
}

/// The SQLSTATE of a database error.
fn sqlstate(e: &SqlxError) -> Option<String> {
    match e {
        SqlxError::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .map(|pg| pg.code().to_owned()),
        _ => None,
    }
}

/// Maps the failure of a transaction to the error the caller sees.
pub(crate) fn into_error(failure: Failure) -> Error {
    match failure {
        Failure::Db(e) => map_err(e),
        Failure::Domain(e) => e,
    }
}

/// For inserts: a unique violation means `exists()` already exists, a foreign
/// key violation means `missing()` was not found.
pub(crate) fn on_insert(
    e: SqlxError,
    exists: impl FnOnce() -> String,
    missing: impl FnOnce() -> Error,
) -> Failure {
    match classify(&e) {
        Kind::UniqueViolation => Failure::Domain(Error::AlreadyExists { what: exists() }),
        Kind::ForeignKeyViolation => Failure::Domain(missing()),
        _ => Failure::Db(e),
    }
}

/// Whether a failed transaction may be run again from the start: the server
/// rolled it back because of a concurrent one (always safe), or the
/// connection broke before COMMIT was sent (the server rolls back an
/// unfinished transaction of a dead connection; also safe).
pub(crate) fn retry_kind(failure: &Failure) -> Option<Kind> {
    match failure {
        Failure::Db(e) => match classify(e) {
            Kind::Conflict => Some(Kind::Conflict),
            // A pool timeout already waited the whole acquire timeout.
            Kind::Unavailable if !matches!(e, SqlxError::PoolTimedOut | SqlxError::PoolClosed) => {
                Some(Kind::Unavailable)
            }
            _ => None,
        },
        Failure::Domain(_) => None,
    }
}

/// A stored value that does not decode (shared with every backend).
pub(crate) use carewatch_core::store::columns::corrupt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_retryable() {
        let io = SqlxError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert_eq!(classify(&io), Kind::Unavailable);
        assert!(map_err(io).is_retryable());
        assert!(map_err(SqlxError::PoolTimedOut).is_retryable());
        assert!(retry_kind(&Failure::Db(SqlxError::PoolTimedOut)).is_none());
    }

    #[test]
    fn other_errors_are_storage_failures() {
        let e = map_err(SqlxError::RowNotFound);
        assert!(matches!(e, Error::Storage { .. }));
        assert!(!e.is_retryable());
    }
}
