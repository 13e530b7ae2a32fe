//! Who is asking: the session cookie, the CSRF tokens derived from it, the
//! login form's double-submit cookie, and the peer address.
//!
//! The session cookie holds the session secret itself (core keeps only its
//! hash). Every POST carries a CSRF token: for a signed-in user the hex
//! SHA-256 of a label and the session secret, so it needs no storage and
//! dies with the session; for the signed-out forms (login, invitation) a
//! random value that must match a cookie of the same value (double submit).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use carewatch_core::Error;
use carewatch_core::team::{SessionRecord, User};
use carewatch_core::time::Timestamp;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::transport::server::TcpConnectInfo;

use crate::AppState;
use crate::pages::error_page;

/// The session cookie: the session secret.
pub const SESSION_COOKIE: &str = "carewatch_session";
/// The signed-out forms' double-submit cookie.
pub const FORM_COOKIE: &str = "carewatch_form";
/// The name of the hidden CSRF field in every form.
pub const CSRF_FIELD: &str = "csrf";

/// The value of cookie `name`, if the request carries it (HTTP/2 may split
/// cookies over several headers).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, for the whole site,
/// `Secure` unless the server is plaintext on loopback.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    );
    // Names are constants and values are hex secrets: always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn delete_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", 0, secure)
}

/// The CSRF token of a session: derived, never stored.
pub fn csrf_token(session_secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"carewatch-web csrf v1\0");
    hasher.update(session_secret.as_bytes());
    hex(&hasher.finalize())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Whether a presented token equals the expected one, in constant time.
pub fn tokens_match(expected: &str, presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    !expected.is_empty()
        && expected.len() == presented.len()
        && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The address the request came from, as the server recorded it (never a
/// forwarded-for header, which anybody can write).
pub fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .map(|addr| addr.ip())
}

/// The peer address, as an extractor.
#[derive(Debug, Clone, Copy)]
pub struct PeerIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(peer_ip(parts)))
    }
}

/// A signed-in user: their session and the CSRF token their forms carry.
/// Extracting it from a request without a valid session answers with a
/// redirect to the login page (and deletes a stale cookie).
#[derive(Debug, Clone)]
pub struct SignedIn(Arc<SignedInInner>);

#[derive(Debug)]
struct SignedInInner {
    session: SessionRecord,
    secret: String,
    csrf: String,
}

impl SignedIn {
    /// The user.
    pub fn user(&self) -> &User {
        &self.0.session.user
    }

    /// The session secret (for signing out and re-checking).
    pub fn secret(&self) -> &str {
        &self.0.secret
    }

    /// When the session ends.
    pub fn expires_at(&self) -> Timestamp {
        self.0.session.expires_at
    }

    /// The token this user's forms carry.
    pub fn csrf(&self) -> &str {
        &self.0.csrf
    }

    /// Whether a submitted form's token is this session's.
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        tokens_match(&self.0.csrf, presented)
    }

    /// Whether the user may manage the team and tokens (core's rule).
    pub fn is_admin(&self) -> bool {
        carewatch_core::team::require_admin(self.user()).is_ok()
    }
}

/// Where a signed-out browser goes: the login page, with a stale session
/// cookie deleted.
pub fn to_login(had_cookie: bool, secure: bool) -> Response {
    let mut response = Redirect::to("/login").into_response();
    if had_cookie {
        response
            .headers_mut()
            .append(header::SET_COOKIE, delete_cookie(SESSION_COOKIE, secure));
    }
    response
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let secure = state.options.secure_cookies;
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE).filter(|s| !s.is_empty()) else {
            return Err(to_login(false, secure));
        };
        match state.carewatch.session(secret).await {
            Ok(session) => Ok(Self(Arc::new(SignedInInner {
                csrf: csrf_token(secret),
                secret: secret.to_owned(),
                session,
            }))),
            // Forged, expired, signed out, or the user was removed.
            Err(Error::Unauthenticated { .. }) => Err(to_login(true, secure)),
            Err(e) => Err(error_page(e, None)),
        }
    }
}

/// The session cookie for a new session.
pub fn session_cookie(
    secret: &str,
    expires_at: Timestamp,
    now: Timestamp,
    secure: bool,
) -> HeaderValue {
    set_cookie(
        SESSION_COOKIE,
        secret,
        expires_at.since(now).as_secs(),
        secure,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("carewatch_session=cws.x"),
        );
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("cws.x"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn csrf_tokens_are_derived_per_session_and_compared_exactly() {
        let token = csrf_token("cws.one");
        assert_eq!(token.len(), 64);
        assert_eq!(token, csrf_token("cws.one"));
        assert_ne!(token, csrf_token("cws.two"));
        assert!(tokens_match(&token, Some(&token)));
        assert!(!tokens_match(&token, Some(&token[1..])));
        assert!(!tokens_match(&token, None));
        assert!(!tokens_match("", Some("")));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_by_default() {
        let value = set_cookie(SESSION_COOKIE, "cws.x", 60, true);
        assert_eq!(
            value.to_str().expect("ascii"),
            "carewatch_session=cws.x; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(
            !set_cookie("a", "b", 1, false)
                .to_str()
                .expect("ascii")
                .contains("Secure")
        );
    }
}
