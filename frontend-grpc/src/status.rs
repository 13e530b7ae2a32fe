//! Carewatch errors as gRPC statuses: one match, every kind its code, the
//! core's message as the status message and the kind in `carewatch-error`
//! metadata so clients can branch without parsing text.

use carewatch_core::{Carewatch, Error};
use futures::{Stream, StreamExt};

use crate::stopping::UntilStopped;
use tonic::{Code, Status};

/// Metadata key carrying [`Error::code`].
pub const ERROR_KIND_KEY: &str = "carewatch-error";

/// The gRPC code for a Carewatch error.
pub fn code_for(error: &Error) -> Code {
    // Kinds added to core later: internal until mapped (a test fails meanwhile).
    mapped_code(error).unwrap_or(Code::Internal)
}

/// The gRPC code of every kind this front end knows.
fn mapped_code(error: &Error) -> Option<Code> {
    Some(match error {
        Error::InvalidInput { .. } | Error::Malformed { .. } | Error::TooLarge { .. } => {
            Code::InvalidArgument
        }
        Error::UnknownInstallation { .. } | Error::NotFound { .. } => Code::NotFound,
        Error::ConsentMissing { .. }
        | Error::SubscriptionExpired { .. }
        | Error::Replayed { .. } => Code::FailedPrecondition,
        Error::CannotDecrypt { .. } => Code::PermissionDenied,
        Error::Unauthenticated { .. } => Code::Unauthenticated,
        Error::PermissionDenied { .. } => Code::PermissionDenied,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        // Retry later: the database, the disk or the lock may come back, or
        // another node takes the call.
        Error::StorageUnavailable { .. } | Error::ShuttingDown => Code::Unavailable,
        Error::StorageCorrupt { .. } => Code::DataLoss,
        Error::ResumeTooOld { .. } => Code::OutOfRange,
        Error::LimitReached { .. } => Code::ResourceExhausted,
        Error::Storage { .. } => Code::Internal,
        _ => return None,
    })
}

/// Converts a Carewatch error into a status.
pub fn to_status(error: Error) -> Status {
    let code = code_for(&error);
    let mut status = Status::new(code, error.to_string());
    if let Ok(kind) = error.code().parse() {
        status.metadata_mut().insert(ERROR_KIND_KEY, kind);
    }
    if matches!(code, Code::Internal | Code::DataLoss) {
        tracing::error!(error = %error, "internal error");
    }
    status
}

/// The `too_large` refusal for a message the transport cut off unread.
pub fn too_large(limit: usize) -> Status {
    let mut status = Status::new(
        Code::InvalidArgument,
        format!("message too large: more than {limit} bytes, at most {limit} accepted"),
    );
    status.metadata_mut().insert(
        ERROR_KIND_KEY,
        tonic::metadata::MetadataValue::from_static("too_large"),
    );
    status
}

/// `stream` until `carewatch` stops receiving; a stream cut short that way
/// ends with UNAVAILABLE (`shutting_down`), so clients reconnect instead of
/// taking the end for a normal one.
pub fn until_stopped<T: Send + 'static>(
    stream: impl Stream<Item = Result<T, Status>> + Send + 'static,
    carewatch: &Carewatch,
) -> impl Stream<Item = Result<T, Status>> + Send + 'static {
    let stopped = carewatch.clone();
    UntilStopped::new(stream, carewatch).chain(
        futures::stream::once(async move { stopped.is_stopping() }).filter_map(
            |stopping| async move { stopping.then(|| Err(to_status(Error::ShuttingDown))) },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use carewatch_core::ids::Slc;

    #[test]
    fn every_kind_of_error_has_its_own_mapping_and_carries_its_code() {
        for error in Error::one_of_each() {
            let code = mapped_code(&error);
            assert!(code.is_some(), "{} has no gRPC code", error.code());
            let status = to_status(error);
            assert_eq!(Some(status.code()), code);
            let kind = status.metadata().get(ERROR_KIND_KEY).expect("kind");
            assert!(Error::CODES.contains(&kind.to_str().expect("ascii")));
        }
    }

    /// What the README's error table says, for every kind.
    #[test]
    fn the_readme_tells_each_code_s_status() {
        for error in Error::one_of_each() {
            let documented = carewatch_core::testing::documented_error(error.code());
            // `InvalidArgument` as the table writes it, `INVALID_ARGUMENT`.
            let mut name = String::new();
            for (i, c) in format!("{:?}", code_for(&error)).chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            assert_eq!(documented.grpc, name, "{}", error.code());
        }
    }

    #[test]
    fn refusals_get_distinct_codes_and_carry_their_kind() {
        let slc = Slc::new("M01-C01-0001").unwrap();
        let status = to_status(Error::ConsentMissing { slc: slc.clone() });
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.metadata().get(ERROR_KIND_KEY).unwrap(),
            "consent_missing"
        );
        assert!(status.message().contains("consent"), "{}", status.message());
        assert_eq!(
            to_status(Error::installation_not_found(&slc)).code(),
            Code::NotFound
        );
        assert_eq!(
            to_status(Error::storage_unavailable("down", "connection refused")).code(),
            Code::Unavailable
        );
        let bad = Slc::new("x").unwrap_err();
        assert_eq!(to_status(bad).code(), Code::InvalidArgument);
    }
}
