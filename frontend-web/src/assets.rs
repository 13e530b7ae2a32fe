//! The two static files, compiled in: the stylesheet and the live-update
//! script. Served with an ETag so browsers revalidate cheaply, and to
//! anybody (the login page needs them too).

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};

use crate::session::hex;

const SITE_CSS: &str = include_str!("../static/site.css");
const LIVE_JS: &str = include_str!("../static/live.js");

/// A file and its ETag.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Self {
        let digest = Sha256::digest(body.as_bytes());
        let etag = format!("\"{}\"", hex(&digest[..12]));
        Self {
            body,
            content_type,
            etag: HeaderValue::from_str(&etag).unwrap_or_else(|_| HeaderValue::from_static("\"\"")),
        }
    }

    fn serve(&self, request: &HeaderMap) -> Response {
        let cached = request
            .get(header::IF_NONE_MATCH)
            .is_some_and(|tag| tag == self.etag);
        let mut response = if cached {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.content_type),
                )],
                self.body,
            )
                .into_response()
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, self.etag.clone());
        // Revalidate every time: a new version must not wait for a cache.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

static CSS: LazyLock<Asset> = LazyLock::new(|| Asset::new(SITE_CSS, "text/css; charset=utf-8"));
static JS: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(LIVE_JS, "text/javascript; charset=utf-8"));

/// `GET /static/site.css`.
pub async fn css(headers: HeaderMap) -> Response {
    CSS.serve(&headers)
}

/// `GET /static/live.js`.
pub async fn js(headers: HeaderMap) -> Response {
    JS.serve(&headers)
}
