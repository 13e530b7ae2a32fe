//! The one error type of Carewatch. Every refusal has its own variant and a
//! message that says what was wrong; backends map their private errors into
//! [`Error::StorageUnavailable`] (retry later) or [`Error::Storage`].

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

    /// Creating something that already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What it was.
        what: String,
    },

    /// The storage cannot be reached now; the same call may succeed later.
    #[error("storage unavailable: {message}")]
    StorageUnavailable {
        /// What happened.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },

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

    /// A retryable storage outage with its source.
    pub fn storage_unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::StorageUnavailable {
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
            Self::AlreadyExists { .. } => "already_exists",
            Self::StorageUnavailable { .. } => "storage_unavailable",
            Self::Storage { .. } => "storage",
        }
    }

    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::StorageUnavailable { .. })
    }
}
