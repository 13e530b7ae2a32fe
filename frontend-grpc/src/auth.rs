//! Bearer tokens from request metadata.

use carewatch_core::team::{Login, Role, User};
use carewatch_core::{Carewatch, Error};
use tonic::{Request, Status};

use crate::status::to_status;

/// The login that acts for a reseller's token (it has no user of its own;
/// no user may be invited under it).
pub const API_TOKEN_LOGIN: &str = carewatch_core::team::TOKEN_LOGIN;

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
    carewatch_core::auth::bearer_token(text).ok_or(Error::Unauthenticated {
        reason: "authorization metadata must be `Bearer <token>`",
    })
}

/// The reseller admin a reseller token stands for: the token is the
/// reseller's admin credential over gRPC (channels, maintenance, labels).
pub async fn token_admin<T>(carewatch: &Carewatch, request: &Request<T>) -> Result<User, Status> {
    let token = bearer(request).map_err(to_status)?;
    let reseller = carewatch
        .authenticate_reseller(token, request.remote_addr().map(|a| a.ip()))
        .await
        .map_err(to_status)?;
    Ok(User {
        reseller,
        login: Login::new(API_TOKEN_LOGIN).map_err(to_status)?,
        name: "reseller token".into(),
        role: Role::Admin,
        created_at: carewatch.now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: &str) -> Request<()> {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("metadata text"));
        request
    }

    /// The scheme in any case, as the JSON API reads it (RFC 7235); a
    /// lower-case `bearer` was refused over gRPC only.
    #[test]
    fn the_scheme_is_read_in_any_case() {
        for value in [
            "Bearer cwr.acme.x",
            "bearer cwr.acme.x",
            "BEARER cwr.acme.x",
        ] {
            assert_eq!(
                bearer(&with_authorization(value)).expect("read"),
                "cwr.acme.x"
            );
        }
        assert!(matches!(
            bearer(&with_authorization("Basic cwr.acme.x")),
            Err(Error::Unauthenticated { .. })
        ));
        assert!(matches!(
            bearer(&Request::new(())),
            Err(Error::Unauthenticated { .. })
        ));
    }
}
