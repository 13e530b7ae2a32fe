//! The one error type of Carewatch. Every refusal has its own variant and a
//! message that says what was wrong; backends map their private errors into
//! [`Error::StorageUnavailable`] (retry later, with its [`Unavailability`]),
//! [`Error::StorageCorrupt`] or [`Error::Storage`].

use std::fmt;

use crate::ids::{RecordingServerId, Slc};
use crate::seal::SealError;
use crate::time::Timestamp;

/// A boxed error from a storage backend, kept as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for results in Carewatch.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, by kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value failed validation (an SLC, an id, a page size …).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which input was wrong.
        field: &'static str,
        /// What was wrong with it.
        reason: String,
    },

    /// A message named an SLC that no reseller has registered.
    #[error("unknown installation {slc}: no reseller has registered this SLC")]
    UnknownInstallation {
        /// The SLC the message named.
        slc: Slc,
    },

    /// The installation's owner has not accepted the service.
    #[error("installation {slc} has not accepted the Carewatch service (consent missing)")]
    ConsentMissing {
        /// The installation.
        slc: Slc,
    },

    /// The installation's Care Plus subscription is not active at receipt time.
    #[error("installation {slc} has no active Care Plus subscription ({})", match expired_at {
        Some(at) => format!("it expired at {at}"),
        None => "none was ever recorded".to_owned(),
    })]
    SubscriptionExpired {
        /// The installation.
        slc: Slc,
        /// When it expired; `None` if it never had one.
        expired_at: Option<Timestamp>,
    },

    /// The sealed payload did not open under the installation's key.
    #[error("message for installation {slc} cannot be decrypted: {reason}")]
    CannotDecrypt {
        /// The installation.
        slc: Slc,
        /// Why it did not open.
        reason: SealError,
    },

    /// The sequence number was already used for a different message, or is older.
    #[error(
        "message {sequence} from recording server {server} of {slc} is replayed or stale: \
         the last accepted sequence number is {last_accepted}"
    )]
    Replayed {
        /// The installation.
        slc: Slc,
        /// The recording server.
        server: RecordingServerId,
        /// The sequence number the message carried.
        sequence: u64,
        /// The highest sequence number accepted so far.
        last_accepted: u64,
    },

    /// The message opened but its content does not follow the format.
    #[error("malformed message: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },

    /// The message is larger than the service accepts.
    #[error("message too large: {size} bytes, at most {limit} accepted")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// The thing asked for does not exist, or belongs to somebody else.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `installation M01-C01-0001`.
        what: String,
    },

    /// The credential is missing, malformed or not valid.
    #[error("not authenticated: {reason}")]
    Unauthenticated {
        /// Why the credential was refused (never echoes the secret).
        reason: &'static str,
    },

    /// The caller is known but its role does not allow the action (a viewer
    /// managing users). Never used to hide another reseller's things: those
    /// are `NotFound`.
    #[error("not allowed: {reason}")]
    PermissionDenied {
        /// Why.
        reason: &'static str,
    },

    /// Creating something that already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What it was.
        what: String,
    },

    /// The storage cannot take the call now; the same call may succeed later
    /// (once the database is reachable, the disk has room, the lock is gone).
    #[error("{}: {message}", reason.describe())]
    StorageUnavailable {
        /// Why, as a kind clients can branch on.
        reason: Unavailability,
        /// What happened.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// The database is damaged (a corrupt file, not a database at all):
    /// nothing will work until an operator repairs or restores it.
    #[error("storage corrupt: {message}")]
    StorageCorrupt {
        /// What happened.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// A watcher asked to resume after an event the change feed no longer
    /// keeps (or never had): re-read the overview, then watch from now.
    #[error(
        "cannot resume after event {after}: the change feed keeps events from {first_kept} on; re-read the overview and watch from now"
    )]
    ResumeTooOld {
        /// The event the watcher asked to resume after.
        after: u64,
        /// The oldest event still kept.
        first_kept: u64,
    },

    /// The caller holds as many of something at once as one reseller may
    /// (e.g. live views on a node): close one first.
    #[error("too many {what} at once: at most {limit}; close one first")]
    LimitReached {
        /// What there are too many of, e.g. "live views of this reseller on this node".
        what: &'static str,
        /// How many one reseller may have at once.
        limit: usize,
    },

    /// This node is shutting down and takes no more work; retry on another
    /// node or after the restart.
    #[error("Carewatch is shutting down: retry on another node or after the restart")]
    ShuttingDown,

    /// The storage failed in a way that retrying will not fix.
    #[error("storage failure: {message}")]
    Storage {
        /// What happened.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// Every code [`Error::code`] can return. Front ends check their tables
    /// (gRPC status codes, Python exception classes) against this list, so a
    /// new kind fails their tests until each maps it.
    pub const CODES: &'static [&'static str] = &[
        "invalid_input",
        "unknown_installation",
        "consent_missing",
        "subscription_expired",
        "cannot_decrypt",
        "replayed",
        "malformed",
        "too_large",
        "not_found",
        "unauthenticated",
        "permission_denied",
        "already_exists",
        "storage_unavailable",
        "storage_locked",
        "storage_full",
        "storage_read_only",
        "storage_corrupt",
        "resume_too_old",
        "limit_reached",
        "shutting_down",
        "storage",
    ];

    /// A `NotFound` for an installation; used wherever existence must not leak.
    pub fn installation_not_found(slc: &Slc) -> Self {
        Self::NotFound {
            what: format!("installation {slc}"),
        }
    }

    /// A storage failure with its source.
    pub fn storage(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Storage {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A retryable storage outage (unreachable) with its source.
    pub fn storage_unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::storage_outage(Unavailability::Unreachable, message, source)
    }

    /// A retryable storage outage of a given kind with its source.
    pub fn storage_outage(
        reason: Unavailability,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::StorageUnavailable {
            reason,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The same error with `context` put before its message (storage
    /// errors; others have no free-text message and are returned as they are).
    pub fn context(self, context: impl fmt::Display) -> Self {
        match self {
            Self::StorageUnavailable {
                reason,
                message,
                source,
            } => Self::StorageUnavailable {
                reason,
                message: format!("{context}: {message}"),
                source,
            },
            Self::StorageCorrupt { message, source } => Self::StorageCorrupt {
                message: format!("{context}: {message}"),
                source,
            },
            Self::Storage { message, source } => Self::Storage {
                message: format!("{context}: {message}"),
                source,
            },
            other => other,
        }
    }

    /// A damaged database, with its source.
    pub fn storage_corrupt(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::StorageCorrupt {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A stable, machine-readable name of the kind, e.g. `consent_missing`:
    /// front ends pass it on so clients can branch without parsing messages.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid_input",
            Self::UnknownInstallation { .. } => "unknown_installation",
            Self::ConsentMissing { .. } => "consent_missing",
            Self::SubscriptionExpired { .. } => "subscription_expired",
            Self::CannotDecrypt { .. } => "cannot_decrypt",
            Self::Replayed { .. } => "replayed",
            Self::Malformed { .. } => "malformed",
            Self::TooLarge { .. } => "too_large",
            Self::NotFound { .. } => "not_found",
            Self::Unauthenticated { .. } => "unauthenticated",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::AlreadyExists { .. } => "already_exists",
            Self::StorageUnavailable { reason, .. } => reason.code(),
            Self::StorageCorrupt { .. } => "storage_corrupt",
            Self::ResumeTooOld { .. } => "resume_too_old",
            Self::LimitReached { .. } => "limit_reached",
            Self::ShuttingDown => "shutting_down",
            Self::Storage { .. } => "storage",
        }
    }

    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::StorageUnavailable { .. } | Self::ShuttingDown)
    }

    /// Whether the storage failed (as opposed to the call being refused):
    /// while it does, this node is not receiving messages.
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            Self::StorageUnavailable { .. } | Self::StorageCorrupt { .. } | Self::Storage { .. }
        )
    }
}

