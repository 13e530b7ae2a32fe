//! Carewatch errors as gRPC statuses: one match, every kind its code, the
//! core's message as the status message and the kind in `carewatch-error`
//! metadata so clients can branch without parsing text.

use carewatch_core::Error;
use tonic::{Code, Status};

/// Metadata key carrying [`Error::code`].
pub const ERROR_KIND_KEY: &str = "carewatch-error";

/// The gRPC code for a Carewatch error.
pub fn code_for(error: &Error) -> Code {
    match error {
        Error::InvalidInput { .. } | Error::Malformed { .. } | Error::TooLarge { .. } => {
            Code::InvalidArgument
        }
        Error::UnknownInstallation { .. } | Error::NotFound { .. } => Code::NotFound,
        Error::ConsentMissing { .. }
        | Error::SubscriptionExpired { .. }
        | Error::Replayed { .. } => Code::FailedPrecondition,
        Error::CannotDecrypt { .. } => Code::PermissionDenied,
        Error::Unauthenticated { .. } => Code::Unauthenticated,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::StorageUnavailable { .. } => Code::Unavailable,
        Error::Storage { .. } => Code::Internal,
        // Kinds added to core later: internal until mapped here.
        _ => Code::Internal,
    }
}

/// Converts a Carewatch error into a status.
pub fn to_status(error: Error) -> Status {
    let code = code_for(&error);
    let mut status = Status::new(code, error.to_string());
    if let Ok(kind) = error.code().parse() {
        status.metadata_mut().insert(ERROR_KIND_KEY, kind);
    }
    if code == Code::Internal {
        tracing::error!(error = %error, "internal error");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use carewatch_core::ids::Slc;

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
            to_status(Error::StorageUnavailable {
                message: "down".into(),
                source: None
            })
            .code(),
            Code::Unavailable
        );
        let bad = Slc::new("x").unwrap_err();
        assert_eq!(to_status(bad).code(), Code::InvalidArgument);
    }
}
