//! Carewatch errors as HTTP: one table from every kind to a status, used by
//! the pages (an error page) and the JSON API (`{"error": {"code", "message"}}`).

use axum::Json;
use axum::response::{IntoResponse, Response};
use carewatch_core::Error;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

/// The HTTP status for a Carewatch error.
pub fn status_for(error: &Error) -> StatusCode {
    // Kinds added to core later: 500 until mapped (a test fails meanwhile).
    mapped_status(error).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The status of every kind this front end knows.
fn mapped_status(error: &Error) -> Option<StatusCode> {
    Some(match error {
        Error::InvalidInput { .. } | Error::Malformed { .. } => StatusCode::BAD_REQUEST,
        Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        // Another reseller's installation is a 404 exactly like a missing one.
        Error::UnknownInstallation { .. } | Error::NotFound { .. } => StatusCode::NOT_FOUND,
        // Refusals of recording-server messages: the web never ingests, but
        // every kind has its place.
        Error::ConsentMissing { .. }
        | Error::SubscriptionExpired { .. }
        | Error::Replayed { .. }
        | Error::AlreadyExists { .. } => StatusCode::CONFLICT,
        Error::CannotDecrypt { .. } | Error::PermissionDenied { .. } => StatusCode::FORBIDDEN,
        Error::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
        // Retry later: the database, the disk or the lock may come back, or
        // another node takes the call.
        Error::StorageUnavailable { .. } | Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        Error::ResumeTooOld { .. } => StatusCode::GONE,
        Error::LimitReached { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::StorageCorrupt { .. } | Error::Storage { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => return None,
    })
}

/// Logs what the operator must hear about (the client sees the message too,
/// but a 5xx also belongs in the log). A storage outage or a stop is logged
/// once per 10 s with a count, not per request: every page, API call and
/// live-feed reconnect during an outage would each write an error line.
pub fn log_if_internal(error: &Error) {
    if error.is_retryable() {
        static REFUSED: std::sync::LazyLock<carewatch_core::log_limit::RateLimitedLog> =
            std::sync::LazyLock::new(Default::default);
        REFUSED.log("retry later", |requests| {
            tracing::warn!(error = %error, code = error.code(), requests, "requests refused: try again later");
        });
    } else if status_for(error).is_server_error() {
        tracing::error!(error = %error, code = error.code(), "request failed");
    }
}

/// The body of every JSON error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// One error: a stable code to branch on and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable kind, e.g. `not_found`, `invalid_input`,
    /// `unauthenticated`, `method_not_allowed`, `storage_unavailable`.
    #[schema(example = "not_found")]
    pub code: String,
    /// What was wrong, in words.
    #[schema(example = "installation M01-C01-0001 not found")]
    pub message: String,
}

/// A Carewatch error as a JSON API response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        log_if_internal(&error);
        let status = status_for(&error);
        let body = ErrorBody {
            error: ErrorDetail {
                code: error.code().to_owned(),
                message: error.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        decorate(&error, &mut response);
        response
    }
}

/// Headers a status implies: a challenge for 401, a retry hint for 503.
pub fn decorate(error: &Error, response: &mut Response) {
    let headers = response.headers_mut();
    match status_for(error) {
        StatusCode::UNAUTHORIZED => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"carewatch\""),
            );
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        _ => {}
    }
}

/// A short title for an error page.
pub fn title_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "Bad request",
        StatusCode::UNAUTHORIZED => "Not signed in",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::GONE => "Gone",
        StatusCode::PAYLOAD_TOO_LARGE => "Too large",
        StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable",
        _ => "Something went wrong",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carewatch_core::ids::Slc;

    #[test]
    fn every_kind_of_error_has_its_own_status_and_carries_its_code() {
        for error in Error::one_of_each() {
            let code = error.code();
            let status = mapped_status(&error);
            assert!(status.is_some(), "{code} has no HTTP status");
            let response = ApiError(error).into_response();
            assert_eq!(Some(response.status()), status, "{code}");
            assert!(Error::CODES.contains(&code));
        }
    }

    /// What the README's error table says, for every kind.
    #[test]
    fn the_readme_tells_each_code_s_status() {
        for error in Error::one_of_each() {
            let documented = carewatch_core::testing::documented_error(error.code());
            assert_eq!(
                documented.http,
                status_for(&error).as_u16(),
                "{}",
                error.code()
            );
        }
    }

    #[test]
    fn statuses_follow_http_meanings() {
        let slc = Slc::new("M01-C01-0001").expect("valid");
        assert_eq!(
            status_for(&Error::installation_not_found(&slc)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_for(&Slc::new("x").expect_err("too short")),
            StatusCode::BAD_REQUEST
        );
        let unauthenticated =
            ApiError(Error::Unauthenticated { reason: "example" }).into_response();
        assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
        assert!(
            unauthenticated
                .headers()
                .contains_key(header::WWW_AUTHENTICATE)
        );
        let outage = ApiError(Error::storage_unavailable("down", "refused")).into_response();
        assert_eq!(outage.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(outage.headers().contains_key(header::RETRY_AFTER));
    }
}