/// Why the storage cannot take a call now. Each names itself to clients (in
/// [`Error::code`]), in logs and at start-up, because each needs a different
/// fix from the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unavailability {
    /// The database cannot be reached (down, network, refused connection).
    Unreachable,
    /// The database is locked by another process or connection.
    Locked,
    /// The disk (or the database's own size limit) is full.
    Full,
    /// The database or its file system is read-only.
    ReadOnly,
}

impl Unavailability {
    /// Every reason, for front ends' tables and tests.
    pub const ALL: [Self; 4] = [Self::Unreachable, Self::Locked, Self::Full, Self::ReadOnly];

    /// The stable code clients see, e.g. `storage_full`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unreachable => "storage_unavailable",
            Self::Locked => "storage_locked",
            Self::Full => "storage_full",
            Self::ReadOnly => "storage_read_only",
        }
    }

    /// A few words for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unreachable => "storage unavailable",
            Self::Locked => "storage locked",
            Self::Full => "storage full (no space left)",
            Self::ReadOnly => "storage read-only",
        }
    }
}

#[cfg(any(test, feature = "testing"))]
impl Error {
    /// One error of every kind (each [`Unavailability`] too), for tests that
    /// check a front end maps them all. The `match` below fails to compile
    /// when a variant is added, until it is listed here.
    pub fn one_of_each() -> Vec<Self> {
        let slc = || Slc::new("M01-C01-0001").expect("valid SLC");
        let mut all = vec![
            Self::InvalidInput {
                field: "slc",
                reason: "example".into(),
            },
            Self::UnknownInstallation { slc: slc() },
            Self::ConsentMissing { slc: slc() },
            Self::SubscriptionExpired {
                slc: slc(),
                expired_at: None,
            },
            Self::CannotDecrypt {
                slc: slc(),
                reason: SealError::AuthenticationFailed,
            },
            Self::Replayed {
                slc: slc(),
                server: RecordingServerId::new("rs-1").expect("valid id"),
                sequence: 1,
                last_accepted: 2,
            },
            Self::Malformed {
                reason: "example".into(),
            },
            Self::TooLarge { size: 2, limit: 1 },
            Self::NotFound {
                what: "example".into(),
            },
            Self::Unauthenticated { reason: "example" },
            Self::PermissionDenied { reason: "example" },
            Self::AlreadyExists {
                what: "example".into(),
            },
            Self::StorageCorrupt {
                message: "example".into(),
                source: None,
            },
            Self::ResumeTooOld {
                after: 1,
                first_kept: 5,
            },
            Self::LimitReached {
                what: "examples",
                limit: 1,
            },
            Self::ShuttingDown,
            Self::Storage {
                message: "example".into(),
                source: None,
            },
        ];
        all.extend(Unavailability::ALL.map(|reason| Self::StorageUnavailable {
            reason,
            message: "example".into(),
            source: None,
        }));
        for e in &all {
            // Exhaustive on purpose: a new variant must be added above.
            match e {
                Self::InvalidInput { .. }
                | Self::UnknownInstallation { .. }
                | Self::ConsentMissing { .. }
                | Self::SubscriptionExpired { .. }
                | Self::CannotDecrypt { .. }
                | Self::Replayed { .. }
                | Self::Malformed { .. }
                | Self::TooLarge { .. }
                | Self::NotFound { .. }
                | Self::Unauthenticated { .. }
                | Self::PermissionDenied { .. }
                | Self::AlreadyExists { .. }
                | Self::StorageUnavailable { .. }
                | Self::StorageCorrupt { .. }
                | Self::ResumeTooOld { .. }
                | Self::LimitReached { .. }
                | Self::ShuttingDown
                | Self::Storage { .. } => {}
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_lists_every_kind_once() {
        let mut codes: Vec<&str> = Error::one_of_each().iter().map(Error::code).collect();
        codes.sort_unstable();
        let mut listed = Error::CODES.to_vec();
        listed.sort_unstable();
        assert_eq!(codes, listed);
        let unique: std::collections::BTreeSet<_> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "a code is listed twice");
    }

    #[test]
    fn storage_errors_name_their_reason() {
        let full = Error::storage_outage(Unavailability::Full, "disk full", "ENOSPC");
        assert_eq!(full.code(), "storage_full");
        assert!(full.to_string().contains("no space left"), "{full}");
        assert!(full.is_retryable() && full.is_storage_failure());
        let corrupt = Error::storage_corrupt("not a database", "SQLITE_NOTADB");
        assert_eq!(corrupt.code(), "storage_corrupt");
        assert!(!corrupt.is_retryable() && corrupt.is_storage_failure());
        assert!(Error::ShuttingDown.is_retryable());
        assert!(!Error::ShuttingDown.is_storage_failure());
    }
}
