//! Security headers on every response of the web front end.

use axum::response::Response;
use http::{HeaderName, HeaderValue, header};

/// No inline scripts or styles anywhere: everything the page runs or looks
/// like comes from `/static/`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// HSTS for this host only: the operator's other hosts (which
/// `includeSubDomains` would cover) are not ours to pin to HTTPS.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Adds the security headers to a response. Everything but the static
/// files is `no-store`: pages and API answers are per user and may hold a
/// secret shown once. `tls` says whether the server speaks HTTPS: only then
/// is `Strict-Transport-Security` sent (RFC 6797 §7.2: never over plain HTTP).
pub async fn secure(mut response: Response, tls: bool) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    if tls {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            STRICT_TRANSPORT_SECURITY,
        );
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}
