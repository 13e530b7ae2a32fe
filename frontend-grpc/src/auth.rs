//! Bearer tokens from request metadata.

use carewatch_core::Error;
use tonic::Request;

/// The token of `authorization: Bearer <token>`.
pub fn bearer<T>(request: &Request<T>) -> Result<&str, Error> {
    let value = request
        .metadata()
        .get("authorization")
        .ok_or(Error::Unauthenticated {
            reason: "missing `authorization: Bearer <token>` metadata",
        })?;
    let text = value.to_str().map_err(|_| Error::Unauthenticated {
        reason: "authorization metadata is not text",
    })?;
    text.strip_prefix("Bearer ").ok_or(Error::Unauthenticated {
        reason: "authorization metadata must be `Bearer <token>`",
    })
}
